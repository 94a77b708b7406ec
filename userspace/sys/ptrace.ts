/**
 * A seized task: registers, FPU state, signal mask, memory, and system
 * calls injected into it. Both the dumper (to ask a task about state only
 * it can see) and the restorer (to rebuild a placeholder task) use it.
 *
 * All calls are synchronous on purpose: ptrace ties a tracee to the thread
 * that seized it, and no other Node code may wait for its stops meanwhile.
 */
import fs from 'node:fs';
import { keyValue } from '../proc/parse.js';
import { NR, NT_X86_XSTATE, PTRACE, SIG, ERESTART, EINTR } from './constants.js';
import { kill, processVmReadv, ptrace, ptraceRegset, SysError, waitpid, WALL, wstatus } from './libc.js';

/** struct user_regs_struct, in order. */
export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi',
  'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export type Regs = Record<RegName, bigint>;

const REGS_SIZE = REG_NAMES.length * 8;
/** Large enough for any XSAVE layout (AVX-512 plus AMX tiles); the kernel says how much it used. */
const XSTATE_MAX = 16384;
const FXSAVE_SIZE = 512;
/** Whether the CPU has XSAVE (PTRACE_GETREGSET NT_X86_XSTATE works): known after the first thread asked. */
let hasXsave: boolean | undefined;
const SYSCALL_STOP = SIG.TRAP | 0x80;
const SIGINFO_SIZE = 128;

/**
 * The injection code, put at the start of the scratch area. At 0: syscall;
 * jmp . (a thread cloned here spins harmlessly until it is seized). At 8,
 * the batch loop: for r12 records at rbx of {nr, six arguments, result},
 * make each call and store its result; the last call (tgkill SIGSTOP to
 * itself) hands the task back to the tracer.
 */
export const INJECTION_CODE = Buffer.from(
  '0f05ebfe90909090' +
  '4d85e4742a488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b300f05488943384883c34049ffccebd1ebfe', 'hex');
const BATCH_ENTRY = 8;
/** Where the batch loop's syscall returns to (its result is stored from there). */
const BATCH_SYSCALL_END = 42;
export const RECORD_SIZE = 64;
/** Room for one call and the closing tgkill, after the code. */
const CALL_SLOT = 128;
/** Room the code and that slot take at the start of the scratch area. */
export const CODE_ROOM = CALL_SLOT + 2 * RECORD_SIZE;
/** si_code of a signal sent by tkill(2)/tgkill(2). */
const SI_TKILL = -6;
/** si_code the kernel gives a signal it had no room to queue a siginfo for (RLIMIT_SIGPENDING): no sender. */
const SI_USER = 0;

function toSigned(v: bigint): bigint {
  return BigInt.asIntN(64, v);
}

/**
 * The registers a task must resume with, given the registers it was stopped
 * with: a system call interrupted by our stop is rolled back so that it is
 * entered again, as the kernel would have done on its own way out.
 * `keepRestartBlock` is whether the kernel's restart_block is still there
 * (same task resuming) — after a restore it is gone, so such calls get EINTR.
 */
export function resumableRegs(regs: Regs, keepRestartBlock: boolean): Regs {
  const out = { ...regs };
  if (toSigned(regs.orig_rax) < 0n) return out;
  const rax = Number(toSigned(regs.rax));
  if (rax === ERESTART.SYS || rax === ERESTART.NOINTR || rax === ERESTART.NOHAND) {
    out.rax = regs.orig_rax;
    out.rip = regs.rip - 2n;
  } else if (rax === ERESTART.RESTARTBLOCK) {
    if (keepRestartBlock) {
      out.rax = BigInt(NR.restart_syscall);
      out.rip = regs.rip - 2n;
    } else {
      out.rax = BigInt.asUintN(64, BigInt(EINTR));
    }
  }
  out.orig_rax = BigInt.asUintN(64, -1n);
  return out;
}

export interface Rseq {
  addr: bigint;
  size: number;
  signature: number;
}

/** A read or write of /proc/PID/mem, its failure (EIO where nothing can be mapped in) a SysError naming what was tried. */
function memCall(call: () => number, what: string): number {
  try {
    return call();
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).errno;
    if (errno === undefined) throw err;
    throw new SysError(what, Math.abs(errno));
  }
}

/**
 * An operation on a tracee, in steps: it yields each time it has let the
 * task run and is about to wait for the task's next stop.
 */
export type Steps<T> = Generator<void, T, void>;

