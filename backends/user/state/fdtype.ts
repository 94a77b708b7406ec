/**
 * The table file types plug into. The generic descriptor code (files.ts)
 * decides which descriptors share an open file and places them; a file
 * type knows only how to save one open file of its kind and create it
 * again inside a task, like CRIU's fdtype_ops or linux-cr's ->checkpoint.
 */
import type fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { close, rawSyscall } from '../../../userspace/sys/libc.js';
import type { DumpTask, RestoreTask } from './module.js';

const F_DUPFD_CLOEXEC = 1030;
const F_GETFL = 3;
const F_SETFL = 4;

/** A new descriptor of the same open file in the task being restored, at a number the image does not use. */
export function dupHigh(task: RestoreTask, fd: number): number {
  return Number(task.tracee.syscallOk('fcntl(F_DUPFD_CLOEXEC)', NR.fcntl, fd, F_DUPFD_CLOEXEC, task.fdBase));
}

/**
 * Move a descriptor of the task being restored to a number the image does
 * not use, so placing the image's descriptors can never close it.
 */
export function liftFd(task: RestoreTask, fd: number): number {
  if (fd >= task.fdBase) return fd;
  const lifted = dupHigh(task, fd);
  task.tracee.syscall(NR.close, fd);
  return lifted;
}

/** A duplicate, in this task, of descriptor `fd` of task `pid` (the same open file). */
export function takeFromTask(task: RestoreTask, pid: number, fd: number): number {
  // The task names the other by its pid in their shared pid namespace.
  const pidfd = Number(task.tracee.syscallOk(`pidfd_open ${pid}`, NR.pidfd_open, task.shared.nsPids.get(pid) ?? pid, 0));
  const got = Number(task.tracee.syscallOk(`pidfd_getfd ${pid} fd ${fd}`, NR.pidfd_getfd, pidfd, fd, 0));
  task.tracee.syscall(NR.close, pidfd);
  return got;
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
