/**
 * `npm run soak -- --minutes M [--backend user|kernel] [--seed S]`: dump
 * and restore, again and again for M minutes, the feature test programs
 * (in a mode picked at random: once, iter or snap, as test/lib/modes.ts
 * runs them) and the comparison's self-checking workloads
 * (compare/workloads/bin/wl, through the library or the `cr` command, as
 * compare/harness.ts runs them), at random sizes and with the dump at a
 * random point of each run; then print the counts — runs, passed, failed
 * — and every failure with its stage and reason. Exits 1 if any failed.
 * A feature probe whose dump the backend refuses by name is not a failure:
 * it is reported once and left out of the mix.
 * A kernel soak runs inside the VM (booted for it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backends } from '../backends/index.js';
import type { BackendName } from '../backends/types.js';
import { runCycle, type CaseSpec, type HarnessConfig } from '../compare/harness.js';
import { featureCase } from '../compare/plan.js';
import { features, workloads } from '../compare/workloads.js';
import { crCommand, packageRoot } from '../userspace/paths.js';
import { buildKmod, ensureKernel } from '../vm-images/kernel.js';
import { dmesgTrouble, runInVm } from '../vm-images/runner.js';
import { programBin, sleep, start, tempDir, waitLines, withoutPid, writeInput } from './lib/harness.js';
import { checkpointRestart, checkpointRestartWith, CycleFailure, type Mode } from './lib/modes.js';
import { rng } from './user/fuzz/mutate.js';

const positive = (what: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`a positive number of ${what}`);
  return n;
};

const program = new Command('soak')
  .description('dump and restore feature programs and workloads at random for a while, and count what failed')
  .requiredOption('--minutes <m>', 'how long to go on', positive('minutes'))
  .addOption(new Option('--backend <name>', 'which backend').choices(['user', 'kernel']).default('user'))
  .option('--seed <n>', 'the random choices\' seed (default: the time)', positive('seed'))
  .parse();
const opts = program.opts<{ minutes: number; backend: BackendName; seed?: number }>();
const say = (line: string): boolean => process.stdout.write(`${line}\n`);

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const between = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** One run's outcome: what ran, and where and why it failed. */
interface Run {
  what: string;
  ok: boolean;
  stage?: string;
  reason?: string;
  /** The dump was refused by name: not a failure, and the probe is left out from then on. */
  refused?: boolean;
}

/** A dump refused by name (`... is not supported`, `... refused`): the backend doing what it should with what it cannot save. */
const isRefusal = (reason = '') => /not supported|refus/i.test(reason);

/** A feature program at a random size, dumped at a random point, checked against an undisturbed run. */
interface Program {
  name: string;
  /** Its argv for a scratch directory, at a size drawn from `r`. */
  argv(dir: string, r: Rand): string[];
  /** Resolves when it has run `k` steps' worth (the dump comes then). */
  reached(dir: string, k: number): Promise<void>;
  /** How many steps it takes before it is worth dumping, at most. */
  steps: [number, number];
  /** Its answer, to compare with an undisturbed run's. */
  answer(dir: string): string;
  /** The file it writes as it goes (default: its output). */
  watch?(dir: string): string;
  setup?(dir: string): void;
  /** Modes it is not soaked in, each with the reason (as crTest's `not`). */
  not?: Partial<Record<Mode, string>>;
}

/** What a snapshot cannot give back: a shared file mapping is the file itself, and the program wrote on into it after the snapshot. */
const SHARED_FILE = { snap: 'its shared file mapping is the file itself, not in the image' };
const SOAK_MODES = ['once', 'iter', 'snap'] as const;

const kbin = (name: string) => path.join(packageRoot, 'test', 'kernel', 'programs', 'bin', name);
const out = (dir: string) => path.join(dir, 'out.txt');
const stdoutAnswer = (dir: string) => withoutPid(fs.readFileSync(out(dir), 'utf8')).body;
const lines = (dir: string, k: number) => waitLines(out(dir), k, 120000);

