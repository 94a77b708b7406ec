/**
 * The kernel backend on process-level state: kproc sets prctl(2) and
 * scheduling attributes, madvise flags, interval and POSIX timers and
 * keeps a stopped child, then checks all of it after restart; kself
 * checkpoints itself and, restarted, goes on from its checkpoint(2) call;
 * a restore with `frozen` runs nothing until `cr thaw`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { alive, cr, tempDir } from '../lib/harness.js';
import { checkpointRestartWith, crTest, test } from '../lib/modes.js';
import { dmesgTrouble, kprogram, skipReason, startTo, waitFor } from './env.js';

const t = skipReason ? test.skip : test;
if (skipReason) console.log(`kernel backend tests skipped: ${skipReason}`);

crTest('prctl attributes, scheduling, /proc/self/exe, madvise flags, timers and a stopped child survive', async () => {
  const dir = tempDir('kproc');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kproc'), [], out);
  await waitFor(out, 'ready');
  // It waits for SIGUSR1 after "ready": nothing to wait for between the rounds.
  const d = await checkpointRestartWith(kernelBackend, child, { watch: null });
  assert.is(d.pids.length, 2);
  assert.is(await child.done, 'SIGKILL');
  const { show } = d;
  assert.match(show, /process: exe \S+\/kproc, personality 0x\d+, pdeathsig 12, dumpable 0, child subreaper, no_new_privs/);
  assert.match(show, /sched: SCHED_BATCH priority 0 nice 7, cpus [\d,-]+, timer slack 123456 ns/);
  assert.match(show, /stopped by signal 19/);
  assert.match(show, /sched: SCHED_FIFO priority 2 nice 5/);
  assert.match(show, /itimers: real [\d.]+ ms left, every 50000\.000 ms, virtual [\d.]+ ms left, prof [\d.]+ ms left, every 30000\.000 ms/);
  assert.match(show, /posix timer 0: CLOCK_MONOTONIC, SIGEV_SIGNAL signal 35 value 77, [\d.]+ ms left, every 250000\.000 ms/);
  assert.match(show, /posix timer 2: CLOCK_REALTIME, SIGEV_SIGNAL to tid \d+ signal 37 value 99/);
  assert.match(show, /posix timer 3: process SCHED CPU clock, SIGEV_NONE/);
  assert.match(show, /posix timer 4: .*overrun [1-9]\d*/);
  assert.not.match(show, /posix timer 1:/);
  assert.match(show, / dontfork/);
  assert.match(show, / wipeonfork/);
  assert.match(show, / dontdump/);
  assert.match(show, /locked/);
  const r = d.restored;
  assert.equal(r.pids, d.pids);
  process.kill(r.pids[0], 'SIGUSR1');
  const status = await r.wait();
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /FAIL/, text);
  assert.match(text, /ok timer 5 fires with its value/);
  assert.equal(status, { code: 0, signal: null }, text);
  assert.equal(dmesgTrouble(), []);
}, { backend: 'kernel', skip: skipReason });

t('a process checkpoints itself; restarted, its checkpoint(2) returns 0 and it finishes; frozen, it waits for cr thaw', async () => {
  const iters = '3000000';
  const ref = await execa(kprogram('kself'), [tempDir('kselfref'), `-${iters}`]);
  const images = tempDir('kselfimg');
  const out = path.join(tempDir('kself'), 'out.txt');
  const child = startTo(kprogram('kself'), [images, iters], out);
  await waitFor(out, 'checkpointed ');
  assert.match(fs.readFileSync(out, 'utf8'), /^checkpointed [1-9]\d*\n$/);
  process.kill(child.pid, 'SIGKILL');
  await child.done;
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  assert.match(show, /orig_ax -1/, 'saved as returning from checkpoint(2), not inside it');

  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, [child.pid]);
  assert.equal(await r.wait(), { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), `restarted\n${ref.stdout}\n`);

  // again, frozen: nothing runs until it is thawed
  fs.truncateSync(out, 0);
  const notFrozen = await cr(['thaw', '--backend=kernel', '1']);
  assert.is(notFrozen.exitCode, 1);
  assert.match(notFrozen.stderr, /cr: no tree restored frozen at pid 1/);
  const f = await kernelBackend.restore({ dir: images, frozen: true });
  assert.ok(alive(f.pids[0]));
  assert.match(fs.readFileSync(`/proc/${f.pids[0]}/status`, 'utf8'), /State:\s+D/);
  assert.is(fs.readFileSync(out, 'utf8'), '', 'a frozen tree has not run');
  process.kill(f.pids[0], 'SIGCONT'); // a job-control continue does not thaw it
  assert.is(fs.readFileSync(out, 'utf8'), '');
  const thaw = await cr(['thaw', '--backend=kernel', String(f.pids[0])]);
  assert.is(thaw.exitCode, 0, thaw.all);
  assert.equal(await f.wait(), { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), `restarted\n${ref.stdout}\n`);
  assert.equal(dmesgTrouble(), []);
});

t('cr restore --frozen is refused by a backend that cannot do it', async () => {
  const r = await cr(['restore', '--backend=user', '--frozen', '-D', tempDir('kfrz')]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /cr: the user backend cannot leave a restored tree frozen/);
});

test.run();
