/**
 * timerfd: clock, period, time to the next expiration and the expirations
 * not read yet. The timer is re-armed with the time it had left, so the
 * time the image spent on disk does not count; unread expirations are put
 * back with TFD_IOC_SET_TICKS (CONFIG_CHECKPOINT_RESTORE).
 */
import { CrError } from '../../../userspace/errors.js';
import { procFdinfo } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';

interface TimerfdFile {
  clockid: number;
  ticks: bigint;
  settime_flags: number;
  value_ns: bigint;
  interval_ns: bigint;
}

const NS = 1_000_000_000n;
const TFD_TIMER_ABSTIME = 1;
/** _IOW('T', 0, __u64) */
const TFD_IOC_SET_TICKS = 0x40085400;
/** How many times (a millisecond apart) a periodic timer that shows no time left is asked again. */
const DUE_TRIES = 20;
const ITIMERSPEC_SIZE = 32;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<TimerfdFile>('TimerfdFile', file.payload, where);
const seconds = (ns: bigint) => `${ns / NS}.${(ns % NS).toString().padStart(9, '0')}s`;

export const timerfds: FdType = {
  type: 'timerfd',
  byNumber: true,

  claims(f) {
    return f.target === 'anon_inode:[timerfd]';
  },

  dump(task, f) {
    const { tracee, inj } = task;
    // timerfd_gettime folds the periods an expired periodic timer missed into
    // its ticks and re-arms it, as the next read would; fdinfo alone would
    // show such a timer as disarmed.
    // A periodic timer caught at the instant it is due shows no time left, as
    // a disarmed one does: asked again once its expiry has fired, it shows
    // the next period (a disarmed one keeps showing none).
    const tick = new Int32Array(new SharedArrayBuffer(4));
    let b: Buffer;
    for (let tries = 0; ; tries++) {
      inj.reset();
      const its = inj.alloc(ITIMERSPEC_SIZE);
      tracee.syscallOk(`timerfd_gettime fd ${f.fd}`, NR.timerfd_gettime, f.fd, its);
      b = tracee.readMem(its, ITIMERSPEC_SIZE);
      const due = !b.readBigInt64LE(16) && !b.readBigInt64LE(24) && (b.readBigInt64LE(0) || b.readBigInt64LE(8));
      if (!due || tries === DUE_TRIES) break;
      Atomics.wait(tick, 0, 0, 1);
    }
    const info = procFdinfo(f.pid, f.fd);
    const [clockid, ticks, flags] = ['clockid', 'ticks', 'settime flags'].map((k) => info.get(k));
    if (clockid === undefined || ticks === undefined || flags === undefined) throw new CrError(`pid ${f.pid} fd ${f.fd}: fdinfo of the timerfd lacks its clock, ticks or flags`);
    return encodeMessage('TimerfdFile', {
      clockid: Number(clockid),
      ticks: BigInt(ticks),
      settime_flags: parseInt(flags, 8),
      interval_ns: b.readBigInt64LE(0) * NS + b.readBigInt64LE(8),
      value_ns: b.readBigInt64LE(16) * NS + b.readBigInt64LE(24),
    });
  },

  check(file, where) {
    payloadOf(file, where);
  },

  open(task, file) {
    const t = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const { tracee, inj } = task;
    const fd = liftFd(task, Number(tracee.syscallOk(`timerfd_create(clock ${t.clockid})`, NR.timerfd_create, t.clockid, O.CLOEXEC)));
    if (t.value_ns) {
      inj.reset();
      let value = t.value_ns;
      if (t.settime_flags & TFD_TIMER_ABSTIME) {
        // An absolute timer keeps its flags (TFD_TIMER_CANCEL_ON_SET needs them): it expires as long from now as it had left.
        const now = inj.alloc(16);
        tracee.syscallOk('clock_gettime', NR.clock_gettime, t.clockid, now);
        const ts = tracee.readMem(now, 16);
        value += ts.readBigInt64LE(0) * NS + ts.readBigInt64LE(8);
      }
      const its = Buffer.alloc(ITIMERSPEC_SIZE);
      [t.interval_ns / NS, t.interval_ns % NS, value / NS, value % NS].forEach((v, i) => its.writeBigInt64LE(v, i * 8));
      tracee.syscallOk('timerfd_settime', NR.timerfd_settime, fd, t.settime_flags, inj.put(its), 0);
    }
    if (t.ticks) {
      inj.reset();
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(t.ticks, 0);
      tracee.syscallOk('TFD_IOC_SET_TICKS', NR.ioctl, fd, TFD_IOC_SET_TICKS, inj.put(b));
    }
    return fd;
  },

  describe(file) {
    const t = payloadOf(file, `file ${file.id}`);
    const when = t.value_ns ? `next in ${seconds(t.value_ns)}${t.interval_ns ? ` every ${seconds(t.interval_ns)}` : ''}` : 'disarmed';
    return `timerfd clock ${t.clockid} ${when}, ${t.ticks} unread expirations${t.settime_flags ? ` settime flags 0${t.settime_flags.toString(8)}` : ''}`;
  },
};