/** Run an operation's steps to its end. */
export function finish<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * Run operations on distinct tracees side by side: each waits for its
 * task only once every other has let its own run, so the tasks' stops
 * overlap instead of coming one after another. All run to their end;
 * the first failure is thrown then.
 */
export function together<T>(ops: Steps<T>[]): T[] {
  const out: T[] = [];
  const failures: unknown[] = [];
  for (let running = ops.map((op, i) => ({ op, i })); running.length; ) {
    running = running.filter(({ op, i }) => {
      try {
        const step = op.next();
        if (step.done) out[i] = step.value;
        return !step.done;
      } catch (err) {
        failures.push(err);
        return false;
      }
    });
  }
  if (failures.length) throw failures[0];
  return out;
}

export class Tracee {
  readonly pid: number;
  private memFd: number | null = null;
  /** A stop signal that arrived while we drove the task, delivered when it is let go. */
  private heldSignal = 0;
  /** Where a `syscall` instruction lives in the tracee, for injection. */
  syscallAddr = 0;
  /** Where the injection code (INJECTION_CODE) is in the tracee, once mapped. */
  code = 0;
  private ids: { tgids: number[]; tids: number[] } | undefined;

  private constructor(pid: number) {
    this.pid = pid;
  }

  /**
   * PTRACE_SEIZE the task and stop it. Signals that arrive before the stop
   * are delivered, not swallowed, so the task's behaviour is unchanged.
   */
  static seize(pid: number): Tracee {
    const t = Tracee.seizeLater(pid);
    t.waitStopped();
    return t;
  }

  /**
   * PTRACE_SEIZE and ask the task to stop, without waiting for it: a task
   * in a frozen cgroup stops only once the cgroup is thawed.
   */
  static seizeLater(pid: number): Tracee {
    ptrace(PTRACE.SEIZE, pid, 0, PTRACE.O_TRACESYSGOOD);
    const t = new Tracee(pid);
    try {
      ptrace(PTRACE.INTERRUPT, pid);
    } catch (err) {
      t.detachQuietly();
      throw err;
    }
    return t;
  }

  /** Wait for the stop seizeLater() asked for; on failure the task is let go. */
  waitStopped(): void {
    try {
      // Signals that come first are passed on: the task behaves as if never seized.
      finish(this.resumeSteps((status) => wstatus.event(status) === PTRACE.EVENT_STOP, 'while being seized', { running: true, deliver: true, maxStops: Infinity }));
    } catch (err) {
      this.detachQuietly();
      throw err;
    }
  }

  /**
   * PTRACE_CONT the tracee until it reports a stop that `reached` accepts.
   * On the way, a signal-delivery stop's signal is passed on (`deliver`) or
   * held back until the task is let go (detach delivers it), and a
   * PTRACE_EVENT_STOP (a group stop, an interrupt) is resumed; the task's
   * death, any other stop, or more than `maxStops` stops fail, `when` saying
   * what we were doing. `running`: the task is on its way already (wait
   * before resuming it).
   */
  private *resumeSteps(reached: (status: number) => boolean, when: string, o: { running?: boolean; deliver?: boolean; maxStops?: number } = {}): Steps<void> {
    const maxStops = o.maxStops ?? 8;
    for (let stops = 0, signal = 0, resume = !o.running; ; resume = true) {
      if (resume) ptrace(PTRACE.CONT, this.pid, 0, signal);
      yield;
      const [, status] = waitpid(this.pid, WALL);
      if (wstatus.exited(status) || wstatus.signaled(status)) {
        this.memFd = null;
        throw new SysError(`pid ${this.pid} died ${when}`, 3);
      }
      if (reached(status)) return;
      const event = wstatus.event(status);
      if (!wstatus.stopped(status) || (event && event !== PTRACE.EVENT_STOP) || ++stops > maxStops) {
        throw new SysError(`pid ${this.pid} stopped unexpectedly (status 0x${status.toString(16)}) ${when}`, 4);
      }
      signal = event || !o.deliver ? 0 : wstatus.stopSig(status);
      if (!event && !o.deliver) this.heldSignal = wstatus.stopSig(status);
    }
  }

  /**
   * From any stop, bring the tracee to a stop inside the kernel's signal
   * delivery (PTRACE_EVENT_STOP), as the one it was seized in. Registers
   * set there meet the kernel's own restart of an interrupted system call
   * on the way out: the call is entered again, or returns EINTR when a
   * signal that came meanwhile runs its handler first. Set after a
   * syscall-exit stop, a pending -ERESTART* would reach the program as its
   * result; rewound by hand, a handler run first returns into the call
   * again and its wake-up is lost. A SIGSTOP sent meanwhile is held back.
   */
  stopInSignalDelivery(): void {
    ptrace(PTRACE.INTERRUPT, this.pid);
    finish(this.resumeSteps((status) => wstatus.event(status) === PTRACE.EVENT_STOP, 'while being let go'));
  }

