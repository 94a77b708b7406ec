#!/usr/bin/env node
/**
 * npm run compare [-- options]: build the workloads, boot the project VM
 * once, run every workload × size × backend × way of invoking inside it,
 * and write compare/results/<timestamp>/ (raw.json, report.md, *.svg).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { execa } from 'execa';
import { packageRoot } from '../userspace/paths.js';
import type { CaseSpec, HarnessEvent, RunRecord } from './harness.js';
import { inside, PREFIX, RESULT_PREFIX } from './inside.js';
import { makePlan, type Plan } from './plan.js';
import { makePlots } from './plots.js';
import { renderReport, rowsOf, type RawResults } from './report.js';
import { largestMem, stepLimitSec } from './workloads.js';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};

const program = new Command('compare')
  .description('compare the user, kernel and CRIU backends on the same workloads, in one VM boot')
  .option('-w, --workloads <list>', 'mem,tree,threads,files,mix,features,startup (default: all but startup; startup: only the start-up lines, from the smallest mem case)')
  .option('-s, --sizes <list>', 'sizes for every workload ("8,32") or per workload ("mem=8,32;tree=2,8")')
  .option('-b, --backends <list>', 'user,kernel,criu, or a variant: kernel+cow, +map, +pre, user+pre, +lazy, criu+pre (default: the three, and in a full run the mem workload\'s variants as library calls)')
  .option('-r, --reps <n>', 'repetitions per timed case (default 5, --quick 2)', positive)
  .option('--cli-reps <n>', 'repetitions of the cr-command mode, two Node start-ups each (default: --reps; --quick 1)', positive)
  .option('--feature-reps <n>', 'repetitions per feature probe (default 1)', positive)
  .option('-m, --modes <list>', 'lib (in-process call), cli (the cr command), native (the criu command) (default: all)')
  .option('-q, --quick', 'small sizes, 2 repetitions (1 of the cr command): a few minutes under TCG')
  .option('-o, --out <dir>', 'results directory (default compare/results/<timestamp>)')
  .option('--host', 'run on this machine instead of the VM (CRIU 3.17 cannot run on kernels ≥ 6.13)')
  .option('--timeout <sec>', 'limit for the whole VM run', positive)
  .option('--mem <MiB>', 'VM memory (default: 2048, or enough for the largest mem case, its image and its restore)', positive)
  .option('--from <raw.json>', 'only re-render report.md and the plots from an earlier raw.json (into --out, default its folder)');

function progressSink(): { onEvent(ev: HarnessEvent): void; stop(): void } {
  const tty = process.stderr.isTTY;
  const bar = new cliProgress.SingleBar(
    { format: ' {bar} {value}/{total} | ✅ {ok} ❌ {bad} | {label}', hideCursor: true, stream: process.stderr, noTTYOutput: !tty, notTTYSchedule: 10_000 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let ok = 0, bad = 0, label = '';
  return {
    onEvent(ev) {
      if (ev.t === 'info') process.stderr.write(`compare: ${ev.msg}\n`);
      else if (ev.t === 'check') process.stderr.write(`compare: backend ${ev.backend}: ${ev.ok ? 'check passed' : ev.reason}\n`);
      else if (ev.t === 'plan') {
        bar.start(ev.total, 0, { ok, bad, label: 'starting' });
        started = true;
      } else if (ev.t === 'start') {
        label = ev.label;
        if (started) bar.update({ label });
      } else if (ev.t === 'record') {
        ev.record.ok ? ok++ : bad++;
        if (started) bar.increment({ ok, bad, label });
        if (!tty && !ev.record.ok) process.stderr.write(`compare: ❌ ${label}: ${ev.record.stage}: ${ev.record.reason}\n`);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** What the VM has sent so far: enough for a report if the run is cut short. */
interface Streamed {
  meta?: RawResults['meta'];
  checks: RawResults['checks'];
  records: RunRecord[];
}

