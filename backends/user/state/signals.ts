/**
 * Signal dispositions (the blocked mask is per thread: cpu.ts), the alternate stack,
 * pending signals with their siginfo, and interval timers.
 * Pending signals are read with PTRACE_PEEKSIGINFO, the thread's queue and
 * the process-shared one apart, and queued again by the task to itself
 * (rt_tgsigqueueinfo / rt_sigqueueinfo: to itself any si_code is allowed),
 * so each is delivered once, with the same siginfo, after restore.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procStatus, readProc, statusMask } from '../../../userspace/proc/parse.js';
import { NR, PTRACE, SIG } from '../../../userspace/sys/constants.js';
import { ptrace } from '../../../userspace/sys/libc.js';
import type { Tracee } from '../../../userspace/sys/ptrace.js';
import { readImage } from '../image.js';
import { defineState, hex } from './module.js';

interface SigAction {
  signo: number;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

interface Itimer {
  which: number;
  interval_us: bigint;
  value_us: bigint;
}

export interface SignalsImage {
  actions: SigAction[];
  altstack_sp: bigint;
  altstack_flags: number;
  altstack_size: bigint;
  thread_pending: Buffer[];
  shared_pending: Buffer[];
  itimers: Itimer[];
}

const NSIG = 64;
/** struct kernel_sigaction on x86_64: handler, flags, restorer, mask. */
const KSIGACTION_SIZE = 32;
/** stack_t: ss_sp, ss_flags (int, padded), ss_size. */
const STACK_T_SIZE = 24;
const SS_DISABLE = 2;
const SIGINFO_SIZE = 128;
const PEEKSIGINFO_SHARED = 1;
/** ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
const ITIMERS = ['real', 'virtual', 'prof'];
/** struct itimerval: interval then value, each a timeval (seconds, microseconds). */
const ITIMERVAL_SIZE = 32;
const US = 1_000_000n;

