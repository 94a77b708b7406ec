/**
 * The few process-control calls the harness needs that Node does not offer:
 * becoming a child subreaper (so trees restored "detached" come back to us
 * rather than to the VM's init), reaping a pid Node did not spawn, and the
 * peak-RSS window of the harness process itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import { prctl, waitpid, WNOHANG, wstatus } from '../userspace/sys/libc.js';

const PR_SET_CHILD_SUBREAPER = 36;

export function becomeSubreaper(): boolean {
  try {
    return prctl(PR_SET_CHILD_SUBREAPER, 1) === 0;
  } catch {
    return false;
  }
}

export type Reaped =
  | { state: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { state: 'running' }
  | { state: 'not-our-child' };

/** waitpid(pid, WNOHANG): reaps `pid` if it is our (or our subreaped) child and has ended. */
export function tryReap(pid: number): Reaped {
  let got: number;
  let st: number;
  try {
    [got, st] = waitpid(pid, WNOHANG);
  } catch {
    return { state: 'not-our-child' };
  }
  if (got === 0) return { state: 'running' };
  if (wstatus.exited(st)) return { state: 'exited', code: wstatus.exitCode(st), signal: null };
  const name = (Object.entries(os.constants.signals).find(([, n]) => n === wstatus.termSig(st))?.[0] ?? null) as NodeJS.Signals | null;
  return { state: 'exited', code: null, signal: name };
}

/** 'R', 'S', 'Z', … from /proc/PID/stat, or null when the pid is gone. */
export function procState(pid: number): string | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Live (not zombie) tasks of a process: the pid itself and its descendants, from /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid)!.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.shift()!;
    if (procState(p) === null) continue;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

function statusKiB(field: string): number | undefined {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : undefined;
}

/**
 * Peak RSS of this process over a window: writing 5 to clear_refs resets
 * VmHWM to the current RSS, VmHWM at the end is the window's peak. Covers
 * this process only (not children such as the criu binary).
 */
export function hwmWindow(): () => { baseKiB?: number; peakKiB?: number } {
  let ok = true;
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    ok = false;
  }
  const baseKiB = statusKiB('VmRSS');
  return () => ({ baseKiB, peakKiB: ok ? statusKiB('VmHWM') : undefined });
}
