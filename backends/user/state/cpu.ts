/**
 * Threads: registers, FPU state, signal mask, rseq area, robust futex list,
 * clear_child_tid and scheduling (CPU affinity included) of each one
 * (cpu-TID.img). Restore clones the other threads with their tids from the
 * leader; registers and scheduling are the last things put back, after
 * every injected call.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { cpuList, cpuMask, maskCpus } from '../../../userspace/cpus.js';
import { procStat } from '../../../userspace/proc/parse.js';
import { CLONE, NR, PR } from '../../../userspace/sys/constants.js';
import { getRobustList, rawSyscall, waitZombie } from '../../../userspace/sys/libc.js';
import { findSyscallInsn } from '../../../userspace/sys/inject.js';
import { REG_NAMES, type Regs, type Rseq, resumableRegs, Tracee } from '../../../userspace/sys/ptrace.js';
import { readImage } from '../image.js';
import { nsChain } from '../tree.js';
import { defineState, hex, type RestoreTask } from './module.js';

interface Sched {
  policy: number;
  flags: bigint;
  nice: number;
  priority: number;
  runtime: bigint;
  deadline: bigint;
  period: bigint;
  util_min: number;
  util_max: number;
  /** The CPUs it may run on (sched_getaffinity). */
  cpus: number[];
}

interface ThreadCpu {
  regs: Regs;
  xstate: Buffer;
  rseq: Rseq | null;
  sigmask: bigint;
  robust_list: bigint;
  robust_list_len: bigint;
  clear_child_tid: bigint;
  sched: Sched;
  nspid: number[];
}

export interface CpuImage {
  /** The leader first; its cpu is null if it had exited, its threads running on. */
  threads: { tid: number; cpu: ThreadCpu | null }[];
}

const ROBUST_LIST_HEAD_SIZE = 24;
const THREAD_FLAGS = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM;

/** struct sched_attr (SCHED_ATTR_SIZE_VER1) */
const SCHED_ATTR_SIZE = 56;
const SCHED_FLAG_UTIL_CLAMP = 0x60n;
/** What a thread's utilization clamps are when nobody set them (SCHED_CAPACITY_SCALE). */
const UCLAMP_DEFAULT_MAX = 1024;
const POLICIES = ['other', 'fifo', 'rr', 'batch', 'iso', 'idle', 'deadline'];

/** Bytes of a CPU mask: room for 4096 CPUs, more than the kernel's NR_CPUS on x86_64 distributions. */
const CPU_MASK_BYTES = 512;

/** sched_getattr(2) and sched_getaffinity(2) work from outside on any thread we may see: no injection. */
function dumpSched(tid: number): Sched {
  const b = Buffer.alloc(SCHED_ATTR_SIZE);
  rawSyscall(NR.sched_getattr, tid, b, SCHED_ATTR_SIZE, 0);
  const mask = Buffer.alloc(CPU_MASK_BYTES);
  const bytes = rawSyscall(NR.sched_getaffinity, tid, CPU_MASK_BYTES, mask);
  const cpus = maskCpus(mask.subarray(0, bytes));
  return {
    policy: b.readUInt32LE(4), flags: b.readBigUInt64LE(8), nice: b.readInt32LE(16), priority: b.readUInt32LE(20),
    runtime: b.readBigUInt64LE(24), deadline: b.readBigUInt64LE(32), period: b.readBigUInt64LE(40),
    util_min: b.readUInt32LE(48), util_max: b.readUInt32LE(52), cpus,
  };
}

/**
 * sched_setattr(2) from the restorer: the kernel checks its rights (and the
 * task's RLIMIT_NICE and RLIMIT_RTPRIO), so a real-time policy or a raised
 * priority is given back only where the restorer could give it anyway.
 */
