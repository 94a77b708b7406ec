/**
 * The few libc entry points cr-lab needs that Node does not offer, through
 * koffi. Every wrapper throws a SysError carrying errno.
 *
 * Nothing native happens when this module loads: koffi is loaded on the
 * first native call, and each libc function is declared the first time it
 * is called, so a command pays only for what it calls (`cr --version`,
 * `cr show` and most of `cr check` load no koffi at all; README.md,
 * "Start-up of the `cr` command").
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type * as Koffi from 'koffi';

/**
 * The koffi native module that `npm run build` found koffi loading on this
 * machine, and koffi's version (scripts/bundle.mjs defines both in the `cr`
 * bundles). Requiring it directly skips koffi's loader, whose platform
 * detection and module resolution cost several times the native load
 * itself under emulation; koffi's loader requires the same file, so a later
 * `require('koffi')` gets the same instance.
 */
declare const __crKoffiNative: string | undefined;
declare const __crKoffiVersion: string | undefined;

/** The value `make()` returns on the first call, made once. */
export function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

let loadNs = 0n;

function loadKoffi(): typeof Koffi {
  const start = process.hrtime.bigint();
  try {
    const require = createRequire(import.meta.filename);
    if (typeof __crKoffiNative === 'string') {
      try {
        const native = require(__crKoffiNative) as typeof Koffi;
        if (native.version === __crKoffiVersion) return native;
      } catch {
        /* node_modules changed since the build: koffi's own loader finds it */
      }
    }
    return require('koffi') as typeof Koffi;
  } finally {
    loadNs = process.hrtime.bigint() - start;
  }
}

/** How long loading koffi took (0 if nothing native was called): the `cr` command counts it in its own start-up (userspace/cli/timings.ts). */
export const koffiLoadMs = (): number => Number(loadNs) / 1e6;

/** koffi, loaded on first use. */
export const ffi = once(loadKoffi);
const libc = once(() => ffi().load('libc.so.6'));

/** What koffi declares: any arguments, any result. */
type NativeFunction = (...args: any[]) => any;

/** A libc function that `declare` binds the first time it is called. */
export function libcFunction(declare: (lib: Koffi.LibraryHandle, k: typeof Koffi) => NativeFunction): NativeFunction {
  const fn = once(() => declare(libc(), ffi()));
  return (...args) => fn()(...args);
}

const iovec = once(() => ffi().struct('iovec', { base: 'void *', len: 'size_t' }));
const ptraceWord = libcFunction((c) => c.func('ptrace', 'long', ['int', 'int', 'uintptr_t', 'uintptr_t']));
const ptraceBuf = libcFunction((c) => c.func('ptrace', 'long', ['int', 'int', 'uintptr_t', 'void *']));
const ptraceBufs = libcFunction((c) => c.func('ptrace', 'long', ['int', 'int', 'void *', 'void *']));
const ptraceIov = libcFunction((c, k) => c.func('ptrace', 'long', ['int', 'int', 'uintptr_t', k.inout(k.pointer(iovec()))]));
const processVmReadvRaw = libcFunction((c, k) => c.func('process_vm_readv', 'long', ['int', k.pointer(iovec()), 'ulong', k.pointer(iovec()), 'ulong', 'ulong']));
const waitpidRaw = libcFunction((c) => c.func('waitpid', 'int', ['int', 'void *', 'int']));
const prlimitRaw = libcFunction((c) => c.func('prlimit', 'int', ['int', 'int', 'void *', 'void *']));
const killRaw = libcFunction((c) => c.func('kill', 'int', ['int', 'int']));
const pipe2Raw = libcFunction((c) => c.func('pipe2', 'int', ['void *', 'int']));
const teeRaw = libcFunction((c) => c.func('tee', 'long', ['int', 'int', 'size_t', 'uint']));
const fcntlRaw = libcFunction((c) => c.func('fcntl', 'int', ['int', 'int', 'int']));
const closeRaw = libcFunction((c) => c.func('close', 'int', ['int']));
const syscallPtrs = libcFunction((c) => c.func('syscall', 'long', ['long', 'long', 'void *', 'void *']));
const syscallVar = libcFunction((c) => c.func('long syscall(long nr, ...)'));
const prctlRaw = libcFunction((c) => c.func('prctl', 'int', ['int', 'unsigned long', 'unsigned long', 'unsigned long', 'unsigned long']));

// The first name wins: EAGAIN rather than its alias EWOULDBLOCK.
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(os.constants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);

export const errnoName = (errno: number): string => errnoNames.get(errno) ?? `E${errno}`;

