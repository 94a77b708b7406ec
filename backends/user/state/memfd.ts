/**
 * memfd: an open memfd with its access mode, status flags and offset; the
 * object behind it with its name, contents and seals. An object the tree
 * also maps is saved (and restored first) by the memory module with the
 * task that maps it (memory.ts), and the descriptor opens that one, so a
 * write through the mapping still shows through the descriptor; one only
 * held open is recreated here, once, however many open files it has.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { fcntl } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, rememberLeftovers, setStatusFlags, type FdType, type OpenFileImage } from './fdtype.js';

interface MemfdFile {
  name: string;
  contents: Buffer;
  seals: number;
  inode: bigint;
  in_mm: boolean;
}

/** Contents travel inside the image: keep them to what a message can hold comfortably. */
const MAX_CONTENTS = 256 << 20;
export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
const SEEK_SET = 0;

/** The name memfd_create(2) was given, from a /proc link or maps path "/memfd:NAME (deleted)". */
export const memfdName = (target: string) => target.slice('/memfd:'.length).replace(/ \(deleted\)$/, '');
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<MemfdFile>('MemfdFile', file.payload, where);

/** Seal a memfd from here, through our own descriptor of it (F_ADD_SEALS needs one open for writing). */
export function sealMemfd(path: string, seals: number, what: string): void {
  const fd = fs.openSync(path, 'r+');
  try {
    fcntl(fd, F_ADD_SEALS, seals);
  } catch (err) {
    throw new CrError(`${what}: cannot seal it again (${(err as Error).message})`);
  } finally {
    fs.closeSync(fd);
  }
}

export const memfds: FdType = {
  type: 'memfd',

  claims(f) {
    return f.target.startsWith('/memfd:') && f.stat.isFile();
  },

  dump(task, f) {
    const inMm = task.shared.shmem.has(f.stat.ino);
    if (!inMm && f.stat.size > BigInt(MAX_CONTENTS)) throw new CrError(`pid ${f.pid} fd ${f.fd}: memfd of ${f.stat.size} bytes is larger than ${MAX_CONTENTS >> 20} MiB`);
    // Our own open of the same object: reading it moves nobody's offset.
    const fd = fs.openSync(`/proc/${f.pid}/fd/${f.fd}`, 'r');
    try {
      const seals = fcntl(fd, F_GET_SEALS);
      return encodeMessage('MemfdFile', { name: memfdName(f.target), contents: inMm ? Buffer.alloc(0) : fs.readFileSync(fd), seals, inode: f.stat.ino, in_mm: inMm });
    } finally {
      fs.closeSync(fd);
    }
  },

  check(file, where) {
    const m = payloadOf(file, where);
    if (Buffer.byteLength(m.name) > 249) throw new CrError(`${where}: corrupted image (memfd name too long)`);
    if (m.in_mm && m.contents.length) throw new CrError(`${where}: corrupted image (memfd contents saved twice)`);
  },

  open(task, file) {
    const where = `pid ${task.pid} file ${file.id}`;
    const m = payloadOf(file, where);
    const { tracee, inj } = task;
    let object = task.shared.shmem.get(m.inode);
    if (!object) {
      if (m.in_mm) throw new CrError(`${where}: memfd:${m.name} is in no task's memory image`);
      inj.reset();
      const fd = Number(tracee.syscallOk(`memfd_create ${m.name}`, NR.memfd_create, inj.putString(m.name), MFD_ALLOW_SEALING | MFD_CLOEXEC));
      object = { pid: task.pid, path: `/proc/${task.pid}/fd/${fd}` };
      // The contents go in from here, before any seal forbids it.
      const ours = fs.openSync(object.path, 'r+');
      try {
        fs.ftruncateSync(ours, m.contents.length);
        for (let done = 0; done < m.contents.length; ) done += fs.writeSync(ours, m.contents, done, m.contents.length - done, done);
      } finally {
        fs.closeSync(ours);
      }
      if (m.seals) sealMemfd(object.path, m.seals, `${where}: memfd:${m.name}`);
      // Kept until every task is built: other open files of the object are opened from it.
      rememberLeftovers(task, [fd]);
      task.shared.shmem.set(m.inode, object);
    }
    // A new open file of the object, with the access mode this one had.
    inj.reset();
    const fd = liftFd(task, Number(tracee.syscallOk(`open ${object.path}`, NR.open, inj.putString(object.path), (file.flags & O.ACCMODE) | O.CLOEXEC, 0)));
    setStatusFlags(task, fd, file.flags);
    if (file.pos) tracee.syscallOk('lseek memfd', NR.lseek, fd, file.pos, SEEK_SET);
    return fd;
  },

  describe(file) {
    const m = payloadOf(file, `file ${file.id}`);
    return `memfd:${m.name} ${m.in_mm ? 'saved with the memory that maps it' : `${m.contents.length} bytes`} pos ${file.pos}${m.seals ? ` seals 0x${m.seals.toString(16)}` : ''}`;
  },
};
