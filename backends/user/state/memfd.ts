/**
 * memfd: recreated with its name and contents, then sealed as it was. If
 * the tree also maps it, the memory module has already created the object
 * for the mapping (see memory.ts) and the descriptor reopens that one, so
 * a write through the mapping still shows through the descriptor.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { fcntl } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';

interface MemfdFile {
  name: string;
  contents: Buffer;
  seals: number;
  inode: bigint;
}

/** Contents travel inside the image: keep them to what a message can hold comfortably. */
const MAX_CONTENTS = 256 << 20;
const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
const SEEK_SET = 0;

/** The name memfd_create(2) was given, from a /proc link or maps path "/memfd:NAME (deleted)". */
export const memfdName = (target: string) => target.slice('/memfd:'.length).replace(/ \(deleted\)$/, '');
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<MemfdFile>('MemfdFile', file.payload, where);

export const memfds: FdType = {
  type: 'memfd',

  claims(f) {
    return f.target.startsWith('/memfd:') && f.stat.isFile();
  },

  dump(_task, f) {
    if (f.stat.size > BigInt(MAX_CONTENTS)) throw new CrError(`pid ${f.pid} fd ${f.fd}: memfd of ${f.stat.size} bytes is larger than ${MAX_CONTENTS >> 20} MiB`);
    // Our own open of the same object: reading it moves nobody's offset.
    const fd = fs.openSync(`/proc/${f.pid}/fd/${f.fd}`, 'r');
    try {
      const seals = fcntl(fd, F_GET_SEALS);
      return encodeMessage('MemfdFile', { name: memfdName(f.target), contents: fs.readFileSync(fd), seals, inode: f.stat.ino });
    } finally {
      fs.closeSync(fd);
    }
  },

  check(file, where) {
    const m = payloadOf(file, where);
    if (Buffer.byteLength(m.name) > 249) throw new CrError(`${where}: corrupted image (memfd name too long)`);
  },

  open(task, file) {
    const m = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const { tracee, inj } = task;
    inj.reset();
    const mapped = task.shared.shmem.get(m.inode);
    const path = mapped && `/proc/${mapped.pid}/map_files/${mapped.start.toString(16)}-${mapped.end.toString(16)}`;
    const fd = liftFd(task, Number(path
      ? tracee.syscallOk(`open ${path}`, NR.open, inj.putString(path), O.RDWR | O.CLOEXEC, 0)
      : tracee.syscallOk(`memfd_create ${m.name}`, NR.memfd_create, inj.putString(m.name), MFD_ALLOW_SEALING | MFD_CLOEXEC)));
    // The contents go in from here, through the task's descriptor, before any seal forbids it.
    const ours = fs.openSync(`/proc/${task.pid}/fd/${fd}`, 'r+');
    try {
      fs.ftruncateSync(ours, m.contents.length);
      for (let done = 0; done < m.contents.length; ) done += fs.writeSync(ours, m.contents, done, m.contents.length - done, done);
    } finally {
      fs.closeSync(ours);
    }
    if (m.seals) tracee.syscallOk('fcntl(F_ADD_SEALS)', NR.fcntl, fd, F_ADD_SEALS, m.seals);
    if (file.pos) tracee.syscallOk('lseek memfd', NR.lseek, fd, file.pos, SEEK_SET);
    return fd;
  },

  describe(file) {
    const m = payloadOf(file, `file ${file.id}`);
    return `memfd:${m.name} ${m.contents.length} bytes pos ${file.pos}${m.seals ? ` seals 0x${m.seals.toString(16)}` : ''}`;
  },
};