/** A failed system call, with its errno both as a number and as a name. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(call: string, errno: number) {
    const code = errnoName(errno);
    super(`${call}: ${code}`);
    this.name = 'SysError';
    this.errno = errno;
    this.code = code;
  }
}

/** A libc call's result, or a SysError with its errno when it returned -1. */
export function check(call: string, ret: number | bigint): number {
  if (Number(ret) === -1) throw new SysError(call, ffi().errno());
  return Number(ret);
}

export function ptrace(request: number, pid: number, addr: number | bigint | Buffer = 0, data: number | bigint | Buffer = 0): number {
  const ret = Buffer.isBuffer(addr) ? ptraceBufs(request, pid, addr, data)
    : Buffer.isBuffer(data) ? ptraceBuf(request, pid, addr, data) : ptraceWord(request, pid, addr, data);
  return check(`ptrace(${request}, ${pid})`, ret);
}

/** PTRACE_GETREGSET/SETREGSET of note type `nt` through `buf`; returns the length used. */
export function ptraceRegset(request: number, pid: number, nt: number, buf: Buffer): number {
  const iov = { base: buf, len: buf.length };
  check(`ptrace(${request}, ${pid}, ${nt})`, ptraceIov(request, pid, nt, iov));
  return Number(iov.len);
}

/** process_vm_readv(2) of `into.length` bytes at `addr` of `pid`: the bytes read, short at the first page the task could not read. */
export function processVmReadv(pid: number, addr: number, into: Buffer): number {
  return check(`process_vm_readv(${pid})`, processVmReadvRaw(pid, [{ base: into, len: into.length }], 1, [{ base: addr, len: into.length }], 1, 0));
}

/** waitpid(2); returns [pid, raw status]. */
export function waitpid(pid: number, options: number): [number, number] {
  const status = Buffer.alloc(4);
  for (;;) {
    const ret = waitpidRaw(pid, status, options);
    if (ret === -1 && ffi().errno() === os.constants.errno.EINTR) continue;
    return [check(`waitpid(${pid})`, ret), status.readInt32LE(0)];
  }
}

export function kill(pid: number, signal: number): void {
  check(`kill(${pid}, ${signal})`, killRaw(pid, signal));
}

/** Whether a process with this pid exists (it may belong to someone else). */
export function pidExists(pid: number): boolean {
  try {
    kill(pid, 0);
    return true;
  } catch (err) {
    return (err as SysError).code === 'EPERM';
  }
}

/** Whether `pid` is a task that runs (or could): neither gone nor a zombie. */
export function running(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is free, or becomes free within `ms`: a just-killed tree's
 * zombies hold their pids until whoever inherited them reaps them, which
 * takes a moment; a task that runs holds its pid for good.
 */
export async function pidFreed(pid: number, ms = 3000): Promise<boolean> {
  for (const deadline = Date.now() + ms; pidExists(pid); await new Promise((r) => setTimeout(r, 20))) {
    if (running(pid) || Date.now() > deadline) return false;
  }
  return true;
}

/** Wait up to `ms` until none of `pids` runs: killed tasks take a moment to die, zombies wait for their parent. */
export async function waitGone(pids: number[], ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; pids.some(running) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 5));
}

export interface Rlimit {
  cur: bigint;
  max: bigint;
}

export function prlimit(pid: number, resource: number, set?: Rlimit): Rlimit {
  const oldBuf = Buffer.alloc(16);
  let newBuf: Buffer | null = null;
  if (set) {
    newBuf = Buffer.alloc(16);
    newBuf.writeBigUInt64LE(set.cur, 0);
    newBuf.writeBigUInt64LE(set.max, 8);
  }
  check(`prlimit(${pid}, ${resource})`, prlimitRaw(pid, resource, newBuf, oldBuf));
  return { cur: oldBuf.readBigUInt64LE(0), max: oldBuf.readBigUInt64LE(8) };
}

/** pipe2(2): [read end, write end]. */
export function pipe2(flags: number): [number, number] {
  const fds = Buffer.alloc(8);
  check('pipe2', pipe2Raw(fds, flags));
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** tee(2): duplicate up to `len` bytes of one pipe into another without consuming them. */
export function tee(from: number, to: number, len: number, flags: number): number {
  return check('tee', teeRaw(from, to, len, flags));
}

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check(`fcntl(${fd}, ${cmd})`, fcntlRaw(fd, cmd, arg));
}

export function close(fd: number): void {
  check(`close(${fd})`, closeRaw(fd));
}

