/**
 * A 3-level tree of multithreaded processes connected by pipes, sharing
 * anonymous memory, with a zombie: restored with its pids, parents,
 * process group, thread counts and zombie, it must go on to print what an
 * undisturbed run prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { procStat, procStatus, statField } from '../../userspace/proc/parse.js';
import { sleep, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { checkpointRestart, crTest, test } from '../lib/modes.js';

interface Shape {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  threads: number;
}

/** Every process of the tree under `root`, as /proc shows it. */
function shapeOf(root: number): Shape[] {
  const out: Shape[] = [];
  const visit = (pid: number) => {
    const stat = procStat(pid);
    out.push({ pid, ppid: Number(statField(stat, 4)), pgid: Number(statField(stat, 5)), state: stat.state === 'Z' ? 'Z' : 'live', threads: Number(procStatus(pid).get('Threads')) });
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      for (const child of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) visit(Number(child));
    }
  };
  visit(root);
  return out.sort((a, b) => a.pid - b.pid);
}

/** Dump the tree program mid-run (with extra dump arguments), restore it, and compare. */
async function roundTrip(dumpArgs: string[] = [], cgroup?: string): Promise<void> {
  const ref = await undisturbed('tree', ['400'], tempDir('treeref'));
  const dir = tempDir('tree');
  const run = start('tree', ['400'], path.join(dir, 'out.txt'), cgroup);
  await waitLines(run.out, 5);
  const before = shapeOf(run.pid);
  assert.is(before.length, 4, 'root, child, grandchild and zombie');

  const c = await checkpointRestart(run, { dumpArgs: ['-v', ...dumpArgs], detach: true });
  if (cgroup) assert.match(c.dumpLog, /froze .*: seized 9 threads/, 'all 3 threads of the 3 live processes');

  const after = shapeOf(run.pid).map((s) => (s.pid === run.pid ? { ...s, ppid: before[0].ppid } : s));
  assert.equal(after, before, 'pids, parents, process group, threads and the zombie');
  while (!fs.readFileSync(run.out, 'utf8').includes('\npid ')) await sleep(50);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body);
}

crTest('a tree of threaded processes with pipes, shared memory and a zombie', () => roundTrip(), { sample: true });

crTest('restored into a new pid namespace, the tree keeps its pids there', async () => {
  const ref = await undisturbed('tree', ['400'], tempDir('nsref'));
  const run = start('tree', ['400'], path.join(tempDir('ns'), 'out.txt'));
  await waitLines(run.out, 5);
  // The original pids may well be taken here meanwhile: inside the new namespace they are free.
  await checkpointRestart(run, { restoreArgs: ['--pidns'] });
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body);
  assert.is(got.pid, run.pid, 'getpid() inside the namespace is the original pid');
}, { not: { iter: 'a tree restored into a new pid namespace is dumped again from outside it, where its pids are not the image\'s' } });

/** Freezer cgroups this kernel offers: v1 (freezer.state) and v2 (cgroup.freeze). */
const FREEZERS = ['/sys/fs/cgroup/freezer', '/sys/fs/cgroup/unified', '/sys/fs/cgroup']
  .filter((d) => fs.existsSync(path.join(d, 'freezer.state')) || fs.existsSync(path.join(d, 'cgroup.procs')))
  .filter((d, _i, all) => !(d === '/sys/fs/cgroup' && all.includes('/sys/fs/cgroup/unified')));

for (const root of FREEZERS) {
  crTest(`the same tree, frozen through the cgroup freezer (${root})`, async () => {
    const cgroup = fs.mkdtempSync(path.join(root, 'cr-test-'));
    try {
      await roundTrip(['--freeze-cgroup', cgroup], cgroup);
    } finally {
      // Restored tasks live in cr's own cgroup; the test's is empty now.
      for (let tries = 0; tries < 50 && fs.existsSync(cgroup); tries++) {
        try {
          fs.rmdirSync(cgroup);
        } catch {
          await sleep(100);
        }
      }
    }
  }, { not: { iter: 'the restored tree is in cr\'s own cgroup, not the one the next round freezes' } });
}

test.run();
