/**
 * Terminals. A pseudo-terminal pair whose master is in the tree is made
 * again by cr restore itself before any task exists (prepareTerminals),
 * at the same /dev/pts number when that is free, with its termios, window
 * size, packet mode, lock and exclusive mode; the masters are handed to
 * every placeholder (at fd 4 and up, see files.ts) and a session leader
 * whose controlling terminal it was takes it before it forks (cr-mktree
 * :t), so the whole session has it again; the leader then gives the
 * foreground back to the process group that had it. A slave is a new open
 * of /dev/pts/N; /dev/tty is opened as /dev/tty, by a task that again has
 * the same controlling terminal.
 *
 * The terminal a shell job runs on (--shell-job, like CRIU's -j) is not
 * the tree's: its descriptors are restored on the terminal cr restore
 * runs on, the tree joins cr restore's session, and if it was the
 * foreground job it is made the foreground job there.
 *
 * Bytes queued in a pty cannot be read without taking them away: a pty
 * with bytes waiting on either side is refused (a canonical-mode partial
 * line is not seen and is lost).
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procStat, statField } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { close, rawSyscall } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage, imageFile, readImage } from '../image.js';
import type { Inventory } from '../inventory.js';
import { dupHigh, liftFd, tracerDup, type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';
import { defineState, type DumpShared, type DumpTask } from './module.js';

interface PtyState {
  index: number;
  master_termios: Buffer;
  winsize: Buffer;
  packet: boolean;
  locked: boolean;
  sid: number;
  foreground: number;
}

interface TtyFile {
  kind: 'master' | 'slave' | 'devtty' | 'external';
  index: number;
  pty?: PtyState;
  termios: Buffer;
  exclusive: boolean;
}

const IOCTL = {
  TCGETS2: 0x802c542a, TCSETS2: 0x402c542b, TIOCGWINSZ: 0x5413, TIOCSWINSZ: 0x5414, TIOCPKT: 0x5420, TIOCGPKT: 0x80045438,
  TIOCSPTLCK: 0x40045431, TIOCGPTLCK: 0x80045439, TIOCGPTN: 0x80045430, TIOCGPGRP: 0x540f, TIOCSPGRP: 0x5410, TIOCGSID: 0x5429,
  TIOCEXCL: 0x540c, TIOCGEXCL: 0x80045440, FIONREAD: 0x541b,
} as const;
const TERMIOS2_SIZE = 44;
const WINSIZE_SIZE = 8;
/** Device numbers: /dev/tty is 5:0, /dev/ptmx 5:2, the slaves of the first devpts are majors 136-143. */
const TTYAUX_MAJOR = 5;
const PTY_SLAVE_MAJOR = 136;
const PTY_SLAVE_MAJORS = 8;
const PTMX_PATHS = new Set(['/dev/ptmx', '/dev/pts/ptmx']);
/** Tries at opening /dev/ptmx until it gives the pty number the image had. */
const MAX_PTY_TRIES = 4096;

/** A task's controlling terminal: /proc/PID/stat's tty_nr, a device number encoded as stat(2)'s are (0: none). */
const controllingTerminal = (pid: number) => BigInt(statField(procStat(pid), 7));
const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
const slaveIndex = (rdev: bigint) => {
  const m = major(rdev);
  return m >= PTY_SLAVE_MAJOR && m < PTY_SLAVE_MAJOR + PTY_SLAVE_MAJORS ? (m - PTY_SLAVE_MAJOR) * 256 + minor(rdev) : -1;
};
const isMaster = (f: FdProbe) => PTMX_PATHS.has(f.target) && major(f.stat.rdev) === TTYAUX_MAJOR;
const isDevTty = (f: FdProbe) => major(f.stat.rdev) === TTYAUX_MAJOR && minor(f.stat.rdev) === 0;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<TtyFile>('TtyFile', file.payload, where);

/** ioctl(2) of cr's own on a descriptor, with an in/out buffer of `size` bytes (or an int argument). */
function ioctl(fd: number, request: number, arg: Buffer | number = 0): number {
  return rawSyscall(NR.ioctl, fd, request, arg);
}
const getInt = (fd: number, request: number) => {
  const b = Buffer.alloc(4);
  ioctl(fd, request, b);
  return b.readInt32LE(0);
};
const getBuf = (fd: number, request: number, size: number) => {
  const b = Buffer.alloc(size);
  ioctl(fd, request, b);
  return b;
};
const putInt = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
};

