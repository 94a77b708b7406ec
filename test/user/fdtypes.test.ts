/** eventfd, timerfd, signalfd and epoll files survive dump and restore with their state. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { roundTrip } from '../lib/harness.js';

test('eventfd counters and modes', async () => {
  const r = await roundTrip('eventfd', ['300'], 3);
  assert.match(r.show, /eventfd count [1-9] semaphore/, 'dumped mid-run');
  assert.match(r.show, /eventfd count 1250999896491 /, '0x123456789ab: more than the 32 bits eventfd2 takes');
  assert.is(r.restored, r.reference);
});

test('timerfd clocks, periods, time left and unread expirations', async () => {
  const r = await roundTrip('timerfd', ['160'], 2);
  assert.match(r.show, /timerfd clock 7 disarmed, 1 unread expirations/);
  assert.match(r.show, /timerfd clock 0 next in 9\d\d\.\d+s, 0 unread expirations settime flags 01/);
  assert.is(r.restored, r.reference);
});

test('signalfd masks, reading signals that were pending at dump time', async () => {
  const r = await roundTrip('signalfd', ['300'], 3);
  assert.match(r.show, /signalfd mask 0x200000200/);
  assert.is(r.restored, r.reference);
});

test('epoll watches of later descriptors, edge-triggered and a fired one-shot', async () => {
  const r = await roundTrip('epoll', ['300'], 30);
  for (const watch of ['fd 5 (events 0x19 data 0x100)', 'fd 6 (events 0x1c data 0x20)', 'fd 7 (events 0x80000019 data 0x3)', 'fd 8 (events 0x40000000 data 0x4000)']) assert.ok(r.show.includes(watch), watch);
  assert.is(r.restored, r.reference);
});

test.run();
