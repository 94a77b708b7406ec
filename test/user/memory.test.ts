/**
 * The user backend on a single process: dumped mid-run, killed, restored,
 * it must print exactly what an undisturbed run prints, with its pid.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { procStat } from '../../userspace/proc/parse.js';
import { alive, cr, roundTrip, sleep, start, tempDir, undisturbed, waitLines, withoutPid, writeInput } from '../lib/harness.js';
import { checkpointRestart, crTest, test } from '../lib/modes.js';

const STEPS = '600';

async function expected(): Promise<{ out: string; shared: Buffer }> {
  const dir = tempDir('ref');
  writeInput(dir);
  const out = await undisturbed('memstress', [dir, STEPS], dir);
  return { out, shared: fs.readFileSync(path.join(dir, 'shared.map')) };
}

crTest('memstress: every kind of memory, a file offset, signals and rlimits survive dump and restore', async () => {
  const ref = await expected();
  const dir = tempDir('ms');
  writeInput(dir);
  const run = start('memstress', [dir, STEPS], path.join(dir, 'out.txt'));
  await waitLines(run.out, 15);
  await checkpointRestart(run, {
    backend: 'user',
    beforeRestore: async () => assert.is(await run.exited, null, 'the dumped task is killed'),
  });
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref.out).body);
  assert.is(got.pid, run.pid, 'restored with its original pid');
  assert.ok(fs.readFileSync(path.join(dir, 'shared.map')).equals(ref.shared), 'shared file mapping contents');
}, { sample: true, not: { snap: 'its shared file mapping is the file itself, not in the image: what it writes there after the snapshot stays' } });

crTest('a 256 MiB anonymous memory process is restored with identical contents', async () => {
  const refDir = tempDir('bigref');
  const ref = await undisturbed('bigmem', ['256', '150'], refDir);
  const dir = tempDir('big');
  const run = start('bigmem', ['256', '150'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 5, 120000);
  await checkpointRestart(run, {
    beforeRestore: async (images) => {
      // in pre mode the last dump holds what changed since the pre-dumps, which hold the rest
      let pages = 0;
      for (let dir: string | undefined = images; dir; dir = fs.existsSync(path.join(dir, 'parent')) ? fs.realpathSync(path.join(dir, 'parent')) : undefined) {
        pages += fs.statSync(path.join(dir, `pages-${run.pid}.img`)).size;
      }
      assert.ok(pages >= 256 << 20, `the pages files hold the 256 MiB (${pages} bytes)`);
    },
  });
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body);
  assert.is(got.pid, run.pid);
});

test('--leave-running keeps the task going, and its image restores after it ends', async () => {
  const ref = await undisturbed('bigmem', ['16', '200'], tempDir('lrref'));
  const dir = tempDir('lr');
  const images = tempDir('lrimg');
  const run = start('bigmem', ['16', '200'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 10);

  const d = await cr(['dump', '-t', String(run.pid), '-D', images, '--leave-running']);
  assert.is(d.exitCode, 0, d.all);
  assert.ok(alive(run.pid), 'still running after the dump');
  assert.is(await run.exited, 0);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body, 'the dump did not disturb it');

  // The image holds the output file's offset at the dump: the restored run
  // writes the same tail over it again.
  const r = await cr(['restore', '-D', images]);
  assert.is(r.exitCode, 0, r.all);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body);
});

crTest('a task stopped by a signal comes back stopped, and goes on when continued', async () => {
  const ref = await undisturbed('bigmem', ['16', '100'], tempDir('stopref'));
  const dir = tempDir('stop');
  const run = start('bigmem', ['16', '100'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 5);
  process.kill(run.pid, 'SIGSTOP');
  const stateOf = () => procStat(run.pid).state;
  while (stateOf() !== 'T') await sleep(10);
  // Stopped, it writes nothing between the rounds: each dumps it stopped.
  const c = await checkpointRestart(run, { detach: true, watch: null });
  assert.match(c.show, /1 thread, stopped/);
  for (let i = 0; i < 3000 && stateOf() !== 'T'; i++) await sleep(10); // the restored task stops when it first runs: on a busy machine, later
  assert.is(stateOf(), 'T', 'stopped after restore');
  const lines = fs.readFileSync(run.out, 'utf8');
  await sleep(300);
  assert.is(fs.readFileSync(run.out, 'utf8'), lines, 'and not running');
  process.kill(run.pid, 'SIGCONT');
  while (!fs.readFileSync(run.out, 'utf8').includes('\npid ')) await sleep(50);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body);
});

crTest('split and moved shared memory, 1 GiB mappings, may-write bits of shared files, a memfd\'s flags and private mapping', async () => {
  const dir = tempDir('shapes');
  const r = await roundTrip('mapshapes', [dir, '120'], 2);
  assert.match(r.show, /shmem object \d+: shared anonymous memory 1073741824 bytes, 16 pages saved/, 'only the pages that hold data');
  assert.match(r.show, /FILE_SHARED +\S+\/ro\.txt {2}\(read-only file\)/);
  assert.match(r.show, /FILE_PRIVATE +\/memfd:shapes \(deleted\)/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /end: 0 bad\nread-write file: mprotect writable 1\nread-only file: mprotect writable -13\n/);
  assert.match(r.restored, /memfd flags 106002, reopened 100000\n/);
});

test.run();
