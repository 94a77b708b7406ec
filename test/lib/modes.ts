/**
 * Test modes: how the per-feature tests of both backends checkpoint and
 * restart their program. Every such test calls `checkpointRestart` (the
 * `cr` command) or `checkpointRestartWith` (a backend in-process) for that
 * step, and registers itself with `crTest`; the mode comes from the
 * environment the test runner sets (`npm test -- --mode MODE`):
 *
 *   CR_TEST_MODE=once   dump, kill, restore (the default);
 *   CR_TEST_MODE=iter   dump, restore, let it run on, three times in a row,
 *                       each round's image decoded by `cr show`;
 *   CR_TEST_MODE=snap   dump with --leave-running, let it run on, kill it,
 *                       restore the snapshot: it resumes from there;
 *   CR_TEST_MODE=pre    pre-dump twice, dump on top of the last pre-dump,
 *                       restore (skipped where the backend has no pre-dump);
 *   CR_TEST_SAMPLE=1    only the tests marked `sample` (the `iter` pass of
 *                       a plain `npm test`).
 *
 * The test then checks what it always checks: the program's own verdict
 * and its output against an undisturbed run. Tests without a c/r step
 * (`test`) run in the `once` pass only.
 */
import fs from 'node:fs';
import { test as uvuTest } from 'uvu';
import { backends } from '../../backends/index.js';
import type { Backend, BackendName, RestoreResult } from '../../backends/types.js';
import { writeTracking } from '../../userspace/proc/pagemap.js';
import { pidExists, running, waitGone } from '../../userspace/sys/libc.js';
import { cr, type CrRun, sleep, tempDir } from './harness.js';

export const MODES = ['once', 'iter', 'snap', 'pre'] as const;
export type Mode = (typeof MODES)[number];
/** Dump/restore rounds in `iter` mode. */
export const ITER_ROUNDS = 3;

function modeOf(v = 'once'): Mode {
  if (!(MODES as readonly string[]).includes(v)) throw new Error(`CR_TEST_MODE=${v}: not one of ${MODES.join(', ')}`);
  return v as Mode;
}

export const mode: Mode = modeOf(process.env.CR_TEST_MODE);
const samplePass = process.env.CR_TEST_SAMPLE === '1';

type Body = () => void | Promise<void>;

/**
 * A test that has not ended in this long is hung: it fails (test/run.ts
 * kills a suite that prints nothing for 600 s, and uvu prints a mark per
 * test). A test that fails, hung or not, has the processes it started
 * killed: the file's other tests still run, and node can exit at its end.
 */
const TEST_LIMIT_MS = 540000;

/** This process's descendants, children first. */
function descendants(): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const found: number[] = [];
  for (let i = -1; i < found.length; i++) {
    const of = i < 0 ? process.pid : found[i];
    for (const [pid, ppid] of parent) if (ppid === of) found.push(pid);
  }
  return found;
}