/** Run `use` on a duplicate, in cr, of a task's descriptor. */
function withDup<T>(pid: number, fd: number, use: (dup: number) => T): T {
  const dup = tracerDup(pid, fd);
  try {
    return use(dup);
  } finally {
    close(dup);
  }
}

/** The pty number a master shows in its fdinfo. */
const masterIndex = (info: Map<string, string>) => Number(info.get('tty-index') ?? -1);

/** Whether some task of the tree holds the master of pty `index`. */
function masterInTree(tree: number[], index: number): boolean {
  return tree.some((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return PTMX_PATHS.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)) && /^tty-index:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] === String(index);
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/** The controlling terminal of a task as a pty number, or -1 (none, or not a pty). */
function cttyIndex(pid: number): number {
  const ttyNr = controllingTerminal(pid);
  return ttyNr ? slaveIndex(ttyNr) : -1;
}

/** Which ptys have their master in the tree, found once per dump. */
const treePtys = new WeakMap<DumpShared, Map<number, boolean>>();

/** The pty of the tree a slave or /dev/tty descriptor is on, or -1. */
function ptyOfTree(task: DumpTask, f: FdProbe): number {
  const index = isDevTty(f) ? cttyIndex(f.pid) : slaveIndex(f.stat.rdev);
  if (index < 0) return -1;
  const known = treePtys.get(task.shared) ?? new Map<number, boolean>();
  treePtys.set(task.shared, known);
  if (!known.has(index)) known.set(index, masterInTree(task.shared.tree, index));
  return known.get(index) ? index : -1;
}

function refuseQueued(f: FdProbe, dup: number, index: number, side: string): void {
  const queued = getInt(dup, IOCTL.FIONREAD);
  if (queued > 0) throw new CrError(`pid ${f.pid} fd ${f.fd}: pty ${index} has ${queued} bytes waiting for its ${side}: not supported`);
}

export const ttys: FdType = {
  type: 'tty',

  claims(f, task) {
    if (!f.stat.isCharacterDevice() || !(isMaster(f) || isDevTty(f) || slaveIndex(f.stat.rdev) >= 0)) return false;
    // Outside a shell job, stdio on a terminal from outside the tree is the restorer's (files.ts).
    return isMaster(f) || task.shared.shellJob || f.fd > 2 || ptyOfTree(task, f) >= 0;
  },

  dump(task, f) {
    const where = `pid ${f.pid} fd ${f.fd}`;
    const { tree, shellJob } = task.shared;
    if (isMaster(f)) {
      const index = masterIndex(f.info);
      const pty = withDup(f.pid, f.fd, (dup): PtyState => {
        refuseQueued(f, dup, index, 'master');
        let sid = 0;
        let foreground = 0;
        try {
          sid = getInt(dup, IOCTL.TIOCGSID);
          foreground = getInt(dup, IOCTL.TIOCGPGRP);
        } catch {
          /* the slave is nobody's controlling terminal */
        }
        if (sid && !tree.includes(sid)) throw new CrError(`${where}: pty ${index} is the controlling terminal of session ${sid}, outside the tree: not supported`);
        return {
          index, master_termios: getBuf(dup, IOCTL.TCGETS2, TERMIOS2_SIZE), winsize: getBuf(dup, IOCTL.TIOCGWINSZ, WINSIZE_SIZE),
          packet: getInt(dup, IOCTL.TIOCGPKT) !== 0, locked: getInt(dup, IOCTL.TIOCGPTLCK) !== 0, sid, foreground,
        };
      });
      return encodeMessage('TtyFile', { kind: 'master', index, pty, termios: Buffer.alloc(0), exclusive: false });
    }
    const index = ptyOfTree(task, f);
    if (index >= 0) {
      if (isDevTty(f)) return encodeMessage('TtyFile', { kind: 'devtty', index, termios: Buffer.alloc(0), exclusive: false });
      return withDup(f.pid, f.fd, (dup) => {
        refuseQueued(f, dup, index, 'slave');
        return encodeMessage('TtyFile', { kind: 'slave', index, termios: getBuf(dup, IOCTL.TCGETS2, TERMIOS2_SIZE), exclusive: getInt(dup, IOCTL.TIOCGEXCL) !== 0 });
      });
    }
    if (!shellJob) throw new CrError(`${where}: ${f.target}, a terminal from outside the tree, is not supported (dump a shell job with --shell-job)`);
    return encodeMessage('TtyFile', { kind: isDevTty(f) ? 'devtty' : 'external', index: -1, termios: Buffer.alloc(0), exclusive: false });
  },

  check(file, where) {
    const t = payloadOf(file, where);
    if (!['master', 'slave', 'devtty', 'external'].includes(t.kind)) throw new CrError(`${where}: corrupted image (tty kind '${t.kind}')`);
    if (t.kind === 'master' && (!t.pty || t.pty.master_termios.length !== TERMIOS2_SIZE || t.pty.winsize.length !== WINSIZE_SIZE)) {
      throw new CrError(`${where}: corrupted image (pty state)`);
    }
  },

  open(task, file) {
    const t = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const ptys = task.shared.terminals.ptys;
    const k = ptys.findIndex((p) => p.imageIndex === t.index);
    let path: string;
    if ((t.kind === 'master' || t.kind === 'slave') && (k < 0 || task.handed[k] === undefined)) throw new CrError(`pid ${task.pid}: pty ${t.index} was not made before the tasks`);
    if (t.kind === 'master') {
      // The master cr restore made, handed to every task: all descriptors of it share it.
      return dupHigh(task, task.handed[k]);
    } else if (t.kind === 'slave') {
      path = `/dev/pts/${ptys[k].index}`;
    } else if (t.kind === 'devtty') {
      path = '/dev/tty';
    } else {
      path = restorerTerminal();
    }
    task.inj.reset();
    // Never a new controlling terminal by accident: that is cr-mktree's and the leader's to take.
    return liftFd(task, Number(task.tracee.syscallOk(`open ${path}`, NR.open, task.inj.putString(path), file.flags | O.NOCTTY, 0)));
  },

  describe(file) {
    const t = payloadOf(file, `file ${file.id}`);
    if (t.kind === 'master') {
      const p = t.pty!;
      const ws = p.winsize;
      return `pty master ${t.index}: ${ws.readUInt16LE(2)}x${ws.readUInt16LE(0)}${p.packet ? ' packet mode' : ''}${p.locked ? ' locked' : ''}${p.sid ? ` session ${p.sid} foreground ${p.foreground}` : ''}`;
    }
    return t.kind === 'slave' ? `pty slave /dev/pts/${t.index}` : t.kind === 'devtty' ? `/dev/tty${t.index >= 0 ? ` (pty ${t.index})` : ''}` : 'the shell job\'s terminal';
  },
};

