/**
 * restore reads untrusted input: a few hundred damaged user-backend images
 * (test/user/fuzz: every field of every message, missing and doubled
 * files, truncated page data), each refused with a one-line error or
 * restored as it says, none crashing cr, none leaving a task behind.
 * `npm run fuzz -- --backend=user --count N` runs any number.
 */
import * as assert from 'uvu/assert';
import { test } from '../lib/modes.js';
import { fuzzUser } from './fuzz/run.js';

const CASES = 300;

test(`${CASES} damaged images: each refused in one line or restored, no crash, nothing left behind`, async () => {
  const t = await fuzzUser({ count: CASES, seed: 20261201 });
  console.log(`  ${t.cases} images: ${t.refused} refused, ${t.restored} restored, ${t.misbehaved.length} misbehaved (${t.seconds.toFixed(0)} s)`);
  assert.is(t.seeds.length >= 10, true, `seeds: ${t.seeds.join(', ')}`);
  assert.equal(t.misbehaved.map((m) => `case ${m.n}: ${m.why}: ${m.what}`), []);
  assert.is(t.cases, CASES);
  assert.ok(t.refused > CASES / 4 && t.restored > CASES / 10, 'the damage reaches both the checks and the restore');
});

test.run();