function bounded(name: string, body: Body): Body {
  return async () => {
    const before = new Set(descendants());
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: no end in ${TEST_LIMIT_MS / 1000} s: hung, its processes killed`)), TEST_LIMIT_MS);
    });
    try {
      await Promise.race([Promise.resolve().then(body), hung]);
    } catch (err) {
      for (const pid of descendants().filter((p) => !before.has(p))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };
}

/** A test without a checkpoint/restart step (a refusal, a bad image, a probe): the `once` pass runs it. */
export const test = Object.assign(
  (name: string, body: Body) => {
    if (mode === 'once' && !samplePass) uvuTest(name, bounded(name, body));
  },
  {
    skip: (name: string, body?: Body) => {
      if (mode === 'once' && !samplePass) uvuTest.skip(name, body);
    },
    after: (fn: Body) => uvuTest.after(fn),
    run: () => uvuTest.run(),
  },
);

export interface CrTestOptions {
  /** Which backend the test checkpoints with (default user): `pre` needs one with a pre-dump. */
  backend?: BackendName;
  /** Why the test cannot run at all here (skipped, in every mode). */
  skip?: string;
  /** Modes the test cannot be run in, each with the reason (skipped in that mode, saying why). */
  not?: Partial<Record<Mode, string>>;
  /** One of the representative tests the `iter` pass of a plain `npm test` runs. */
  sample?: boolean;
}

/** Why a test does not run in this mode, or undefined. */
function whyNot(o: CrTestOptions): string | undefined {
  if (o.skip) return o.skip;
  if (o.not?.[mode]) return `not in ${mode} mode: ${o.not[mode]}`;
  const backend = o.backend ?? 'user';
  if (mode === 'pre' && !('preDump' in backends[backend])) return `not in pre mode: the ${backend} backend has no pre-dump (cr pre-dump) yet`;
  // The user backend's pre-dumps track written pages with soft-dirty bits or a userfaultfd.
  if (mode === 'pre' && backend === 'user' && !writeTracking()) return 'not in pre mode: this kernel cannot track the pages a task writes';
  return undefined;
}

/** A test whose program is checkpointed and restarted: it runs in every mode's pass. */
export function crTest(name: string, body: Body, o: CrTestOptions = {}): void {
  if (samplePass && !o.sample) return;
  const why = whyNot(o);
  if (why) {
    console.log(`  skipped: ${name} (${why})`);
    uvuTest.skip(name, body);
    return;
  }
  uvuTest(mode === 'once' ? name : `${name} [${mode}]`, bounded(name, body));
}

/** A running program being checkpointed: its pid, and where its progress shows. */
export interface Target {
  pid: number;
  /** A file the program writes as it goes (its output); growth means it ran on. */
  out?: string;
}

/** A step of a cycle that failed, and why (what the soak counts). */
export class CycleFailure extends Error {
  constructor(readonly stage: 'dump' | 'pre-dump' | 'gone' | 'show' | 'restore' | 'run on', message: string) {
    super(message);
  }
}

export interface CycleOptions {
  /** The mode of this step (default: the test mode, CR_TEST_MODE). */
  mode?: Mode;
  /**
   * The file whose growth shows that the program ran on after a restore or
   * a snapshot (default: the target's `out`); null for a program that waits
   * idle (for a signal), which the rounds do not wait for.
   */
  watch?: string | null;
  /** Where the last image goes (default: a fresh directory). */
  images?: string;
  /** Called with the last image and the tasks it holds before the last restore, the dumped tree gone (snap: killed). */
  beforeRestore?: (images: string, pids: number[]) => Promise<void>;
}

/** One backend, driven through the `cr` command or in-process: what a cycle needs of it. */
interface Driver<R> {
  /** The tasks dumped, root first, and what the dump said. */
  dump(pid: number, dir: string, o: { leaveRunning?: boolean; prev?: string; pre?: boolean }): Promise<{ pids: number[]; log: string }>;
  /** `final`: the restore the test goes on with; otherwise one in the middle of a cycle, detached. */
  restore(dir: string, final: boolean): Promise<{ root: number; result: R }>;
  show(dir: string): Promise<string>;
}

export interface Cycle<R> {
  /** The image the last restore came from. */
  images: string;
  /** `cr show` of the first image (every round's is decoded). */
  show: string;
  /** The tasks the first dump saved, root first, and what that dump said (its log). */
  pids: number[];
  dumpLog: string;
  /** The last restore: a `cr restore` run, or a backend's RestoreResult. */
  restored: R;
}

const PROGRESS_MS = 60000;

const sizeOf = (file: string) => (fs.existsSync(file) ? fs.statSync(file).size : 0);

/** Wait until `file` is longer than `than` bytes: the program ran on. */
async function ranOn(file: string | null | undefined, than: number, what: string): Promise<void> {
  if (!file) return;
  for (const deadline = Date.now() + PROGRESS_MS; sizeOf(file) <= than; await sleep(20)) {
    if (Date.now() > deadline) throw new CycleFailure('run on', `${what}: the program wrote nothing more to ${file} in ${PROGRESS_MS / 1000} s`);
  }
}

/** Wait until none of `pids` runs (a killed tree's zombies may linger until reaped: those count as gone). */
async function gone(pids: number[]): Promise<void> {
  await waitGone(pids, 10000);
  if (pids.some(running)) throw new CycleFailure('gone', `pids ${pids.filter(running).join(' ')} still run after the dump`);
}

/**
 * Wait a while for the zombies of `pids` to be reaped as well: a restore
 * needs their pids free, and whoever inherited them (init, in the VM) reaps
 * in its own time. One never reaped makes the restore say so.
 */
async function freed(pids: number[]): Promise<void> {
  for (const deadline = Date.now() + 10000; pids.some(pidExists) && Date.now() < deadline;) await sleep(10);
}

function kill(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

/**
 * The checkpoint/restart step of a test, in the current mode: `d` makes the
 * first dump and the last restore, `between` the rounds in between (iter).
 */
async function cycle<R>(d: Driver<R>, target: Target, o: CycleOptions, between: Driver<unknown> = d): Promise<Cycle<R>> {
  const watch = o.watch === undefined ? target.out : o.watch;
  const final = o.images ?? tempDir('cycle');
  const dirs = (n: number) => [...Array(n - 1)].map(() => tempDir('cycle')).concat(final);
  const show: string[] = [];
  const decoded = async (dir: string) => show.push(await d.show(dir));
  const lastRestore = async (dir: string, pids: number[]) => {
    await o.beforeRestore?.(dir, pids);
    await freed(pids);
    return (await d.restore(dir, true)).result;
  };
  switch (o.mode ?? mode) {
    case 'once': {
      const first = await d.dump(target.pid, final, {});
      await gone(first.pids);
      await decoded(final);
      return { images: final, show: show[0], pids: first.pids, dumpLog: first.log, restored: await lastRestore(final, first.pids) };
    }
    case 'iter': {
      const images = dirs(ITER_ROUNDS);
      let pid = target.pid;
      let first: { pids: number[]; log: string } | undefined;
      for (const [round, dir] of images.entries()) {
        const by = round ? between : d;
        const dumped = await by.dump(pid, dir, {});
        first ??= dumped;
        await gone(dumped.pids);
        show.push(await by.show(dir));
        if (round === images.length - 1) return { images: dir, show: show[0], pids: first.pids, dumpLog: first.log, restored: await lastRestore(dir, dumped.pids) };
        const size = watch ? sizeOf(watch) : 0;
        await freed(dumped.pids);
        const r = await between.restore(dir, false);
        if (r.root !== target.pid) throw new CycleFailure('restore', `round ${round + 1}: restored as pid ${r.root}, not ${target.pid}`);
        await ranOn(watch, size, `iter round ${round + 1}`);
        pid = r.root;
      }
      throw new Error('unreachable');
    }
    case 'snap': {
      const size = watch ? sizeOf(watch) : 0;
      const first = await d.dump(target.pid, final, { leaveRunning: true });
      // Killed as soon as it ran on, the image decoded after: a program near its end must not finish first.
      await ranOn(watch, size, 'snap: after the snapshot');
      kill(first.pids);
      await gone(first.pids);
      await decoded(final);
      return { images: final, show: show[0], pids: first.pids, dumpLog: first.log, restored: await lastRestore(final, first.pids) };
    }
    case 'pre': {
      const [pre1, pre2] = dirs(3);
      const first = await d.dump(target.pid, pre1, { pre: true });
      await d.dump(target.pid, pre2, { pre: true, prev: pre1 });
      const last = await d.dump(target.pid, final, { prev: pre2 });
      await gone(last.pids);
      await decoded(final);
      return { images: final, show: show[0], pids: last.pids, dumpLog: first.log, restored: await lastRestore(final, last.pids) };
    }
  }
}

export interface CrCycleOptions extends CycleOptions {
  backend?: BackendName;
  /**
   * Extra `cr dump` / `cr restore` arguments. The rounds in between of
   * `iter` (after the first dump, before the last restore) call the backend
   * in-process, without them: the program runs on only as long as it takes
   * to see it did, not for a Node start-up per command.
   */
  dumpArgs?: string[];
  restoreArgs?: string[];
  /** The last restore returns once the tree runs (`--detach`) instead of waiting for it to end. */
  detach?: boolean;
}

const fail = (stage: CycleFailure['stage'], what: string, r: CrRun): never => {
  throw new CycleFailure(stage, `${what} failed (exit ${r.exitCode}):\n${r.all}`);
};

/**
 * Checkpoint and restart `target` with the `cr` command, in the current
 * mode. The last `cr restore` waits for the restored program to end
 * (unless `detach`); a failure of any step throws with its output.
 */
export function checkpointRestart(target: Target, o: CrCycleOptions = {}): Promise<Cycle<CrRun>> {
  const backend = o.backend ? [`--backend=${o.backend}`] : [];
  return cycle<CrRun>({
    async dump(pid, dir, { leaveRunning, prev, pre }) {
      const r = await cr([pre ? 'pre-dump' : 'dump', ...backend, '-t', String(pid), '-D', dir, ...(o.dumpArgs ?? []),
        ...(leaveRunning ? ['--leave-running'] : []), ...(prev ? ['--prev-images-dir', prev] : [])]);
      if (r.exitCode !== 0) fail(pre ? 'pre-dump' : 'dump', `cr ${pre ? 'pre-dump' : 'dump'} of pid ${pid}`, r);
      const m = /^cr: (?:pre-)?dumped ([\d ]+) into /m.exec(r.stderr);
      if (!m) throw new CycleFailure('dump', `cr dump did not say what it dumped:\n${r.all}`);
      return { pids: m[1].trim().split(' ').map(Number), log: r.stderr };
    },
    async restore(dir, final) {
      const detach = !final || o.detach;
      const r = await cr(['restore', ...backend, '-D', dir, ...(o.restoreArgs ?? []), ...(detach ? ['--detach'] : [])]);
      if (r.exitCode !== 0) fail('restore', `cr restore of ${dir}`, r);
      return { root: detach ? Number(r.stdout.trim()) : 0, result: r };
    },
    async show(dir) {
      const r = await cr(['show', dir]);
      if (r.exitCode !== 0) fail('show', `cr show ${dir}`, r);
      return r.stdout;
    },
  }, target, o, backendDriver(backends[o.backend ?? 'user']));
}

/** A backend's failure, as the failure of a step. */
async function staged<T>(stage: CycleFailure['stage'], p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new CycleFailure(stage, (err as Error).message ?? String(err));
  }
}

/** A backend called in-process, as a cycle's driver. */
function backendDriver(backend: Backend, detach?: boolean): Driver<RestoreResult> {
  return {
    async dump(pid, dir, { leaveRunning, prev, pre }) {
      const lines: string[] = [];
      const dumpOpts = { pid, dir, leaveRunning, log: (l: string) => lines.push(l), ...(prev ? { prevImagesDir: prev } : {}) };
      const preDump = (backend as { preDump?: Backend['dump'] }).preDump;
      if (pre && !preDump) throw new CycleFailure('pre-dump', `the ${backend.name} backend has no pre-dump`);
      const r = await staged(pre ? 'pre-dump' : 'dump', pre ? preDump!.call(backend, dumpOpts) : backend.dump(dumpOpts));
      return { pids: r.pids, log: lines.join('\n') };
    },
    async restore(dir, final) {
      const r = await staged('restore', backend.restore({ dir, detach: !final || detach }));
      return { root: r.pids[0], result: r };
    },
    async show(dir) {
      return (await staged('show', backend.describe(dir))).lines.join('\n');
    },
  };
}

/**
 * The same with a backend called in-process (the kernel tests: in the VM a
 * `cr` command costs Node's start-up). The last restore is returned as the
 * backend gave it: the test waits for it, signals it, or lets it be.
 */
export function checkpointRestartWith(backend: Backend, target: Target, o: CycleOptions & { detach?: boolean } = {}): Promise<Cycle<RestoreResult>> {
  return cycle(backendDriver(backend, o.detach), target, o);
}
