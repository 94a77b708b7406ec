/**
 * File locks. A POSIX record lock (fcntl F_SETLK) belongs to the fd table
 * that took it; a flock lock and an OFD lock (F_OFD_SETLK) belong to the
 * open file. fdinfo lists a lock on the descriptors of the open file it was
 * taken through, in its owner's table only, so each is saved once: a POSIX
 * lock with the task and descriptor that show it, the others with their
 * open file. Restore takes them again through the same descriptors: the
 * open file's locks as soon as the file exists, the POSIX ones when the
 * task's table is final (closing any descriptor of the file would drop them).
 */
import { CrError } from '../../../userspace/errors.js';
import { NR } from '../../../userspace/sys/constants.js';
import { errnoName } from '../../../userspace/sys/libc.js';
import type { FdProbe } from './fdtype.js';
import type { RestoreTask } from './module.js';

export interface FileLock {
  kind: 'posix' | 'flock' | 'ofd';
  write: boolean;
  start: bigint;
  /** The last byte locked; -1 for "to the end of the file, however long it grows". */
  end: bigint;
  /** Who fdinfo says holds it (-1 for OFD locks). */
  pid: number;
  /** The descriptor that showed it, and its open file. */
  fd: number;
  file_id: number;
}

const KINDS: Record<string, FileLock['kind']> = { POSIX: 'posix', FLOCK: 'flock', OFDLCK: 'ofd' };
const EOF = -1n;
const LOCK_LINE = /^lock:\s+\d+:\s+(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+\S+\s+(\d+)\s+(EOF|\d+)$/gm;
const F_SETLK = 6;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
/** struct flock on x86_64: l_type, l_whence (shorts), l_start, l_len (at 8 and 16), l_pid. */
const FLOCK_SIZE = 32;

const range = (l: FileLock) => `[${l.start}, ${l.end === EOF ? 'EOF' : l.end}]`;
export const describeLock = (l: FileLock) => `${l.kind} ${l.write ? 'write' : 'read'} lock ${l.kind === 'flock' ? '' : `${range(l)} `}by pid ${l.pid} on fd ${l.fd}`;

/**
 * The locks fdinfo shows on a descriptor. `newFile` says whether this is
 * the first descriptor of its open file the dump meets: only then are the
 * open file's own locks (flock, OFD) taken. Leases and delegations are refused.
 */
export function dumpLocks(f: FdProbe, fileId: number, newFile: boolean): FileLock[] {
  const locks: FileLock[] = [];
  for (const m of f.infoText.matchAll(LOCK_LINE)) {
    const [, what, , type, pid, start, end] = m;
    const kind = KINDS[what];
    if (!kind) throw new CrError(`pid ${f.pid} fd ${f.fd}: ${what.toLowerCase()} (${type.toLowerCase()}) on ${f.target} is not supported`);
    if (kind !== 'posix' && !newFile) continue;
    locks.push({ kind, write: type === 'WRITE', start: BigInt(start), end: end === 'EOF' ? EOF : BigInt(end), pid: Number(pid), fd: f.fd, file_id: fileId });
  }
  return locks;
}

/** Take one lock again through descriptor `fd` of the task; fails if someone else holds a conflicting one. */
export function takeLock(task: RestoreTask, fd: number, l: FileLock): void {
  const where = `pid ${task.pid} fd ${l.fd}: cannot take its ${describeLock(l)}`;
  if (l.kind === 'flock') {
    const ret = task.tracee.syscall(NR.flock, fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB);
    if (ret < 0n) throw new CrError(`${where} (${errno(ret)})`);
    return;
  }
  const fl = Buffer.alloc(FLOCK_SIZE);
  fl.writeInt16LE(l.write ? F_WRLCK : F_RDLCK, 0);
  fl.writeBigInt64LE(l.start, 8);
  fl.writeBigInt64LE(l.end === EOF ? 0n : l.end - l.start + 1n, 16);
  task.inj.reset();
  const ret = task.tracee.syscall(NR.fcntl, fd, l.kind === 'ofd' ? F_OFD_SETLK : F_SETLK, task.inj.put(fl));
  if (ret < 0n) throw new CrError(`${where} (${errno(ret)})`);
}

const errno = (ret: bigint) => (ret === -11n ? 'held by someone else' : errnoName(-Number(ret)));

/** Check a lock from an image. */
export function checkLock(l: FileLock, where: string): void {
  if (!['posix', 'flock', 'ofd'].includes(l.kind) || l.start < 0n || (l.end !== EOF && l.end < l.start)) {
    throw new CrError(`${where}: corrupted image (lock ${l.kind} ${range(l)})`);
  }
}
