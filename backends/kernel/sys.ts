/**
 * The kernel backend's system calls (kernel-patches/ 0001, 0002), called
 * through libc's variadic syscall(2) with koffi.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { CrError } from '../../userspace/errors.js';
import { requestedFault } from '../../userspace/fault.js';
import { nativeBin, packageRoot } from '../../userspace/paths.js';
import { trySyscall } from '../../userspace/sys/libc.js';

/** x86_64 numbers, after the x32 range (see kernel-patches/0001). */
export const NR_CHECKPOINT = 548;
export const NR_RESTART = 549;
export const NR_CLONE_WITH_PIDS = 550;

/** checkpoint(2) flags, from include/uapi/linux/checkpoint.h; other bits give EINVAL. */
export const CHECKPOINT_KILL = 0x1;
/** The tree may use its shell's terminal (kernel-patches/0014). */
export const CHECKPOINT_SHELL_JOB = 0x2;
/** Save TCP connections to peers outside the tree, whose packets cr holds back (kernel-patches/0015). */
export const CHECKPOINT_TCP_ESTABLISHED = 0x4;
/** Copy-on-write, page tracking and incremental checkpoints (kernel-patches/0016). */
export const CHECKPOINT_COW = 0x8;
export const CHECKPOINT_TRACK = 0x10;
export const CHECKPOINT_INCREMENTAL = 0x20;
/** restart(2) flags. */
export const RESTART_TASKSELF = 0x1;
export const RESTART_FROZEN = 0x2;
export const RESTART_MAP = 0x4;

const CLONE_SETTLS = 0x00080000;

export type SysResult = ReturnType<typeof trySyscall>;
const call = trySyscall;

export function checkpoint(pid: number, fd: number, flags: number, logfd: number): SysResult {
  return call(NR_CHECKPOINT, [['int', pid], ['int', fd], ['unsigned long', flags], ['int', logfd]]);
}

export function restart(pid: number, fd: number, flags: number, logfd: number): SysResult {
  return call(NR_RESTART, [['int', pid], ['int', fd], ['unsigned long', flags], ['int', logfd]]);
}

export interface Probe {
  /** The kernel has checkpoint(2)/restart(2) (kernel-patches/ applied). */
  syscalls: boolean;
  /** An engine (kmod/crengine.ko) is registered behind them. */
  engine: boolean;
  /** The kernel has clone_with_pids(2). */
  cloneWithPids: boolean;
}

/**
 * Probe with arguments every implementation refuses before doing anything:
 * bad flags give EINVAL from the entry point itself (ENOSYS means no such
 * call); fd -1 gives EBADF from the engine (ENOSYS means no engine).
 */
export function probe(): Probe {
  const entry = checkpoint(0, -1, 0x40000000, -1);
  const engine = checkpoint(0, -1, 0, -1);
  const clone = call(NR_CLONE_WITH_PIDS, [['unsigned long', CLONE_SETTLS], ['long', 0], ['long', 0], ['long', 0], ['long', 0]]);
  return {
    syscalls: entry.errno === 'EINVAL',
    engine: engine.errno === 'EBADF',
    cloneWithPids: clone.errno === 'EINVAL',
  };
}

/** cr-mktree's -k mode creates the tasks with clone_with_pids(2) and has each call restart(2). */
export const helperPath = (): string => nativeBin('cr-mktree');

/**
 * The engine module, built against the VM kernel by vm-images (buildKmod):
 * kmod/crengine.ko for the normal kernel, kmod/debug/crengine.ko for the
 * debug one; the one whose vermagic names the running kernel is loaded.
 */
const engineBuilds = [path.join(packageRoot, 'kmod', 'crengine.ko'), path.join(packageRoot, 'kmod', 'debug', 'crengine.ko')];
export const engineBuild = (): string =>
  engineBuilds.find((ko) => fs.existsSync(ko) && moduleRelease(ko) === os.release()) ?? engineBuilds[os.release().endsWith('-debug') ? 1 : 0]!;
