/**
 * The kernel backend's system calls (kernel-patches/ 0001, 0002), called
 * through libc's variadic syscall(2) with koffi.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { packageRoot } from '../../userspace/paths.js';
import { trySyscall } from '../../userspace/sys/libc.js';

/** x86_64 numbers, after the x32 range (see kernel-patches/0001). */
export const NR_CHECKPOINT = 548;
export const NR_RESTART = 549;
export const NR_CLONE_WITH_PIDS = 550;

/** checkpoint(2) flags, from include/uapi/linux/checkpoint.h. */
export const CHECKPOINT_SUBTREE = 0x1;
export const CHECKPOINT_KILL = 0x2;
/** restart(2) flags. */
export const RESTART_TASKSELF = 0x1;
export const RESTART_FROZEN = 0x2;
export const RESTART_GHOST = 0x4;

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

/** The engine module, built against the VM kernel by vm-images (buildKmod). */
export const enginePath = path.join(packageRoot, 'kmod', 'crengine.ko');

/**
 * Load the engine if the kernel has the syscalls but nothing is behind
 * them. Returns why the kernel backend cannot run here, or undefined.
 */
export function loadEngine(): string | undefined {
  let p = probe();
  if (!p.syscalls) return 'this kernel has no checkpoint(2) (not the cr-lab VM kernel)';
  if (p.engine) return undefined;
  if (!fs.existsSync(enginePath)) return `${enginePath} is not built`;
  const r = execaSync('insmod', [enginePath], { reject: false });
  if (r.exitCode !== 0) return `insmod ${enginePath} failed: ${String(r.stderr).trim()}`;
  p = probe();
  return p.engine ? undefined : 'the engine did not register';
}
