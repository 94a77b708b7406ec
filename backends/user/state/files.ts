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
import { procFdinfo } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { prlimit, rawSyscall } from '../../../userspace/sys/libc.js';
import { imageFile, readImage } from '../image.js';
import { eventfds } from './eventfd.js';
import { eventpolls } from './eventpoll.js';
import { liftFd, takeFromTask, type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';
import { regFiles } from './files-reg.js';
import { memfds } from './memfd.js';
import { defineState, type DumpTask } from './module.js';
import { pipes } from './pipes.js';
import { signalfds } from './signalfd.js';
import { unixSockets } from './sockets-unix.js';
import { timerfds } from './timerfd.js';

interface Fd {
  fd: number;
  cloexec: boolean;
  file_id: number;
}

export interface FilesImage {
  fds: Fd[];
  files: OpenFileImage[];
  parent_table: boolean;
}

const INHERIT = 'inherit';
const FD_TYPES: FdType[] = [memfds, regFiles, pipes, eventfds, timerfds, signalfds, eventpolls, unixSockets];
const KCMP_FILE = 0;
const RLIMIT_NOFILE = 7;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

function probe(pid: number, fd: number): FdProbe {
  const link = `/proc/${pid}/fd/${fd}`;
  try {
    const info = procFdinfo(pid, fd);
    const flags = parseInt(info.get('flags') ?? '0', 8);
    return { pid, fd, target: fs.readlinkSync(link), stat: fs.statSync(link, { bigint: true }), info, flags, pos: BigInt(info.get('pos') ?? '0') };
  } catch (err) {
    throw new CrError(`pid ${pid} fd ${fd}: cannot inspect (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The id of the open file behind a descriptor, if an earlier descriptor already showed it. */
function knownFile(task: DumpTask, f: FdProbe): number | undefined {
  return task.shared.files.find((k) => k.dev === f.stat.dev && k.ino === f.stat.ino &&
    rawSyscall(NR.kcmp, k.pid, f.pid, KCMP_FILE, k.fd, f.fd) === 0)?.id;
}

function unsupported(f: FdProbe): string {
  const t = f.target;
  const what = t.startsWith('socket:') ? 'socket' : t.startsWith('anon_inode:') ? t.slice(11).replace(/^\[|\]$/g, '') : t;
  return `pid ${f.pid} fd ${f.fd}: ${what} is not supported`;
}

/** stdio that belongs to whoever runs the program rather than to the program. */
const inheritable = (f: FdProbe) => f.fd <= 2 && (f.stat.isCharacterDevice() || f.stat.isFIFO() || f.stat.isSocket()) && !f.target.startsWith('/dev/null');

export const files = defineState<FilesImage>({
  name: 'files',

  dump(task) {
    // The parent's image holds a table shared with it, and restore shares it again.
    if (task.entry.clone_files) {
      task.images.write('files', task.pid, { fds: [], files: [], parent_table: true });
      return;
    }
    const fds: Fd[] = [];
    const opened: OpenFileImage[] = [];
    for (const fd of fs.readdirSync(`/proc/${task.tracee.pid}/fd`).map(Number).sort((a, b) => a - b)) {
      const f = probe(task.tracee.pid, fd);
      const cloexec = (f.flags & O.CLOEXEC) !== 0;
      const flags = f.flags & ~O.CLOEXEC;
      let id = knownFile(task, f);
      if (id === undefined) {
        const type = inheritable(f) && !f.stat.isFIFO() ? undefined : FD_TYPES.find((t) => t.claims(f));
        if (!type && !inheritable(f)) throw new CrError(unsupported(f));
        id = task.shared.files.length + 1;
        task.shared.files.push({ id, pid: f.pid, fd, dev: f.stat.dev, ino: f.stat.ino });
        const payload = type ? type.dump(task, f) : Buffer.alloc(0);
        opened.push({ id, type: type?.type ?? INHERIT, flags, pos: f.pos, payload });
      }
      fds.push({ fd, cloexec, file_id: id });
    }
    task.images.write('files', task.pid, { fds, files: opened });
  },

  load(dir, { pid, clone_files }) {
    const img = readImage<FilesImage>(dir, 'files', pid);
    const where = imageFile(dir, 'files', pid);
    if (img.parent_table !== clone_files || (img.parent_table && (img.fds.length || img.files.length))) {
      throw new CrError(`${where}: corrupted image (fd table shared with the parent or not)`);
    }
    for (const file of img.files) {
      if (file.type === INHERIT) continue;
      const type = FD_TYPES.find((t) => t.type === file.type);
      if (!type) throw new CrError(`${where}: unknown file type '${file.type}'`);
      type.check(file, `pid ${pid} file ${file.id}`);
    }
    return img;
  },

  restore(task, img) {
    if (img.parent_table) return; // built by the parent, into the table this task shares
    const { tracee, inj } = task;
    const own = new Map(img.files.map((f) => [f.id, f]));
    // The placeholder holds cr-mktree's descriptors: keep only stdio the image inherits.
    const inherited = new Set(img.fds.filter((d) => own.get(d.file_id)?.type === INHERIT).map((d) => d.fd));
    tracee.syscallOk('close_range', NR.close_range, 3, 0xffffffff, 0);
    for (let fd = 0; fd <= 2; fd++) if (!inherited.has(fd)) tracee.syscall(NR.close, fd);
    // Open files are created above every descriptor the image uses (liftFd), then placed.
    task.fdBase = Math.max(3, ...img.fds.map((d) => d.fd + 1));
    const limit = prlimit(task.pid, RLIMIT_NOFILE);
    const room = BigInt(task.fdBase + 64);
    if (limit.cur < room) prlimit(task.pid, RLIMIT_NOFILE, { cur: room, max: limit.max > room ? limit.max : room });
    const place = (from: number, d: Fd) => {
      tracee.syscallOk(`dup3 to fd ${d.fd}`, NR.dup3, from, d.fd, d.cloexec ? O.CLOEXEC : 0);
    };

    const late = (d: Fd) => FD_TYPES.find((t) => t.type === own.get(d.file_id)?.type)?.late === true;
    for (const d of [...img.fds.filter((d) => !late(d)), ...img.fds.filter(late)]) {
      const file = own.get(d.file_id);
      if (file?.type === INHERIT) {
        if (d.cloexec) tracee.syscallOk('fcntl', NR.fcntl, d.fd, F_SETFD, FD_CLOEXEC);
        task.shared.files.set(d.file_id, { pid: task.pid, fd: d.fd });
        continue;
      }
      const known = task.shared.files.get(d.file_id);
      if (known?.pid === task.pid) {
        place(known.fd, d);
        continue;
      }
      let tmp: number;
      if (known) {
        tmp = liftFd(task, takeFromTask(task, known.pid, known.fd));
      } else {
        if (!file) throw new CrError(`pid ${task.pid} fd ${d.fd}: its open file ${d.file_id} is in no task of the image`);
        tmp = FD_TYPES.find((t) => t.type === file.type)!.open(task, file);
      }
      place(tmp, d);
      if (!task.shared.leftovers.get(task.pid)?.includes(tmp)) tracee.syscall(NR.close, tmp);
      task.shared.files.set(d.file_id, { pid: task.pid, fd: d.fd });
      inj.reset();
    }
  },

  settle(task) {
    for (const fd of task.shared.leftovers.get(task.pid) ?? []) task.tracee.syscall(NR.close, fd);
  },

  describe(img) {
    if (img.parent_table) return ['  fd table: shared with the parent (CLONE_FILES)'];
    const byId = new Map(img.files.map((f) => [f.id, f]));
    return img.fds.map((d) => {
      const f = byId.get(d.file_id);
      const what = !f ? `shares open file ${d.file_id}` : f.type === INHERIT ? 'inherited from cr restore'
        : `${FD_TYPES.find((t) => t.type === f.type)?.describe(f)} flags 0${f.flags.toString(8)}`;
      return `  fd ${d.fd}: ${what}${d.cloexec ? ' cloexec' : ''}`;
    });
  },
});
