/**
 * epoll: recreated empty, then every watch is added again once all of the
 * task's descriptors are in place (connect). A watch is on an open file
 * and keyed by the number it was added with, which the task may since have
 * closed or given to another file: the dump finds each watched file with
 * kcmp(KCMP_EPOLL_TFD) among the descriptors of the tree (like CRIU), and
 * restore puts that file at the old number just for the EPOLL_CTL_ADD, so
 * EPOLL_CTL_MOD/DEL and fdinfo see the same watch. Readiness is polled
 * anew on add: an edge-triggered watch whose edge was already reported may
 * report it once more.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { NR, O, RLIMIT_NOFILE } from '../../../userspace/sys/constants.js';
import { prlimit, rawSyscall } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { dupHigh, liftFd, type FdType, type OpenFileImage } from './fdtype.js';
import { hex, type RestoreTask } from './module.js';

interface EpollTarget {
  fd: number;
  events: number;
  data: bigint;
  file_id: number;
}

interface EventpollFile {
  targets: EpollTarget[];
}

const KCMP_EPOLL_TFD = 7;
const EPOLL_CTL_ADD = 1;
const F_GETFD = 1;
const FD_CLOEXEC = 1;
/** struct epoll_event is packed on x86_64: events, then data. */
const EPOLL_EVENT_SIZE = 12;
const TARGET_LINE = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*-?\d+\s+ino:\s*([0-9a-f]+)/gm;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<EventpollFile>('EventpollFile', file.payload, where);

/** Whether descriptor `fd` of task `pid` is the file epoll `slot` (efd, tfd, toff) of task `epPid` watches. */
function watches(pid: number, fd: number, epPid: number, slot: Buffer): boolean {
  try {
    return rawSyscall(NR.kcmp, pid, epPid, KCMP_EPOLL_TFD, fd, slot) === 0;
  } catch {
    return false; // closed meanwhile, or not ours to compare
  }
}

/** Add one watch with the number it had, the file at that number for the moment if it is elsewhere. */
function addWatch(task: RestoreTask, epfd: number, t: EpollTarget, from: number): void {
  const { tracee, inj } = task;
  const add = () => {
    inj.reset();
    const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
    ev.writeUInt32LE(t.events, 0);
    ev.writeBigUInt64LE(t.data, 4);
    tracee.syscallOk(`epoll_ctl add fd ${t.fd}`, NR.epoll_ctl, epfd, EPOLL_CTL_ADD, t.fd, inj.put(ev));
  };
  if (from === t.fd) return add();
  const limit = prlimit(task.pid, RLIMIT_NOFILE);
  if (limit.cur <= BigInt(t.fd)) prlimit(task.pid, RLIMIT_NOFILE, { cur: BigInt(t.fd + 1), max: limit.max > BigInt(t.fd) ? limit.max : BigInt(t.fd + 1) });
  const fdFlags = tracee.syscall(NR.fcntl, t.fd, F_GETFD, 0);
  const holder = fdFlags < 0n ? -1 : dupHigh(task, t.fd);
  tracee.syscallOk(`dup3 to fd ${t.fd}`, NR.dup3, from, t.fd, 0);
  add();
  if (holder < 0) {
    tracee.syscall(NR.close, t.fd);
  } else {
    tracee.syscallOk(`dup3 to fd ${t.fd}`, NR.dup3, holder, t.fd, fdFlags & BigInt(FD_CLOEXEC) ? O.CLOEXEC : 0);
    tracee.syscall(NR.close, holder);
  }
}

export const eventpolls: FdType = {
  type: 'eventpoll',
  byNumber: true,

  claims(f) {
    return f.target === 'anon_inode:[eventpoll]';
  },

  dump(task, f, files) {
    // The task's descriptors by inode, to try the watched inode's only.
    const byIno = new Map<bigint, number[]>();
    for (const fd of fs.readdirSync(`/proc/${f.pid}/fd`).map(Number)) {
      try {
        const ino = fs.statSync(`/proc/${f.pid}/fd/${fd}`, { bigint: true }).ino;
        byIno.set(ino, [...(byIno.get(ino) ?? []), fd]);
      } catch {
        /* not a file we could save either */
      }
    }
    const toff = new Map<number, number>();
    const targets = [...f.infoText.matchAll(TARGET_LINE)].map((m): EpollTarget => {
      const tfd = Number(m[1]);
      const ino = BigInt(`0x${m[4]}`);
      // The nth watch added with this number (it may have been reused for another file).
      const slot = Buffer.alloc(12);
      [f.fd, tfd, toff.get(tfd) ?? 0].forEach((v, i) => slot.writeUInt32LE(v, i * 4));
      toff.set(tfd, (toff.get(tfd) ?? 0) + 1);
      const own = (byIno.get(ino) ?? []).sort((a, b) => (a === tfd ? -1 : b === tfd ? 1 : a - b)).find((fd) => watches(f.pid, fd, f.pid, slot));
      const elsewhere = own === undefined ? task.shared.files.byIno.get(ino)?.find((k) => k.pid !== f.pid && watches(k.pid, k.fd, f.pid, slot)) : undefined;
      if (own === undefined && !elsewhere) {
        throw new CrError(`pid ${f.pid} fd ${f.fd}: epoll watches a file (added as fd ${tfd}) that no task of the tree holds open`);
      }
      return { fd: tfd, events: parseInt(m[2], 16), data: BigInt(`0x${m[3]}`), file_id: own !== undefined ? files.idOf(f.pid, own) : elsewhere!.id };
    });
    return encodeMessage('EventpollFile', { targets });
  },

  check(file, where) {
    payloadOf(file, where);
  },

  open(task, file, files) {
    // The watches once every descriptor is in place, on the epoll's own final number.
    files.later(() => {
      const epfd = task.shared.files.get(file.id)!.fd;
      for (const t of payloadOf(file, `pid ${task.pid} file ${file.id}`).targets) addWatch(task, epfd, t, files.open(t.file_id));
    });
    return liftFd(task, Number(task.tracee.syscallOk('epoll_create1', NR.epoll_create1, O.CLOEXEC)));
  },

  describe(file) {
    const e = payloadOf(file, `file ${file.id}`);
    return `epoll watching ${e.targets.map((t) => `fd ${t.fd} (events ${hex(t.events)} data ${hex(t.data)}) file ${t.file_id}`).join(', ') || 'nothing'}`;
  },
};
