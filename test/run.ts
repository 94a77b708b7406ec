/**
 * `npm test`: every uvu suite (a folder of dist/test holding *.test.js),
 * each in its own run — the host suites here, the VM suites inside the
 * cr-lab VM (its kernel built or taken from the cache first) — then one
 * closing line with the totals: "N passed, N failed".
 *
 *   node dist/test/run.js [options] [SUITE…]     (default: all suites)
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

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

/** Suites that need the cr-lab kernel: they run inside the VM. */
const VM_SUITES = new Set(['kernel']);
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

const program = new Command('run')
  .description('run the uvu suites (host suites here, VM suites in the cr-lab VM) and print "N passed, N failed"')
  .argument('[suites...]', 'suites to run (default: all)')
  .option('--suites-dir <dir>', 'where the compiled suites are', path.join(packageRoot, 'dist', 'test'))
  .option('--vm-stall <sec>', 'kill a VM suite whose guest shows no sign of life (no heartbeat) for this long', seconds, 60)
  .option('--debug-kernel', 'run the VM suites on the debug flavour of the kernel (KASAN, UBSAN, lockdep, ...)', false)
  .parse();
const opts = program.opts<{ suitesDir: string; vmStall: number; debugKernel: boolean }>();

function suites(only: string[]): string[] {
  return fs.readdirSync(opts.suitesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.readdirSync(path.join(opts.suitesDir, e.name)).some((f) => f.endsWith('.test.js')))
    .map((e) => e.name)
    .filter((name) => !only.length || only.includes(name))
    .sort();
}

/** Totals from uvu's summary; a run that ended without one counts as a failure. */
function totalsOf(output: string, ok: boolean): Totals {
  const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(output)?.[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  const failed = !ok && total === passed + skipped ? 1 : total - passed - skipped;
  return { passed, failed, skipped };
}

/** Why a run that exited `code` without a summary failed, in a few words. */
const noSummary = (output: string, code: number | undefined, signal?: string): string | undefined =>
  /Total:\s+\d+/.test(output) ? undefined : `ended (${signal ?? `exit ${code}`}) before uvu printed its summary`;

async function hostSuite(name: string): Promise<Totals> {
  const run = execa(process.execPath, [uvu, path.join(opts.suitesDir, name), PATTERN], {
    cwd: packageRoot, reject: false, all: true, stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'],
  });
  // uvu prints a mark per test: silence this long means a test hangs.
  let quiet: NodeJS.Timeout | undefined;
  let hung = false;
  const arm = () => {
    clearTimeout(quiet);
    quiet = setTimeout(() => {
      hung = true;
      run.kill('SIGKILL');
    }, QUIET_SEC * 1000);
  };
  arm();
  run.all?.on('data', arm);
  const r = await run;
  clearTimeout(quiet);
  if (hung) throw new Error(`printed nothing for ${QUIET_SEC} s: killed`);
  const why = noSummary(r.all ?? '', r.exitCode, r.signal);
  if (why) throw new Error(why);
  return totalsOf(r.all ?? '', r.exitCode === 0);
}

async function vmSuite(name: string): Promise<Totals> {
  const kernel = await ensureKernel({ flavour: opts.debugKernel ? 'debug' : 'normal' });
  await buildKmod(kernel);
  const r = await runInVm({
    argv: ['node', uvu, path.join(opts.suitesDir, name), PATTERN],
    cwd: packageRoot, timeoutSec: VM_TIMEOUT_SEC, quietLimitSec: QUIET_SEC, stallLimitSec: opts.vmStall, kernel,
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

const totals: Totals = { passed: 0, failed: 0, skipped: 0 };
try {
  for (const name of suites(program.args)) {
    const vm = VM_SUITES.has(name);
    process.stdout.write(`\n== ${name}${vm ? ' (in the VM)' : ''}\n`);
    let t: Totals;
    try {
      t = vm ? await vmSuite(name) : await hostSuite(name);
    } catch (err) {
      // The reason on one line; what explains it (a build's last output, the guest's) indented below.
      const [reason, ...details] = String((err as Error).message ?? err).trimEnd().split('\n');
      process.stdout.write(`\n✘ suite ${name} failed: ${reason}\n${details.slice(-20).map((l) => `    ${l}\n`).join('')}`);
      t = { passed: 0, failed: 1, skipped: 0 };
    }
    totals.passed += t.passed;
    totals.failed += t.failed;
    totals.skipped += t.skipped;
  }
} catch (err) {
  process.stdout.write(`\n✘ the test runner failed: ${String((err as Error).message ?? err).split('\n')[0]}\n`);
  totals.failed += 1;
} finally {
  process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
  process.exitCode = totals.failed ? 1 : 0;
}
