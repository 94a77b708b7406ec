/**
 * `npm test`: every uvu suite (a folder of dist/test holding *.test.js),
 * each in its own run — the host suites here, the VM suites inside the
 * cr-lab VM (its kernel built or taken from the cache first) — then one
 * closing line with the totals: "N passed, N failed".
 *
 *   node dist/test/run.js [options] [SUITE…]     (default: all suites)
 *
 * `--mode once|iter|snap|pre|all` chooses how the per-feature tests of the
 * two backends (the suites `user` and `kernel`) checkpoint and restart
 * their programs (test/lib/modes.ts): the runner passes it to every suite,
 * on the host and in the VM, as CR_TEST_MODE. Without `--mode`, every
 * suite runs once (`once`) and then the tests marked as the sample run in
 * `iter` mode (CR_TEST_SAMPLE=1); `--mode all` runs every suite in `once`
 * and the per-feature suites in each other mode. The totals are printed
 * per mode, then overall.
 *
 * Nothing a suite does can stop the others or the closing line: a suite
 * that cannot start, hangs (no output for QUIET_SEC; a VM guest without a
 * heartbeat for --vm-stall seconds) or dies counts as failed, with its
 * reason on one line, and the exit status says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { execa } from 'execa';
import { packageRoot } from '../userspace/paths.js';
import { buildKmod, ensureKernel } from '../vm-images/kernel.js';
import { dmesgTrouble, runInVm } from '../vm-images/runner.js';
import { watchdog } from './lib/watchdog.js';

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

/** Suites that need the cr-lab kernel: they run inside the VM. */
const VM_SUITES = new Set(['kernel']);
/** The per-feature suites of the two backends: the ones the test modes apply to. */
const MODE_SUITES = new Set(['user', 'kernel']);
const MODES = ['once', 'iter', 'snap', 'pre'] as const;
type Mode = (typeof MODES)[number];
/** One pass: a mode, and whether only the sample of its tests runs. */
interface Pass {
  mode: Mode;
  sample: boolean;
}
const VM_TIMEOUT_SEC = 1800;
/** A suite that prints nothing for this long is hung: it is killed and counted as failed. */
const QUIET_SEC = 600;
const uvu = path.join(packageRoot, 'node_modules', 'uvu', 'bin.js');
const PATTERN = '\\.test\\.js$';

const seconds = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
  return n;
};

const modeOption = (v: string): string => {
  if (v !== 'all' && !(MODES as readonly string[]).includes(v)) throw new InvalidArgumentError(`one of ${MODES.join(', ')}, all`);
  return v;
};

const program = new Command('run')
  .description('run the uvu suites (host suites here, VM suites in the cr-lab VM) and print "N passed, N failed"')
  .argument('[suites...]', 'suites to run (default: all)')
  .option('--suites-dir <dir>', 'where the compiled suites are', path.join(packageRoot, 'dist', 'test'))
  .option('--vm-stall <sec>', 'kill a VM suite whose guest shows no sign of life (no heartbeat) for this long', seconds, 60)
  .option('--mode <mode>', 'how the per-feature tests checkpoint and restart: once, iter, snap, pre, or all of them (default: once, then the sample in iter)', modeOption)
  .option('--debug-kernel', 'run the VM suites on the debug flavour of the kernel (KASAN, UBSAN, lockdep, ...)', false)
  .parse();
const opts = program.opts<{ suitesDir: string; vmStall: number; mode?: string; debugKernel: boolean }>();

const passes: Pass[] = opts.mode === 'all' ? MODES.map((mode) => ({ mode, sample: false }))
  : opts.mode ? [{ mode: opts.mode as Mode, sample: false }]
  : [{ mode: 'once', sample: false }, { mode: 'iter', sample: true }];
/** What a suite's tests see of the pass. */
const passEnv = (p: Pass): Record<string, string> => ({ CR_TEST_MODE: p.mode, ...(p.sample ? { CR_TEST_SAMPLE: '1' } : {}) });
const passName = (p: Pass) => `${p.mode}${p.sample ? ' (sample)' : ''}`;

function suites(only: string[]): string[] {
  return fs.readdirSync(opts.suitesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.readdirSync(path.join(opts.suitesDir, e.name)).some((f) => f.endsWith('.test.js')))
    .map((e) => e.name)
    .filter((name) => !only.length || only.includes(name))
    .sort();
}

/**
 * Totals from uvu's summary (its Total counts the tests run, not the
 * skipped ones; a count may be coloured); a run that ended without one
 * counts as a failure.
 */
