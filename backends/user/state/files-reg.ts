/**
 * Regular files, directories and stateless character devices (/dev/null,
 * /dev/zero, /dev/urandom…): reopened by path with their flags, at their
 * offset.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';

interface RegFile {
  path: string;
  size: bigint;
  mode: number;
  chr: boolean;
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
    if (!f.target.startsWith('/') || f.target.endsWith(' (deleted)')) {
      throw new CrError(`pid ${f.pid} fd ${f.fd}: ${f.target} is not a file that can be reopened`);
    }
    const chr = f.stat.isCharacterDevice();
    return encodeMessage('RegFile', { path: f.target, size: chr ? 0n : f.stat.size, mode: Number(f.stat.mode & 0o7777n), chr });
  },

  check(file, where) {
    const reg = payloadOf(file, where);
    if (!fs.existsSync(reg.path)) throw new CrError(`${where}: ${reg.path} no longer exists`);
  },

  open(task, file) {
    const reg = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    task.inj.reset();
    const fd = Number(task.tracee.syscallOk(`open ${reg.path}`, NR.open, task.inj.putString(reg.path), file.flags & ~CREATE_FLAGS, 0));
    if (!reg.chr && file.pos) task.tracee.syscallOk(`lseek ${reg.path}`, NR.lseek, fd, file.pos, SEEK_SET);
    return liftFd(task, fd);
  },

  describe(file) {
    const reg = payloadOf(file, `file ${file.id}`);
    return reg.chr ? `${reg.path}` : `${reg.path} pos ${file.pos}`;
  },
};
