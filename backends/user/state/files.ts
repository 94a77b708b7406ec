/**
 * The descriptor table. Each descriptor refers to an open file; an open
 * file shared by several descriptors (dup, fork) is saved once, under an
 * id, by the file type that claims it (see fdtype.ts), and restore makes
 * the later descriptors point at that same open file again: dup within a
 * task, pidfd_getfd across tasks.
 * stdio on a terminal, pipe or socket the task did not share with anyone
 * else in the image is "inherited": it takes what `cr restore` has.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { readProc } from '../../../userspace/proc/parse.js';
import { NR, O, RLIMIT_NOFILE } from '../../../userspace/sys/constants.js';
import { prlimit, rawSyscall } from '../../../userspace/sys/libc.js';
import { imageFile, readImage } from '../image.js';
import { eventfds } from './eventfd.js';
import { eventpolls } from './eventpoll.js';
import { F_GETFL, liftFd, matchStatusFlags, rememberLeftovers, takeFromTask, takeFromTasks, type DumpFiles, type FdProbe, type FdType, type OpenFileImage, type RestoreFiles } from './fdtype.js';
import { regFiles } from './files-reg.js';
import { checkLock, describeLock, dumpLocks, takeLock, type FileLock } from './locks.js';
import { memfds } from './memfd.js';
import { defineState, type DumpTask, type RestoreTask } from './module.js';
import { pipes } from './pipes.js';
import { otherSockets } from './sockets.js';
import { tcpSockets } from './sockets-tcp.js';
import { udpSockets } from './sockets-udp.js';
import { signalfds } from './signalfd.js';
import { unixSockets } from './sockets-unix.js';
import { inotifys } from './inotify.js';
import { timerfds } from './timerfd.js';
import { ttys } from './tty.js';

interface Fd {
  fd: number;
  cloexec: boolean;
  file_id: number;
}

export interface FilesImage {
  fds: Fd[];
  files: OpenFileImage[];
  parent_table: boolean;
  locks: FileLock[];
}

const INHERIT = 'inherit';
const FD_TYPES: FdType[] = [memfds, regFiles, pipes, eventfds, timerfds, signalfds, eventpolls, unixSockets, tcpSockets, udpSockets, otherSockets, ttys, inotifys];
/** cr restore hands every task its descriptors from here up (see tty.ts). */
const HANDED_FD = 4;
const KCMP_FILE = 0;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_SETSIG = 10;
const F_GETSIG = 11;
const F_SETOWN_EX = 15;
const F_GETOWN_EX = 16;

const FDINFO_LINE = /^([\w-]+):[ \t]*(.*)$/gm;

