/**
 * Credentials come back as the task had them: ids, and capability sets it
 * had given away stay given away although its restorer is root.
 */
import { crTest, test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { roundTrip } from '../lib/harness.js';

crTest('dropped capabilities, ambient set and no_new_privs survive a restore by root', async () => {
  const r = await roundTrip('caps', ['150'], 5);
  assert.match(r.show, /caps: effective 0x[0-9a-f]+ permitted 0x[0-9a-f]+ bounding 0x[0-9a-f]+ ambient 0x2000 no_new_privs/);
  assert.is(r.restored, r.reference);
}, { sample: true });

crTest('a task that switched to another uid keeping some capabilities comes back with those, not root\'s', async () => {
  const r = await roundTrip('caps', ['150', '1000'], 5);
  assert.match(r.show, /uids 1000\/1000\/1000\/1000/);
  assert.is(r.restored, r.reference);
});

test.run();
