/**
 * The few process-control calls the harness needs that Node does not offer:
 * becoming a child subreaper (so trees restored "detached" come back to us
 * rather than to the VM's init), reaping a pid Node did not spawn, and the
 * peak-RSS window of the harness process itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const prctlRaw = libc.func('prctl', 'int', ['int', 'unsigned long', 'unsigned long', 'unsigned long', 'unsigned long']);
const waitpidRaw = libc.func('waitpid', 'int', ['int', 'void *', 'int']);

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

export function becomeSubreaper(): boolean {
  return prctlRaw(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) === 0;
}

export type Reaped =
  | { state: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { state: 'running' }
  | { state: 'not-our-child' };

/** waitpid(pid, WNOHANG): reaps `pid` if it is our (or our subreaped) child and has ended. */
export function tryReap(pid: number): Reaped {
  const buf = Buffer.alloc(4);
  for (;;) {
    const r = waitpidRaw(pid, buf, WNOHANG);
    if (r === 0) return { state: 'running' };
    if (r === pid) {
      const st = buf.readInt32LE(0);
      const sig = st & 0x7f;
      if (sig === 0) return { state: 'exited', code: (st >> 8) & 0xff, signal: null };
      const name = (Object.entries(os.constants.signals).find(([, n]) => n === sig)?.[0] ?? null) as NodeJS.Signals | null;
      return { state: 'exited', code: null, signal: name };
    }
    if (koffi.errno() === os.constants.errno.EINTR) continue;
    return { state: 'not-our-child' };
  }
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
