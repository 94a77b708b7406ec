/**
 * `npm run fuzz -- [--count N] [--seed S] [--first N] [--debug-kernel] [--verbose]`:
 * restart N mutated images (default 1000, cases numbered from --first) in
 * the cr-lab VM and print how many were refused, restarted, or misbehaved,
 * with each misbehaving case on its own line, ready to be rerun alone with
 * `--seed S --first N --count 1`.  Outside the VM it boots one (the debug flavour of the
 * kernel with --debug-kernel: KASAN, UBSAN, lockdep, ...) and runs itself
 * inside; the guest's kernel log is checked again when the VM ends.
 * Exits 1 if any case misbehaved.
 */
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ensureEngine } from '../../../backends/kernel/sys.js';
import { packageRoot } from '../../../userspace/paths.js';
import { buildKmod, ensureKernel } from '../../../vm-images/kernel.js';
import { dmesgTrouble, runInVm } from '../../../vm-images/runner.js';
import { targets } from './mutate.js';
import { fuzz, makeSeeds, raisePidMax } from './run.js';
import { count } from '../../lib/cli.js';

const program = new Command('fuzz')
  .description('restart mutated checkpoint images in the cr-lab VM and sort the outcomes')
  .option('--count <n>', 'how many images', count, 1000)
  .option('--seed <n>', 'the run seed: the same seed and case number give the same mutation', count, 20261201)
  .option('--first <n>', 'the first case number', count, 0)
  .option('--debug-kernel', 'run under the debug flavour of the kernel (KASAN, UBSAN, lockdep, ...)', false)
  .option('--verbose', 'print every case', false)
  .parse();
const opts = program.opts<{ count: number; seed: number; first: number; debugKernel: boolean; verbose: boolean }>();
const say = (line: string): boolean => process.stdout.write(`${line}\n`);

async function inVm(): Promise<number> {
  const why = ensureEngine();
  if (why) throw new Error(why);
  raisePidMax();
  const seeds = await makeSeeds(say);
  const all = targets(seeds);
  const types = new Set(all.flatMap((t) => ('type' in t ? [t.type] : [])));
  say(`fuzzing ${opts.count} images (seed ${opts.seed}, cases from ${opts.first}) on the ${process.env.CR_LAB_KERNEL_FLAVOUR ?? 'running'} kernel: ${all.length} targets, the fields of ${types.size} object types and the structure`);
  const t = await fuzz(seeds, { first: opts.first, count: opts.count, runSeed: opts.seed }, (n, o, what) => {
    if (opts.verbose || o.kind === 'misbehaved') say(`case ${n}: ${o.kind}${o.why ? ` (${o.why})` : ''}: ${what}`);
    if ((n + 1 - opts.first) % 100 === 0) say(`${n + 1 - opts.first} cases done`);
  });
  say(`${t.cases} images: ${t.refused} refused, ${t.restarted} restarted, ${t.misbehaved.length} misbehaved (${t.seconds.toFixed(0)} s)`);
  return t.misbehaved.length ? 1 : 0;
}

async function outside(): Promise<number> {
  const kernel = await ensureKernel({ flavour: opts.debugKernel ? 'debug' : 'normal' });
  await buildKmod(kernel);
  const self = fileURLToPath(import.meta.url);
  const args = ['--count', String(opts.count), '--seed', String(opts.seed), '--first', String(opts.first), ...(opts.verbose ? ['--verbose'] : [])];
  const r = await runInVm({
    argv: ['node', self, ...args],
    cwd: packageRoot,
    kernel,
    timeoutSec: 900 + opts.count * 3,
    quietLimitSec: 900,
    onStdout: (c) => process.stdout.write(c),
    onStderr: (c) => process.stderr.write(c),
  });
  const trouble = dmesgTrouble(r.dmesg);
  if (trouble.length) say(`the guest's kernel log has ${trouble.length} trouble lines:\n${trouble.join('\n')}`);
  if (r.timedOut) say('the fuzz run timed out; the VM was killed');
  return r.exitCode || (trouble.length ? 1 : 0);
}

(process.env.CR_LAB_IN_VM ? inVm() : outside()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`fuzz: ${err.message}\n`);
    process.exitCode = 1;
  },
);