  getRegs(): Regs {
    const buf = Buffer.alloc(REGS_SIZE);
    ptrace(PTRACE.GETREGS, this.pid, 0, buf);
    const regs = {} as Regs;
    REG_NAMES.forEach((name, i) => (regs[name] = buf.readBigUInt64LE(i * 8)));
    return regs;
  }

  setRegs(regs: Regs): void {
    const buf = Buffer.alloc(REGS_SIZE);
    REG_NAMES.forEach((name, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, regs[name]), i * 8));
    ptrace(PTRACE.SETREGS, this.pid, 0, buf);
  }

  /**
   * The XSAVE area: x87, SSE, AVX… state, exactly as the kernel holds it.
   * On a CPU without XSAVE (QEMU's default TCG model) it is the 512-byte
   * FXSAVE area instead, which is also the first part of any XSAVE area.
   */
  getXstate(): Buffer {
    const buf = Buffer.alloc(XSTATE_MAX);
    if (hasXsave !== false) {
      try {
        const len = ptraceRegset(PTRACE.GETREGSET, this.pid, NT_X86_XSTATE, buf);
        hasXsave = true;
        return buf.subarray(0, len);
      } catch (err) {
        if ((err as SysError).code !== 'ENODEV') throw err;
        hasXsave = false;
      }
    }
    ptrace(PTRACE.GETFPREGS, this.pid, 0, buf);
    return buf.subarray(0, FXSAVE_SIZE);
  }

  setXstate(xstate: Buffer): void {
    if (xstate.length === FXSAVE_SIZE) ptrace(PTRACE.SETFPREGS, this.pid, 0, Buffer.from(xstate));
    else ptraceRegset(PTRACE.SETREGSET, this.pid, NT_X86_XSTATE, Buffer.from(xstate));
  }

  getSigmask(): bigint {
    const buf = Buffer.alloc(8);
    ptrace(PTRACE.GETSIGMASK, this.pid, 8, buf);
    return buf.readBigUInt64LE(0);
  }

  setSigmask(mask: bigint): void {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
    ptrace(PTRACE.SETSIGMASK, this.pid, 8, buf);
  }

  /** The task's restartable-sequences registration, if any. */
  getRseq(): Rseq | null {
    const buf = Buffer.alloc(24);
    ptrace(PTRACE.GET_RSEQ_CONFIGURATION, this.pid, buf.length, buf);
    const size = buf.readUInt32LE(8);
    return size ? { addr: buf.readBigUInt64LE(0), size, signature: buf.readUInt32LE(12) } : null;
  }

  private mem(): number {
    this.memFd ??= fs.openSync(`/proc/${this.pid}/mem`, 'r+');
    return this.memFd;
  }

  /** Read tracee memory; /proc/PID/mem also reads pages the task cannot. */
  readMem(addr: number, len: number, into?: Buffer): Buffer {
    const buf = into ?? Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const n = memCall(() => fs.readSync(this.mem(), buf, done, len - done, addr + done), `read of pid ${this.pid} memory at 0x${(addr + done).toString(16)}`);
      if (n === 0) throw new SysError(`read of pid ${this.pid} memory at 0x${(addr + done).toString(16)}`, 14);
      done += n;
    }
    return buf;
  }

  /**
   * Read tracee memory with one copy (process_vm_readv(2)) where
   * readMem's /proc/PID/mem copies twice, a page at a time; what the task
   * could not read itself comes through readMem. It pins the pages, and
   * pinning an anonymous page that a fork still shares copy-on-write
   * copies it: only for pages the task alone maps.
   */
  readMemPinned(addr: number, len: number, into: Buffer): Buffer {
    let done = 0;
    try {
      done = processVmReadv(this.pid, addr, into.subarray(0, len));
    } catch {
      /* not readable by the task at addr */
    }
    if (done < len) this.readMem(addr + done, len - done, into.subarray(done, len));
    return into.subarray(0, len);
  }

  /** Write tracee memory, read-only private pages included (as a debugger does). */
  writeMem(addr: number, data: Buffer): void {
    let done = 0;
    while (done < data.length) {
      const n = memCall(() => fs.writeSync(this.mem(), data, done, data.length - done, addr + done), `write of pid ${this.pid} memory at 0x${(addr + done).toString(16)}`);
      if (n === 0) throw new SysError(`write of pid ${this.pid} memory at 0x${(addr + done).toString(16)}`, 14);
      done += n;
    }
  }

  /** Run the task to its next syscall stop, failing if it dies or stops for anything else. */
  private *syscallStopSteps(what: string): Steps<void> {
    for (let stops = 0; ; ) {
      ptrace(PTRACE.SYSCALL, this.pid);
      yield;
      const [, status] = waitpid(this.pid, WALL);
      if (wstatus.stopped(status) && wstatus.stopSig(status) === SYSCALL_STOP) return;
      if (wstatus.exited(status) || wstatus.signaled(status)) {
        this.memFd = null;
        throw new SysError(`pid ${this.pid} died during injected ${what}`, 3);
      }
      const event = wstatus.event(status);
      if (!wstatus.stopped(status) || (event && event !== PTRACE.EVENT_STOP) || ++stops > 8) {
        throw new SysError(`pid ${this.pid} stopped unexpectedly (status 0x${status.toString(16)}) during injected ${what}`, 4);
      }
      // Only SIGSTOP and its like get through the blocked mask, and a task
      // that was stopped when seized takes part in its group stop once: hold
      // a signal back until we let the task go (detach delivers it) and carry
      // on; a group stop still in force is taken again when we detach.
      if (!event) this.heldSignal = wstatus.stopSig(status);
    }
  }

  /**
   * Make the tracee execute one system call and return its result
   * (negative errno on failure). The caller blocks signals in the tracee
   * first and restores its registers afterwards. Where the injection code
   * is in the task (`code`), the call goes through its batch loop: one stop
   * instead of the two of stepping over it.
   */
  syscall(nr: number, ...args: (number | bigint)[]): bigint {
    if (!this.code) return this.syscallStep(nr, ...args);
    return this.runCalls([[nr, ...args]], this.code + CALL_SLOT, `syscall ${nr}`)[0];
  }

  /**
   * One system call at `syscallAddr`, stopping at its entry and its exit:
   * for calls that must not return into the batch loop (clone3: the child
   * starts where the call returns) and those made before the code exists.
   */
  syscallStep(nr: number, ...args: (number | bigint)[]): bigint {
    return finish(this.syscallStepSteps(nr, ...args));
  }

  *syscallStepSteps(nr: number, ...args: (number | bigint)[]): Steps<bigint> {
    if (!this.syscallAddr) throw new Error('no syscall instruction known in the tracee');
    const regs = this.getRegs();
    const argRegs: RegName[] = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'];
    args.forEach((a, i) => (regs[argRegs[i]] = BigInt.asUintN(64, BigInt(a))));
    regs.rax = BigInt(nr);
    regs.orig_rax = BigInt.asUintN(64, -1n);
    regs.rip = BigInt(this.syscallAddr);
    this.setRegs(regs);
    yield* this.syscallStopSteps(`syscall ${nr}`);
    yield* this.syscallStopSteps(`syscall ${nr}`);
    return toSigned(this.getRegs().rax);
  }

  /**
   * Run the batch loop of the injection code over `calls` ([nr, ...args]),
   * their records written at `at` in the task: one round trip for them all.
   */
  runCalls(calls: (number | bigint)[][], at: number, what: string): bigint[] {
    return finish(this.runCallsSteps(calls, at, what));
  }

  *runCallsSteps(calls: (number | bigint)[][], at: number, what: string): Steps<bigint[]> {
    const { tgid, tid } = this.ownIds();
    const all = [...calls, [NR.tgkill, tgid, tid, SIG.STOP]];
    const records = Buffer.alloc(all.length * RECORD_SIZE);
    for (let i = 0; i < all.length; i++) {
      const c = all[i];
      for (let k = 0; k < c.length; k++) {
        const v = c[k];
        // most arguments are small numbers: no BigInt for them (the high half is zero already)
        if (typeof v === 'number' && v >= 0 && v <= 0xffffffff) records.writeUInt32LE(v, i * RECORD_SIZE + k * 8);
        else records.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), i * RECORD_SIZE + k * 8);
      }
    }
    this.writeMem(at, records);
    yield* this.selfStopSteps({ rip: BigInt(this.code + BATCH_ENTRY), rbx: BigInt(at), r12: BigInt(all.length) }, at + (all.length - 1) * RECORD_SIZE, what);
    const out = this.readMem(at, calls.length * RECORD_SIZE);
    return calls.map((_, i) => BigInt.asIntN(64, out.readBigUInt64LE(i * RECORD_SIZE + 56)));
  }

  /**
   * The thread's NStgid and NSpid: its process and thread ids in each pid
   * namespace from cr's down to its own. Read once, or taken from a status
   * text of the thread read before (knownStatus): they never change.
   */
  nsIds(): { tgids: number[]; tids: number[] } {
    if (!this.ids) this.knownStatus(fs.readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return this.ids!;
  }

  /** Note the ids of a /proc/TID/status text of this thread (read at any time: they never change). */
  knownStatus(status: string): void {
    const chain = (key: string) => keyValue(status, key)!.trim().split(/\s+/).map(Number);
    this.ids ??= { tgids: chain('NStgid'), tids: chain('NSpid') };
  }

  /** The task's process and thread ids as the task itself sees them (in its own pid namespace). */
  ownIds(): { tgid: number; tid: number } {
    const { tgids, tids } = this.nsIds();
    return { tgid: tgids.at(-1)!, tid: tids.at(-1)! };
  }

  /**
   * Let the tracee run with `set` registers changed until it stops itself
   * with tgkill(SIGSTOP) (the end of the batch loop, whose record is at
   * `closing`). A SIGSTOP sent by anyone else meanwhile is held back as
   * during syscallStep().
   */
  private *selfStopSteps(set: Partial<Regs>, closing: number, what: string): Steps<void> {
    this.setRegs({ ...this.getRegs(), ...set, orig_rax: BigInt.asUintN(64, -1n) });
    const info = Buffer.alloc(SIGINFO_SIZE);
    const selfStop = (status: number) => {
      if (!wstatus.stopped(status) || wstatus.event(status) || wstatus.stopSig(status) !== SIG.STOP) return false;
      ptrace(PTRACE.GETSIGINFO, this.pid, 0, info);
      const code = info.readInt32LE(8);
      const sender = info.readInt32LE(16);
      if (code === SI_TKILL) return sender === this.ownIds().tgid;
      // Over RLIMIT_SIGPENDING our stop comes without its siginfo: it is ours if
      // the task stands right after the closing tgkill of the batch.
      if (code !== SI_USER || sender !== 0) return false;
      const regs = this.getRegs();
      return regs.orig_rax === BigInt(NR.tgkill) && regs.rip === BigInt(this.code + BATCH_SYSCALL_END) && regs.rbx === BigInt(closing);
    };
    yield* this.resumeSteps(selfStop, `during injected ${what}`);
  }

  /** Like syscall(), but a negative result throws, naming the call. */
  syscallOk(what: string, nr: number, ...args: (number | bigint)[]): bigint {
    return this.checked(what, this.syscall(nr, ...args));
  }

  /** A system call's result, or the SysError naming it if it failed. */
  checked(what: string, ret: bigint): bigint {
    if (ret < 0n && ret > -4096n) throw new SysError(`pid ${this.pid}: ${what}`, Number(-ret));
    return ret;
  }

  /** Inject through the same code as `other`, a thread of the same process. */
  shareCode(other: Tracee): void {
    this.syscallAddr = other.syscallAddr;
    this.code = other.code;
  }

  detach(signal = this.heldSignal): void {
    this.closeMem();
    ptrace(PTRACE.DETACH, this.pid, 0, signal);
  }

  /** Detach on an error path, where the task may already be gone. */
  detachQuietly(): void {
    try {
      this.detach();
    } catch {
      /* the task is gone or was never seized */
    }
  }

  closeMem(): void {
    if (this.memFd !== null) fs.closeSync(this.memFd);
    this.memFd = null;
  }
}

/**
 * Kill traced processes, each given as its threads (the leader first), and
 * take the tracer's notice of every death: until the tracer has waited for
 * a traced task, its parent cannot reap it, and its pid stays taken.
 */
export function killTraced(processes: Tracee[][]): void {
  for (const threads of processes) {
    try {
      if (threads.length) kill(threads[0].pid, SIG.KILL);
    } catch {
      /* dead already: its death is still to be taken */
    }
  }
  // Children first (the list goes parents first): the init of a pid
  // namespace does not finish dying before all in its namespace are reaped.
  for (const threads of [...processes].reverse()) {
    // A leader is reported only after its other threads: wait for them first.
    for (const th of [...threads].reverse()) {
      th.closeMem();
      try {
        waitpid(th.pid, WALL);
      } catch {
        /* a thread reaped along with its leader */
      }
    }
  }
}
