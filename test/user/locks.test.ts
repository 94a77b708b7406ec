/** POSIX record locks, OFD locks and flock locks survive dump and restore, with their owners and ranges. */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { cr, programBin, start, tempDir, waitLines, withoutPid } from '../lib/harness.js';
import { checkpointRestart, crTest, test } from '../lib/modes.js';

const probe = async (dir: string) => (await execa(programBin('lockprobe'), [dir])).stdout;

/** /proc/locks lines of one inode, each as "KIND TYPE PID RANGE". */
function procLocks(file: string): string[] {
  const ino = fs.statSync(file).ino;
  return fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.includes(`:${ino} `))
    .map((l) => l.replace(/^\d+:\s+/, '').replace(/\s+\S+:\S+:\d+\s+/, ' ').replace(/\s+/g, ' ').trim()).sort();
}

crTest('a process outside the tree sees every lock held again by the same pid, over the same range', async () => {
  const dir = tempDir('locks');
  const images = tempDir('locks-img');
  const run = start('locks', [dir, '40'], path.join(tempDir('locks-out'), 'out.txt'));
  await waitLines(run.out, 3);
  const before = await probe(dir);
  const procBefore = procLocks(path.join(dir, 'data'));
  // The tree's own view: the parent's POSIX locks, the child's, the open files' OFD and flock locks.
  const [tick] = fs.readFileSync(run.out, 'utf8').split('\n');
  const pids = /I see WRITE by (\d+) \[150 \+10\]; the child sees WRITE by (\d+) \[0 \+100\] \| READ by \2 \[200 \+0\] \| WRITE by -1 \[100 \+50\]; OFD held, flock held and shared, other flock held$/.exec(tick);
  assert.ok(pids, tick);
  assert.is(Number(pids![2]), run.pid);

  await checkpointRestart(run, {
    images,
    detach: true,
    beforeRestore: async () => {
      assert.match(await probe(dir), /F_GETLK 0: free/, 'the locks went with the killed tree');
      const show = (await cr(['show', images])).stdout;
      for (const l of [`posix write lock [0, 99] by pid ${run.pid} on fd 3`, `posix read lock [200, EOF] by pid ${run.pid} on fd 3`,
        'ofd write lock [100, 149] by pid -1 on fd 4', `flock read lock by pid ${run.pid} on fd 5`, `flock write lock by pid ${run.pid} on fd 6`,
        `posix write lock [150, 159] by pid ${pids![1]} on fd 11`]) assert.ok(show.includes(l), l);
    },
  });
  const after = await probe(dir);
  assert.is(after, before);
  assert.match(after, new RegExp(`F_GETLK 99: write lock of pid ${run.pid} on \\[0 \\+100\\]`));
  assert.match(after, new RegExp(`F_GETLK 155: write lock of pid ${pids![1]} on \\[150 \\+10\\]|F_GETLK 159: write lock of pid ${pids![1]}`));
  assert.match(after, /F_OFD_GETLK 120: write lock of pid -1 on \[100 \+50\]|F_OFD_GETLK 149: write lock of pid -1 on \[100 \+50\]/);
  assert.match(after, /flock data shared: taken\nflock data exclusive: held by another\nflock other shared: held by another/);
  assert.equal(procLocks(path.join(dir, 'data')), procBefore, '/proc/locks: the same kinds, holders and ranges');

  await waitLines(run.out, 41);
  const out = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(out.pid, run.pid);
  const ticks = out.body.trim().split('\n');
  assert.is(ticks.length, 40);
  for (const line of ticks) assert.is(line.replace(/^tick \d+/, ''), tick.replace(/^tick \d+/, ''), line);
}, { sample: true });

test.run();
