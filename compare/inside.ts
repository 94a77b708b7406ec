/**
 * The part of the comparison that runs inside the VM (or on the host with
 * `npm run compare -- --host`): measures the machine's own limits, then
 * runs the plan through the backends in-process. It talks to the host in
 * lines on stdout:
 *
 *   @@cr-compare {"t":"plan"|"check"|"start"|"record"|"info",...}
 *   @@cr-compare-result {raw results as JSON}
 *
 *   node dist/compare/inside.js PLAN_JSON [SCRATCH_DIR]
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ensureEngine } from '../backends/kernel/sys.js';
import type { Backend } from '../backends/types.js';
import { crCommand, packageRoot } from '../userspace/paths.js';
import { runAll, type HarnessConfig, type HarnessEvent } from './harness.js';
import type { Plan } from './plan.js';
import type { Bandwidth, RawResults } from './report.js';
import { becomeSubreaper } from './sys.js';

export const PREFIX = '@@cr-compare ';
export const RESULT_PREFIX = '@@cr-compare-result ';

const bin = (name: string) => path.join(packageRoot, 'compare', 'workloads', 'bin', name);

async function loadRegistry(notes: string[]): Promise<Record<string, Backend>> {
  try {
    const m = await import('../backends/index.js');
    return m.backends as Record<string, Backend>;
  } catch (err) {
    notes.push(`backends/index.js did not load (${(err as Error).message.split('\n')[0]}): every backend shows as not available`);
    return {};
  }
}

/** The buffer membw uses where the plan has no mem case. */
const DEFAULT_BANDWIDTH_MIB = 64;

async function measureBandwidth(dir: string, mib: number): Promise<Bandwidth | undefined> {
  const r = await execa(bin('membw'), [dir, String(mib)], { reject: false });
  try {
    return JSON.parse(r.stdout) as Bandwidth;
  } catch {
    return undefined;
  }
}

/** Best wall time of a command that does next to nothing (its start-up), over three runs; undefined if it fails. */
async function startupMs(argv: string[]): Promise<number | undefined> {
  const f = path.join(os.tmpdir(), `cr-compare-start.${process.pid}`);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await execa(bin('rusage'), [f, ...argv], { reject: false });
    const m = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').match(/wall_us=(\d+)/) : null;
    if (m && r.exitCode === 0) times.push(Number(m[1]) / 1000);
  }
  fs.rmSync(f, { force: true });
  return times.length ? Math.min(...times) : undefined;
}

export async function inside(plan: Plan, scratch: string, emit: (ev: HarnessEvent) => void, registry?: Record<string, Backend>): Promise<RawResults> {
  const notes: string[] = [];
  const startedAt = new Date().toISOString();
  fs.mkdirSync(scratch, { recursive: true });
  if (!becomeSubreaper()) notes.push('could not become a child subreaper: trees restored detached may be reaped by init');
  const reg = registry ?? (await loadRegistry(notes));
  // Load the kernel backend's engine now, so that no timed run pays for it.
  if (plan.backends.includes('kernel') && !registry) {
    const why = ensureEngine();
    if (why) notes.push(`kernel engine: ${why}`);
  }
  // At each mem case's size: what tmpfs takes per second depends on how much is written (pages to allocate, memory
  // left; under TCG a 1 GiB write ran at 0.8x a 256 MiB one in one boot, 1.2x a 64 MiB one in another), so each
  // image is held against a write of its own size.
  const memSizes = [...new Set(plan.cases.flatMap((c) => (c.kind === 'bench' && c.workload === 'mem' && c.size ? [c.size] : [])))].sort((a, b) => a - b);
  emit({ t: 'info', msg: `measuring memory and tmpfs bandwidth (${(memSizes.length ? memSizes : [DEFAULT_BANDWIDTH_MIB]).join(', ')} MiB)` });
  const bandwidths: Bandwidth[] = [];
  for (const mib of memSizes.length ? memSizes : [DEFAULT_BANDWIDTH_MIB]) {
    const b = await measureBandwidth(scratch, mib);
    if (b) bandwidths.push(b);
    else notes.push(`membw ${mib} MiB failed: throughput at that size is held against the nearest size measured`);
  }
  emit({ t: 'info', msg: 'timing node, cr, criu and koffi start-up, and cr check' });
  const startup = {
    nodeStartMs: await startupMs([process.execPath, '-e', '0']),
    crVersionMs: await startupMs([process.execPath, crCommand, '--version']),
    criuVersionMs: await startupMs([process.env.CR_CRIU ?? 'criu', '--version']),
    koffiLoadMs: await startupMs([process.execPath, '-e', `require(${JSON.stringify(createRequire(import.meta.url).resolve('koffi'))})`]),
    crCheckMs: {} as Record<string, number>,
  };
  for (const b of plan.backends) {
    const ms = await startupMs([process.execPath, crCommand, 'check', `--backend=${b}`]);
    if (ms !== undefined) startup.crCheckMs[b] = ms;
  }
  const cfg: HarnessConfig = {
    registry: reg,
    backends: plan.backends,
    reps: plan.reps,
    cliReps: plan.cliReps,
    featureReps: plan.featureReps,
    modes: plan.modes,
    scratch,
    wlBin: bin('wl'),
    rusageBin: bin('rusage'),
    crCli: [process.execPath, crCommand],
    criuBin: process.env.CR_CRIU ?? 'criu',
    timeoutScale: Number(process.env.CR_COMPARE_TIMEOUT_SCALE ?? 1),
    emit,
  };
  const meta: RawResults['meta'] = {
    startedAt,
    kernel: os.release(),
    where: process.env.CR_COMPARE_WHERE ?? `${os.hostname()} (${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 1048576)} MiB)`,
    options: { ...plan, cases: undefined, workloads: [...new Set(plan.cases.map((c) => (c.kind === 'feature' ? 'features' : c.workload)))] },
    bandwidths,
    ...startup,
    notes,
  };
  // Sent before the runs: a run cut short still has what it needs for a report.
  emit({ t: 'meta', meta });
  const { records, checks } = await runAll(cfg, plan.cases);
  return { meta: { ...meta, finishedAt: new Date().toISOString() }, checks, records };
}

// entry point
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const plan = JSON.parse(process.argv[2]) as Plan;
  const scratch = process.argv[3] ?? path.join(os.tmpdir(), 'cr-compare');
  const emit = (ev: HarnessEvent) => process.stdout.write(`${PREFIX}${JSON.stringify(ev)}\n`);
  inside(plan, scratch, emit)
    .then((raw) => {
      process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(raw)}\n`);
      fs.rmSync(scratch, { recursive: true, force: true });
    })
    .catch((err) => {
      process.stderr.write(`compare (inside): ${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    });
}
