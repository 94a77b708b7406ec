/**
 * The kernel backend on one process: memsum keeps a checksum over every
 * kind of memory, a file offset, TLS and FPU state; dumped mid-run (and
 * killed by the engine before it runs again), restarted from the image, it
 * must print exactly what an undisturbed run prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { CrError } from '../../userspace/errors.js';
import { alive, cr, sleep, tempDir } from '../lib/harness.js';
import { probe } from '../../backends/kernel/sys.js';
import { dmesgTrouble, kernelRoundTrip, kprogram, skipReason, startTo, waitFor } from './env.js';

const ITERS = '60';
const t = skipReason ? test.skip : test;
if (skipReason) console.log(`kernel backend tests skipped: ${skipReason}`);

t('the kernel backend loads its engine on first use: nobody types insmod', async () => {
  if (probe().engine) await execa('rmmod', ['crengine']);
  assert.not.ok(probe().engine, 'the engine is unloaded');
  const check = await cr(['check', '--backend=kernel']);
  assert.is(check.exitCode, 0, check.all);
  assert.match(check.stdout, /engine: no engine registered yet: cr loads \S+crengine\.ko \(built for \S+\) on first use/);
  const child = startTo('sleep', ['30'], path.join(tempDir('kload'), 'out.txt'));
  const dump = await cr(['dump', '--backend=kernel', '-t', String(child.pid), '-D', tempDir('kloadimg'), '--leave-running', '-v']);
  assert.is(dump.exitCode, 0, dump.all);
  assert.match(dump.stderr, /cr: loaded the c\/r engine \S+crengine\.ko/);
  assert.ok(probe().engine, 'the engine is registered');
  assert.ok(fs.existsSync('/sys/module/crengine'));
  assert.ok(alive(child.pid));
  process.kill(child.pid, 'SIGKILL');
  const again = await cr(['check', '--backend=kernel']);
  assert.match(again.stdout, /engine: registered \(crengine module loaded\)/);
});

t('memsum: memory of every kind, registers, FPU, TLS and files survive checkpoint/restart', async () => {
  const refDir = tempDir('kref');
  const ref = await execa(kprogram('memsum'), [refDir, ITERS, '20']);

  const dir = tempDir('krun');
  const images = tempDir('kimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('memsum'), [dir, ITERS, '20'], out);
  await waitFor(out, 'iter 20 ');

  const d = await kernelBackend.dump({ pid: child.pid!, dir: images });
  const killed = await child.done;
  assert.is(killed, 'SIGKILL', 'the engine killed the task after the checkpoint');
  assert.not.ok(alive(child.pid!));
  assert.ok(d.stats.imageBytes > 0);
  assert.ok(d.stats.frozenMs !== undefined, 'the engine reports the downtime');
  console.log(`  dump: ${d.stats.totalMs.toFixed(1)} ms total, froze in ${d.stats.freezeMs} ms, frozen ${d.stats.frozenMs} ms, ${d.stats.pagesWritten} pages, ${d.stats.imageBytes} bytes`);

  const desc = await kernelBackend.describe(images);
  assert.ok(desc.lines.some((l) => /checksum 0x[0-9a-f]+ ok/.test(l)), desc.lines.join('\n'));

  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, [child.pid]);
  const status = await r.wait();
  console.log(`  restore: ${r.stats.totalMs.toFixed(1)} ms until running`);
  assert.equal(status, { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
  assert.equal(dmesgTrouble(), []);
});

t('leaveRunning: the task goes on after a checkpoint, undisturbed', async () => {
  const refDir = tempDir('kref2');
  const ref = await execa(kprogram('memsum'), [refDir, '30', '10']);
  const dir = tempDir('krun2');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('memsum'), [dir, '30', '10'], out);
  await waitFor(out, 'iter 5 ');
  await kernelBackend.dump({ pid: child.pid!, dir: tempDir('kimg2'), leaveRunning: true });
  assert.is(await child.done, 0);
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
});

t('bad input gives a one-line CrError', async () => {
  const noPid = await kernelBackend.dump({ pid: 999999, dir: tempDir('kbad') }).catch((e: unknown) => e);
  assert.instance(noPid, CrError);
  assert.match((noPid as Error).message, /no process with pid 999999/);
  const noDir = await kernelBackend.restore({ dir: '/nonexistent/images' }).catch((e: unknown) => e);
  assert.instance(noDir, CrError);
  assert.match((noDir as Error).message, /does not exist/);
  // fd 3 is a socket pair to us, outside the tree: the engine cannot save its other end
  const sock = execa('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], reject: false });
  // until it is sleep, not the copy of node that execs it (which has more files)
  for (let i = 0; i < 1000 && fs.readFileSync(`/proc/${sock.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) await sleep(10);
  const unsup = await kernelBackend.dump({ pid: sock.pid!, dir: tempDir('ksock') }).catch((e: unknown) => e);
  assert.instance(unsup, CrError);
  assert.match((unsup as Error).message, /pid \d+ fd 3: unix socket connected to a socket outside the tree: not supported/);
  assert.ok(alive(sock.pid!), 'a failed checkpoint leaves the task running');
  sock.kill('SIGKILL');
  await sock;
});

t('a tree of three processes and a zombie comes back with its pids, parents, exit status and one shared open file', async () => {
  const refDir = tempDir('ktref');
  await execa(kprogram('ktree'), [refDir, '40', '20']);
  const dir = tempDir('ktrun');
  const images = tempDir('ktimg');
  const child = startTo(kprogram('ktree'), [dir, '40', '20'], path.join(dir, 'stdout'));
  await waitFor(path.join(dir, 'p2.txt'), 'iter 10 ');

  const d = await kernelBackend.dump({ pid: child.pid!, dir: images });
  assert.is(d.pids.length, 4);
  assert.is(await child.done, 'SIGKILL');
  await sleep(200); // the zombie goes once whoever inherits it reaps it
  for (const p of d.pids) assert.not.ok(alive(p), `pid ${p} is gone after the dump`);
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  assert.match(show, /3 TASK/);
  assert.match(show, /zombie pid \d+, wait status 0x700/);

  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, d.pids);
  assert.equal(await r.wait(), { code: 0, signal: null });
  for (const f of ['p0.txt', 'p1.txt', 'p2.txt']) {
    assert.is(fs.readFileSync(path.join(dir, f), 'utf8'), fs.readFileSync(path.join(refDir, f), 'utf8'), f);
  }
  assert.equal(dmesgTrouble(), []);
});

t('pipes and a FIFO between a parent and its child keep the bytes in flight', async () => {
  const ref = await execa(kprogram('kpipes'), ['50', '20', tempDir('kpref')]);
  const dir = tempDir('kprun');
  const images = tempDir('kpimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kpipes'), ['50', '20', dir], out);
  await waitFor(out, 'iter 10:');

  const d = await kernelBackend.dump({ pid: child.pid!, dir: images });
  assert.is(d.pids.length, 2);
  assert.is(await child.done, 'SIGKILL');
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  assert.match(show, /pipe #\d+: 3000 bytes in flight/);
  assert.match(show, /pipe end pipe:\[\d+\] of #\d+/);
  assert.match(show, /fifo \/.*\/fifo of #\d+/);
  assert.match(show, /pipe #\d+: 100 bytes in flight/);

  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, d.pids);
  assert.equal(await r.wait(), { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
  assert.equal(dmesgTrouble(), []);
});

/** Runs procstate MODE through dump (killing it) and restore; returns its output and status. */
const procstateRoundTrip = (args: string[]) => kernelRoundTrip('procstate', args);

