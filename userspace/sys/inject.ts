/**
 * An injection session on a seized task: system calls run inside the task
 * on our behalf, with a scratch area in its memory for their arguments.
 *
 * While the session is open every signal is blocked in the task, so no
 * signal handler can run on our borrowed registers; end() puts back the
 * task's registers, signal mask and memory exactly as they were.
 */
import fs from 'node:fs';
import { type MapsEntry, parseMaps } from '../proc/parse.js';
import { MAP, NR, PAGE_SIZE, PROT } from './constants.js';
import { CODE_ROOM, finish, INJECTION_CODE, RECORD_SIZE, type Regs, resumableRegs, type Steps, Tracee } from './ptrace.js';

export const SCRATCH_SIZE = 4 * PAGE_SIZE;
const CLONE_ARGS_SIZE = 88;
const SYSCALL_INSN = Buffer.from([0x0f, 0x05]);

/** Where the last vDSO searched had its first `syscall`, by its size: every task of one kind has the same vDSO. */
const knownSyscallInsn = new Map<number, number>();

/**
 * Find a `syscall` instruction in the task's vDSO, which every process has;
 * in `maps`, the task's mappings, where the caller has them already.
 */
export function findSyscallInsn(tracee: Tracee, maps?: readonly MapsEntry[]): number {
  // Read directly: a failure here is an internal error, not the user's.
  // Its line alone parsed: every injection session starts here.
  const line = maps ? undefined : /^.* \[vdso\]\n/m.exec(fs.readFileSync(`/proc/${tracee.pid}/maps`, 'utf8'))?.[0];
  const vdso = maps ? maps.find((m) => m.path === '[vdso]') : line === undefined ? undefined : parseMaps(line)[0];
  if (!vdso) throw new Error(`pid ${tracee.pid} has no vDSO to borrow a syscall instruction from`);
  const start = Number(vdso.start);
  const size = Number(vdso.end) - start;
  // Two bytes read where the last one of its size had it, the whole vDSO only if they differ.
  const known = knownSyscallInsn.get(size);
  if (known !== undefined && tracee.readMem(start + known, SYSCALL_INSN.length).equals(SYSCALL_INSN)) return start + known;
  const at = tracee.readMem(start, size).indexOf(SYSCALL_INSN);
  if (at < 0) throw new Error(`no syscall instruction in the vDSO of pid ${tracee.pid}`);
  knownSyscallInsn.set(size, at);
  return start + at;
}

export class Injection {
  readonly tracee: Tracee;
  /** Registers and signal mask the task had when the session began. */
  readonly origRegs: Regs;
  readonly origSigmask: bigint;
  /** Start of the scratch area in the task. */
  scratch = 0;
  private used = 0;
  /** The vDSO's syscall instruction: how the scratch area is mapped, and injection goes on once it is gone. */
  private vdsoSyscall = 0;

  private constructor(tracee: Tracee) {
    this.tracee = tracee;
    this.origRegs = tracee.getRegs();
    this.origSigmask = tracee.getSigmask();
  }

  /**
   * Open a session. With `at`, the scratch area is mapped there (executable)
   * and holds its own syscall instruction, so the task's other mappings can
   * all be replaced while the session goes on: that is how a restore works.
   * `maps`: the task's mappings, if the caller has just read them.
   */
  static begin(tracee: Tracee, at?: number, maps?: readonly MapsEntry[]): Injection {
    return finish(Injection.beginSteps(tracee, at, maps));
  }

  /** begin() in steps (ptrace.ts: together()). */
  static *beginSteps(tracee: Tracee, at?: number, maps?: readonly MapsEntry[]): Steps<Injection> {
    const inj = new Injection(tracee);
    tracee.syscallAddr = inj.vdsoSyscall = findSyscallInsn(tracee, maps);
    tracee.setSigmask(~0n);
    try {
      // At restore, private: each forked child gets its own copy. At dump,
      // shared: its own shmem object, so it never merges with a neighbouring
      // mapping of the task, which would mark all of that one's pages
      // written (VM_SOFTDIRTY) and defeat a dump on top of a pre-dump.
      const flags = at ? MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE : MAP.SHARED | MAP.ANONYMOUS;
      inj.scratch = Number(tracee.checked('mmap scratch', yield* tracee.syscallStepSteps(NR.mmap, at ?? 0, SCRATCH_SIZE, PROT.READ | PROT.WRITE | PROT.EXEC, flags, -1, 0)));
      tracee.writeMem(inj.scratch, INJECTION_CODE);
      inj.used = CODE_ROOM;
      tracee.syscallAddr = inj.scratch;
      tracee.code = inj.scratch;
    } catch (err) {
      inj.abandon();
      throw err;
    }
    return inj;
  }

  /**
   * Open a session in a task forked from one whose session put a bootstrap
   * area at `at`: the child has its own copy of that area, and of the
   * parent's blocked mask, and starts spinning there.
   */
  static inherit(tracee: Tracee, at: number): Injection {
    const inj = new Injection(tracee);
    inj.scratch = at;
    tracee.syscallAddr = at;
    tracee.code = at;
    inj.used = CODE_ROOM;
    return inj;
  }

  /** Copy bytes into the scratch area; returns their address in the task. */
  put(data: Buffer): number {
    const aligned = (this.used + 7) & ~7;
    if (aligned + data.length > SCRATCH_SIZE) throw new Error('injection scratch area is full');
    this.tracee.writeMem(this.scratch + aligned, data);
    this.used = aligned + data.length;
    return this.scratch + aligned;
  }

