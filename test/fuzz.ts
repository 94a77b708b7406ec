/**
 * `npm run fuzz -- [--backend=user|kernel] [--count N] [--seed S] [--first N] [--verbose]`:
 * restore damaged images with a backend and sort the outcomes — refused
 * with a one-line error, restored as the image says, or misbehaved — with
 * each misbehaving case on its own line, ready to be rerun alone with
 * `--seed S --first N --count 1`. Exits 1 if any case misbehaved.
 *
 *   --backend=user     test/user/fuzz: structure-aware mutations of the
 *                      protobuf images of a dozen dumped test programs,
 *                      restored in a sandbox on this machine;
 *   --backend=kernel   (the default) the engine's fuzzer, in the VM:
 *                      test/kernel/fuzz/main.js, given the other options
 *                      (and --debug-kernel, which it alone takes).
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import { execa } from 'execa';
import { packageRoot } from '../userspace/paths.js';
import { fuzzUser } from './user/fuzz/run.js';
import { count } from './lib/cli.js';

const program = new Command('fuzz')
  .description('restore damaged images with a backend and sort the outcomes')
  .addOption(new Option('--backend <name>', 'whose restore to fuzz').choices(['user', 'kernel']).default('kernel'))
  .option('--count <n>', 'how many images', count, 1000)
  .option('--seed <n>', 'the run seed: the same seed and case number give the same mutation', count, 20261201)
  .option('--first <n>', 'the first case number', count, 0)
  .option('--verbose', 'print every case', false)
  .allowUnknownOption()
  .parse();
const opts = program.opts<{ backend: 'user' | 'kernel'; count: number; seed: number; first: number; verbose: boolean }>();
const say = (line: string): boolean => process.stdout.write(`${line}\n`);

/** The kernel side: the engine's own fuzzer, with every option but --backend. */
async function kernel(): Promise<number> {
  const main = path.join(packageRoot, 'dist', 'test', 'kernel', 'fuzz', 'main.js');
  const args = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--backend') && all[i - 1] !== '--backend');
  return (await execa(process.execPath, [main, ...args], { stdio: 'inherit', reject: false })).exitCode ?? 1;
}

async function user(): Promise<number> {
  say(`fuzzing ${opts.count} user-backend images (seed ${opts.seed}, cases from ${opts.first})`);
  const reasons = new Map<string, number>();
  const t = await fuzzUser({
    count: opts.count, seed: opts.seed, first: opts.first, log: say,
    onCase: (n, what, o) => {
      if (opts.verbose || o.kind === 'misbehaved') say(`case ${n}: ${o.kind}${o.why ? ` (${o.why})` : ''}: ${what}`);
      if (o.kind === 'refused') {
        // What caught it, without the numbers and names that differ from case to case.
        const why = (o.why ?? '').replace(/\/\S+/g, 'PATH').replace(/0x[0-9a-f]+/g, 'N').replace(/\d+/g, 'N');
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
      if ((n + 1 - opts.first) % 100 === 0) say(`${n + 1 - opts.first} cases done`);
    },
  });
  say(`seeds: ${t.seeds.join(', ')}`);
  say('most frequent refusals:');
  for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 12)) say(`  ${String(n).padStart(6)}  ${why}`);
  for (const m of t.misbehaved.filter((x) => x.n < 0)) say(`${m.what}: misbehaved (${m.why})`);
  say(`${t.cases} images: ${t.refused} refused, ${t.restored} restored, ${t.misbehaved.length} misbehaved (${t.seconds.toFixed(0)} s)`);
  return t.misbehaved.length ? 1 : 0;
}

(opts.backend === 'user' ? user() : kernel()).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`fuzz: ${err.message}\n`);
    process.exitCode = 1;
  },
);