/** The siginfo of every signal pending in one queue, in queue order, left pending. */
function peekPending(tracee: Tracee, flags: number): Buffer[] {
  const batch = 32;
  const out = Buffer.alloc(batch * SIGINFO_SIZE);
  const infos: Buffer[] = [];
  for (;;) {
    // struct ptrace_peeksiginfo_args: off, flags, nr
    const args = Buffer.alloc(16);
    args.writeBigUInt64LE(BigInt(infos.length), 0);
    args.writeUInt32LE(flags, 8);
    args.writeInt32LE(batch, 12);
    const n = ptrace(PTRACE.PEEKSIGINFO, tracee.pid, args, out);
    for (let i = 0; i < n; i++) infos.push(Buffer.from(out.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < batch) return infos;
  }
}

const signoOf = (info: Buffer) => info.readInt32LE(0);

export const signals = defineState<SignalsImage>({
  name: 'signals',

  dump(task) {
    const { tracee, inj } = task;
    const actions: SigAction[] = [];
    for (let signo = 1; signo <= NSIG; signo++) {
      if (signo === SIG.KILL || signo === SIG.STOP) continue;
      inj.reset();
      const old = inj.alloc(KSIGACTION_SIZE);
      tracee.syscallOk(`rt_sigaction(${signo})`, NR.rt_sigaction, signo, 0, old, 8);
      const b = tracee.readMem(old, KSIGACTION_SIZE);
      const act = { signo, handler: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8), restorer: b.readBigUInt64LE(16), mask: b.readBigUInt64LE(24) };
      if (act.handler || act.flags || act.mask) actions.push(act);
    }
    inj.reset();
    const ss = inj.alloc(STACK_T_SIZE);
    tracee.syscallOk('sigaltstack', NR.sigaltstack, 0, ss);
    const st = tracee.readMem(ss, STACK_T_SIZE);
    // Other threads' own queues would have to be refilled by each of them: not yet.
    for (const tid of fs.readdirSync(`/proc/${task.pid}/task`).map(Number).filter((t) => t !== task.pid)) {
      if (statusMask(procStatus(tid), 'SigPnd')) throw new CrError(`pid ${task.pid} thread ${tid}: signals pending for one thread other than the first are not supported`);
    }
    if (readProc(task.pid, 'timers').trim()) throw new CrError(`pid ${task.pid}: POSIX timers (timer_create) are not supported`);
    const itimers: Itimer[] = [];
    ITIMERS.forEach((_, which) => {
      inj.reset();
      const val = inj.alloc(ITIMERVAL_SIZE);
      tracee.syscallOk('getitimer', NR.getitimer, which, val);
      const b = tracee.readMem(val, ITIMERVAL_SIZE);
      const t = { which, interval_us: b.readBigInt64LE(0) * US + b.readBigInt64LE(8), value_us: b.readBigInt64LE(16) * US + b.readBigInt64LE(24) };
      if (t.value_us || t.interval_us) itimers.push(t);
    });
    task.images.write('signals', task.pid, {
      actions,
      altstack_sp: st.readBigUInt64LE(0),
      altstack_flags: st.readInt32LE(8),
      altstack_size: st.readBigUInt64LE(16),
      thread_pending: peekPending(tracee, 0),
      shared_pending: peekPending(tracee, PEEKSIGINFO_SHARED),
      itimers,
    });
  },

  load(dir, { pid }) {
    const img = readImage<SignalsImage>(dir, 'signals', pid);
    for (const info of [...img.thread_pending, ...img.shared_pending]) {
      if (info.length !== SIGINFO_SIZE || signoOf(info) < 1 || signoOf(info) > NSIG) throw new CrError(`signals-${pid}.img: bad pending signal`);
    }
    if (img.itimers.some((t) => !ITIMERS[t.which])) throw new CrError(`signals-${pid}.img: bad interval timer`);
    return img;
  },

  restore(task, img) {
    const { tracee, inj } = task;
    for (const a of img.actions) {
      inj.reset();
      const b = Buffer.alloc(KSIGACTION_SIZE);
      [a.handler, a.flags, a.restorer, a.mask].forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
      tracee.syscallOk(`rt_sigaction(${a.signo})`, NR.rt_sigaction, a.signo, inj.put(b), 0, 8);
    }
    if (!(img.altstack_flags & SS_DISABLE)) {
      inj.reset();
      const b = Buffer.alloc(STACK_T_SIZE);
      b.writeBigUInt64LE(img.altstack_sp, 0);
      b.writeInt32LE(0, 8);
      b.writeBigUInt64LE(img.altstack_size, 16);
      tracee.syscallOk('sigaltstack', NR.sigaltstack, inj.put(b), 0);
    }
    // Every signal is blocked during the injection, so none is delivered (or ignored) now.
    for (const info of img.thread_pending) {
      inj.reset();
      tracee.syscallOk(`rt_tgsigqueueinfo(${signoOf(info)})`, NR.rt_tgsigqueueinfo, task.pid, task.pid, signoOf(info), inj.put(info));
    }
    for (const info of img.shared_pending) {
      inj.reset();
      tracee.syscallOk(`rt_sigqueueinfo(${signoOf(info)})`, NR.rt_sigqueueinfo, task.pid, signoOf(info), inj.put(info));
    }
    for (const t of img.itimers) {
      inj.reset();
      // A periodic ITIMER_REAL whose SIGALRM is still pending shows no time left: the kernel
      // re-arms it only when that signal is taken (dequeue_signal). Re-arm it a period away.
      const value = t.value_us || t.interval_us;
      const b = Buffer.alloc(ITIMERVAL_SIZE);
      [t.interval_us / US, t.interval_us % US, value / US, value % US].forEach((v, i) => b.writeBigInt64LE(v, i * 8));
      tracee.syscallOk(`setitimer(${ITIMERS[t.which]})`, NR.setitimer, t.which, inj.put(b), 0);
    }
  },

  describe(img) {
    return [
      img.altstack_flags & SS_DISABLE ? 'no alternate stack' : `altstack ${hex(img.altstack_sp)}+${img.altstack_size}`,
      ...img.actions.map((a) => `  signal ${a.signo}: handler ${hex(a.handler)} flags ${hex(a.flags)} mask ${hex(a.mask)}`),
      ...[...img.thread_pending.map((i) => ['thread', i] as const), ...img.shared_pending.map((i) => ['process', i] as const)].map(
        ([queue, i]) => `  pending for the ${queue}: signal ${signoOf(i)} code ${i.readInt32LE(8)}`),
      ...img.itimers.map((t) => `  itimer ${ITIMERS[t.which]}: ${t.value_us} us left, every ${t.interval_us} us`),
    ];
  },
});