const NR_FINIT_MODULE = 313;

/** The kernel release a module was built for: the first word of its vermagic. */
function moduleRelease(ko: string): string | undefined {
  const m = /vermagic=([^\0 ]+)/.exec(fs.readFileSync(ko, 'latin1'));
  return m?.[1];
}

export interface EngineStatus {
  /** An engine is registered behind checkpoint(2)/restart(2). */
  registered: boolean;
  /** Not registered, but kmod/crengine.ko exists, matches this kernel and we may load it. */
  loadable: boolean;
  /** One line: what is there, or why the engine cannot be had. */
  detail: string;
}

/** Whether an engine is registered, and if not whether `cr` can load kmod/crengine.ko itself. */
export function engineStatus(p: Probe = probe()): EngineStatus {
  if (p.engine) return { registered: true, loadable: false, detail: `registered${fs.existsSync('/sys/module/crengine') ? ' (crengine module loaded)' : ''}` };
  const enginePath = engineBuild();
  if (!fs.existsSync(enginePath)) return { registered: false, loadable: false, detail: `no engine registered, and ${enginePath} is not built (npm run vm:build${os.release().endsWith('-debug') ? ' -- --debug-kernel' : ''})` };
  const built = moduleRelease(enginePath);
  if (built !== os.release()) return { registered: false, loadable: false, detail: `no engine registered, and ${enginePath} is built for ${built ?? 'an unknown kernel'}, not ${os.release()} (npm run vm:build${os.release().endsWith('-debug') ? ' -- --debug-kernel' : ''})` };
  if (process.geteuid?.() !== 0) return { registered: false, loadable: false, detail: `no engine registered; loading ${enginePath} needs root` };
  return { registered: false, loadable: true, detail: `no engine registered yet: cr loads ${enginePath} (built for ${built}) on first use` };
}

/**
 * Make sure an engine is registered, loading kmod/crengine.ko when it
 * exists and matches the running kernel (nobody types insmod). Returns why
 * the kernel backend cannot run here, or undefined.
 */
export function ensureEngine(log: (line: string) => void = () => {}): string | undefined {
  const p = probe();
  if (!p.syscalls) return 'this kernel has no checkpoint(2): boot a kernel built with kernel-patches/series (npm run vm)';
  const st = engineStatus(p);
  if (st.registered) return undefined;
  if (!st.loadable) return st.detail;
  const enginePath = engineBuild();
  const fd = fs.openSync(enginePath, 'r');
  let r;
  try {
    r = trySyscall(NR_FINIT_MODULE, [['int', fd], ['void *', Buffer.from('\0')], ['int', 0]]);
  } finally {
    fs.closeSync(fd);
  }
  // EEXIST: another cr loaded it meanwhile.
  // ENOENT: a symbol it needs is not exported by this kernel (it was built for another series)
  if (r.errno === 'ENOENT') return `${enginePath} does not fit the running kernel (a symbol it needs is missing): rebuild it for this kernel (npm run vm:build)`;
  if (r.errno && r.errno !== 'EEXIST') return `loading ${enginePath} failed: ${r.errno}`;
  if (!probe().engine) return `${enginePath} was loaded but registered no engine`;
  log(`loaded the c/r engine ${enginePath}`);
  return undefined;
}

/** The engine's debug switch for fault injection (kmod/fault.c). */
const FAULT_PARAM = '/sys/module/crengine/parameters/fault';

/**
 * Hand CR_FAULT (userspace/fault.ts) to the engine, which then fails at
 * that stage; returns what clears it again. Nothing happens unless it is set.
 */
export function armEngineFault(): () => void {
  const f = requestedFault();
  if (!f) return () => {};
  if (!fs.existsSync(FAULT_PARAM)) throw new CrError(`CR_FAULT=${f.name}: the engine loaded has no fault parameter (${FAULT_PARAM})`);
  fs.writeFileSync(FAULT_PARAM, f.name);
  return () => fs.writeFileSync(FAULT_PARAM, '\n');
}
