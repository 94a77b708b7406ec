/**
 * The kernel backend on more kinds of file: each test runs a program that
 * builds the state, is checkpointed (and killed), restarted, and then
 * checks its own state (test/kernel/programs/kfiles.c, ksockets.c).  What
 * the engine cannot save is refused at checkpoint, naming the process and
 * the descriptor, and the task runs on.
 */
import path from 'node:path';
import { crTest, test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { CrError } from '../../userspace/errors.js';
import { alive, roundTrip, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, selfCheck, skipReason, startTo, waitFor } from './env.js';

const t = skipReason ? test.skip : test;

t('eventfd, timerfd, signalfd, epoll (closed and moved descriptors) and inotify come back working', async () => {
  await selfCheck('kfiles', ['anon', tempDir('kanon')], [
    /eventfd #\d+: count 42, semaphore/, /timerfd #\d+: clock 1, next in .*, every 7\.000 s/,
    /signalfd #\d+: mask 0x/, /epoll #\d+: fd \d+ \(file #\d+\)/, /watch 1 \/.* mask/,
  ]);
});

t('a memfd keeps its name, contents, hole, seals, mode and shared mapping', async () => {
  await selfCheck('kfiles', ['memfd', tempDir('kmemfd')], [/memfd #\d+ "kfiles-memfd": 1048576 bytes, seals 0x6, mode 0640/]);
});

t('an unlinked open file and a deleted working directory are made again and unlinked again', async () => {
  await selfCheck('kfiles', ['unlinked', tempDir('kunlinked')], [/unlinked file #\d+ \/.*\/ghost: 49152 bytes, mode 0604, owner 65534:65534/, /cwd .*cwd-gone \(deleted, mode 0711, owner 0:0\)/]);
});

// The engine saves them by the pid in their path, which the restart gives the task again.
crTest("a process's own /proc files held open come back as its own", async () => {
  const r = await roundTrip('procself', ['500'], 3, { backend: 'kernel' });
  assert.match(r.show, /file \/proc\/\d+\/status flags/);
  assert.match(r.show, /file \/proc\/\d+\/task\/\d+\/stat flags/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /^0 bad$/m);
}, { backend: 'kernel', skip: skipReason });

t('status flags, O_ASYNC with F_SETOWN/F_SETSIG, pipe sizes and a pipe holding 300 KiB', async () => {
  await selfCheck('kfiles', ['flags', tempDir('kflags')], [/pipe #\d+: 307200 bytes in flight, size 1048576/, /owner pgrp \d+/, /F_SETSIG \d+/]);
});

t('POSIX, OFD and flock locks keep their ranges and owners', async () => {
  await selfCheck('kfiles', ['locks', tempDir('klocks')], [/lock on file #\d+: posix write 0-99/, /lock on file #\d+: ofd write 500-599/, /lock on file #\d+: flock read 0-end/]);
});

t('unix socket pairs (stream, datagram, seqpacket) keep queued data, shutdown state and options', async () => {
  await selfCheck('ksockets', ['pairs', tempDir('kpairs')], [/socket #\d+ stream connected to #\d+/, /socket #\d+ stream connected to a closed peer/, /skb to #\d+: 3005 bytes|skb to #\d+: 5 bytes/]);
});

t('a bound listening socket comes back with its accept queue, and accepts again', async () => {
  await selfCheck('ksockets', ['listen', tempDir('klisten')], [/socket #\d+ stream listening bound to \/.*\/sock \(0600 0:0\) backlog 5/, /stream pending to listener #\d+/, /client closed/]);
});

t('datagram sockets keep their messages and their senders\' names', async () => {
  await selfCheck('ksockets', ['dgram', tempDir('kdgram')], [/socket #\d+ datagram unconnected bound to @kdgram-/, /datagram connected to #\d+/]);
});

t('what the engine cannot save is refused at checkpoint by name, and the task runs on', async () => {
  const cases: [string, RegExp][] = [
    ['raw', /pid \d+ fd \d+: inet raw socket: not supported/],
    ['events', /pid \d+ fd \d+: inotify: 1 events not read yet: not supported/],
    ['packet', /pid \d+ fd \d+: .*a packet-mode pipe is not supported/],
    ['lease', /pid \d+ fd \d+: .*a lease \(F_SETLEASE\) is not supported/],
    ['scm', /pid \d+ fd \d+: unix socket has descriptors in flight \(SCM_RIGHTS\): not supported/],
    ['timestamp', /pid \d+ fd \d+: unix socket option SO_TIMESTAMP: not supported/],
  ];
  for (const [mode, why] of cases) {
    const out = path.join(tempDir('kfref'), 'out.txt');
    const child = startTo(kprogram('kfiles'), [mode, path.dirname(out)], out);
    await waitFor(out, 'ready');
    const err = await kernelBackend.dump({ pid: child.pid, dir: tempDir('kfrefimg') }).catch((e: unknown) => e);
    assert.instance(err, CrError, mode);
    assert.match((err as Error).message, why);
    assert.ok(alive(child.pid), `${mode}: a refused checkpoint leaves the task running`);
    process.kill(child.pid, 'SIGKILL');
    await child.done;
  }
  assert.equal(dmesgTrouble(), []);
});

test.run();