  putString(s: string): number {
    return this.put(Buffer.from(`${s}\0`));
  }

  /** Reserve zeroed room for a call to fill in; read it back with tracee.readMem. */
  alloc(len: number): number {
    return this.put(Buffer.alloc(len));
  }

  /** Forget everything put into the scratch area (the next call reuses it). */
  reset(): void {
    this.used = CODE_ROOM;
  }

  /**
   * Make many system calls in one round trip: the task runs the batch loop
   * over them and stops itself at the end. Each call is [nr, ...args], its
   * pointers into the scratch area (put them there first); the results are
   * returned in order, a negative errno for a failed call, the calls after
   * it made all the same. `thread`: another thread of the same process,
   * sharing this session's scratch area (see withThread), makes them.
   */
  batch(calls: (number | bigint)[][], what: string, thread = this.tracee): bigint[] {
    return finish(this.batchSteps(calls, what, thread));
  }

  /** batch() in steps (ptrace.ts: together()). */
  *batchSteps(calls: (number | bigint)[][], what: string, thread = this.tracee): Steps<bigint[]> {
    if (!calls.length) return [];
    // As many records as the scratch area has room for, the closing call's included; more calls go in turns.
    const room = Math.floor((SCRATCH_SIZE - ((this.used + 7) & ~7)) / RECORD_SIZE) - 1;
    if (room < 1) throw new Error('injection scratch area is full');
    const per = Math.min(room, calls.length);
    const at = this.alloc((per + 1) * RECORD_SIZE);
    const out: bigint[] = [];
    for (let i = 0; i < calls.length; i += per) out.push(...(yield* thread.runCallsSteps(calls.slice(i, i + per), at, what)));
    return out;
  }

  /**
   * Like batch(), but the first failed call throws, naming it (`what`), or
   * as the error `instead` gives for it, where that gives one.
   */
  batchOk(calls: (number | bigint)[][], what: (i: number) => string, thread = this.tracee, instead?: (i: number) => Error | undefined): bigint[] {
    return finish(this.batchOkSteps(calls, what, thread, instead));
  }

  /** batchOk() in steps (ptrace.ts: together()). */
  *batchOkSteps(calls: (number | bigint)[][], what: (i: number) => string, thread = this.tracee, instead?: (i: number) => Error | undefined): Steps<bigint[]> {
    const ret = calls.length ? yield* this.batchSteps(calls, what(0), thread) : [];
    ret.forEach((r, i) => {
      if (r < 0n && r > -4096n && instead) {
        const err = instead(i);
        if (err) throw err;
      }
      thread.checked(what(i), r);
    });
    return ret;
  }

  /**
   * clone3(2) in the task, with the pid (or tid) it gets in each pid
   * namespace from the innermost out; the new task starts where the call
   * returns, spinning in the bootstrap area until it is seized.
   */
  clone3(what: string, flags: number, exitSignal: number, setTid: number[]): number {
    this.reset();
    const tids = Buffer.alloc(4 * setTid.length);
    setTid.forEach((t, i) => tids.writeInt32LE(t, i * 4));
    const tidsAt = this.put(tids);
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup
    const args = Buffer.alloc(CLONE_ARGS_SIZE);
    args.writeBigUInt64LE(BigInt(flags), 0);
    args.writeBigUInt64LE(BigInt(exitSignal), 32);
    args.writeBigUInt64LE(BigInt(tidsAt), 64);
    args.writeBigUInt64LE(BigInt(setTid.length), 72);
    // stepped: the new task starts where the call returns
    return Number(this.tracee.checked(what, this.tracee.syscallStep(NR.clone3, this.put(args), CLONE_ARGS_SIZE)));
  }

  /**
   * Run injected calls in another thread of the same process (sharing this
   * session's scratch area), then give it back its registers and mask.
   */
  withThread<T>(thread: Tracee, fn: () => T): T {
    if (thread === this.tracee) return fn();
    const regs = thread.getRegs();
    const mask = thread.getSigmask();
    thread.shareCode(this.tracee);
    thread.setSigmask(~0n);
    try {
      return fn();
    } finally {
      thread.setSigmask(mask);
      thread.setRegs(resumableRegs(regs, true));
    }
  }

  /**
   * Unmap the scratch area and give the task back its registers and mask,
   * exactly as they were, in a stop where the kernel restarts the call it
   * was interrupted in as it would have without us.
   */
  end(): void {
    this.unmapScratch();
    this.giveBack();
  }

  private giveBack(): void {
    this.tracee.stopInSignalDelivery();
    this.tracee.setSigmask(this.origSigmask);
    this.tracee.setRegs(this.origRegs);
  }

  /** Close a restore session, in steps (ptrace.ts: together()): only the scratch area goes; the caller sets the task's final state. */
  *endRestoreSteps(): Steps<void> {
    yield* this.unmapScratchSteps();
  }

  /** On an error path: undo as much as can be undone, never throwing. */
  abandon(): void {
    try {
      this.end();
    } catch {
      try {
        this.giveBack();
      } catch {
        /* the task is gone */
      }
    }
  }

  private unmapScratch(): void {
    finish(this.unmapScratchSteps());
  }

  private *unmapScratchSteps(): Steps<void> {
    const { tracee } = this;
    if (this.scratch) {
      // Stepped: the batch loop would run on into the unmapped code.
      tracee.code = 0;
      tracee.checked('munmap scratch', yield* tracee.syscallStepSteps(NR.munmap, this.scratch, SCRATCH_SIZE));
    }
    this.scratch = 0;
    tracee.syscallAddr = this.vdsoSyscall;
  }
}
