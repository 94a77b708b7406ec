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
import { liftFd, liftFds, rememberLeftovers, takeFromTask, type FdType, type OpenFileImage } from './fdtype.js';
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
type PipeEnds = { pid: number; rd: number; wr: number };
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

/** Create the pipe inside the task: both ends, lifted, kept until every task is built. */
function createPipe(task: RestoreTask, p: PipeFile): PipeEnds {
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
    [rd, wr] = liftFds(task, [b.readInt32LE(0), b.readInt32LE(4)]);
    rememberLeftovers(task, [rd, wr]);
  }
  const ends = { pid: task.pid, rd, wr };
  task.shared.pipes.set(p.pipe_id, ends);
  return ends;
}

/** Give the pipe its size and its bytes in flight (from cr, through the write end). */
function fillPipe(ends: PipeEnds, p: PipeFile): void {
  const w = fs.openSync(`/proc/${ends.pid}/fd/${ends.wr}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  try {
    if (p.pipe_size) fcntl(w, F_SETPIPE_SZ, p.pipe_size);
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
    const known = task.shared.pipes.get(p.pipe_id) ?? createPipe(task, p);
    // The end saved first holds the bytes; restore may meet the other end first.
    if (p.has_data) fillPipe(known, p);
    const end = (file.flags & O.ACCMODE) === O.RDONLY ? known.rd : known.wr;
    // pipe2(2) makes one open file per end, without O_LARGEFILE; any other
    // open file of the pipe was opened by name (a FIFO, or /proc/PID/fd/N).
    const path = p.fifo_path || (file.flags & O.LARGEFILE ? `/proc/${known.pid}/fd/${end}` : '');
    if (path) {
      // Never blocking on the other end; files.ts gives it its own flags.
      task.inj.reset();
      return liftFd(task, Number(task.tracee.syscallOk(`open ${path}`, NR.open, task.inj.putString(path), (file.flags | O.NONBLOCK) & ~O.CREAT, 0)));
    }
    // This task's end itself: kept open until every task is built, it is placed without being closed.
    return known.pid === task.pid ? end : liftFd(task, takeFromTask(task, known.pid, end));
  },

  describe(file) {
    const p = payloadOf(file, `file ${file.id}`);
    const end = (file.flags & O.ACCMODE) === O.RDONLY ? 'read' : 'write';
    return `${p.fifo_path ? `FIFO ${p.fifo_path}` : `pipe:[${p.pipe_id}]`} ${end} end${p.has_data ? `, ${p.data.length} bytes in flight` : ''}`;
  },
};