/** get_robust_list(2) of any thread we may trace: the list head and its length. */
export function getRobustList(tid: number): { head: bigint; len: bigint } {
  const head = Buffer.alloc(8);
  const len = Buffer.alloc(8);
  check(`get_robust_list(${tid})`, syscallPtrs(274, tid, head, len));
  return { head: head.readBigUInt64LE(0), len: len.readBigUInt64LE(0) };
}

/** A raw syscall of the caller's own; a Buffer argument is passed as a pointer to its bytes. */
export function rawSyscall(nr: number, ...args: (number | Buffer)[]): number {
  return check(`syscall(${nr})`, syscallVar(nr, ...args.flatMap((a): unknown[] => (Buffer.isBuffer(a) ? ['void *', a] : ['long', a]))));
}

/**
 * syscall(2) with typed arguments (koffi type, value), returning the errno
 * name instead of throwing: for probing calls a kernel may not have.
 */
export function trySyscall(nr: number, args: [string, number | Buffer][]): { ret: number; errno?: string } {
  const ret = Number(syscallVar(nr, ...args.flat()));
  return ret === -1 ? { ret, errno: errnoName(ffi().errno()) } : { ret };
}

export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(`prctl(${option})`, prctlRaw(option, arg2, arg3, arg4, arg5));
}

/** Decoding of waitpid statuses (the W* macros). */
export const wstatus = {
  exited: (s: number) => (s & 0x7f) === 0,
  exitCode: (s: number) => (s >> 8) & 0xff,
  signaled: (s: number) => (s & 0x7f) !== 0 && (s & 0x7f) !== 0x7f,
  termSig: (s: number) => s & 0x7f,
  stopped: (s: number) => (s & 0xff) === 0x7f,
  stopSig: (s: number) => (s >> 8) & 0xff,
  /** The PTRACE_EVENT_* in a ptrace stop status, 0 if none. */
  event: (s: number) => (s >> 16) & 0xff,
};

/** Sleep without giving up the thread: ptrace ties the tracees to it, and no other code may wait for them meanwhile. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Wait (synchronously) until a task is a zombie, up to `ms`. */
export function waitZombie(pid: number, stat: (pid: number) => { state: string }, ms = 5000): boolean {
  for (let waited = 0; stat(pid).state !== 'Z'; waited++) {
    if (waited > ms) return false;
    sleepSync(1);
  }
  return true;
}

export const WALL = 0x40000000;
export const WNOHANG = 1;

/** PAGEMAP_SCAN's argument (include/uapi/linux/fs.h), its vec pointing at an array of page_region. */
const pmScanArg = once(() => ffi().struct('pm_scan_arg', {
  size: 'uint64', flags: 'uint64', start: 'uint64', end: 'uint64', walk_end: 'uint64', vec: 'void *', vec_len: 'uint64',
  max_pages: 'uint64', category_inverted: 'uint64', category_mask: 'uint64', category_anyof_mask: 'uint64', return_mask: 'uint64',
}));
const ioctlScan = libcFunction((c, k) => c.func('ioctl', 'int', ['int', 'unsigned long', k.inout(k.pointer(pmScanArg()))]));
const PAGEMAP_SCAN = 0xc0606610;

export interface PagemapScan {
  start: bigint;
  end: bigint;
  /** PAGE_IS_* categories that match where they are 0 instead of 1. */
  inverted: number;
  /** Pages where any of these (after `inverted`) is not set are skipped. */
  mask: number;
  /** Pages need one of these (after `inverted`), if any are given. */
  anyOf: number;
  /** Categories reported for each region. */
  returned: number;
  /** PM_SCAN_* flags: PM_SCAN_WP_MATCHING write-protects the pages matched. */
  flags?: number;
}

/**
 * ioctl(PAGEMAP_SCAN) on an open /proc/PID/pagemap: fills `vec` with
 * (start, end, categories) triples of u64; returns how many, and where the
 * walk stopped (before `end` when `vec` was full).
 */
export function pagemapScan(fd: number, q: PagemapScan, vec: Buffer): { regions: number; walkEnd: bigint } {
  const arg = {
    size: 96, flags: q.flags ?? 0, start: q.start, end: q.end, walk_end: 0n, vec, vec_len: Math.floor(vec.length / 24), max_pages: 0,
    category_inverted: q.inverted, category_mask: q.mask, category_anyof_mask: q.anyOf, return_mask: q.returned,
  };
  const n = check(`ioctl(PAGEMAP_SCAN) on fd ${fd}`, ioctlScan(fd, PAGEMAP_SCAN, arg));
  return { regions: n, walkEnd: BigInt(arg.walk_end) };
}