/** One pty made again by cr restore: its number in the image and now, and cr's own descriptors of it. */
export interface RestoredPty {
  imageIndex: number;
  index: number;
  master: number;
  slave: number;
  state: PtyState;
  slaveTermios?: Buffer;
  exclusive: boolean;
}

/** What cr restore made before the tasks: ptys, whose masters it hands to every task, and the leaders' terminals. */
export interface Terminals {
  ptys: RestoredPty[];
  /** The descriptors every task gets at 4, 5…: the masters, in the order of `ptys`. */
  handed: number[];
  /** The controlling terminal each session leader takes before it forks, by image pid. */
  ctty: Map<number, string>;
  /** Once every task is built: what must wait until nobody opens the slaves any more (lock, exclusive mode). */
  finish(): void;
  close(): void;
}

/** Open /dev/ptmx until it gives pty `want` (numbers go to the lowest free); the pty it gave if `want` is taken. */
function openPtmx(want: number): { fd: number; index: number } {
  const extra: number[] = [];
  try {
    for (let i = 0; i < MAX_PTY_TRIES; i++) {
      const fd = fs.openSync('/dev/ptmx', fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      const index = getInt(fd, IOCTL.TIOCGPTN);
      if (index >= want) return { fd, index };
      extra.push(fd);
    }
    throw new CrError(`cannot get pty ${want}: more than ${MAX_PTY_TRIES} ptys are in use`);
  } finally {
    for (const fd of extra) fs.closeSync(fd);
  }
}

/** Read every pty of the image and make them, with their state; nothing if the image has none. */
export function prepareTerminals(dir: string, inv: Inventory, log: (l: string) => void): Terminals {
  const ptys = new Map<number, RestoredPty>();
  const slaves = new Map<number, TtyFile>();
  for (const t of inv.tasks) {
    if (t.zombie || t.clone_files || !fs.existsSync(imageFile(dir, 'files', t.pid))) continue;
    for (const file of readImage<{ files: OpenFileImage[] }>(dir, 'files', t.pid).files) {
      if (file.type !== 'tty') continue;
      const tty = payloadOf(file, `pid ${t.pid} file ${file.id}`);
      if (tty.kind === 'master' && tty.pty) ptys.set(tty.index, { imageIndex: tty.index, index: -1, master: -1, slave: -1, state: tty.pty, exclusive: false });
      if (tty.kind === 'slave') slaves.set(tty.index, tty);
    }
  }
  const made: RestoredPty[] = [];
  const close = () => {
    for (const p of made.splice(0)) {
      if (p.slave >= 0) fs.closeSync(p.slave);
      fs.closeSync(p.master);
    }
  };
  try {
    for (const p of [...ptys.values()].sort((a, b) => a.imageIndex - b.imageIndex)) {
      const { fd, index } = openPtmx(p.imageIndex);
      made.push(Object.assign(p, { master: fd, index }));
      if (index !== p.imageIndex) log(`pty ${p.imageIndex} is taken: restored as pty ${index}`);
      ioctl(fd, IOCTL.TIOCSPTLCK, putInt(0));
      p.slave = fs.openSync(`/dev/pts/${index}`, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      ioctl(fd, IOCTL.TCSETS2, p.state.master_termios);
      const slave = slaves.get(p.imageIndex);
      if (slave) ioctl(p.slave, IOCTL.TCSETS2, slave.termios);
      p.exclusive = slave?.exclusive ?? false;
      ioctl(fd, IOCTL.TIOCSWINSZ, p.state.winsize);
      if (p.state.packet) ioctl(fd, IOCTL.TIOCPKT, putInt(1));
    }
  } catch (err) {
    close();
    throw err instanceof CrError ? err : new CrError(`cannot make the image's ptys: ${(err as Error).message}`);
  }
  return {
    ptys: [...made],
    handed: made.map((p) => p.master),
    ctty: new Map(made.filter((p) => p.state.sid).map((p) => [p.state.sid, `/dev/pts/${p.index}`])),
    finish() {
      for (const p of made) {
        if (p.exclusive) ioctl(p.slave, IOCTL.TIOCEXCL);
        if (p.state.locked) ioctl(p.master, IOCTL.TIOCSPTLCK, putInt(1));
      }
    },
    close,
  };
}

/** The path of the terminal cr restore runs on (its controlling terminal), for a shell job's descriptors. */
export function restorerTerminal(): string {
  const ttyNr = controllingTerminal(process.pid);
  const [maj, min] = [major(ttyNr), minor(ttyNr)];
  if (!ttyNr) throw new CrError('--shell-job: cr restore has no controlling terminal to give the job');
  if (slaveIndex(ttyNr) >= 0) return `/dev/pts/${slaveIndex(ttyNr)}`;
  if (maj === 4 && min < 64) return `/dev/tty${min}`;
  if (maj === TTYAUX_MAJOR && min === 1) return '/dev/console';
  if (maj === 4) return `/dev/ttyS${min - 64}`;
  throw new CrError(`--shell-job: cr restore's terminal (device ${maj}:${min}) has no name cr knows`);
}

/** Whether the root of a shell job was in the foreground of its terminal. */
export function inForeground(pid: number): boolean {
  const stat = procStat(pid);
  const tpgid = Number(statField(stat, 8));
  return tpgid > 0 && tpgid === Number(statField(stat, 5));
}

/** Make process group `pgid` the foreground of cr restore's terminal, if cr itself is the foreground there now. */
export function giveForeground(pgid: number, log: (l: string) => void): void {
  const fd = fs.openSync('/dev/tty', fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  try {
    if (getInt(fd, IOCTL.TIOCGPGRP) !== Number(statField(procStat(process.pid), 5))) {
      log('cr restore is not the foreground job: the restored job stays in the background');
      return;
    }
    ioctl(fd, IOCTL.TIOCSPGRP, putInt(pgid));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A session leader whose controlling terminal is a pty of the tree (taken
 * in cr-mktree) gives its foreground back to the process group that had it.
 */
export const terminals = defineState<Record<string, never>>({
  name: 'terminals',
  dump() {},
  load: () => ({}),
  restore(task) {
    const imagePid = task.shared.nsPids.get(task.pid) ?? task.pid;
    for (const p of task.shared.terminals.ptys) {
      if (p.state.sid !== imagePid || !p.state.foreground) continue;
      const { tracee, inj } = task;
      inj.reset();
      const tty = Number(tracee.syscallOk('open /dev/tty', NR.open, inj.putString('/dev/tty'), O.RDWR | O.NOCTTY, 0));
      tracee.syscallOk(`TIOCSPGRP ${p.state.foreground}`, NR.ioctl, tty, IOCTL.TIOCSPGRP, inj.put(putInt(p.state.foreground)));
      tracee.syscall(NR.close, tty);
    }
  },
  describe: () => [],
});
