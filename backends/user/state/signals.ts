/**
 * Signal dispositions (the blocked mask is per thread: cpu.ts), the alternate stack,
 * pending signals with their siginfo, interval timers and POSIX timers.
 * Pending signals are read with PTRACE_PEEKSIGINFO, each thread's queue and
 * the process-shared one apart, and queued again by the task to itself
 * (rt_tgsigqueueinfo / rt_sigqueueinfo: within its own thread group any
 * si_code is allowed), so each is delivered once, to the same thread, with
 * the same siginfo, after restore.
 */
import { CrError } from '../../../userspace/errors.js';
import { parseKeyValues, readProc } from '../../../userspace/proc/parse.js';
import { NR, PTRACE, SIG } from '../../../userspace/sys/constants.js';
import { ptrace } from '../../../userspace/sys/libc.js';
import type { Tracee } from '../../../userspace/sys/ptrace.js';
import { readImage } from '../image.js';
import { defineState, hex, type DumpTask, type RestoreTask } from './module.js';

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

interface PosixTimer {
  id: number;
  clock: number;
  notify: number;
  signo: number;
  value: bigint;
  tid: number;
  interval_ns: bigint;
  value_ns: bigint;
}

interface ThreadPending {
  tid: number;
  pending: Buffer[];
}

export interface SignalsImage {
  actions: SigAction[];
  altstack_sp: bigint;
  altstack_flags: number;
  altstack_size: bigint;
  thread_pending: Buffer[];
  shared_pending: Buffer[];
  itimers: Itimer[];
  posix_timers: PosixTimer[];
  other_threads: ThreadPending[];
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
const NS = 1_000_000_000n;
/** struct itimerspec: interval then value, each a timespec. */
const ITIMERSPEC_SIZE = 32;
/** struct sigevent: sigev_value, sigev_signo, sigev_notify, then the thread id. */
const SIGEVENT_SIZE = 64;
const SIGEV = { signal: 0, none: 1, thread_id: 4 } as const;
/** A task recreating timers creates (and deletes) at most this many to reach an id. */
const MAX_TIMER_ID = 65536;

/** /proc/PID/timers: "ID:", "signal: SIGNO/VALUE", "notify: KIND/pid.N or tid.N", "ClockID:" per timer. */
function dumpPosixTimers(task: DumpTask): PosixTimer[] {
  const { tracee, inj } = task;
  const text = readProc(task.tracee.pid, 'timers');
  return text.split(/^(?=ID:)/m).filter((b) => b.trim()).map((block) => {
    const kv = parseKeyValues(block.endsWith('\n') ? block : `${block}\n`);
    const sig = /^(\d+)\/([0-9a-f]+)$/.exec(kv.get('signal') ?? '');
    const notify = /^(signal|none)\/(pid|tid)\.(\d+)$/.exec(kv.get('notify') ?? '');
    const id = Number(kv.get('ID'));
    if (!sig || !notify || !Number.isInteger(id)) throw new CrError(`pid ${task.pid}: cannot read POSIX timer from /proc/${task.pid}/timers: ${JSON.stringify(block)}`);
    inj.reset();
    const spec = inj.alloc(ITIMERSPEC_SIZE);
    tracee.syscallOk(`timer_gettime(${id})`, NR.timer_gettime, id, spec);
    const b = tracee.readMem(spec, ITIMERSPEC_SIZE);
    return {
      id,
      clock: Number(kv.get('ClockID')),
      notify: SIGEV[notify[1] as 'signal' | 'none'] | (notify[2] === 'tid' ? SIGEV.thread_id : 0),
      signo: Number(sig[1]),
      value: BigInt(`0x${sig[2]}`),
      tid: notify[2] === 'tid' ? Number(notify[3]) : 0,
      interval_ns: b.readBigInt64LE(0) * NS + b.readBigInt64LE(8),
      value_ns: b.readBigInt64LE(16) * NS + b.readBigInt64LE(24),
    };
  }).sort((a, b) => a.id - b.id);
}

/**
 * timer_create(2) hands out ids in sequence in each process and takes no
 * wish: create timers until the next one gets the saved id, and delete the
 * fillers afterwards.
 */
function restorePosixTimers(task: RestoreTask, timers: PosixTimer[]): void {
  const { tracee, inj } = task;
  const fillers: number[] = [];
  for (const t of timers) {
    inj.reset();
    const ev = Buffer.alloc(SIGEVENT_SIZE);
    ev.writeBigUInt64LE(t.value, 0);
    ev.writeInt32LE(t.signo, 8);
    ev.writeInt32LE(t.notify, 12);
    ev.writeInt32LE(t.notify & SIGEV.thread_id ? task.shared.nsPids.get(t.tid) ?? t.tid : 0, 16);
    const evp = inj.put(ev);
    const idp = inj.alloc(4);
    for (;;) {
      tracee.syscallOk(`timer_create for timer ${t.id}`, NR.timer_create, t.clock, evp, idp);
      const got = tracee.readMem(idp, 4).readInt32LE(0);
      if (got === t.id) break;
      if (got > t.id || got > MAX_TIMER_ID) throw new CrError(`pid ${task.pid}: cannot recreate POSIX timer ${t.id} (the kernel gave id ${got})`);
      fillers.push(got);
    }
    if (t.value_ns || t.interval_ns) {
      const spec = Buffer.alloc(ITIMERSPEC_SIZE);
      [t.interval_ns / NS, t.interval_ns % NS, t.value_ns / NS, t.value_ns % NS].forEach((v, i) => spec.writeBigInt64LE(v, i * 8));
      inj.reset();
      tracee.syscallOk(`timer_settime(${t.id})`, NR.timer_settime, t.id, 0, inj.put(spec), 0);
    }
  }
  for (const id of fillers) tracee.syscallOk(`timer_delete(${id})`, NR.timer_delete, id);
}

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

/**
 * Queue signals for one thread (by its id in the task's pid namespace): by
 * the thread itself, the only one the kernel lets queue a tgkill()'s siginfo.
 */
function queueForThread(task: RestoreTask, thread: Tracee, tid: number, infos: Buffer[]): void {
  const tgid = task.shared.nsPids.get(task.pid) ?? task.pid;
  task.inj.withThread(thread, () => {
    for (const info of infos) {
      task.inj.reset();
      thread.syscallOk(`rt_tgsigqueueinfo(${tid}, ${signoOf(info)})`, NR.rt_tgsigqueueinfo, tgid, tid, signoOf(info), task.inj.put(info));
    }
  });
}

/** What only the task can say of its signals: every disposition, the alternate stack, the interval timers. */
type SignalAnswers = Pick<SignalsImage, 'actions' | 'altstack_sp' | 'altstack_flags' | 'altstack_size' | 'itimers'>;

export const signals = defineState<SignalsImage, SignalAnswers>({
  name: 'signals',

  ask({ inj, tracee }) {
    const signos = Array.from({ length: NSIG }, (_, i) => i + 1).filter((n) => n !== SIG.KILL && n !== SIG.STOP);
    // One block for every answer: one read of the task's memory, not one per signal.
    const block = inj.alloc(signos.length * KSIGACTION_SIZE + STACK_T_SIZE + ITIMERS.length * ITIMERVAL_SIZE);
    const olds = signos.map((_, i) => block + i * KSIGACTION_SIZE);
    const ss = block + signos.length * KSIGACTION_SIZE;
    const vals = ITIMERS.map((_, i) => ss + STACK_T_SIZE + i * ITIMERVAL_SIZE);
    return {
      calls: [
        ...signos.map((signo, i): [string, number[]] => [`rt_sigaction(${signo})`, [NR.rt_sigaction, signo, 0, olds[i], 8]]),
        ['sigaltstack', [NR.sigaltstack, 0, ss]],
        ...vals.map((val, which): [string, number[]] => ['getitimer', [NR.getitimer, which, val]]),
      ],
      answer() {
        const out = tracee.readMem(block, vals.at(-1)! + ITIMERVAL_SIZE - block);
        const at = (addr: number, len: number) => out.subarray(addr - block, addr - block + len);
        const actions: SigAction[] = [];
        signos.forEach((signo, i) => {
          const b = at(olds[i], KSIGACTION_SIZE);
          const act = { signo, handler: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8), restorer: b.readBigUInt64LE(16), mask: b.readBigUInt64LE(24) };
          if (act.handler || act.flags || act.mask) actions.push(act);
        });
        const itimers: Itimer[] = [];
        vals.forEach((val, which) => {
          const b = at(val, ITIMERVAL_SIZE);
          const t = { which, interval_us: b.readBigInt64LE(0) * US + b.readBigInt64LE(8), value_us: b.readBigInt64LE(16) * US + b.readBigInt64LE(24) };
          if (t.value_us || t.interval_us) itimers.push(t);
        });
        const st = at(ss, STACK_T_SIZE);
        return { actions, altstack_sp: st.readBigUInt64LE(0), altstack_flags: st.readInt32LE(8), altstack_size: st.readBigUInt64LE(16), itimers };
      },
    };
  },

  dump(task, answers) {
    const { tracee } = task;
    task.images.write('signals', task.pid, {
      ...answers,
      // An exited leader has no queue of its own left: every live thread's is an other thread's.
      thread_pending: task.entry.leader_exited ? [] : peekPending(tracee, 0),
      shared_pending: peekPending(tracee, PEEKSIGINFO_SHARED),
      posix_timers: dumpPosixTimers(task),
      other_threads: task.threads.slice(task.entry.leader_exited ? 0 : 1).map((t) => ({ tid: t.pid, pending: peekPending(t, 0) })).filter((t) => t.pending.length),
    });
  },

  load(dir, { pid }) {
    const img = readImage<SignalsImage>(dir, 'signals', pid);
    for (const info of [...img.thread_pending, ...img.shared_pending, ...img.other_threads.flatMap((t) => t.pending)]) {
      if (info.length !== SIGINFO_SIZE || signoOf(info) < 1 || signoOf(info) > NSIG) throw new CrError(`signals-${pid}.img: bad pending signal`);
    }
    if (img.itimers.some((t) => !ITIMERS[t.which])) throw new CrError(`signals-${pid}.img: bad interval timer`);
    if (img.posix_timers.some((t, i) => t.id < 0 || t.id > MAX_TIMER_ID || (i && t.id <= img.posix_timers[i - 1].id))) {
      throw new CrError(`signals-${pid}.img: bad POSIX timer list`);
    }
    return img;
  },

  restore(task, img) {
    const { tracee, inj } = task;
    // The dispositions, the alternate stack and the first wait for what is pending: one batch of calls.
    inj.reset();
    // Every new action in one block: one write to the task's memory.
    const acts = Buffer.alloc(img.actions.length * KSIGACTION_SIZE);
    img.actions.forEach((a, k) => [a.handler, a.flags, a.restorer, a.mask].forEach((v, i) => acts.writeBigUInt64LE(v, k * KSIGACTION_SIZE + i * 8)));
    const actsAt = img.actions.length ? inj.put(acts) : 0;
    const setup: [string, (number | bigint)[]][] = img.actions.map((a, k) =>
      [`rt_sigaction(${a.signo})`, [NR.rt_sigaction, a.signo, actsAt + k * KSIGACTION_SIZE, 0, 8]]);
    if (!(img.altstack_flags & SS_DISABLE)) {
      const b = Buffer.alloc(STACK_T_SIZE);
      b.writeBigUInt64LE(img.altstack_sp, 0);
      b.writeInt32LE(0, 8);
      b.writeBigUInt64LE(img.altstack_size, 16);
      setup.push(['sigaltstack', [NR.sigaltstack, inj.put(b), 0]]);
    }
    // Every signal is blocked during the injection, so none is delivered (or ignored) now;
    // drop what the task got while being built (a SIGCHLD from a child made a zombie).
    const everything = inj.put(Buffer.alloc(8, 0xff));
    const now = inj.alloc(16);
    const ret = inj.batch([...setup.map(([, c]) => c), [NR.rt_sigtimedwait, everything, 0, now, 8]], 'rt_sigaction');
    setup.forEach(([what], i) => tracee.checked(what, ret[i]));
    for (let got = ret.at(-1)!; got > 0n; got = tracee.syscall(NR.rt_sigtimedwait, everything, 0, now, 8));
    const self = task.shared.nsPids.get(task.pid) ?? task.pid;
    queueForThread(task, tracee, self, img.thread_pending);
    for (const info of img.shared_pending) {
      inj.reset();
      tracee.syscallOk(`rt_sigqueueinfo(${signoOf(info)})`, NR.rt_sigqueueinfo, self, signoOf(info), inj.put(info));
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
    restorePosixTimers(task, img.posix_timers);
  },

  settle(task, img) {
    // The other threads exist once cpu.ts has cloned them; they block every signal until the end.
    for (const t of img.other_threads) {
      const i = task.threadIds.findIndex((ids) => ids.image === t.tid);
      if (i < 0) throw new CrError(`pid ${task.pid}: no thread ${t.tid} to queue its pending signals for`);
      queueForThread(task, task.threads[i], task.threadIds[i].own, t.pending);
    }
  },

  describe(img) {
    return [
      img.altstack_flags & SS_DISABLE ? 'no alternate stack' : `altstack ${hex(img.altstack_sp)}+${img.altstack_size}`,
      ...img.actions.map((a) => `  signal ${a.signo}: handler ${hex(a.handler)} flags ${hex(a.flags)} mask ${hex(a.mask)}`),
      ...[...img.thread_pending.map((i) => ['thread', i] as const), ...img.shared_pending.map((i) => ['process', i] as const)].map(
        ([queue, i]) => `  pending for the ${queue}: signal ${signoOf(i)} code ${i.readInt32LE(8)}`),
      ...img.other_threads.flatMap((t) => t.pending.map((i) => `  pending for thread ${t.tid}: signal ${signoOf(i)} code ${i.readInt32LE(8)}`)),
      ...img.itimers.map((t) => `  itimer ${ITIMERS[t.which]}: ${t.value_us} us left, every ${t.interval_us} us`),
      ...img.posix_timers.map((t) => `  posix timer ${t.id}: clock ${t.clock} notify ${t.notify}${t.notify & SIGEV.none ? '' : ` signal ${t.signo}`}${t.tid ? ` tid ${t.tid}` : ''} ${t.value_ns ? `${t.value_ns} ns left` : 'disarmed'}, every ${t.interval_ns} ns`),
    ];
  },
});
