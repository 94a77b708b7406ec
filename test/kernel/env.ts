/**
 * Whether the kernel backend can run here, for the tests in this folder:
 * they run inside the cr-lab VM (a kernel built with kernel-patches/), and
 * skip with a message anywhere else.  The kernel backend loads
 * kmod/crengine.ko itself on first use (cr.test.ts shows it).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { execaSync } from 'execa';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { helperPath, probe } from '../../backends/kernel/sys.js';
import { kernelBackend } from '../../backends/kernel/index.js';
import type { ExitStatus } from '../../backends/types.js';
import { packageRoot } from '../../userspace/paths.js';
import { dmesgTrouble as kernelTrouble } from '../../vm-images/runner.js';
import { sleep, tempDir } from '../lib/harness.js';
import { checkpointRestartWith } from '../lib/modes.js';

export const kprogram = (name: string): string => path.join(packageRoot, 'test', 'kernel', 'programs', 'bin', name);

function whyNot(): string | undefined {
  if (!probe().syscalls) return 'this kernel has no checkpoint(2) (not the cr-lab VM kernel)';
  if (process.geteuid?.() !== 0) return 'not root';
  for (const f of [helperPath(), kprogram('memsum')]) if (!fs.existsSync(f)) return `${f} is not built`;
  return undefined;
}

/** Why the kernel tests cannot run, or undefined if they can. */
export const skipReason = whyNot();

/** Kernel log lines that mean trouble. */
export function dmesgTrouble(): string[] {
  return kernelTrouble(String(execaSync('dmesg', [], { reject: false }).stdout));
}

/** Start a program with stdout and stderr on a regular file, as a shell's > would. */
export function startTo(program: string, args: string[], out: string): { pid: number; done: Promise<number | string | null> } {
  const fd = fs.openSync(out, 'w');
  const child = spawn(program, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return { pid: child.pid!, done: new Promise((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code))) };
}

/** Wait until @file contains @text (generous: under TCG on a busy host a python3 start-up alone took over 30 s). */
export async function waitFor(file: string, text: string, ms = 120000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text)) return;
    await sleep(10);
  }
  const got = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ') : '';
  throw new Error(`${file} never showed ${JSON.stringify(text)}${got ? ` (its last lines: ${got})` : ' (it is empty)'}`);
}

export interface KernelRoundTrip {
  out: string;
  status: ExitStatus;
  show: string[];
  pids: number[];
}

/**
 * Run a self-checking program (it prints "ready", waits for SIGUSR1 and
 * then checks its own state) through a checkpoint that kills it and a
 * restart; SIGUSR1 goes to the restarted root.
 */
export async function kernelRoundTrip(program: string, args: string[]): Promise<KernelRoundTrip> {
  const dir = tempDir('kround');
  const out = `${dir}/out.txt`;
  const child = startTo(kprogram(program), args, out);
  await waitFor(out, 'ready');
  // It waits for SIGUSR1 after "ready": nothing to wait for between the rounds of a test mode.
  const d = await checkpointRestartWith(kernelBackend, child, { watch: null });
  if ((await child.done) !== 'SIGKILL') throw new Error('the checkpoint did not kill the task');
  const r = d.restored;
  process.kill(r.pids[0], 'SIGUSR1');
  const status = await r.wait();
  return { out: fs.readFileSync(out, 'utf8'), status, show: d.show.split('\n'), pids: d.pids };
}

/**
 * kernelRoundTrip() of a self-checking program whose checks must all pass,
 * with lines `cr show` must print of its image.
 */
export async function selfCheck(program: string, args: string[], show: RegExp[]): Promise<KernelRoundTrip> {
  const r = await kernelRoundTrip(program, args);
  assert.not.match(r.out, /FAIL/, r.out);
  assert.match(r.out, /^ok /m, r.out);
  assert.equal(r.status, { code: 0, signal: null }, r.out);
  const lines = r.show.join('\n');
  for (const re of show) assert.match(lines, re, lines);
  assert.equal(dmesgTrouble(), []);
  return r;
}

/** The ok/FAIL lines of a self-checking program's output, sorted. */
export const verdicts = (out: string): string[] => out.split('\n').filter((l) => /^(ok|FAIL) /.test(l)).sort();

/** kshare, undisturbed or through dump and restore; SIGUSR1 to its child a once it is ready. */
export async function kshareRun(roundTrip: boolean): Promise<{ out: string; status: unknown; show: string; imageBytes: number }> {
  const dir = tempDir('ksh');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kshare'), [], out);
  await waitFor(out, 'ready');
  const a = Number(/ready (\d+)/.exec(fs.readFileSync(out, 'utf8'))![1]);
  if (!roundTrip) {
    process.kill(a, 'SIGUSR1');
    const status = await child.done;
    return { out: fs.readFileSync(out, 'utf8'), status, show: '', imageBytes: 0 };
  }
  const images = tempDir('kshimg');
  const d = await kernelBackend.dump({ pid: child.pid, dir: images }).catch((e: unknown) => {
    process.kill(child.pid, 'SIGKILL');
    throw e;
  });
  assert.is(d.pids.length, 7, 'the parent, a, four sharing clones and the vfork child');
  assert.is(await child.done, 'SIGKILL');
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, d.pids);
  process.kill(a, 'SIGUSR1');
  const st = await r.wait();
  const text = fs.readFileSync(out, 'utf8');
  // 64 MiB of image a round: a stress run would fill the guest's /tmp
  for (const p of [images, dir]) fs.rmSync(p, { recursive: true, force: true });
  return { out: text, status: st.signal ?? st.code, show, imageBytes: d.stats.imageBytes };
}