t('rlimits, pending signals and dropped capabilities survive; nothing is delivered twice', async () => {
  const { out, status, show } = await procstateRoundTrip(['state']);
  assert.not.match(out, /FAIL/, out);
  assert.match(out, /ok pending signal delivered with its value/);
  assert.equal(status, { code: 0, signal: null }, out);
  assert.ok(show.some((l) => /rlimits: .*CORE 12345\/67890/.test(l)), show.join('\n'));
  assert.ok(show.some((l) => /pending signals: 36 (\(process\) )?code -1/.test(l)), show.join('\n'));
});

t('restart gives the task its own uid back, not the restarter\'s root', async () => {
  const { out, status, show } = await procstateRoundTrip(['state', '65534']);
  assert.ok(show.some((l) => /creds: uid 65534\/65534\/65534\/65534/.test(l)), show.join('\n'));
  assert.not.match(out, /FAIL/, out);
  assert.equal(status, { code: 0, signal: null }, out);
});

t('what the engine cannot restore is refused at checkpoint, naming it, and the task runs on', async () => {
  for (const [mode, why] of [['cputimer', /POSIX timer 0 on the CPU clock of pid \d+ is not supported/], ['sysvshm', /SYSV/]] as const) {
    const out = path.join(tempDir('kref'), 'out.txt');
    const child = startTo(kprogram('procstate'), [mode], out);
    await waitFor(out, 'ready');
    const err = await kernelBackend.dump({ pid: child.pid!, dir: tempDir('krefimg') }).catch((e: unknown) => e);
    assert.instance(err, CrError, mode);
    assert.match((err as Error).message, why);
    assert.ok(alive(child.pid!), `${mode}: a refused checkpoint leaves the task running`);
    process.kill(child.pid!, 'SIGKILL');
    await child.done;
  }
  assert.equal(dmesgTrouble(), []);
});

t('clone_with_pids: chosen pid, EBUSY when taken, EINVAL for too many levels, EPERM unprivileged', async () => {
  const r = await execa(kprogram('clonepids'), { reject: false });
  assert.is(r.exitCode, 0, r.stdout);
  assert.not.match(r.stdout, /FAIL/);
});

test.run();
