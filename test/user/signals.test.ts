/** Pending signals and interval timers survive dump and restore. */
import * as assert from 'uvu/assert';
import { roundTrip } from '../lib/harness.js';
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

test.run();