function restoreSched(pid: number, tid: number, s: Sched): void {
  const b = Buffer.alloc(SCHED_ATTR_SIZE);
  // Clamps only where the kernel has them (a util_max of 0) and someone set them.
  const clamped = s.util_max !== 0 && (s.util_min !== 0 || s.util_max !== UCLAMP_DEFAULT_MAX);
  b.writeUInt32LE(SCHED_ATTR_SIZE, 0);
  b.writeUInt32LE(s.policy, 4);
  b.writeBigUInt64LE(s.flags | (clamped ? SCHED_FLAG_UTIL_CLAMP : 0n), 8);
  b.writeInt32LE(s.nice, 16);
  b.writeUInt32LE(s.priority, 20);
  [s.runtime, s.deadline, s.period].forEach((v, i) => b.writeBigUInt64LE(v, 24 + i * 8));
  b.writeUInt32LE(s.util_min, 48);
  b.writeUInt32LE(s.util_max, 52);
  try {
    rawSyscall(NR.sched_setattr, tid, b, 0);
  } catch (err) {
    throw new CrError(`pid ${pid} thread ${tid}: cannot restore its scheduling (${describeSched(s)}): ${(err as Error).message.replace(/^.*: /, '')}`);
  }
  // The kernel keeps it within the restorer's cpuset, and refuses a mask with none of its CPUs in it.
  try {
    rawSyscall(NR.sched_setaffinity, tid, CPU_MASK_BYTES, cpuMask(s.cpus, CPU_MASK_BYTES));
  } catch (err) {
    throw new CrError(`pid ${pid} thread ${tid}: cannot restore its CPU affinity (CPUs ${cpuList(s.cpus)}): ${(err as Error).message.replace(/^.*: /, '')}`);
  }
}

const describeSched = (s: Sched) =>
  `${POLICIES[s.policy & 0xff] ?? `policy ${s.policy}`}${s.flags & 1n ? '|reset_on_fork' : ''} ${s.policy === 1 || s.policy === 2 ? `priority ${s.priority}` : `nice ${s.nice}`} cpus ${cpuList(s.cpus)}`;

/** Per-thread kernel state a thread can only set for itself. */
function restoreThreadKernelState(task: RestoreTask, thread: Tracee, cpu: ThreadCpu): void {
  const calls: [string, (number | bigint)[]][] = [
    // The placeholder runs without rseq (see restore.ts), so the area can be registered anew.
    ...(cpu.rseq ? [['rseq', [NR.rseq, cpu.rseq.addr, cpu.rseq.size, 0, cpu.rseq.signature]] as [string, bigint[]]] : []),
    ...(cpu.robust_list ? [['set_robust_list', [NR.set_robust_list, cpu.robust_list, cpu.robust_list_len]] as [string, bigint[]]] : []),
    ['set_tid_address', [NR.set_tid_address, cpu.clear_child_tid]],
  ];
  task.inj.reset();
  task.inj.batchOk(calls.map(([, c]) => c), (i) => calls[i][0], thread);
}

/** The tid we see for thread `own` (as its own pid namespace numbers it) of process `pid`. */
function hostTid(pid: number, own: number): number {
  for (const entry of fs.readdirSync(`/proc/${pid}/task`)) {
    if (nsChain(Number(entry)).at(-1) === own) return Number(entry);
  }
  throw new CrError(`pid ${pid}: no thread ${own} after cloning it`);
}

/** clone3 a thread with its old tids from the leader; it spins in the bootstrap page until seized. */
function cloneThread(task: RestoreTask, tid: number, nspid: number[]): Tracee {
  const { tracee, inj } = task;
  const chain = nspid.length ? nspid : [tid];
  const own = chain.at(-1)!;
  const got = inj.clone3(`clone thread ${tid}`, THREAD_FLAGS, 0, [...chain].reverse());
  if (got !== own) throw new CrError(`pid ${task.pid}: thread came back as ${got}, not ${own}`);
  const thread = Tracee.seize(hostTid(task.pid, own));
  thread.shareCode(tracee);
  return thread;
}

/** prctl(PR_GET_TID_ADDRESS), the address answered at `out` in the scratch area. */
const getTidAddress = (out: number): (number | bigint)[] => [NR.prctl, PR.GET_TID_ADDRESS, out, 0, 0, 0];

