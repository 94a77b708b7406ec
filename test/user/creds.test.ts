/**
 * Credentials come back as the task had them: ids, and capability sets it
 * had given away stay given away although its restorer is root.
 */
import { crTest, test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { alive, cr, roundTrip, start, tempDir, waitLines } from '../lib/harness.js';

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

test('a restorer without a capability the task had is refused it, in one line, and no task of the image is left', async () => {
  const run = start('bigmem', ['4', '300'], path.join(tempDir('capless'), 'out.txt'));
  await waitLines(run.out, 3);
  const images = tempDir('caplessimg');
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  // capset(2) refuses a permitted capability the caller's bounding set lacks; so must restore
  const r = await cr(['restore', '-D', images], { bounding: '-net_raw' });
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.stderr.trim(), /^cr: pid \d+: not allowed to restore capabilities \(permitted 0x[0-9a-f]+, inheritable 0x[0-9a-f]+\) \(restore never grants more than the caller has\)$/);
  assert.not.ok(alive(run.pid), 'the restore left nothing of the task');
  // the same image restores for a restorer that has it
  const ok = await cr(['restore', '-D', images]);
  assert.is(ok.exitCode, 0, ok.all);
});

test.run();