function probe(pid: number, fd: number): FdProbe {
  const link = `/proc/${pid}/fd/${fd}`;
  const failed = (err: unknown) => new CrError(`pid ${pid} fd ${fd}: cannot inspect (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  try {
    const infoText = readProc(pid, `fdinfo/${fd}`);
    // "key: value" lines (a repeated key: its last); the repeated lines of locks, watches and marks stay in the text.
    const info = new Map<string, string>();
    for (const m of infoText.matchAll(FDINFO_LINE)) info.set(m[1], m[2]);
    const flags = parseInt(info.get('flags') ?? '0', 8);
    let target: string | undefined;
    return {
      pid, fd, stat: fs.statSync(link, { bigint: true }), info, infoText, flags, pos: BigInt(info.get('pos') ?? '0'),
      // read when first asked for: a descriptor of an open file saved already needs only its inode
      get target() {
        try {
          return (target ??= fs.readlinkSync(link));
        } catch (err) {
          throw failed(err);
        }
      },
    };
  } catch (err) {
    throw failed(err);
  }
}

/** The id of the open file behind a descriptor, if an earlier descriptor already showed it. */
function knownFile(task: DumpTask, f: FdProbe): number | undefined {
  return task.shared.files.byIno.get(f.stat.ino)?.find((k) => k.dev === f.stat.dev && rawSyscall(NR.kcmp, k.pid, f.pid, KCMP_FILE, k.fd, f.fd) === 0)?.id;
}

function unsupported(f: FdProbe): string {
  const t = f.target;
  const what = t.startsWith('socket:') ? 'socket' : t.startsWith('anon_inode:') ? t.slice(11).replace(/^\[|\]$/g, '') : t;
  return `pid ${f.pid} fd ${f.fd}: ${what} is not supported`;
}

/** stdio that belongs to whoever runs the program rather than to the program. */
const inheritable = (f: FdProbe) => f.fd <= 2 && (f.stat.isCharacterDevice() || f.stat.isFIFO() || f.stat.isSocket()) && !f.target.startsWith('/dev/null');

/** Who gets SIGIO from an O_ASYNC file, and which signal: asked of the task itself (or of cr, for a file in flight). */
function dumpOwner(task: DumpTask, f: FdProbe): Pick<OpenFileImage, 'owner_type' | 'owner_pid' | 'signal'> {
  if (!(f.flags & O.ASYNC)) return { owner_type: 0, owner_pid: 0, signal: 0 };
  if (f.pid === process.pid) {
    const b = Buffer.alloc(8);
    rawSyscall(NR.fcntl, f.fd, F_GETOWN_EX, b);
    return { owner_type: b.readUInt32LE(0), owner_pid: b.readInt32LE(4), signal: rawSyscall(NR.fcntl, f.fd, F_GETSIG, 0) };
  }
  task.inj.reset();
  const own = task.inj.alloc(8);
  task.tracee.syscallOk(`fd ${f.fd}: F_GETOWN_EX`, NR.fcntl, f.fd, F_GETOWN_EX, own);
  const b = task.tracee.readMem(own, 8);
  const signal = Number(task.tracee.syscallOk(`fd ${f.fd}: F_GETSIG`, NR.fcntl, f.fd, F_GETSIG, 0));
  return { owner_type: b.readUInt32LE(0), owner_pid: b.readInt32LE(4), signal };
}

function restoreOwner(task: RestoreTask, fd: number, file: OpenFileImage): void {
  if (!(file.flags & O.ASYNC)) return;
  task.inj.reset();
  const own = Buffer.alloc(8);
  own.writeUInt32LE(file.owner_type, 0);
  own.writeInt32LE(file.owner_pid, 4);
  if (file.owner_pid) task.tracee.syscallOk(`F_SETOWN_EX ${file.owner_pid}`, NR.fcntl, fd, F_SETOWN_EX, task.inj.put(own));
  if (file.signal) task.tracee.syscallOk('F_SETSIG', NR.fcntl, fd, F_SETSIG, file.signal);
}

/**
 * The lowest descriptor number from which `room` numbers are free in the
 * image: restore creates its temporaries there, so even a table whose
 * highest descriptor is at nr_open - 1 leaves them room.
 */
function temporaryBase(fds: number[], room: number): number {
  let base = 3;
  for (const fd of [...fds].sort((a, b) => a - b)) {
    if (fd >= base + room) break;
    if (fd >= base) base = fd + 1;
  }
  return base;
}

/**
 * Place every descriptor of the task whose open file another task already
 * has (restored before it): all taken in one round trip, all moved into
 * place in another. Each then counts as this task's (later tasks may take
 * it from here). Returns the descriptor numbers it placed.
 */
function takeShared(task: RestoreTask, fds: Fd[]): Set<number> {
  const { inj } = task;
  const first = new Map<number, Fd>();
  for (const d of fds) {
    const known = task.shared.files.get(d.file_id);
    if (known && known.pid !== task.pid && !first.has(d.file_id)) first.set(d.file_id, d);
  }
  if (!first.size) return new Set();
  const heads = [...first.values()];
  const got = takeFromTasks(task, heads.map((d) => task.shared.files.get(d.file_id)!));
  const moves = heads.map((d, i) => ({ from: got[i], to: d.fd, cloexec: d.cloexec }));
  // The task's other descriptors of the same files: copies of the first, once every move is done.
  const copies = fds.filter((d) => first.has(d.file_id) && first.get(d.file_id) !== d).map((d) => ({ from: first.get(d.file_id)!.fd, to: d.fd, cloexec: d.cloexec }));
  inj.reset();
  const calls = [...moveCalls(task, moves), ...copies.map((c) => dup3Call(c))];
  inj.batchOk(calls, (i) => (calls[i][0] === NR.dup3 ? `dup3 to fd ${calls[i][2]}` : calls[i][0] === NR.close ? `close fd ${calls[i][1]}` : `fcntl(F_SETFD) fd ${calls[i][1]}`));
  for (const d of heads) task.shared.files.set(d.file_id, { pid: task.pid, fd: d.fd });
  return new Set(fds.filter((d) => first.has(d.file_id)).map((d) => d.fd));
}

const dup3Call = (m: { from: number; to: number; cloexec: boolean }) => [NR.dup3, m.from, m.to, m.cloexec ? O.CLOEXEC : 0];

/**
 * The calls that move descriptors `from` (taken at the lowest free
 * numbers, close-on-exec) to `to` all at once: a move waits until its
 * target is no source still to be moved, a cycle of them goes through a
 * free number, and a source no move takes over is closed.
 */
function moveCalls(task: RestoreTask, moves: { from: number; to: number; cloexec: boolean }[]): (number | bigint)[][] {
  const calls: (number | bigint)[][] = [];
  const targets = new Set(moves.map((m) => m.to));
  for (const m of moves) if (m.from === m.to && !m.cloexec) calls.push([NR.fcntl, m.to, F_SETFD, 0]);
  const pending = moves.filter((m) => m.from !== m.to).map((m) => ({ ...m }));
  let spare: number | undefined;
  while (pending.length) {
    const sources = new Set(pending.map((m) => m.from));
    const i = pending.findIndex((m) => !sources.has(m.to));
    if (i < 0) {
      // Every target is still a source: park one source on a number nobody uses.
      if (spare === undefined) {
        const open = new Set(fs.readdirSync(`/proc/${task.pid}/fd`).map(Number));
        for (spare = task.fdBase; open.has(spare) || targets.has(spare); spare++);
      }
      calls.push([NR.dup3, pending[0].from, spare, O.CLOEXEC]);
      pending[0].from = spare;
      continue;
    }
    const [m] = pending.splice(i, 1);
    calls.push(dup3Call(m));
    if (!targets.has(m.from)) calls.push([NR.close, m.from]);
  }
  return calls;
}

export const files = defineState<FilesImage>({
  name: 'files',

  dump(task) {
    // The parent's image holds a table shared with it, and restore shares it again.
    if (task.entry.clone_files) {
      task.images.write('files', task.pid, { fds: [], files: [], parent_table: true, locks: [] });
      return;
    }
    const fds: Fd[] = [];
    const opened: OpenFileImage[] = [];
    const locks: FileLock[] = [];
    /** The id of the open file behind `f`, saving the file the first time; `inFlight` when no descriptor table holds it. */
    const save = (f: FdProbe, inFlight = false): { id: number; fresh: boolean } => {
      const known = knownFile(task, f);
      if (known !== undefined) return { id: known, fresh: false };
      // An O_PATH descriptor is only a name, whatever it names: it is reopened by it.
      // stdio is the restorer's, unless it is a pipe or a terminal of the tree's (or the shell job's).
      const own = (t: FdType) => t.claims(f, task);
      const stdio = !inFlight && inheritable(f);
      const type = f.flags & O.PATH ? regFiles : stdio && !f.stat.isFIFO() && !own(ttys) ? undefined : FD_TYPES.find(own);
      if (!type && !stdio) throw new CrError(unsupported(f));
      if (inFlight && type?.byNumber) throw new CrError(`${unsupported(f)} in flight in a socket`);
      const { files } = task.shared;
      const id = ++files.count;
      files.byIno.set(f.stat.ino, [...(files.byIno.get(f.stat.ino) ?? []), { id, pid: f.pid, fd: f.fd, dev: f.stat.dev }]);
      const payload = type ? type.dump(task, f, dumpFiles) : Buffer.alloc(0);
      const owner = type ? dumpOwner(task, f) : { owner_type: 0, owner_pid: 0, signal: 0 };
      opened.push({ id, type: type?.type ?? INHERIT, flags: f.flags & ~O.CLOEXEC, pos: f.pos, payload, ...owner });
      return { id, fresh: true };
    };
    const dumpFiles: DumpFiles = {
      idOf(pid, fd) {
        const f = probe(pid, fd);
        const id = pid === task.pid ? save(f).id : knownFile(task, f);
        if (id === undefined) throw new CrError(`pid ${pid} fd ${fd}: an open file another task refers to first is not supported`);
        return id;
      },
      inFlight: (fd) => save(probe(process.pid, fd), true).id,
    };
    // Through a live thread: an exited leader's /proc shows no descriptors.
    for (const fd of fs.readdirSync(`/proc/${task.tracee.pid}/fd`).map(Number).sort((a, b) => a - b)) {
      const f = probe(task.tracee.pid, fd);
      // the userfaultfd a pre-dump left (tracking.ts): ours, not the task's
      const prev = task.shared.prev;
      if (prev?.inos.has(f.stat.ino) && f.target === 'anon_inode:[userfaultfd]') {
        prev.found.set(task.pid, [...(prev.found.get(task.pid) ?? []), fd]);
        continue;
      }
      const { id, fresh } = save(f);
      fds.push({ fd, cloexec: (f.flags & O.CLOEXEC) !== 0, file_id: id });
      const taken = locks.filter((l) => l.file_id === id);
      locks.push(...dumpLocks(f, id, fresh).filter((l) => !taken.some((t) => t.kind === l.kind && t.start === l.start && t.end === l.end)));
    }
    task.images.write('files', task.pid, { fds, files: opened, locks });
  },

  load(dir, { pid, clone_files }) {
    const img = readImage<FilesImage>(dir, 'files', pid);
    const where = imageFile(dir, 'files', pid);
    if (img.parent_table !== clone_files || (img.parent_table && (img.fds.length || img.files.length || img.locks.length))) {
      throw new CrError(`${where}: corrupted image (fd table shared with the parent or not)`);
    }
    for (const file of img.files) {
      if (file.type === INHERIT) continue;
      const type = FD_TYPES.find((t) => t.type === file.type);
      if (!type) throw new CrError(`${where}: unknown file type '${file.type}'`);
      type.check(file, `pid ${pid} file ${file.id}`);
    }
    for (const l of img.locks) {
      checkLock(l, where);
      if (!img.fds.some((d) => d.fd === l.fd && d.file_id === l.file_id)) throw new CrError(`${where}: corrupted image (lock on fd ${l.fd}, which is not its file's)`);
    }
    return img;
  },

  restore(task, img) {
    if (img.parent_table) return; // built by the parent, into the table this task shares
    const { tracee, inj } = task;
    const own = new Map(img.files.map((f) => [f.id, f]));
    // The placeholder holds cr-mktree's descriptors: keep only stdio the image inherits.
    const inherited = new Set(img.fds.filter((d) => own.get(d.file_id)?.type === INHERIT).map((d) => d.fd));
    // Open files are created at numbers the image does not use (liftFd), then placed.
    const room = 3 * img.files.length + 64;
    task.fdBase = temporaryBase(img.fds.map((d) => d.fd), room);
    const limit = prlimit(task.pid, RLIMIT_NOFILE);
    const needed = BigInt(Math.max(task.fdBase + room, ...img.fds.map((d) => d.fd + 1)));
    if (limit.cur < needed) prlimit(task.pid, RLIMIT_NOFILE, { cur: needed, max: limit.max > needed ? limit.max : needed });
    // What cr restore handed every task goes out of the way; of cr-mktree's descriptors, only stdio the image inherits stays.
    task.handed = task.shared.terminals.handed.map((_, k) => liftFd(task, HANDED_FD + k));
    rememberLeftovers(task, task.handed);
    const closes: (number | bigint)[][] = [];
    let from = 3;
    for (const keep of [...task.handed].sort((a, b) => a - b)) {
      if (keep > from) closes.push([NR.close_range, from, keep - 1, 0]);
      from = keep + 1;
    }
    closes.push([NR.close_range, from, 0xffffffff, 0]);
    // stdio the image does not inherit is closed (unchecked: it may not be open); inherited stdio gets its close-on-exec flag.
    const stdio = [0, 1, 2].filter((fd) => !inherited.has(fd)).map((fd) => [NR.close, fd]);
    const cloexec = img.fds.filter((d) => d.cloexec && inherited.has(d.fd)).map((d) => [NR.fcntl, d.fd, F_SETFD, FD_CLOEXEC]);
    inj.reset();
    const closed = inj.batch([...closes, ...stdio, ...cloexec], 'close_range');
    closed.slice(0, closes.length).forEach((r) => tracee.checked('close_range', r));
    closed.slice(closes.length + stdio.length).forEach((r) => tracee.checked('fcntl(F_SETFD)', r));
    const taken = takeShared(task, img.fds.filter((d) => !inherited.has(d.fd)));
    const place = (from: number, d: Fd) => {
      tracee.syscallOk(`dup3 to fd ${d.fd}`, NR.dup3, from, d.fd, d.cloexec ? O.CLOEXEC : 0);
    };

    /**
     * Create open file `file` of the image in the task, with its status
     * flags (unless `flagsLater`: the caller checks them as it places it),
     * owner and its own locks.
     */
    const create = (file: OpenFileImage, where: string, flagsLater = false): number => {
      const fd = FD_TYPES.find((t) => t.type === file.type)!.open(task, file, restoreFiles);
      if (!flagsLater) matchStatusFlags(task, fd, file.flags, where);
      restoreOwner(task, fd, file);
      // The open file's own locks, before anyone else can take them.
      for (const l of img.locks) if (l.file_id === file.id && l.kind !== 'posix') takeLock(task, fd, l);
      return fd;
    };
    const later: (() => void)[] = [];
    const restoreFiles: RestoreFiles = {
      open(id) {
        const known = task.shared.files.get(id);
        if (known?.pid === task.pid) return known.fd;
        const file = own.get(id);
        if (!known && !file) throw new CrError(`pid ${task.pid}: open file ${id} is in no task of the image`);
        // Another task's file, or one of this task's that only a socket holds in flight.
        const fd = known ? liftFd(task, takeFromTask(task, known.pid, known.fd)) : create(file!, `pid ${task.pid} file ${id}`);
        rememberLeftovers(task, [fd]);
        if (!known) task.shared.files.set(id, { pid: task.pid, fd });
        return fd;
      },
      later: (fn) => later.push(fn),
    };

    for (const d of img.fds) {
      if (taken.has(d.fd)) continue;
      const file = own.get(d.file_id);
      if (file?.type === INHERIT) {
        task.shared.files.set(d.file_id, { pid: task.pid, fd: d.fd });
        continue;
      }
      const known = task.shared.files.get(d.file_id);
      if (known?.pid === task.pid) {
        place(known.fd, d);
        continue;
      }
      let tmp: number;
      const where = `pid ${task.pid} fd ${d.fd}`;
      if (known) {
        tmp = liftFd(task, takeFromTask(task, known.pid, known.fd));
      } else {
        if (!file) throw new CrError(`${where}: its open file ${d.file_id} is in no task of the image`);
        tmp = create(file, where, true);
      }
      // placed, its status flags read back, and the temporary closed unless something still holds it: one round trip
      const placed = [[NR.dup3, tmp, d.fd, d.cloexec ? O.CLOEXEC : 0], [NR.fcntl, d.fd, F_GETFL, 0]];
      const [ret, flags] = inj.batch(task.shared.leftovers.get(task.pid)?.includes(tmp) ? placed : [...placed, [NR.close, tmp]], `dup3 to fd ${d.fd}`);
      tracee.checked(`dup3 to fd ${d.fd}`, ret);
      if (!known && Number(flags) !== file!.flags) matchStatusFlags(task, d.fd, file!.flags, where);
      task.shared.files.set(d.file_id, { pid: task.pid, fd: d.fd });
      inj.reset();
    }
    // Every descriptor is in place: epoll adds its watches, sockets refill their queues.
    while (later.length) later.shift()!();
  },

  settle(task, img) {
    task.inj.reset();
    task.inj.batch((task.shared.leftovers.get(task.pid) ?? []).map((fd) => [NR.close, fd]), 'close');
    // Only now is no descriptor of the task closed any more: closing one would drop them.
    for (const l of img.locks) if (l.kind === 'posix') takeLock(task, l.fd, l);
  },

  describe(img) {
    if (img.parent_table) return ['  fd table: shared with the parent (CLONE_FILES)'];
    const byId = new Map(img.files.map((f) => [f.id, f]));
    return [
      ...img.fds.map((d) => {
        const f = byId.get(d.file_id);
        const what = !f ? `shares open file ${d.file_id}` : f.type === INHERIT ? 'inherited from cr restore'
          : `${FD_TYPES.find((t) => t.type === f.type)?.describe(f)} flags 0${f.flags.toString(8)}${f.flags & O.ASYNC ? ` owner ${f.owner_pid}${f.signal ? ` signal ${f.signal}` : ''}` : ''}`;
        return `  fd ${d.fd}: ${what}${d.cloexec ? ' cloexec' : ''}`;
      }),
      ...img.locks.map((l) => `  ${describeLock(l)}`),
    ];
  },
});