export const cpu = defineState<CpuImage, bigint>({
  name: 'cpu',

  // The injecting thread's own, with the other modules' questions; each other thread asks for itself.
  ask({ inj, tracee }) {
    const out = inj.alloc(8);
    return { calls: [['prctl(PR_GET_TID_ADDRESS)', getTidAddress(out)]], answer: () => tracee.readMem(out, 8).readBigUInt64LE(0) };
  },

  dump(task, ownClearChildTid) {
    const { inj } = task;
    for (const t of task.threads) {
      const leader = t === task.tracee;
      const clearChildTid = leader ? ownClearChildTid : inj.withThread(t, () => {
        inj.reset();
        const out = inj.alloc(8);
        inj.batchOk([getTidAddress(out)], () => 'prctl(PR_GET_TID_ADDRESS)', t);
        return t.readMem(out, 8).readBigUInt64LE(0);
      });
      const robust = getRobustList(t.pid);
      task.images.write('cpu', t.pid, {
        // A call the thread was blocked in is entered again after restore.
        regs: resumableRegs(leader ? inj.origRegs : t.getRegs(), false),
        xstate: t.getXstate(),
        rseq: t.getRseq(),
        sigmask: leader ? inj.origSigmask : t.getSigmask(),
        robust_list: robust.head,
        robust_list_len: robust.len,
        clear_child_tid: clearChildTid,
        sched: dumpSched(t.pid),
        nspid: ((chain) => (chain.length > 1 ? chain : []))(t.nsIds().tids),
      });
    }
  },

  load(dir, entry) {
    return {
      threads: entry.threads.map((tid, i) => {
        if (i === 0 && entry.leader_exited) return { tid, cpu: null };
        const cpu = readImage<ThreadCpu>(dir, 'cpu', tid);
        if (!cpu.regs || REG_NAMES.some((r) => typeof cpu.regs[r] !== 'bigint')) throw new CrError(`cpu-${tid}.img: registers missing`);
        if (!cpu.sched) throw new CrError(`cpu-${tid}.img: scheduling missing`);
        if (!cpu.sched.cpus.length || cpu.sched.cpus.some((c) => c >= CPU_MASK_BYTES * 8)) throw new CrError(`cpu-${tid}.img: corrupted image (CPU affinity)`);
        return { tid, cpu };
      }),
    };
  },

  restore(task, state) {
    // The leader comes first, and exists already.
    for (const [i, { tid, cpu }] of state.threads.entries()) {
      const thread = i === 0 ? task.tracee : cloneThread(task, tid, cpu!.nspid);
      if (thread !== task.tracee) {
        task.threads.push(thread);
        task.threadIds.push({ image: tid, own: cpu!.nspid.at(-1) ?? tid });
      }
      if (cpu) restoreThreadKernelState(task, thread, cpu);
      else {
        // An exited leader exits again at the end: on its way out the kernel must touch nothing of the program's.
        thread.syscallOk('set_tid_address', NR.set_tid_address, 0);
        thread.syscallOk('set_robust_list', NR.set_robust_list, 0, ROBUST_LIST_HEAD_SIZE);
      }
    }
  },

  finish(task, state) {
    state.threads.forEach(({ cpu: c }, i) => {
      const thread = task.threads[i];
      if (!c) return;
      thread.setRegs(c.regs);
      thread.setXstate(c.xstate);
      thread.setSigmask(c.sigmask);
      restoreSched(task.pid, thread.pid, c.sched);
    });
    if (!state.threads[0].cpu) {
      // An exited leader: its last call, made as it is let go before the
      // others, with every signal blocked: exit(2) of this thread alone.
      const leader = task.threads.shift()!;
      task.threadIds.shift();
      leader.setSigmask(~0n);
      leader.setRegs({ ...leader.getRegs(), rip: BigInt(findSyscallInsn(leader)), rax: BigInt(NR.exit), rdi: 0n, orig_rax: BigInt.asUintN(64, -1n) });
      leader.detach(0);
      if (!waitZombie(leader.pid, procStat)) throw new CrError(`pid ${task.pid}: its leader did not exit again`);
    }
  },

  describe(state) {
    return state.threads.map(({ tid, cpu: c }) => !c ? `thread ${tid}: exited (the thread group leader; its threads run on)` :
      `thread ${tid}: rip ${hex(c.regs.rip)}  rsp ${hex(c.regs.rsp)}  fs_base ${hex(c.regs.fs_base)}  xstate ${c.xstate.length} bytes  sigmask ${hex(c.sigmask)}  sched ${describeSched(c.sched)}`);
  },
});
