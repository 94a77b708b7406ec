/**
 * Fault injection, the same scenario for both backends (CR_FAULT,
 * userspace/fault.ts): a tree of processes is dumped with each dump stage
 * made to fail, then for real, and its image restored with each restore
 * stage made to fail, then for real. Every injected failure must come back
 * as one line naming the fault; after a failed dump the tree runs on as
 * before (same pids and parents, nobody traced or stopped, still writing
 * its answer) and the image directory holds no image; after a failed
 * restore no task of the image runs, no cr-mktree of it is left, and the
 * image is still whole. The operation without the fault then succeeds, and
 * the program's answer is an undisturbed run's.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { backends } from '../../backends/index.js';
import type { BackendName } from '../../backends/types.js';
import { pidExists, running, waitGone } from '../../userspace/sys/libc.js';
import { cr, type CrRun, sleep, start, tempDir } from './harness.js';

export interface FaultProgram {
  /** The program (a path) and its arguments, given a scratch directory of its own. */
  argv: (dir: string) => [string, ...string[]];
  /** Resolves once it is mid-run. */
  ready: (dir: string) => Promise<void>;
  /** A file it writes to as it goes: growth means it computes. */
  progress: (dir: string) => string;
  /** What it computed, to compare with an undisturbed run's. */
  answer: (dir: string) => string;
}

/** One line on stderr, `cr: ...`, naming the injected fault. */
export function failsNaming(r: CrRun, stage: string): void {
  assert.is.not(r.exitCode, 0, `${stage}: the command fails`);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `${stage}: one line of error, got:\n${r.stderr}`);
  assert.match(lines[0], new RegExp(`^cr: .*injected fault ${stage}\\b`), `${stage}: the error names the fault`);
  assert.not.match(lines[0], /internal error/, stage);
}

/** The tree below `root` as /proc shows it: pid, parent, threads, and whether any is traced or stopped. */
function shapeOf(root: number): string[] {
  const out: string[] = [];
  const visit = (pid: number) => {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1];
    out.push(`${pid} ppid ${field('PPid')} threads ${field('Threads')} tracer ${field('TracerPid')} ${/^[tT]/.test(field('State') ?? '') ? 'stopped' : 'runs'}`);
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      for (const kid of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) visit(Number(kid));
    }
  };
  visit(root);
  return out.sort();
}

const sizeOf = (file: string) => (fs.existsSync(file) ? fs.statSync(file).size : 0);

async function grows(file: string, than: number, what: string): Promise<void> {
  for (const deadline = Date.now() + 60000; sizeOf(file) <= than; await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`${what}: the program wrote nothing more to ${file}`);
  }
}

/** Image files in `dir`: an engine's log is not part of the image. */
const imageFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.endsWith('.log')) : []);

/** cr-mktree processes left over from a restore of the tree rooted at `root`. */
export function strayHelpers(root: number): number[] {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0].endsWith('cr-mktree') && argv.some((a) => a.startsWith(`${root}:`)) && running(pid);
    } catch {
      return false;
    }
  });
}

/** Positions in the image's tree of the tasks that are rebuilt (zombies are not), root first. */
async function liveTasks(backend: BackendName, images: string): Promise<number[]> {
  const data = (await backends[backend].describe(images)).data as { tasks?: { zombie: boolean }[]; tree?: { zombie?: number }[] };
  const tasks = data.tasks?.map((t) => t.zombie) ?? data.tree!.map((t) => t.zombie !== undefined);
  return tasks.flatMap((zombie, i) => (zombie ? [] : [i]));
}

async function undisturbedAnswer(p: FaultProgram): Promise<string> {
  const dir = tempDir('fault-ref');
  const [bin, ...args] = p.argv(dir);
  await start(bin, args, path.join(dir, 'stdout')).exited;
  return p.answer(dir);
}

/**
 * Dump a running `p` with each of `stages` injected (each must fail and
 * change nothing), then for real; restore it and compare its answer.
 * Returns nothing: it asserts.
 */
export async function dumpFaults(backend: BackendName, p: FaultProgram, stages: string[]): Promise<void> {
  const reference = await undisturbedAnswer(p);
  const dir = tempDir('fault');
  const [bin, ...args] = p.argv(dir);
  const run = start(bin, args, path.join(dir, 'stdout'));
  await p.ready(dir);
  const before = shapeOf(run.pid);
  const images = tempDir('fault-img');
  for (const stage of stages) {
    const size = sizeOf(p.progress(dir));
    failsNaming(await cr(['dump', `--backend=${backend}`, '-t', String(run.pid), '-D', images], { env: { CR_FAULT: stage } }), stage);
    assert.equal(imageFiles(images), [], `${stage}: no image is left behind`);
    assert.equal(shapeOf(run.pid), before, `${stage}: the tree runs on as it was, nobody traced or stopped`);
    await grows(p.progress(dir), size, `${stage}: after the failed dump`);
  }
  const d = await cr(['dump', `--backend=${backend}`, '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, `without a fault the dump succeeds:\n${d.all}`);
  await run.exited;
  const r = await cr(['restore', `--backend=${backend}`, '-D', images]);
  assert.is(r.exitCode, 0, `the restore succeeds:\n${r.all}`);
  assert.is(p.answer(dir), reference, 'and the program computed what an undisturbed run does');
}

/**
 * Dump `p` once, then restore its image with each restore stage injected:
 * at the root before it is changed, at the last task before it is, in the
 * first child after it was changed, and once the whole tree is there. Each
 * must fail and leave nothing running; then the restore succeeds.
 */
export async function restoreFaults(backend: BackendName, p: FaultProgram): Promise<void> {
  const reference = await undisturbedAnswer(p);
  const dir = tempDir('fault');
  const [bin, ...args] = p.argv(dir);
  const run = start(bin, args, path.join(dir, 'stdout'));
  await p.ready(dir);
  const images = tempDir('fault-img');
  const d = await cr(['dump', `--backend=${backend}`, '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  const pids = /^cr: dumped ([\d ]+) into /m.exec(d.stderr)![1].split(' ').map(Number);
  const live = await liveTasks(backend, images);
  assert.ok(live.length >= 3, `a tree of at least three live tasks (${live.length})`);
  const whole = imageFiles(images).map((f) => `${f} ${fs.statSync(path.join(images, f)).size}`);
  for (const stage of ['restore-prepare:0', `restore-prepare:${live.at(-1)}`, `restore-member:${live[1]}`, 'restore-tree']) {
    failsNaming(await cr(['restore', `--backend=${backend}`, '-D', images], { env: { CR_FAULT: stage } }), stage);
    await waitGone(pids, 5000);
    for (let tries = 0; tries < 100 && pids.some(pidExists); tries++) await sleep(50); // nor waits to be reaped
    assert.equal(pids.filter(pidExists), [], `${stage}: no task of the image is left`);
    assert.equal(strayHelpers(pids[0]), [], `${stage}: no cr-mktree of it is left`);
    assert.equal(imageFiles(images).map((f) => `${f} ${fs.statSync(path.join(images, f)).size}`), whole, `${stage}: the image is as it was`);
  }
  const r = await cr(['restore', `--backend=${backend}`, '-D', images]);
  assert.is(r.exitCode, 0, `without a fault the restore succeeds:\n${r.all}`);
  assert.is(p.answer(dir), reference, 'and the program computed what an undisturbed run does');
}
