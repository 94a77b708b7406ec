/** Open files shared between descriptors, and pipes with data in flight. */
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cr, roundTrip, start, tempDir, undisturbed, waitLines, withoutPid, writeInput } from '../lib/harness.js';

test('dup-shared offsets and pipe contents survive dump and restore', async () => {
  const refDir = tempDir('fdref');
  writeInput(refDir);
  const ref = await undisturbed('fdshare', [refDir, '400'], refDir);
  const dir = tempDir('fd');
  const images = tempDir('fdimg');
  writeInput(dir);
  const run = start('fdshare', [dir, '400'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 8);
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  const show = await cr(['show', images]);
  assert.match(show.stdout, /3000 bytes in flight/);
  const r = await cr(['restore', '-D', images]);
  assert.is(r.exitCode, 0, r.all);
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body);
  assert.is(got.pid, run.pid);
});

test('a sealed memfd mapped shared and an unlinked file come back with contents, seals, offset, and the mapping still writing through', async () => {
  const dir = tempDir('ghosts');
  const r = await roundTrip('ghosts', [dir, '25'], 5);
  assert.match(r.show, /memfd:ghost-memfd saved with the memory that maps it pos 0 seals 0x6/);
  assert.match(r.show, /shmem object \d+: memfd:ghost-memfd 65536 bytes, \d+ pages saved seals 0x6/);
  assert.match(r.show, /unlinked\.txt \(unlinked, 350 bytes saved\) pos \d+0/);
  assert.match(r.show, /ANON_SHARED +\/memfd:ghost-memfd/);
  assert.is(r.restored, r.reference);
  assert.equal(fs.readdirSync(dir), [], 'the recreated file was unlinked again');
});

test('two processes sharing one fd table (CLONE_FILES) share it again after restore', async () => {
  const r = await roundTrip('fdtable', ['25'], 5);
  assert.match(r.show, /fd table: shared with the parent \(CLONE_FILES\)/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /one table: yes/);
});

test.run();
