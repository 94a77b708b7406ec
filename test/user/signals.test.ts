/** Pending signals and interval timers survive dump and restore. */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, programBin, roundTrip, sleep, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { crTest, test } from '../lib/modes.js';

crTest('blocked signals pending for the thread and the process are delivered once, with their siginfo', async () => {
  const r = await roundTrip('sigpending', ['300'], 3);
  assert.match(r.show, /pending for the thread: signal 12 code -6/);
  assert.match(r.show, /pending for the process: signal 35 code -1/);
  assert.is(r.restored, r.reference);
}, { sample: true });

crTest('interval timers keep running with the time they had left', async () => {
  const r = await roundTrip('itimers', ['120'], 2);
  assert.match(r.show, /itimer real: \d+ us left, every 50000 us/);
  assert.match(r.show, /itimer virtual: \d+ us left, every 0 us/);
  assert.is(r.restored, r.reference);
});

crTest('POSIX timers keep their ids (with a gap), clocks, signal value and remaining time', async () => {
  const r = await roundTrip('ptimers', ['60'], 2);
  assert.match(r.show, /posix timer 0: clock 1 notify 0 signal 35 \d+ ns left, every 50000000 ns/);
  assert.match(r.show, /posix timer 2: clock 7 notify 1 \d+ ns left, every 500000000000 ns/);
  assert.is(r.restored, r.reference);
});

test('a task allowed no queued signals (RLIMIT_SIGPENDING 0) is dumped and restored: the injection\'s stop comes without a siginfo', async () => {
  const args = ['--sigpending=0:0', programBin('bigmem'), '8', '150'];
  const reference = withoutPid(await undisturbed('/usr/bin/prlimit', args, tempDir('nosigq-ref'))).body;
  const images = tempDir('nosigq-img');
  const run = start('/usr/bin/prlimit', args, path.join(tempDir('nosigq'), 'out.txt'));
  await waitLines(run.out, 3);
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  const r = await cr(['restore', '-D', images, '--detach']);
  assert.is(r.exitCode, 0, r.all);
  assert.match(fs.readFileSync(`/proc/${run.pid}/limits`, 'utf8'), /Max pending signals +0 +0 /);
  while (alive(run.pid)) await sleep(20);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, reference);
});

test.run();
