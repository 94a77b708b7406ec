/**
 * The kernel backend on one process: memsum keeps a checksum over every
 * kind of memory, a file offset, TLS and FPU state; dumped mid-run (and
 * killed by the engine before it runs again), restarted from the image, it
 * must print exactly what an undisturbed run prints.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { CrError } from '../../userspace/errors.js';
import { alive, cr, sleep, tempDir } from '../lib/harness.js';
import { checkpointRestartWith, crTest, test } from '../lib/modes.js';
import { probe } from '../../backends/kernel/sys.js';
import { dmesgTrouble, kernelRoundTrip, kprogram, kshareRun, skipReason, startTo, verdicts, waitFor } from './env.js';

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

crTest('memsum: memory of every kind, registers, FPU, TLS and files survive checkpoint/restart', async () => {
  const refDir = tempDir('kref');
  const ref = await execa(kprogram('memsum'), [refDir, ITERS, '20']);

  const dir = tempDir('krun');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('memsum'), [dir, ITERS, '20'], out);
  await waitFor(out, 'iter 20 ');

  const { restored: r, show } = await checkpointRestartWith(kernelBackend, { pid: child.pid, out }, {
    beforeRestore: async () => {
      assert.is(await child.done, 'SIGKILL', 'the task was killed after the checkpoint');
      assert.not.ok(alive(child.pid));
    },
  });
  assert.match(show, /checksum 0x[0-9a-f]+ ok/);
  assert.equal(r.pids, [child.pid]);
  const status = await r.wait();
  console.log(`  restore: ${r.stats.totalMs.toFixed(1)} ms until running`);
  assert.equal(status, { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
  assert.equal(dmesgTrouble(), []);
}, { backend: 'kernel', skip: skipReason, sample: true, not: { snap: 'its shared file mapping is the file itself, not in the image: what it wrote there after the snapshot stays' } });

t('leaveRunning: the task goes on after a checkpoint, undisturbed', async () => {
  const refDir = tempDir('kref2');
  const ref = await execa(kprogram('memsum'), [refDir, '30', '10']);
  const dir = tempDir('krun2');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('memsum'), [dir, '30', '10'], out);
  await waitFor(out, 'iter 5 ');
  const d = await kernelBackend.dump({ pid: child.pid!, dir: tempDir('kimg2'), leaveRunning: true });
  assert.ok(d.stats.imageBytes > 0);
  assert.ok(d.stats.frozenMs !== undefined, 'the engine reports the downtime');
  console.log(`  dump: ${d.stats.totalMs.toFixed(1)} ms total, froze in ${d.stats.freezeMs} ms, frozen ${d.stats.frozenMs} ms, ${d.stats.pagesWritten} pages, ${d.stats.imageBytes} bytes`);
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
  // until it runs sleep: before its exec the child shares node's address space
  for (let i = 0; i < 1000 && fs.readFileSync(`/proc/${sock.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) await sleep(10);
  const unsup = await kernelBackend.dump({ pid: sock.pid!, dir: tempDir('ksock') }).catch((e: unknown) => e);
  assert.instance(unsup, CrError);
  assert.match((unsup as Error).message, /fd 3/, (unsup as Error).message);
  assert.ok(alive(sock.pid!), 'a failed checkpoint leaves the task running');
  sock.kill('SIGKILL');
  await sock;
});

// 150 iterations: three dumps (pre mode) under TCG on a busy host outlasted 40, and the tree had ended
crTest('a tree of three processes and a zombie comes back with its pids, parents, exit status and one shared open file', async () => {
  const refDir = tempDir('ktref');
  await execa(kprogram('ktree'), [refDir, '150', '20']);
  const dir = tempDir('ktrun');
  const child = startTo(kprogram('ktree'), [dir, '150', '20'], path.join(dir, 'stdout'));
  await waitFor(path.join(dir, 'p2.txt'), 'iter 10 ');

  const d = await checkpointRestartWith(kernelBackend, child, {
    watch: path.join(dir, 'p2.txt'),
    beforeRestore: async (_images, pids) => {
      assert.is(await child.done, 'SIGKILL');
      await sleep(200); // the zombie goes once whoever inherits it reaps it
      for (const p of pids) assert.not.ok(alive(p), `pid ${p} is gone after the dump`);
    },
  });
  assert.is(d.pids.length, 4);
  assert.match(d.show, /3 TASK/);
  assert.match(d.show, /zombie pid \d+, wait status 0x700/);
  const r = d.restored;
  assert.equal(r.pids, d.pids);
  assert.equal(await r.wait(), { code: 0, signal: null });
  for (const f of ['p0.txt', 'p1.txt', 'p2.txt']) {
    assert.is(fs.readFileSync(path.join(dir, f), 'utf8'), fs.readFileSync(path.join(refDir, f), 'utf8'), f);
  }
  assert.equal(dmesgTrouble(), []);
}, { backend: 'kernel', skip: skipReason, sample: true });

crTest('pipes and a FIFO between a parent and its child keep the bytes in flight', async () => {
  const ref = await execa(kprogram('kpipes'), ['50', '20', tempDir('kpref')]);
  const dir = tempDir('kprun');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kpipes'), ['50', '20', dir], out);
  await waitFor(out, 'iter 10:');

  const d = await checkpointRestartWith(kernelBackend, { pid: child.pid, out });
  assert.is(d.pids.length, 2);
  assert.is(await child.done, 'SIGKILL');
  const { show } = d;
  assert.match(show, /pipe #\d+: 3000 bytes in flight/);
  assert.match(show, /pipe end pipe:\[\d+\] of #\d+/);
  assert.match(show, /fifo \/.*\/fifo of #\d+/);
  assert.match(show, /pipe #\d+: 100 bytes in flight/);
  const r = d.restored;
  assert.equal(r.pids, d.pids);
  assert.equal(await r.wait(), { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
  assert.equal(dmesgTrouble(), []);
}, { backend: 'kernel', skip: skipReason });

/** Runs procstate MODE through dump (killing it) and restore; returns its output and status. */
const procstateRoundTrip = (args: string[]) => kernelRoundTrip('procstate', args);