async function runInsideVm(plan: Plan, o: { timeout?: number; mem: number }, sink: ReturnType<typeof progressSink>): Promise<RawResults> {
  const [{ runInVm }, { buildKmod, ensureKernel }] = await Promise.all([import('../vm-images/runner.js'), import('../vm-images/kernel.js')]);
  // the kernel backend's engine must be built for the kernel the VM boots
  const kernel = await ensureKernel({});
  await buildKmod(kernel);
  let pending = '';
  let result: RawResults | undefined;
  const streamed: Streamed = { checks: {}, records: [] };
  const stdoutTail: string[] = [];
  const onLine = (line: string) => {
    if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length)) as RawResults;
    else if (line.startsWith(PREFIX)) {
      const ev = JSON.parse(line.slice(PREFIX.length)) as HarnessEvent;
      if (ev.t === 'meta') streamed.meta = ev.meta;
      else if (ev.t === 'check') streamed.checks[ev.backend] = { ok: ev.ok, reason: ev.reason, items: ev.items };
      else if (ev.t === 'record') streamed.records.push(ev.record);
      sink.onEvent(ev);
    } else if (line.trim()) stdoutTail.push(line), stdoutTail.splice(0, stdoutTail.length - 20);
  };
  // Every case may take its steps' limits (they grow with its size); the watchdog catches a hung guest sooner.
  const runsOf = (c: CaseSpec) => (plan.backends.length * plan.modes.length + (c.variants?.length ?? 0)) * (c.kind === 'feature' ? plan.featureReps : plan.reps);
  const budgetSec = plan.cases.reduce((sum, c) => sum + 4 * stepLimitSec(c) * runsOf(c), 300);
  const timeoutSec = o.timeout ?? budgetSec;
  process.stderr.write(`compare: booting the VM (${o.mem} MiB, limit ${Math.round(timeoutSec)} s)\n`);
  const onStdout = (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, i));
      pending = pending.slice(i + 1);
    }
  };
  let cutShort: string | undefined;
  let r: Awaited<ReturnType<typeof runInVm>> | undefined;
  try {
    r = await runInVm({
      argv: ['node', path.join(packageRoot, 'dist', 'compare', 'inside.js'), JSON.stringify(plan), '/tmp/cr-compare'],
      kernel,
      cwd: packageRoot,
      timeoutSec,
      memMiB: o.mem,
      env: { CR_COMPARE_WHERE: `QEMU VM (${o.mem} MiB), host ${os.hostname()}` },
      onStdout,
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    if (pending) onLine(pending);
    if (!result) cutShort = `the VM run ended (exit ${r.exitCode}${r.timedOut ? `, killed at its ${timeoutSec} s limit` : ''}) before the last case; last output: ${[...stdoutTail, ...r.stderr.split('\n').slice(-5)].filter(Boolean).slice(-3).join(' / ')}`;
  } catch (err) {
    if (!streamed.meta) throw err;
    cutShort = `the VM failed: ${(err as Error).message.split('\n')[0]}`;
  }
  if (!result) {
    if (!streamed.meta) throw new Error(`${cutShort}; no case had run`);
    result = { meta: { ...streamed.meta, cutShort }, checks: streamed.checks, records: streamed.records };
    process.stderr.write(`compare: ${cutShort}\ncompare: reporting the ${streamed.records.length} runs it finished\n`);
  }
  if (r) {
    Object.assign(result.meta, { accel: r.accel, accelReason: r.accelReason });
    if (r.dmesg && /\b(BUG:|Oops|general protection fault|Kernel panic)/.test(r.dmesg)) result.meta.notes = [...(result.meta.notes ?? []), 'the guest kernel logged trouble (BUG/Oops) during the run; see dmesg.txt'];
    (result as RawResults & { dmesg?: string }).dmesg = r.dmesg;
  }
  return result;
}

async function writeResults(raw: RawResults, out: string): Promise<string> {
  fs.mkdirSync(out, { recursive: true });
  const dmesg = (raw as RawResults & { dmesg?: string }).dmesg;
  delete (raw as RawResults & { dmesg?: string }).dmesg;
  if (dmesg) fs.writeFileSync(path.join(out, 'dmesg.txt'), dmesg);
  fs.writeFileSync(path.join(out, 'raw.json'), `${JSON.stringify(raw, null, 1)}\n`);
  const plots = await makePlots(rowsOf(raw.records));
  for (const p of plots) fs.writeFileSync(path.join(out, p.file), p.svg);
  const md = renderReport(raw, plots);
  fs.writeFileSync(path.join(out, 'report.md'), md);
  return md;
}

async function main(): Promise<number> {
  program.parse();
  const o = program.opts();
  if (o.from) {
    const raw = JSON.parse(fs.readFileSync(o.from, 'utf8')) as RawResults;
    const out = path.resolve(o.out ?? path.dirname(o.from));
    await writeResults(raw, out);
    process.stdout.write(`compare: report re-rendered in ${out}/report.md\n`);
    return 0;
  }
  const plan = makePlan(o);
  process.stderr.write('compare: building the workloads\n');
  await execa('make', ['-s', '-C', path.join(packageRoot, 'compare', 'workloads')], { stdio: 'inherit' });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, 'Z');
  const out = path.resolve(o.out ?? path.join(packageRoot, 'compare', 'results', stamp));
  const sink = progressSink();
  const load0 = os.loadavg()[0];
  let raw: RawResults;
  try {
    raw = o.host
      ? await inside(plan, path.join(os.tmpdir(), `cr-compare-${process.pid}`), (ev) => sink.onEvent(ev))
      : await runInsideVm(plan, { timeout: o.timeout, mem: o.mem ?? Math.max(2048, 3 * largestMem(plan.cases) + 1536) }, sink);
  } finally {
    sink.stop();
  }
  if (o.host) raw.meta.where = `host ${os.hostname()} (not the VM)`;
  // the VM shares the host's cores: say how busy they were, timings depend on it
  raw.meta.notes = [...(raw.meta.notes ?? []), `host load average (1 min) ${load0.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end, on ${os.cpus().length} CPUs`];
  const md = await writeResults(raw, out);
  const matrix = md.slice(md.indexOf('## Feature matrix'), md.indexOf('\n## ', md.indexOf('## Feature matrix') + 5));
  process.stdout.write(`${matrix}\n`);
  const failed = raw.records.filter((r) => !r.ok).length;
  process.stdout.write(`compare: ${raw.records.length - failed}/${raw.records.length} runs passed; report in ${path.relative(process.cwd(), out) || out}/report.md\n`);
  return raw.meta.cutShort ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`compare: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
