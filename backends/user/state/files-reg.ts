/**
 * Regular files, directories and stateless character devices (/dev/null,
 * /dev/zero, /dev/urandom…): reopened by path with their flags, at their
 * offset. A file that was open but unlinked keeps its contents in the
 * image; restore recreates it, opens it and unlinks it again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';

interface RegFile {
  path: string;
  size: bigint;
  mode: number;
  chr: boolean;
  deleted: boolean;
  contents: Buffer;
}

const DELETED = ' (deleted)';
/** statfs f_type of the POSIX message queue file system: its files look regular but are queues. */
const MQUEUE_MAGIC = 0x19800202;
/** Contents travel inside the image: keep them to what a message can hold comfortably. */
const MAX_CONTENTS = 256 << 20;

/** Where to recreate an unlinked file: its old name if free, else a fresh one beside it. */
function ghostPath(path: string, pid: number, id: number): string {
  return fs.existsSync(path) ? `${path}.cr-restore-${pid}-${id}` : path;
}

const STATELESS_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);
/** Flags that only make sense when a file is created, never on a reopen. */
const CREATE_FLAGS = O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY;
const SEEK_SET = 0;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<RegFile>('RegFile', file.payload, where);

export const regFiles: FdType = {
  type: 'reg',

  claims(f) {
    return f.stat.isFile() || f.stat.isDirectory() || (f.stat.isCharacterDevice() && STATELESS_DEVICES.has(f.target));
  },

  dump(_task, f) {
    if (f.stat.isFile() && fs.statfsSync(`/proc/${f.pid}/fd/${f.fd}`).type === MQUEUE_MAGIC) {
      throw new CrError(`pid ${f.pid} fd ${f.fd}: POSIX message queue ${f.target} is not supported`);
    }
    const deleted = f.stat.isFile() && f.target.endsWith(DELETED) && f.stat.nlink === 0n;
    if (!f.target.startsWith('/') || (f.target.endsWith(DELETED) && !deleted)) {
      throw new CrError(`pid ${f.pid} fd ${f.fd}: ${f.target} is not a file that can be reopened`);
    }
    if (deleted && f.stat.size > BigInt(MAX_CONTENTS)) {
      throw new CrError(`pid ${f.pid} fd ${f.fd}: unlinked file ${f.target} of ${f.stat.size} bytes is larger than ${MAX_CONTENTS >> 20} MiB`);
    }
    const chr = f.stat.isCharacterDevice();
    return encodeMessage('RegFile', {
      path: deleted ? f.target.slice(0, -DELETED.length) : f.target,
      size: chr ? 0n : f.stat.size,
      mode: Number(f.stat.mode & 0o7777n),
      chr,
      deleted,
      // Read through our own open of the same file: nobody's offset moves.
      contents: deleted ? fs.readFileSync(`/proc/${f.pid}/fd/${f.fd}`) : Buffer.alloc(0),
    });
  },

  check(file, where) {
    const reg = payloadOf(file, where);
    const needed = reg.deleted ? path.dirname(reg.path) : reg.path;
    if (!fs.existsSync(needed)) throw new CrError(`${where}: ${needed} no longer exists`);
  },

  open(task, file) {
    const reg = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const at = reg.deleted ? ghostPath(reg.path, task.pid, file.id) : reg.path;
    if (reg.deleted) fs.writeFileSync(at, reg.contents, { mode: reg.mode, flag: 'wx' });
    task.inj.reset();
    let fd: number;
    try {
      fd = Number(task.tracee.syscallOk(`open ${at}`, NR.open, task.inj.putString(at), file.flags & ~CREATE_FLAGS, 0));
    } finally {
      if (reg.deleted) fs.unlinkSync(at);
    }
    if (!reg.chr && file.pos) task.tracee.syscallOk(`lseek ${reg.path}`, NR.lseek, fd, file.pos, SEEK_SET);
    return liftFd(task, fd);
  },

  describe(file) {
    const reg = payloadOf(file, `file ${file.id}`);
    return reg.chr ? `${reg.path}` : `${reg.path}${reg.deleted ? ` (unlinked, ${reg.contents.length} bytes saved)` : ''} pos ${file.pos}`;
  },
};
