/**
 * `npm test`: every test file under dist/test, each in its own uvu run,
 * then one closing line with the totals: "N passed, N failed".
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { packageRoot } from '../userspace/paths.js';

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

const uvu = path.join(packageRoot, 'node_modules', 'uvu', 'bin.js');
const testRoot = path.join(packageRoot, 'dist', 'test');

/** Host test suites: folders of dist/test that hold *.test.js, except those run inside the VM. */
function suites(): string[] {
  const only = process.argv.slice(2);
  return fs.readdirSync(testRoot, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.readdirSync(path.join(testRoot, e.name)).some((f) => f.endsWith('.test.js')))
    .map((e) => e.name)
    .filter((name) => !only.length || only.includes(name))
    .sort();
}

async function runSuite(name: string): Promise<Totals> {
  process.stdout.write(`\n== ${name}\n`);
  const r = await execa(process.execPath, [uvu, path.join('dist', 'test', name), '\\.test\\.js$'], {
    cwd: packageRoot, reject: false, all: true, stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'],
  });
  const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(r.all ?? '')?.[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  // A suite that crashed before uvu's summary counts as one failure.
  const failed = r.exitCode !== 0 && total === passed ? 1 : total - passed - skipped;
  return { passed, failed, skipped };
}

const totals: Totals = { passed: 0, failed: 0, skipped: 0 };
for (const name of suites()) {
  const t = await runSuite(name);
  totals.passed += t.passed;
  totals.failed += t.failed;
  totals.skipped += t.skipped;
}
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
process.exitCode = totals.failed ? 1 : 0;