crTest('rlimits, pending signals and dropped capabilities survive; nothing is delivered twice', async () => {
  const { out, status, show } = await procstateRoundTrip(['state']);
  assert.not.match(out, /FAIL/, out);
  assert.match(out, /ok pending signal delivered with its value/);
  assert.equal(status, { code: 0, signal: null }, out);
  assert.ok(show.some((l) => /rlimits: .*CORE 12345\/67890/.test(l)), show.join('\n'));
  assert.ok(show.some((l) => /pending signals: 36 (\(process\) )?code -1/.test(l)), show.join('\n'));
}, { backend: 'kernel', skip: skipReason });

crTest('restart gives the task its own uid back, not the restarter\'s root', async () => {
  const { out, status, show } = await procstateRoundTrip(['state', '65534']);
  assert.ok(show.some((l) => /creds: uid 65534\/65534\/65534\/65534/.test(l)), show.join('\n'));
  assert.not.match(out, /FAIL/, out);
  assert.equal(status, { code: 0, signal: null }, out);
}, { backend: 'kernel', skip: skipReason });

t('what the engine cannot restore is refused at checkpoint, naming it, and the task runs on', async () => {
  const refusals = [
    ['cputimer', /POSIX timer 0 on the CPU clock of pid \d+ is not supported/],
    ['sysvshm', /mapping [0-9a-f]+-[0-9a-f]+: SysV shm segment \d+ of the checkpointer's IPC namespace is not supported/],
    ['semundo', /pid \d+: SEM_UNDO adjustments on SysV semaphore set \d+ of the checkpointer's IPC namespace are not supported/],
    ['netns', /pid \d+: its network namespace is not the checkpointer's: not supported/],
  ] as const;
  for (const [mode, why] of refusals) {
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

const tasksOf = (pid: number): number[] => fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
/** A program's "ok"/"FAIL" lines, in an order that does not depend on how its threads ran. */
/**
 * A multithreaded @program with @args, undisturbed or through dump (killing
 * it) and restore; SIGUSR1 once it printed "ready".
 */
async function threadsRun(program: string, args: string[], roundTrip: boolean): Promise<{ out: string; status: unknown; tasks: number[][]; show: string }> {
  const dir = tempDir('kth');
  const out = path.join(dir, 'out.txt');
  const child = startTo(program, args, out);
  await waitFor(out, 'ready');
  const before = tasksOf(child.pid);
  if (!roundTrip) {
    process.kill(child.pid, 'SIGUSR1');
    const status = await child.done;
    return { out: fs.readFileSync(out, 'utf8'), status, tasks: [before], show: '' };
  }
  const images = tempDir('kthimg');
  const d = await kernelBackend.dump({ pid: child.pid, dir: images }).catch((e: unknown) => {
    process.kill(child.pid, 'SIGKILL');
    throw e;
  });
  assert.equal(d.pids, [child.pid], 'threads are not processes of their own');
  assert.is(await child.done, 'SIGKILL');
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, [child.pid]);
  const after = tasksOf(child.pid);
  process.kill(child.pid, 'SIGUSR1');
  const st = await r.wait();
  await sleep(50);
  return { out: fs.readFileSync(out, 'utf8'), status: st.signal ?? st.code, tasks: [before, after], show };
}

const kthreadsRun = (mode: string, roundTrip: boolean) => threadsRun(kprogram('kthreads'), [mode], roundTrip);

t('threads: each comes back with its tid, TLS, mask, FPU mode, CPU affinity, pending signals, altstack, rseq, robust list and clear_child_tid', async () => {
  const ref = await kthreadsRun('threads', false);
  assert.is(ref.status, 0, ref.out);
  const run = await kthreadsRun('threads', true);
  assert.equal(run.tasks[1], run.tasks[0], 'the same tids');
  assert.is(run.tasks[0].length, 5);
  assert.match(run.show, /5 TASK .*1 SIGHAND .*1 MM /);
  assert.match(run.show, /\(thread of \d+\)/);
  // each pinned to one CPU of its own (the checkpointer runs on all of them)
  if (os.availableParallelism() > 1) {
    assert.match(run.show, /nice 0, cpus 0, /);
    assert.match(run.show, /nice 0, cpus 1, /);
    assert.not.match(run.show, /nice 0, cpus 0-/);
  }
  assert.not.match(run.out, /FAIL/, run.out);
  assert.equal(verdicts(run.out), verdicts(ref.out));
  assert.is(run.status, 0, run.out);
  assert.equal(dmesgTrouble(), []);
});

t('a thread-group leader that exited while its threads run on comes back a zombie', async () => {
  const ref = await kthreadsRun('zombie-leader', false);
  assert.is(ref.status, 3, ref.out);
  const run = await kthreadsRun('zombie-leader', true);
  assert.equal(run.tasks[1], run.tasks[0]);
  assert.match(run.show, /zombie pid \d+/);
  assert.not.match(run.out, /FAIL/, run.out);
  assert.equal(verdicts(run.out), verdicts(ref.out));
  assert.is(run.status, 3, run.out);
  assert.equal(dmesgTrouble(), []);
});

/** test/kernel/programs/pythreads.py: four threads hashing */
const pythreadsRun = (roundTrip: boolean) => threadsRun('python3', [path.join(kprogram(''), '..', 'pythreads.py')], roundTrip);

const python = execaSync('python3', ['-c', ''], { reject: false }).exitCode === 0;

(python ? t : test.skip)('a multithreaded python3 program, checkpointed while its threads hash, finishes as an undisturbed run does', async () => {
  const ref = await pythreadsRun(false);
  assert.is(ref.status, 0, ref.out);
  const run = await pythreadsRun(true);
  assert.ok(run.tasks[0].length >= 5, `${run.tasks[0].length} threads`);
  assert.equal(run.tasks[1], run.tasks[0], 'the same tids');
  assert.match(run.show, /\(thread of \d+\)/);
  assert.is(run.out, ref.out);
  assert.is(verdicts(run.out).length, 4, run.out);
  assert.is(run.status, 0, run.out);
  assert.equal(dmesgTrouble(), []);
});

t('a node program, checkpointed waiting on its event loop, computes what an undisturbed run computes', async () => {
  const nodeRun = (roundTrip: boolean) => threadsRun(process.execPath, [path.join(kprogram(''), '..', 'nodecount.js')], roundTrip);
  const ref = await nodeRun(false);
  assert.is(ref.status, 0, ref.out);
  const run = await nodeRun(true);
  assert.ok(run.tasks[0].length >= 5, `${run.tasks[0].length} threads`);
  assert.equal(run.tasks[1], run.tasks[0], 'the same tids');
  assert.is(run.out, ref.out);
  assert.is(verdicts(run.out).length, 40, run.out);
  assert.is(run.status, 0, run.out);
  assert.equal(dmesgTrouble(), []);
});

t('what processes share (mm, vfork, fd table, fs, handlers, shared memory) is shared again; a fork\'s pages stay shared', async () => {
  const ref = await kshareRun(false);
  assert.is(ref.status, 0, ref.out);
  const run = await kshareRun(true);
  assert.match(run.show, /in vfork for pid \d+/);
  assert.match(run.show, /a fork copy of mm #\d+/);
  assert.match(run.show, /pages of the parent's copy dropped/);
  assert.match(run.show, /shmem #\d+: 4096 bytes of shared anonymous memory/);
  assert.match(run.show, /1 SHMEM /, 'the shared page is saved once');
  // the parent's 64 MiB are in the image once, not once more for the child that shares them
  assert.ok(run.imageBytes < 80 << 20, `image of ${run.imageBytes} bytes`);
  assert.not.match(run.out, /FAIL/, run.out);
  assert.equal(verdicts(run.out), verdicts(ref.out));
  assert.is(run.status, 0, run.out);
  assert.equal(dmesgTrouble(), []);
});

t('10,000 checkpoints of a task busy changing its registers, FS base and memory each see one moment, and leave it as it was', async () => {
  const r = await execa(kprogram('kfreeze'), ['10000'], { reject: false });
  console.log(`  ${r.stdout.split('\n').filter((l) => l.startsWith('kfreeze:')).join('; ')}`);
  assert.not.match(r.stdout, /FAIL/, `${r.stdout}\n${r.stderr}`);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(dmesgTrouble(), []);
});

t('clone_with_pids: chosen pid, EBUSY when taken, EINVAL for too many levels, EPERM unprivileged', async () => {
  const r = await execa(kprogram('clonepids'), { reject: false });
  assert.is(r.exitCode, 0, r.stdout);
  assert.not.match(r.stdout, /FAIL/);
});

test.run();
