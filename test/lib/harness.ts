/**
 * What the c/r tests share: starting a test program with its output in a
 * file, waiting until it is mid-run, running the `cr` command line, and
 * comparing a restored run's output with an undisturbed one (its
 * checkpoint/restart step goes through modes.ts, in the test mode).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { crCommand, packageRoot } from '../../userspace/paths.js';
import { checkpointRestart, type CrCycleOptions } from './modes.js';

export const programBin = (name: string) => path.join(packageRoot, 'test', 'programs', 'bin', name);
export const crBin = crCommand;

/** A fresh scratch directory under the system temp dir. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cr-test-${prefix}-`));
}

/** Deterministic input for programs that read a file at a moving offset. */
export function writeInput(dir: string): void {
  const buf = Buffer.alloc(1 << 20);
  let x = 12345;
  for (let i = 0; i < buf.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    buf[i] = x >> 16;
  }
  fs.writeFileSync(path.join(dir, 'input.dat'), buf);
}

export interface Running {
  child: ChildProcess;
  pid: number;
  out: string;
  exited: Promise<number | null>;
}

/**
 * Start a test program (by name in test/programs, or by path) with stdin
 * from /dev/null and stdout+stderr into `out`; with `cgroup`, it starts as
 * a member of that cgroup directory.
 */
export function start(program: string, args: string[], out: string, cgroup?: string): Running {
  const fd = fs.openSync(out, 'w');
  const bin = path.isAbsolute(program) ? program : programBin(program);
  const argv = cgroup ? ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, bin, ...args] : [bin, ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, pid: child.pid!, out, exited };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `file` has at least `lines` lines. */
export async function waitLines(file: string, lines: number, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.readFileSync(file, 'utf8').split('\n').length > lines) return;
    await sleep(20);
  }
  throw new Error(`${file} did not reach ${lines} lines in ${timeoutMs} ms`);
}

export interface CrRun {
  exitCode: number | undefined;
  /** stdout and stderr interleaved. */
  all: string;
  stdout: string;
  stderr: string;
}

/** Run `cr ARGS…` (as `uid` if given, with `env` added); never throws on a non-zero exit. */
export async function cr(args: string[], opts: { uid?: number; bounding?: string; env?: Record<string, string> } = {}): Promise<CrRun> {
  const argv = [process.execPath, crBin, ...args];
  // as another user, or (`bounding`, setpriv's --bounding-set) root with fewer capabilities
  const cmd = opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', ...argv]
    : opts.bounding ? ['setpriv', `--bounding-set=${opts.bounding}`, ...argv] : argv;
  const r = await execa(cmd[0], cmd.slice(1), { reject: false, all: true, env: opts.env });
  return { exitCode: r.exitCode, all: String(r.all), stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Output of a run without its last line, which names the pid. */
export function withoutPid(text: string): { body: string; pid: number } {
  const m = /\npid (\d+)\n$/.exec(text);
  if (!m) throw new Error(`output does not end with a pid line:\n${text.slice(-300)}`);
  return { body: text.slice(0, m.index + 1), pid: Number(m[1]) };
}

/** Run a program undisturbed to completion and return its output. */
export async function undisturbed(program: string, args: string[], dir: string): Promise<string> {
  const run = start(program, args, path.join(dir, 'out.txt'));
  await run.exited;
  return fs.readFileSync(run.out, 'utf8');
}

export interface RoundTrip {
  /** An undisturbed run's output and the checkpointed-and-restarted run's, each without its pid line. */
  reference: string;
  restored: string;
  /** `cr show` of the image. */
  show: string;
  /** The image directory. */
  images: string;
}

/**
 * Run a program undisturbed, then again, checkpointed once its output has
 * `lines` lines and restarted (in the test mode: modes.ts); throws if
 * dump, restore or the pid fail.
 */
export async function roundTrip(program: string, args: string[], lines: number, opts: CrCycleOptions = {}): Promise<RoundTrip> {
  const reference = withoutPid(await undisturbed(program, args, tempDir(`${program}-ref`))).body;
  const run = start(program, args, path.join(tempDir(program), 'out.txt'));
  await waitLines(run.out, lines);
  const c = await checkpointRestart(run, opts);
  const restored = withoutPid(fs.readFileSync(run.out, 'utf8'));
  if (restored.pid !== run.pid) throw new Error(`${program} came back as pid ${restored.pid}, not ${run.pid}`);
  return { reference, restored: restored.body, show: c.show, images: c.images };
}
