/**
 * What a task is besides its memory and files: per-thread scheduling,
 * signals pending for any thread, zombies of every shape and the pids a
 * tree sees inside pid namespaces of its own.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, roundTrip, sleep, start, tempDir, waitLines } from '../lib/harness.js';
import { crTest, test } from '../lib/modes.js';

crTest('each thread keeps its scheduling policy, real-time priority, nice value, SCHED_RESET_ON_FORK and CPU affinity', async () => {
  const r = await roundTrip('sched', ['150'], 4);
  assert.match(r.show, /sched batch nice 5 cpus /);
  assert.match(r.show, /sched idle nice 0 cpus 0\n/, 'thread 1 pinned to the first CPU');
  assert.match(r.show, /sched fifo\|reset_on_fork priority 10/);
  assert.match(r.show, /sched rr priority 5/);
  assert.match(r.show, /sched other nice -3/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /thread 1: idle priority 0 nice 0, on 1 CPUs, 0 bad checks/);
  assert.match(r.restored, /thread 2: fifo\|reset_on_fork priority 10 nice 0, on \d+ CPUs, 0 bad checks/);
});

crTest('prctl state comes back: timer slack, child subreaper, not dumpable, parent-death signal, personality', async () => {
  const r = await roundTrip('prctlstate', ['400'], 4);
  assert.match(r.show, /personality 0x40000 {2}pdeathsig 23 {2}timer slack 123456 ns {2}dumpable 0 {2}child subreaper/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /: 0 bad checks\n/);
});

crTest('signals pending for any thread are delivered to that thread, once, with their siginfo', async () => {
  const r = await roundTrip('threadsigs', ['150'], 3);
  assert.match(r.show, /pending for the thread: signal 12 code -6/);
  assert.match(r.show, /pending for thread \d+: signal 10 code -6/);
  assert.match(r.show, /pending for thread \d+: signal 35 code -1/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /thread 3: 0 bad checks, got 35042 35043\n/);
});

crTest('zombies of every shape: exited, killed, and a leader that exited while its threads run on', async () => {
  const r = await roundTrip('zombies', ['150'], 3);
  assert.match(r.show, /zombie, wait status 0x2a00/);
  assert.match(r.show, /zombie, wait status 0xf/);
  assert.match(r.show, /3 threads, the leader exited/);
  assert.match(r.show, /thread \d+: exited \(the thread group leader; its threads run on\)/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /leader Z, 3 threads, 0 bad checks\n/);
});

crTest('pid namespaces of its own, nested, and unshared: every task sees the same pids inside after restore', async () => {
  const r = await roundTrip('pidns', ['150'], 3);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /C: pid 1 ppid 0, 3 pid namespaces deep, 0 bad checks\nE: pid 1 ppid 0, 2 pid namespaces deep, 0 bad checks\nF: pid 2 ppid 0, 2 pid namespaces deep, 0 bad checks\nG: pid 3 ppid 0, 2 pid namespaces deep/);
});

test('a parent waiting in vfork() is refused by name, saying why, and both tasks go on', async () => {
  const images = tempDir('vforkimg');
  const run = start('vforker', ['3000'], path.join(tempDir('vfork'), 'out.txt'));
  await waitLines(run.out, 1);
  await sleep(200);
  const [child] = fs.readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is.not(d.exitCode, 0);
  assert.match(d.stderr, new RegExp(`^cr: pid ${run.pid} is waiting in vfork\\(\\) for its child ${child}, which shares its memory until it execs or exits: ptrace cannot stop a task in that wait`));
  assert.ok(alive(run.pid) && alive(child), 'both run on');
  assert.not.ok(fs.existsSync(path.join(images, 'inventory.img')));
  assert.is(await run.exited, 0);
  assert.match(fs.readFileSync(run.out, 'utf8'), /vfork child exited 7\n/);
});

test('what restore could not make the same way is refused by name, and the tasks go on', async () => {
  // A vfork child on its own: the memory it shares is its parent's, outside the tree.
  const run = start('vforker', ['3000'], path.join(tempDir('vfchild'), 'out.txt'));
  await waitLines(run.out, 1);
  await sleep(200);
  const [child] = fs.readFileSync(`/proc/${run.pid}/task/${run.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const d = await cr(['dump', '-t', String(child), '-D', tempDir('vfchildimg')]);
  assert.match(d.stderr, new RegExp(`^cr: pid ${child} shares one address space with its parent ${run.pid}, outside the tree \\(clone CLONE_VM, a vfork child\\): not supported`));
  assert.ok(alive(child) && alive(run.pid));
  assert.is(await run.exited, 0);

  // A root that is the init of a pid namespace of its own.
  const ns = spawn('unshare', ['--pid', '--fork', 'sleep', '30'], { stdio: 'ignore' });
  let init = 0;
  while (!init) {
    await sleep(20);
    init = Number(fs.readFileSync(`/proc/${ns.pid}/task/${ns.pid}/children`, 'utf8').trim().split(/\s+/)[0] || 0);
  }
  const n = await cr(['dump', '-t', String(init), '-D', tempDir('nsrootimg')]);
  assert.match(n.stderr, new RegExp(`^cr: pid ${init} lives in a pid namespace of its own \\(pid 1 there\\): as the root of a dump, not supported`));
  assert.ok(alive(init));
  ns.kill('SIGKILL');
});

test.run();
