/**
 * The table file types plug into. The generic descriptor code (files.ts)
 * decides which descriptors share an open file and places them; a file
 * type knows only how to save one open file of its kind and create it
 * again inside a task, like CRIU's fdtype_ops or linux-cr's ->checkpoint.
 */
import type fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procFdinfo } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { SCM, sendmsg, SOL } from '../../../userspace/net/socket.js';
import { close, rawSyscall } from '../../../userspace/sys/libc.js';
import { nsChain } from '../tree.js';
import type { DumpTask, RestoreTask } from './module.js';

const F_DUPFD_CLOEXEC = 1030;
export const F_GETFL = 3;
const F_SETFL = 4;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** A new descriptor of the same open file in the task being restored, at a number the image does not use. */
export function dupHigh(task: RestoreTask, fd: number): number {
  return Number(task.tracee.syscallOk('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, fd, F_DUPFD_CLOEXEC, task.fdBase));
}

/**
 * Move a descriptor of the task being restored to a number the image does
 * not use, so placing the image's descriptors can never close it.
 */
export function liftFd(task: RestoreTask, fd: number): number {
  return liftFds(task, [fd])[0];
}

/** liftFd() for several descriptors at once, in one round trip. */
export function liftFds(task: RestoreTask, fds: number[]): number[] {
  const low = fds.filter((fd) => fd < task.fdBase);
  const ret = task.inj.batch(liftCalls(task, low), 'lift a descriptor');
  return fds.map((fd) => (fd >= task.fdBase ? fd : Number(task.tracee.checked('fcntl(F_DUPFD_CLOEXEC)', ret[2 * low.indexOf(fd)]))));
}

/** The two calls that lift each descriptor: its duplicate at fdBase or above (the first's result), its close. */
const liftCalls = (task: RestoreTask, fds: number[]) => fds.flatMap((fd) => [[NR.fcntl, fd, F_DUPFD_CLOEXEC, task.fdBase], [NR.close, fd]]);

/** Each task's pidfds of the tasks it takes descriptors from (-1: not one it can see), kept until files.ts settles it. */
const pidfds = new WeakMap<RestoreTask, Map<number, number>>();

/**
 * A duplicate, in this task, of descriptor `fd` of task `pid` (the same
 * open file), at the lowest free number: see takeFromTasks().
 */
export function takeFromTask(task: RestoreTask, pid: number, fd: number): number {
  return takeFromTasks(task, [{ pid, fd }])[0];
}

/**
 * Duplicates, in this task, of descriptors of other tasks (the same open
 * files), each at the lowest number free when it is taken. The task takes
 * them itself (pidfd_getfd) from the tasks it can see in its pid
 * namespace, through one pidfd per such task, all in one round trip (and
 * one more to open the pidfds it lacks); from a task outside it (a parent
 * above a nested pid namespace), each comes through us, over a unix socket.
 */
export function takeFromTasks(task: RestoreTask, wanted: { pid: number; fd: number }[]): number[] {
  const { tracee, inj } = task;
  let known = pidfds.get(task);
  if (!known) pidfds.set(task, (known = new Map()));
  // The task names the other by its pid in the task's own pid namespace: the other's there, if it has one.
  const level = nsChain(task.pid).length - 1;
  const fresh = [...new Set(wanted.map((w) => w.pid))].filter((pid) => !known.has(pid)).map((pid) => ({ pid, seen: nsChain(pid)[level] }));
  for (const f of fresh) known.set(f.pid, -1);
  inj.reset();
  const visible = fresh.filter((f) => f.seen !== undefined);
  const opened = inj.batch(visible.map((f) => [NR.pidfd_open, f.seen, 0]), 'pidfd_open');
  // That number may be another task's, in a sibling namespace: the pidfd tells whose it is.
  const fitting = new Map<number, number>();
  const wrong: number[] = [];
  visible.forEach((f, i) => {
    const fd = Number(opened[i]);
    if (fd >= 0) (procFdinfo(task.pid, fd).get('Pid') === String(f.pid) ? fitting.set(f.pid, fd) : wrong.push(fd));
  });
  const through = (pid: number) => known.get(pid)! >= 0 ? known.get(pid)! : fitting.get(pid);
  const taken = wanted.filter((w) => through(w.pid) !== undefined);
  // The new pidfds are lifted once they served, in the same round trip.
  const lifted = [...fitting].filter(([, fd]) => fd < task.fdBase);
  inj.reset();
  const ret = inj.batch([
    ...taken.map((w) => [NR.pidfd_getfd, through(w.pid)!, w.fd, 0]),
    ...liftCalls(task, lifted.map(([, fd]) => fd)),
    ...wrong.map((fd) => [NR.close, fd]),
  ], 'pidfd_getfd');
  for (const [pid, fd] of fitting) known.set(pid, fd);
  lifted.forEach(([pid], k) => known.set(pid, Number(tracee.checked('fcntl(F_DUPFD_CLOEXEC)', ret[taken.length + 2 * k]))));
  rememberLeftovers(task, [...fitting.keys()].map((pid) => known.get(pid)!));
  const got = new Map(taken.map((w, i) => [w, Number(tracee.checked(`pidfd_getfd ${w.pid} fd ${w.fd}`, ret[i]))]));
  return wanted.map((w) => got.get(w) ?? passThroughUs(task, w.pid, w.fd));
}

/** Hand the task descriptor `fd` of task `pid` over a socket pair it makes, one end of which we take. */
function passThroughUs(task: RestoreTask, pid: number, fd: number): number {
  const { tracee, inj } = task;
  inj.reset();
  const sv = inj.alloc(8);
  tracee.syscallOk('socketpair', NR.socketpair, AF_UNIX, SOCK_DGRAM | O.CLOEXEC, 0, sv);
  const ends = tracee.readMem(sv, 8);
  const [mine, theirs] = [ends.readInt32LE(0), ends.readInt32LE(4)];
  try {
    const sock = tracerDup(task.pid, theirs);
    try {
      const file = tracerDup(pid, fd);
      try {
        const rights = Buffer.alloc(4);
        rights.writeInt32LE(file, 0);
        sendmsg(sock, Buffer.alloc(1), 0, { control: [{ level: SOL.SOCKET, type: SCM.RIGHTS, data: rights }] });
      } finally {
        close(file);
      }
    } finally {
      close(sock);
    }
    // struct msghdr for recvmsg: no name, one iovec of one byte, room for one descriptor
    inj.reset();
    const control = inj.alloc(24);
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(BigInt(inj.alloc(8)), 0);
    iov.writeBigUInt64LE(1n, 8);
    const msg = Buffer.alloc(56);
    msg.writeBigUInt64LE(BigInt(inj.put(iov)), 16);
    msg.writeBigUInt64LE(1n, 24);
    msg.writeBigUInt64LE(BigInt(control), 32);
    msg.writeBigUInt64LE(24n, 40);
    tracee.syscallOk(`recvmsg pid ${pid} fd ${fd}`, NR.recvmsg, mine, inj.put(msg), MSG_CMSG_CLOEXEC);
    return tracee.readMem(control + 16, 4).readInt32LE(0);
  } finally {
    tracee.syscall(NR.close, mine);
    tracee.syscall(NR.close, theirs);
  }
}

/** A duplicate in cr itself of descriptor `fd` of task `pid` (the same open file; cr's own too). */
export function tracerDup(pid: number, fd: number): number {
  if (pid === process.pid) return rawSyscall(NR.fcntl, fd, F_DUPFD_CLOEXEC, 0);
  const pidfd = rawSyscall(NR.pidfd_open, pid, 0);
  try {
    return rawSyscall(NR.pidfd_getfd, pidfd, fd, 0);
  } finally {
    close(pidfd);
  }
}

/**
 * Keep descriptors open in the task until every task is built (others may
 * take them from there); files.ts closes them in settle().
 */
export function rememberLeftovers(task: RestoreTask, fds: number[]): void {
  const list = task.shared.leftovers.get(task.pid) ?? [];
  list.push(...fds);
  task.shared.leftovers.set(task.pid, list);
}

/** Give a created file the status flags (O_NONBLOCK, O_APPEND…) it had. */
export function setStatusFlags(task: RestoreTask, fd: number, flags: number): void {
  task.tracee.syscallOk('F_SETFL', NR.fcntl, fd, F_SETFL, flags);
}

/** The status flags F_SETFL can change; the others are fixed when the file is opened. */
export const SETFL_MASK = O.APPEND | O.NONBLOCK | O.DIRECT | O.NOATIME | O.ASYNC;

/**
 * Make a created file's status flags exactly what F_GETFL showed at dump
 * time: what F_SETFL can change is changed, anything else must already
 * match (each file type opens with the flags only open(2) takes).
 */
export function matchStatusFlags(task: RestoreTask, fd: number, want: number, where: string): void {
  const get = () => Number(task.tracee.syscallOk('F_GETFL', NR.fcntl, fd, F_GETFL, 0));
  let got = get();
  if (got !== want && ((got ^ want) & SETFL_MASK)) {
    setStatusFlags(task, fd, (got & ~SETFL_MASK) | (want & SETFL_MASK));
    got = get();
  }
  if (got !== want) throw new CrError(`${where}: cannot give it its file status flags 0${want.toString(8)} (it has 0${got.toString(8)})`);
}

/** What /proc says about one descriptor of a task being dumped. */
export interface FdProbe {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/FD: a path, "pipe:[123]", "socket:[45]", "anon_inode:[eventfd]"… */
  target: string;
  stat: fs.BigIntStats;
  /** /proc/PID/fdinfo/FD as key/value pairs, and as text (for its repeated lines: locks, watches). */
  info: Map<string, string>;
  infoText: string;
  /** Status flags as fdinfo shows them, with O_CLOEXEC (a property of the descriptor, not the file). */
  flags: number;
  pos: bigint;
}

/** One open file as the image holds it. */
export interface OpenFileImage {
  id: number;
  type: string;
  flags: number;
  pos: bigint;
  payload: Buffer;
  /** F_SETOWN_EX and F_SETSIG, for an O_ASYNC file. */
  owner_type: number;
  owner_pid: number;
  signal: number;
}

/**
 * What files.ts offers, at dump time, a file type whose files refer to
 * other open files: epoll's watched files, the descriptors in flight in a
 * unix socket's queue.
 */
export interface DumpFiles {
  /** The id of the open file at descriptor `fd` of task `pid` (this task or one dumped before), saved if new. */
  idOf(pid: number, fd: number): number;
  /** Save an open file that no descriptor table holds (in flight in a socket), given as a descriptor of cr itself; returns its id. */
  inFlight(fd: number): number;
}

/** At restore time, what a file type may ask of the task's descriptor table. */
export interface RestoreFiles {
  /** A descriptor, in this task, of the image's open file `id` (created now if need be); it stays open until every task is built. */
  open(id: number): number;
  /** Run `fn` once every descriptor of the task is in place (epoll adds its watches, a socket refills its queue). */
  later(fn: () => void): void;
}

export interface FdType {
  readonly type: string;
  /** Its dump asks the task about the descriptor by number: a file only in flight in a socket cannot be saved. */
  readonly byNumber?: boolean;
  claims(f: FdProbe, task: DumpTask): boolean;
  /** The type's encoded payload; throws CrError for what it cannot save. */
  dump(task: DumpTask, f: FdProbe, files: DumpFiles): Buffer;
  /** Check a payload while the image is loaded, before any task exists. */
  check(file: OpenFileImage, where: string): void;
  /** Create the open file inside the task; returns its descriptor there, lifted (liftFd). */
  open(task: RestoreTask, file: OpenFileImage, files: RestoreFiles): number;
  describe(file: OpenFileImage): string;
}