function totalsOf(output: string, ok: boolean): Totals {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(plain)?.[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  const failed = !ok && total === passed ? 1 : total - passed;
  return { passed, failed, skipped };
}

/** Why a run that exited `code` without a summary failed, in a few words. */
const noSummary = (output: string, code: number | undefined, signal?: string): string | undefined =>
  /Total:\s+\d+/.test(output) ? undefined : `ended (${signal ?? `exit ${code}`}) before uvu printed its summary`;

async function hostSuite(name: string, pass: Pass): Promise<Totals> {
  const run = execa(process.execPath, [uvu, path.join(opts.suitesDir, name), PATTERN], {
    cwd: packageRoot, env: passEnv(pass), reject: false, all: true, stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'],
  });
  // uvu prints a mark per test: silence this long means a test hangs.
  const dog = watchdog(QUIET_SEC * 1000, () => run.kill('SIGKILL'));
  run.all?.on('data', dog.arm);
  const r = await run;
  dog.stop();
  if (dog.fired) throw new Error(`printed nothing for ${QUIET_SEC} s: killed`);
  const why = noSummary(r.all ?? '', r.exitCode, r.signal);
  if (why) throw new Error(why);
  return totalsOf(r.all ?? '', r.exitCode === 0);
}

async function vmSuite(name: string, pass: Pass): Promise<Totals> {
  const kernel = await ensureKernel({ flavour: opts.debugKernel ? 'debug' : 'normal' });
  await buildKmod(kernel);
  const r = await runInVm({
    argv: ['node', uvu, path.join(opts.suitesDir, name), PATTERN],
    cwd: packageRoot, env: passEnv(pass), timeoutSec: VM_TIMEOUT_SEC, quietLimitSec: QUIET_SEC, stallLimitSec: opts.vmStall, kernel,
    onStdout: (chunk) => process.stdout.write(chunk), onStderr: (chunk) => process.stderr.write(chunk),
  });
  if (r.timedOut) throw new Error(`did not finish within ${VM_TIMEOUT_SEC} s: the VM was killed`);
  const why = noSummary(r.stdout, r.exitCode);
  if (why) throw new Error(`${why}${dmesgTrouble(r.dmesg).length ? `; kernel log: ${dmesgTrouble(r.dmesg)[0]!.trim()}` : ''}`);
  const totals = totalsOf(r.stdout, r.exitCode === 0);
  // Whatever the tests said, a kernel that complained is a failure.
  const trouble = dmesgTrouble(r.dmesg);
  if (trouble.length) {
    process.stdout.write(`\nkernel log trouble during ${name}:\n${trouble.join('\n')}\n`);
    totals.failed += 1;
  }
  return totals;
}

const line = (t: Totals) => `${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}`;
const add = (to: Totals, t: Totals) => {
  to.passed += t.passed;
  to.failed += t.failed;
  to.skipped += t.skipped;
};

const totals: Totals = { passed: 0, failed: 0, skipped: 0 };
const perPass: [Pass, Totals][] = [];
try {
  for (const pass of passes) {
    const passTotals: Totals = { passed: 0, failed: 0, skipped: 0 };
    perPass.push([pass, passTotals]);
    for (const name of suites(program.args).filter((n) => pass.mode === 'once' || MODE_SUITES.has(n))) {
      const vm = VM_SUITES.has(name);
      process.stdout.write(`\n== ${name} (${passName(pass)}${vm ? ', in the VM' : ''})\n`);
      let t: Totals;
      try {
        t = vm ? await vmSuite(name, pass) : await hostSuite(name, pass);
      } catch (err) {
        // The reason on one line; what explains it (a build's last output, the guest's) indented below.
        const [reason, ...details] = String((err as Error).message ?? err).trimEnd().split('\n');
        process.stdout.write(`\n✘ suite ${name} (${passName(pass)}) failed: ${reason}\n${details.slice(-20).map((l) => `    ${l}\n`).join('')}`);
        t = { passed: 0, failed: 1, skipped: 0 };
      }
      add(passTotals, t);
    }
    add(totals, passTotals);
  }
} catch (err) {
  process.stdout.write(`\n✘ the test runner failed: ${String((err as Error).message ?? err).split('\n')[0]}\n`);
  totals.failed += 1;
} finally {
  process.stdout.write('\n');
  if (perPass.length > 1) for (const [pass, t] of perPass) process.stdout.write(`${passName(pass)}: ${line(t)}\n`);
  process.stdout.write(`${line(totals)}\n`);
  process.exitCode = totals.failed ? 1 : 0;
}
