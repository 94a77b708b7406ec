/** eventfd, timerfd, signalfd and epoll files survive dump and restore with their state. */
import * as assert from 'uvu/assert';
import { roundTrip, tempDir } from '../lib/harness.js';
import { crTest, test } from '../lib/modes.js';

crTest('eventfd counters and modes', async () => {
  const r = await roundTrip('eventfd', ['300'], 3);
  assert.match(r.show, /eventfd count [1-9] semaphore/, 'dumped mid-run');
  assert.match(r.show, /eventfd count 1250999896491 /, '0x123456789ab: more than the 32 bits eventfd2 takes');
  assert.is(r.restored, r.reference);
});

crTest('timerfd clocks, periods, time left and unread expirations', async () => {
  const r = await roundTrip('timerfd', ['160'], 2);
  assert.match(r.show, /timerfd clock 7 disarmed, 1 unread expirations/);
  assert.match(r.show, /timerfd clock 0 next in 9\d\d\.\d+s, 0 unread expirations settime flags 01/);
  assert.is(r.restored, r.reference);
});

crTest('signalfd masks, reading signals that were pending at dump time', async () => {
  const r = await roundTrip('signalfd', ['300'], 3);
  assert.match(r.show, /signalfd mask 0x200000200/);
  assert.is(r.restored, r.reference);
});

crTest('epoll watches of later descriptors, edge-triggered and a fired one-shot', async () => {
  const r = await roundTrip('epoll', ['300'], 30);
  for (const watch of ['fd 5 (events 0x19 data 0x100)', 'fd 6 (events 0x1c data 0x20)', 'fd 7 (events 0x80000019 data 0x3)', 'fd 8 (events 0x40000000 data 0x4000)']) assert.ok(r.show.includes(watch), watch);
  assert.is(r.restored, r.reference);
}, { sample: true });

crTest('epoll watches whose numbers were moved, closed or reused keep their file, number, events and data', async () => {
  const r = await roundTrip('epollmoved', ['200'], 30);
  const file = /fd 10 \(events 0x19 data 0x1\) file (\d+)/.exec(r.show)![1];
  assert.match(r.show, /fd 10: \/dev\/null/, 'fd 10 now holds another file');
  assert.match(r.show, new RegExp(`fd 20: pipe:\\[\\d+\\] read end`), `the watched file ${file} is at fd 20`);
  assert.match(r.show, /fd 12 \(events 0x2019 data 0x8\).*fd 12 \(events 0x40000019 data 0x10\)|fd 12 \(events 0x40000019 data 0x10\).*fd 12 \(events 0x2019 data 0x8\)/);
  assert.match(r.show, /fd 5 \(events 0x10000019 data 0x4\)/, 'EPOLLEXCLUSIVE');
  assert.match(r.show, /fd 4: epoll watching fd 3 /, 'an epoll watching an epoll');
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /step 199: ready d nested 100 \| MOD 10 EPERM, 20 ENOENT, 11 EBADF, 21 ENOENT \| \[10 19 1\] \[11 80000019 2\] \[12 2019 8\] \[12 40000000 10\] \[5 10000019 4\]\n/);
});

crTest('inotify watches keep their numbers (with a gap), paths, masks, IN_DONT_FOLLOW and IN_EXCL_UNLINK', async () => {
  const dir = tempDir('inotify');
  // Events waiting to be read are refused rather than lost: try again once they are read.
  let r;
  for (let tries = 0; !r; tries++) {
    try {
      r = await roundTrip('inotify', [dir, '30'], 5);
    } catch (err) {
      if (tries > 3 || !/bytes of unread events/.test((err as Error).message)) throw err;
    }
  }
  assert.ok(r.show.includes(`inotify wd 4 ${dir}/link (the link) mask 0x4000004, wd 3 ${dir}/file mask 0xa, wd 1 ${dir} mask 0x300`), r.show);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /tick 29: \[wd 1 mask 100 t29\] \[wd 1 mask 200 t29\] \[wd 3 mask 2 -\] \[wd 3 mask 8 -\] \[wd 4 mask 4 -\] \| watches 4:4000004 3:a 1:300\n/);
});

test.run();
