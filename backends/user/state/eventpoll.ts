/**
 * epoll: recreated empty, then every watched descriptor is added again.
 * Watches name descriptors by number, so epoll files are made after every
 * other descriptor of the task is in place (`late`). Readiness is polled
 * anew on add: an edge-triggered watch whose edge was already reported may
 * report it once more.
 */
import { CrError } from '../../../userspace/errors.js';
import { readProc } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, setStatusFlags, type FdType, type OpenFileImage } from './fdtype.js';
import { hex } from './module.js';

interface EpollTarget {
  fd: number;
  events: number;
  data: bigint;
}

interface EventpollFile {
  targets: EpollTarget[];
}

const KCMP_EPOLL_TFD = 7;
const EPOLL_CTL_ADD = 1;
/** struct epoll_event is packed on x86_64: events, then data. */
const EPOLL_EVENT_SIZE = 12;
const TARGET_LINE = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/gm;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<EventpollFile>('EventpollFile', file.payload, where);

export const eventpolls: FdType = {
  type: 'eventpoll',
  late: true,
  byNumber: true,

  claims(f) {
    return f.target === 'anon_inode:[eventpoll]';
  },

  dump(task, f) {
    const { tracee, inj } = task;
    const targets = [...readProc(f.pid, `fdinfo/${f.fd}`).matchAll(TARGET_LINE)].map(
      (m): EpollTarget => ({ fd: Number(m[1]), events: parseInt(m[2], 16), data: BigInt(`0x${m[3]}`) }));
    for (const t of targets) {
      // A watch outlives its descriptor number when the file stays open elsewhere (dup, then close):
      // restore can only add what the number still holds.
      inj.reset();
      const slot = Buffer.alloc(12);
      [f.fd, t.fd, 0].forEach((v, i) => slot.writeUInt32LE(v, i * 4));
      const same = tracee.syscall(NR.kcmp, f.pid, f.pid, KCMP_EPOLL_TFD, t.fd, inj.put(slot));
      if (same !== 0n || targets.filter((u) => u.fd === t.fd).length > 1) {
        throw new CrError(`pid ${f.pid} fd ${f.fd}: epoll watches a file that is no longer open at fd ${t.fd}`);
      }
    }
    return encodeMessage('EventpollFile', { targets });
  },

  check(file, where) {
    payloadOf(file, where);
  },

  open(task, file) {
    const e = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const { tracee, inj } = task;
    const fd = liftFd(task, Number(tracee.syscallOk('epoll_create1', NR.epoll_create1, O.CLOEXEC)));
    for (const t of e.targets) {
      inj.reset();
      const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
      ev.writeUInt32LE(t.events, 0);
      ev.writeBigUInt64LE(t.data, 4);
      tracee.syscallOk(`epoll_ctl add fd ${t.fd}`, NR.epoll_ctl, fd, EPOLL_CTL_ADD, t.fd, inj.put(ev));
    }
    setStatusFlags(task, fd, file.flags);
    return fd;
  },

  describe(file) {
    const e = payloadOf(file, `file ${file.id}`);
    return `epoll watching ${e.targets.map((t) => `fd ${t.fd} (events ${hex(t.events)} data ${hex(t.data)})`).join(', ') || 'nothing'}`;
  },
};