// Sizes that leave each program 5 s or more to run after its last dump
// point, at its smallest: a `cr dump` that starts late on a busy machine
// must still find it running, and `iter` has three rounds to go through.
const USER_PROGRAMS: Program[] = [
  { name: 'bigmem', argv: (_d, r) => [programBin('bigmem'), String(pick(r, [4, 16, 64, 128])), '400'], reached: lines, steps: [2, 40], answer: stdoutAnswer },
  { name: 'memstress', argv: (d, r) => [programBin('memstress'), d, String(between(r, 800, 1500))], reached: lines, steps: [5, 20], answer: stdoutAnswer, setup: writeInput, not: SHARED_FILE },
  { name: 'tree', argv: (_d, r) => [programBin('tree'), String(between(r, 1200, 3000))], reached: lines, steps: [2, 20], answer: stdoutAnswer },
  { name: 'fdshare', argv: (d, r) => [programBin('fdshare'), d, String(between(r, 800, 1200))], reached: lines, steps: [3, 20], answer: stdoutAnswer, setup: writeInput },
  { name: 'epoll', argv: (_d, r) => [programBin('epoll'), String(between(r, 300, 900))], reached: lines, steps: [10, 60], answer: stdoutAnswer },
  { name: 'unixpair', argv: (_d, r) => [programBin('unixpair'), String(between(r, 500, 1000))], reached: lines, steps: [2, 20], answer: stdoutAnswer },
  { name: 'sigpending', argv: (_d, r) => [programBin('sigpending'), String(between(r, 500, 1000))], reached: lines, steps: [2, 20], answer: stdoutAnswer },
  { name: 'ptimers', argv: (_d, r) => [programBin('ptimers'), String(pick(r, [200, 300, 400]))], reached: lines, steps: [2, 6], answer: stdoutAnswer },
  // Its semaphore counts 10, one read each 30 steps: 300 steps at most.
  { name: 'eventfd', argv: (_d, r) => [programBin('eventfd'), String(between(r, 250, 300))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'caps', argv: (_d, r) => [programBin('caps'), String(between(r, 150, 250))], reached: lines, steps: [2, 20], answer: stdoutAnswer },
  { name: 'container', argv: (_d, r) => [programBin('container'), String(between(r, 300, 900))], reached: lines, steps: [5, 40], answer: stdoutAnswer },
  // A tick a 512-byte stride of its 64 KiB memfd: 128 ticks at most.
  { name: 'ghosts', argv: (d, r) => [programBin('ghosts'), d, String(between(r, 100, 128))], reached: lines, steps: [2, 20], answer: stdoutAnswer },
  { name: 'unixsk', argv: (_d, r) => [programBin('unixsk'), String(between(r, 400, 800))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'tcpsk', argv: (_d, r) => [programBin('tcpsk'), String(between(r, 700, 1400))], reached: lines, steps: [3, 8], answer: stdoutAnswer },
  { name: 'udpsk', argv: (_d, r) => [programBin('udpsk'), String(between(r, 400, 800))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'sched', argv: (_d, r) => [programBin('sched'), String(between(r, 400, 800))], reached: lines, steps: [2, 5], answer: stdoutAnswer },
  { name: 'threadsigs', argv: (_d, r) => [programBin('threadsigs'), String(between(r, 400, 800))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'zombies', argv: (_d, r) => [programBin('zombies'), String(between(r, 400, 800))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'pidns', argv: (_d, r) => [programBin('pidns'), String(between(r, 400, 800))], reached: lines, steps: [2, 4], answer: stdoutAnswer },
  { name: 'mapshapes', argv: (d, r) => [programBin('mapshapes'), d, String(between(r, 400, 800))], reached: lines, steps: [1, 2], answer: stdoutAnswer, not: SHARED_FILE },
];

const KERNEL_PROGRAMS: Program[] = [
  {
    name: 'memsum', argv: (d, r) => [kbin('memsum'), d, String(between(r, 60, 200)), '20'], steps: [2, 40], answer: (d) => fs.readFileSync(out(d), 'utf8'), not: SHARED_FILE,
    reached: (d, k) => waitFor(out(d), `iter ${k} `),
  },
  {
    name: 'ktree', argv: (d, r) => [kbin('ktree'), d, String(between(r, 60, 200)), '20'], steps: [2, 40],
    answer: (d) => ['p0.txt', 'p1.txt', 'p2.txt'].map((f) => fs.readFileSync(path.join(d, f), 'utf8')).join(''),
    reached: (d, k) => waitFor(path.join(d, 'p2.txt'), `iter ${k} `), watch: (d) => path.join(d, 'p2.txt'),
  },
  {
    name: 'kpipes', argv: (d, r) => [kbin('kpipes'), String(between(r, 60, 200)), '20', d], steps: [2, 40], answer: (d) => fs.readFileSync(out(d), 'utf8'),
    reached: (d, k) => waitFor(out(d), `iter ${k}:`),
  },
];

async function waitFor(file: string, text: string): Promise<void> {
  for (const deadline = Date.now() + 120000; !(fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text)); await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`${file} never showed ${JSON.stringify(text)}`);
  }
}

/** How long one program's cycle may take (TCG in the VM is slower). */
const RUN_LIMIT_MS = 10 * 60000 * (process.env.CR_LAB_IN_VM ? 3 : 1);

/** Undisturbed answers, by argv (a size drawn twice is run undisturbed once). */
const references = new Map<string, string>();

async function referenceOf(p: Program, argv: string[]): Promise<string> {
  const key = argv.join(' ');
  const known = references.get(key);
  if (known !== undefined) return known;
  const dir = tempDir('soak-ref');
  p.setup?.(dir);
  await start(argv[0], argv.slice(1).map((a) => (a === '\0dir' ? dir : a)), out(dir)).exited;
  const answer = p.answer(dir);
  references.set(key, answer);
  fs.rmSync(dir, { recursive: true, force: true });
  return answer;
}

/** Where two answers part: the first line that differs, both ways. */
function firstDifference(got: string, want: string): string {
  const [g, w] = [got.split('\n'), want.split('\n')];
  const i = g.findIndex((line, k) => line !== w[k]);
  const at = i < 0 ? g.length : i;
  return `at line ${at + 1}: ${JSON.stringify(g[at] ?? '(end)')}, not ${JSON.stringify(w[at] ?? '(end)')}`;
}

/** One feature program, run, dumped at a random step in a random mode, restored, checked. */
async function programRun(backend: BackendName, p: Program, r: Rand): Promise<Run> {
  const mode: Mode = pick(r, SOAK_MODES.filter((m) => !p.not?.[m]));
  // The directory goes into argv only at the end: the reference runs in a directory of its own.
  const argv = p.argv('\0dir', r);
  const at = between(r, p.steps[0], p.steps[1]);
  const what = `${p.name} ${argv.slice(1).filter((a) => a !== '\0dir').join(' ')} (${mode}, dumped at step ${at})`;
  let reference: string;
  try {
    reference = await referenceOf(p, argv);
  } catch (err) {
    return { what, ok: false, stage: 'reference', reason: (err as Error).message };
  }
  const dir = tempDir('soak');
  p.setup?.(dir);
  const run = start(argv[0], argv.slice(1).map((a) => (a === '\0dir' ? dir : a)), out(dir));
  try {
    try {
      await p.reached(dir, at);
    } catch (err) {
      return { what, ok: false, stage: 'start', reason: (err as Error).message };
    }
    // A cycle that hangs is ended by killing the program (restored, it has its pid again): the cycle then fails and returns.
    let hung = false;
    const limit = setTimeout(() => {
      hung = true;
      try {
        process.kill(run.pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }, RUN_LIMIT_MS);
    try {
      const watch = p.watch?.(dir) ?? run.out;
      if (backend === 'user') await checkpointRestart(run, { mode, watch });
      else await (await checkpointRestartWith(backends.kernel, run, { mode, watch })).restored.wait();
      if (hung) throw new Error('killed');
    } catch (err) {
      if (hung) return { what, ok: false, stage: 'timeout', reason: `no end of the cycle in ${RUN_LIMIT_MS / 60000} min` };
      const said = (err as Error).message.split('\n').filter(Boolean).slice(0, 3);
      // A restored program that exits 1 has said why in its output.
      const own = fs.existsSync(out(dir)) ? fs.readFileSync(out(dir), 'utf8').split('\n').filter((l) => /^(BAD|FAIL)/.test(l)).slice(0, 2) : [];
      return { what, ok: false, stage: err instanceof CycleFailure ? err.stage : 'cycle', reason: [...said, ...own].join(' | ') };
    } finally {
      clearTimeout(limit);
    }
    const got = p.answer(dir);
    return got === reference ? { what, ok: true } : { what, ok: false, stage: 'check', reason: `its answer differs from an undisturbed run's ${firstDifference(got, reference)}` };
  } finally {
    run.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One comparison workload at a random size, or a feature probe, through the
 * library or the command, dumped a random while after it is ready. A probe
 * whose dump the backend refuses by name is taken out of `probes`.
 */
async function workloadRun(cfg: Omit<HarnessConfig, 'scratch'>, backend: BackendName, probes: CaseSpec[], r: Rand): Promise<Run> {
  let spec: CaseSpec;
  if (r() < 0.6 || !probes.length) {
    const w = pick(r, workloads.filter((x) => backend === 'user' || x.name !== 'threads' && x.name !== 'mix'));
    const size = pick(r, [...w.quickSizes, ...w.sizes.filter((s) => s <= (w.name === 'mem' ? 256 : 64))]);
    spec = { kind: 'bench', workload: w.name, size, args: w.args(size) };
  } else {
    spec = pick(r, probes);
  }
  spec = { ...spec, dumpAfterMs: between(r, 0, 1000) };
  const mode = pick(r, ['lib', 'cli'] as const);
  // A scratch directory of its own, removed after the run, and short: the
  // workload binds a unix socket in the harness's directory for the case,
  // named after the probe (70 bytes), and a sun_path holds 108.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'wl'));
  let rec;
  try {
    rec = await runCycle({ ...cfg, scratch }, spec, backend, mode, 0);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const what = `wl ${spec.args.join(' ')} (${mode}, dumped ${spec.dumpAfterMs} ms after ready)`;
  if (rec.ok) return { what, ok: true };
  if (spec.kind === 'feature' && rec.stage === 'dump' && isRefusal(rec.reason)) {
    probes.splice(probes.findIndex((p) => p.workload === spec.workload), 1);
    return { what: `${spec.workload}: ${what}`, ok: false, refused: true, stage: rec.stage, reason: rec.reason };
  }
  return { what, ok: false, stage: rec.stage, reason: rec.reason };
}

async function soak(): Promise<number> {
  const seed = opts.seed ?? Date.now() % 1000000007;
  const r = rng(seed);
  const backend = opts.backend;
  const cfg: Omit<HarnessConfig, 'scratch'> = {
    registry: backends, backends: [backend], reps: 1, featureReps: 1, modes: ['lib', 'cli'],
    wlBin: path.join(packageRoot, 'compare', 'workloads', 'bin', 'wl'), rusageBin: path.join(packageRoot, 'compare', 'workloads', 'bin', 'rusage'),
    crCli: [process.execPath, crCommand], criuBin: 'criu', timeoutScale: process.env.CR_LAB_IN_VM ? 3 : 1, emit: () => {},
  };
  say(`soak: ${opts.minutes} min of the ${backend} backend (seed ${seed})`);
  const probes = features.map(featureCase);
  const programs = backend === 'user' ? USER_PROGRAMS : KERNEL_PROGRAMS;
  const deadline = Date.now() + opts.minutes * 60000;
  const runs: Run[] = [];
  const refused: Run[] = [];
  while (Date.now() < deadline) {
    const run = r() < 0.5 ? await programRun(backend, pick(r, programs), r) : await workloadRun(cfg, backend, probes, r);
    if (run.refused) {
      refused.push(run);
      say(`probe refused by name, left out: ${run.what}: ${run.reason}`);
      continue;
    }
    runs.push(run);
    say(`run ${runs.length}: ${run.ok ? 'ok' : `FAILED at ${run.stage}: ${run.reason}`}: ${run.what}`);
  }
  const failed = runs.filter((x) => !x.ok);
  say(`\nfailures (${failed.length}):`);
  for (const f of failed) say(`  ${f.stage}: ${f.reason} — ${f.what}`);
  if (refused.length) say(`probes refused by name (${refused.length}, not counted): ${refused.map((x) => x.what.split(':')[0]).join('; ')}`);
  say(`${runs.length} runs, ${runs.length - failed.length} passed, ${failed.length} failed (${opts.minutes} min, ${backend} backend, seed ${seed})`);
  return failed.length ? 1 : 0;
}

/** A kernel soak from outside the VM: boot it and soak in there. */
async function inVm(): Promise<number> {
  const kernel = await ensureKernel();
  await buildKmod(kernel);
  const r = await runInVm({
    argv: ['node', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    cwd: packageRoot, kernel, timeoutSec: opts.minutes * 60 + 900, quietLimitSec: 900,
    onStdout: (c) => process.stdout.write(c), onStderr: (c) => process.stderr.write(c),
  });
  const trouble = dmesgTrouble(r.dmesg);
  if (trouble.length) say(`the guest's kernel log has ${trouble.length} trouble lines:\n${trouble.join('\n')}`);
  if (r.timedOut) say('the soak did not end in time: the VM was killed');
  return r.exitCode || (trouble.length || r.timedOut ? 1 : 0);
}

(opts.backend === 'kernel' && !process.env.CR_LAB_IN_VM ? inVm() : soak()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`soak: ${err.message}\n`);
    process.exitCode = 1;
  },
);
