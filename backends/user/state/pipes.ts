/**
 * Pipes and FIFOs. A pipe is created once, by the first of its ends that
 * restore meets; the other end, in this task or another, is taken from
 * there. The bytes in flight are read at dump time without consuming them
 * (tee into a pipe of our own) and written back before anyone runs.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { close, fcntl, pipe2, tee } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { dupHigh, liftFd, rememberLeftovers, setStatusFlags, takeFromTask, type FdType, type OpenFileImage } from './fdtype.js';
import type { RestoreTask } from './module.js';

interface PipeFile {
  pipe_id: bigint;
  fifo_path: string;
  data: Buffer;
  has_data: boolean;
  pipe_size: number;
}

const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const SPLICE_F_NONBLOCK = 2;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<PipeFile>('PipeFile', file.payload, where);

/** The bytes buffered in a task's pipe, left where they are. */
function peekPipe(pid: number, fd: number): { data: Buffer; size: number } {
  const src = fs.openSync(`/proc/${pid}/fd/${fd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const [r, w] = pipe2(O.NONBLOCK | O.CLOEXEC);
  try {
    const size = fcntl(src, F_GETPIPE_SZ);
    fcntl(w, F_SETPIPE_SZ, size);
    let n = 0;
    try {
      n = tee(src, w, size, SPLICE_F_NONBLOCK);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err; // an empty pipe
    }
    const data = Buffer.alloc(n);
    for (let done = 0; done < n; ) done += fs.readSync(r, data, done, n - done, null);
    return { data, size };
  } finally {
    fs.closeSync(src);
    close(r);
    close(w);
  }
}

/** Create the pipe inside the task (both ends, lifted), with its size and its data. */
function createPipe(task: RestoreTask, p: PipeFile): { rd: number; wr: number } {
  const { tracee, inj } = task;
  let rd: number;
  let wr: number;
  inj.reset();
  if (p.fifo_path) {
    // O_RDWR on a FIFO never blocks, and keeps the FIFO alive for both ends.
    rd = wr = liftFd(task, Number(tracee.syscallOk(`open ${p.fifo_path}`, NR.open, inj.putString(p.fifo_path), O.RDWR | O.NONBLOCK | O.CLOEXEC, 0)));
    rememberLeftovers(task, [rd]);
  } else {
    const fds = inj.alloc(8);
    tracee.syscallOk('pipe2', NR.pipe2, fds, O.CLOEXEC);
    const b = tracee.readMem(fds, 8);
    rd = liftFd(task, b.readInt32LE(0));
    wr = liftFd(task, b.readInt32LE(4));
    rememberLeftovers(task, [rd, wr]);
  }
  if (p.pipe_size) tracee.syscallOk('F_SETPIPE_SZ', NR.fcntl, wr, F_SETPIPE_SZ, p.pipe_size);
  task.shared.pipes.set(p.pipe_id, { pid: task.pid, rd, wr });
  return { rd, wr };
}

/**
 * Write the bytes in flight back, when the end that holds them in the image
 * is opened: the pipe may have been made by an end opened before it (an
 * end in flight in a unix socket is opened last).
 */
function refill(p: PipeFile, at: { pid: number; wr: number }): void {
  const w = fs.openSync(`/proc/${at.pid}/fd/${at.wr}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  try {
    for (let done = 0; done < p.data.length; ) done += fs.writeSync(w, p.data, done, p.data.length - done);
  } finally {
    fs.closeSync(w);
  }
}

export const pipes: FdType = {
  type: 'pipe',

  claims(f) {
    return f.stat.isFIFO() && (f.target.startsWith('pipe:') || f.target.startsWith('/'));
  },

  dump(task, f) {
    if (f.target.endsWith(' (deleted)')) throw new CrError(`pid ${f.pid} fd ${f.fd}: FIFO ${f.target} was deleted`);
    const first = !task.shared.pipes.has(f.stat.ino);
    task.shared.pipes.add(f.stat.ino);
    const { data, size } = first ? peekPipe(f.pid, f.fd) : { data: Buffer.alloc(0), size: 0 };
    return encodeMessage('PipeFile', {
      pipe_id: f.stat.ino, fifo_path: f.target.startsWith('/') ? f.target : '', data, has_data: first, pipe_size: size,
    });
  },

  check(file, where) {
    const p = payloadOf(file, where);
    if (p.fifo_path && !fs.existsSync(p.fifo_path)) throw new CrError(`${where}: FIFO ${p.fifo_path} no longer exists`);
  },

  open(task, file) {
    const p = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const known = task.shared.pipes.get(p.pipe_id);
    const readEnd = (file.flags & O.ACCMODE) === O.RDONLY;
    let fd: number;
    if (p.fifo_path) {
      // Each end of a FIFO is its own open of the path, once the FIFO exists.
      if (!known) createPipe(task, p);
      task.inj.reset();
      fd = liftFd(task, Number(task.tracee.syscallOk(`open ${p.fifo_path}`, NR.open, task.inj.putString(p.fifo_path), (file.flags | O.NONBLOCK) & ~O.CREAT, 0)));
    } else if (known?.pid === task.pid || !known) {
      const ends = known ?? createPipe(task, p);
      // Another descriptor of this end would share its flags: make a new one.
      fd = dupHigh(task, readEnd ? ends.rd : ends.wr);
    } else {
      fd = liftFd(task, takeFromTask(task, known.pid, readEnd ? known.rd : known.wr));
    }
    if (p.data.length) refill(p, task.shared.pipes.get(p.pipe_id)!);
    setStatusFlags(task, fd, file.flags);
    return fd;
  },

  describe(file) {
    const p = payloadOf(file, `file ${file.id}`);
    const end = (file.flags & O.ACCMODE) === O.RDONLY ? 'read' : 'write';
    return `${p.fifo_path ? `FIFO ${p.fifo_path}` : `pipe:[${p.pipe_id}]`} ${end} end${p.has_data ? `, ${p.data.length} bytes in flight` : ''}`;
  },
};
