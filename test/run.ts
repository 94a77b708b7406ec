/**
 * `npm test`: every uvu suite (a folder of dist/test holding *.test.js),
 * each in its own run — the host suites here, the VM suites inside the
 * cr-lab VM (its kernel built or taken from the cache first) — then one
 * closing line with the totals: "N passed, N failed".
 *
 *   node dist/test/run.js [SUITE…]     (default: all suites)
 */
import fs from 'node:fs';
import path from 'node:path';
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
const uvu = path.join(packageRoot, 'node_modules', 'uvu', 'bin.js');
const testRoot = path.join(packageRoot, 'dist', 'test');
const PATTERN = '\\.test\\.js$';

function suites(): string[] {
  const only = process.argv.slice(2);
  return fs.readdirSync(testRoot, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.readdirSync(path.join(testRoot, e.name)).some((f) => f.endsWith('.test.js')))
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

async function hostSuite(name: string): Promise<Totals> {
  const r = await execa(process.execPath, [uvu, path.join('dist', 'test', name), PATTERN], {
    cwd: packageRoot, reject: false, all: true, stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'],
  });
  return totalsOf(r.all ?? '', r.exitCode === 0);
}

async function vmSuite(name: string): Promise<Totals> {
  const kernel = await ensureKernel();
  await buildKmod(kernel);
  const r = await runInVm({
    argv: ['node', uvu, path.join('dist', 'test', name), PATTERN],
    cwd: packageRoot, timeoutSec: VM_TIMEOUT_SEC, kernel,
    onStdout: (chunk) => process.stdout.write(chunk), onStderr: (chunk) => process.stderr.write(chunk),
  });
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
for (const name of suites()) {
  process.stdout.write(`\n== ${name}${VM_SUITES.has(name) ? ' (in the VM)' : ''}\n`);
  const t = VM_SUITES.has(name) ? await vmSuite(name) : await hostSuite(name);
  totals.passed += t.passed;
  totals.failed += t.failed;
  totals.skipped += t.skipped;
}
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
process.exitCode = totals.failed ? 1 : 0;
