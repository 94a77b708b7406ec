/**
 * restart(2) reads untrusted input.  The structure-aware fuzzer
 * (test/kernel/fuzz/: every field of every object type, objects deleted,
 * duplicated, moved, retyped, inserted and spliced between images, bytes
 * flipped, truncations) runs a few hundred mutations of real images here:
 * each must be refused with no task left running, or restart the whole
 * tree, and the kernel log must stay free of BUG, WARNING, KASAN, UBSAN
 * and lockdep reports.  `npm run fuzz -- --count N` runs as many as asked.
 */
import * as assert from 'uvu/assert';
import { ensureEngine } from '../../backends/kernel/sys.js';
import { skipReason } from './env.js';
import { fuzz, makeSeeds, raisePidMax } from './fuzz/run.js';
import { test } from '../lib/modes.js';

const t = skipReason ? test.skip : test;
const CASES = 300;

t(`${CASES} mutated images are each refused or restarted whole, with a clean kernel log`, async () => {
  assert.is(ensureEngine(), undefined);
  raisePidMax();
  const seeds = await makeSeeds();
  const totals = await fuzz(seeds, { first: 0, count: CASES, runSeed: 20261201 });
  console.log(`  ${totals.cases} images from ${seeds.length} seeds: ${totals.refused} refused, ${totals.restarted} restarted, ${totals.misbehaved.length} misbehaved (${totals.seconds.toFixed(0)} s)`);
  assert.equal(totals.misbehaved, []);
  assert.ok(totals.refused > CASES / 2, 'most mutations are refused');
});

test.run();
