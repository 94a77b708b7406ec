/**
 * Regular files, directories and stateless character devices (/dev/null,
 * /dev/zero, /dev/urandom…), and O_PATH descriptors of anything: reopened
 * by path with their flags, at their offset. A file or directory that was
 * open when its last name was removed (and the directories above it, maybe)
 * is a ghost (ghosts.ts): recreated, opened and removed again.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';
import type { DumpTask } from './module.js';
import { checkGhost, DELETED, describeGhost, dumpGhost, openGhost, type Ghost } from './ghosts.js';

interface RegFile {
  path: string;
  size: bigint;
  mode: number;
  chr: boolean;
  /** Set for a file or directory whose name was removed. */
  ghost?: Ghost;
}

/** statfs f_type of the POSIX message queue file system: its files look regular but are queues. */
const MQUEUE_MAGIC = 0x19800202;

const STATELESS_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);
/** Flags that only make sense when a file is created, never on a reopen. */
const CREATE_FLAGS = O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY;
const SEEK_SET = 0;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<RegFile>('RegFile', file.payload, where);

/**
 * A file under the /proc directory of a task of the tree exists only once
 * that task is back: the process's own (/proc/self/status opened, say) is
 * reopened through /proc/self, its pid being its own again; another task's
 * is refused, nothing making sure that task is there first.
 */
function procSelf(task: DumpTask, target: string, where: string): string {
  const m = /^\/proc\/(\d+)(\/.*)?$/.exec(target);
  if (!m) return target;
  if (Number(m[1]) === task.pid) return `/proc/self${m[2] ?? ''}`;
  if (task.shared.tree.includes(Number(m[1]))) throw new CrError(`${where}: ${target}, a file of another task of the tree, is not supported`);
  return target;
}

export const regFiles: FdType = {
  type: 'reg',

  claims(f) {
    return (f.flags & O.PATH) !== 0 || f.stat.isFile() || f.stat.isDirectory() || (f.stat.isCharacterDevice() && STATELESS_DEVICES.has(f.target));
  },

  dump(task, f) {
    const where = `pid ${f.pid} fd ${f.fd}`;
    if (f.stat.isFile() && !(f.flags & O.PATH) && fs.statfsSync(`/proc/${f.pid}/fd/${f.fd}`).type === MQUEUE_MAGIC) {
      throw new CrError(`${where}: POSIX message queue ${f.target} is not supported`);
    }
    const ghost = f.target.endsWith(DELETED) ? dumpGhost(`/proc/${f.pid}/fd/${f.fd}`, f.target, f.stat, where) : undefined;
    if (!f.target.startsWith('/')) throw new CrError(`${where}: ${f.target} is not a file that can be reopened`);
    const chr = f.stat.isCharacterDevice();
    return encodeMessage('RegFile', {
      path: ghost ? ghost.path : procSelf(task, f.target, where),
      size: f.stat.isFile() ? f.stat.size : 0n,
      mode: Number(f.stat.mode & 0o7777n),
      chr,
      ghost,
    });
  },

  check(file, where) {
    const reg = payloadOf(file, where);
    if (reg.ghost) checkGhost(reg.ghost, where);
    // the task's own /proc files are there once it is (procSelf())
    else if (!/^\/proc\/self(\/|$)/.test(reg.path) && !fs.existsSync(reg.path) && !isSymlink(reg.path)) throw new CrError(`${where}: ${reg.path} no longer exists`);
  },

  open(task, file) {
    const reg = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const flags = file.flags & ~CREATE_FLAGS;
    let fd: number;
    if (reg.ghost) {
      fd = openGhost(task, reg.ghost, flags);
    } else {
      task.inj.reset();
      fd = liftFd(task, Number(task.tracee.syscallOk(`open ${reg.path}`, NR.open, task.inj.putString(reg.path), flags, 0)));
    }
    if (!reg.chr && file.pos && !(file.flags & O.PATH)) task.tracee.syscallOk(`lseek ${reg.path}`, NR.lseek, fd, file.pos, SEEK_SET);
    return fd;
  },

  describe(file) {
    const reg = payloadOf(file, `file ${file.id}`);
    const name = reg.ghost ? describeGhost(reg.ghost) : reg.path;
    return reg.chr || file.flags & O.PATH ? `${name}${file.flags & O.PATH ? ' (O_PATH)' : ''}` : `${name} pos ${file.pos}`;
  },
};

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
