/**
 * What a task is besides its memory and files: per-thread scheduling,
 * signals pending for any thread, zombies of every shape and the pids a
 * tree sees inside pid namespaces of its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { roundTrip } from '../lib/harness.js';

test('each thread keeps its scheduling policy, real-time priority, nice value and SCHED_RESET_ON_FORK', async () => {
  const r = await roundTrip('sched', ['150'], 4);
  assert.match(r.show, /sched batch nice 5/);
  assert.match(r.show, /sched fifo\|reset_on_fork priority 10/);
  assert.match(r.show, /sched rr priority 5/);
  assert.match(r.show, /sched other nice -3/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /thread 2: fifo\|reset_on_fork priority 10 nice 0, 0 bad checks/);
});

test('signals pending for any thread are delivered to that thread, once, with their siginfo', async () => {
  const r = await roundTrip('threadsigs', ['150'], 3);
  assert.match(r.show, /pending for the thread: signal 12 code -6/);
  assert.match(r.show, /pending for thread \d+: signal 10 code -6/);
  assert.match(r.show, /pending for thread \d+: signal 35 code -1/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /thread 3: 0 bad checks, got 35042 35043\n/);
});

test.run();
