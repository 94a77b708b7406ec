/** Open files shared between descriptors, and pipes with data in flight. */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, roundTrip, start, tempDir, undisturbed, waitLines, withoutPid, writeInput } from '../lib/harness.js';
import { checkpointRestart, crTest, test } from '../lib/modes.js';

crTest('dup-shared offsets and pipe contents survive dump and restore', async () => {
  const refDir = tempDir('fdref');
  writeInput(refDir);
  const ref = await undisturbed('fdshare', [refDir, '400'], refDir);
  const dir = tempDir('fd');
  writeInput(dir);
  const run = start('fdshare', [dir, '400'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 8);
  const c = await checkpointRestart(run);
  assert.match(c.show, /3000 bytes in flight/);
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body);
  assert.is(got.pid, run.pid);
}, { sample: true });

crTest('a sealed memfd mapped shared and an unlinked file come back with contents, seals, offset, and the mapping still writing through', async () => {
  const dir = tempDir('ghosts');
  const r = await roundTrip('ghosts', [dir, '25'], 5);
  assert.match(r.show, /memfd:ghost-memfd saved with the memory that maps it pos 0 seals 0x6/);
  assert.match(r.show, /shmem object \d+: memfd:ghost-memfd 65536 bytes, \d+ pages saved seals 0x6/);
  assert.match(r.show, /unlinked\.txt \(removed file, 350 bytes saved, mode 0640 owner 0:0\) pos \d+0/);
  assert.match(r.show, /ANON_SHARED +\/memfd:ghost-memfd/);
  assert.is(r.restored, r.reference);
  assert.equal(fs.readdirSync(dir), [], 'the recreated file was unlinked again');
});

crTest("a process's own /proc files held open come back as its own (through /proc/self)", async () => {
  const r = await roundTrip('procself', ['150'], 3);
  assert.match(r.show, /\/proc\/self\/status/);
  assert.match(r.show, /\/proc\/self\/task\/\d+\/stat/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /^0 bad$/m);
});

crTest('two processes sharing one fd table (CLONE_FILES) share it again after restore', async () => {
  const r = await roundTrip('fdtable', ['25'], 5);
  assert.match(r.show, /fd table: shared with the parent \(CLONE_FILES\)/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /one table: yes/);
});

crTest('file status flags of every kind of descriptor, exactly as F_GETFL shows them, and a descriptor at nr_open - 1 (or as high as the hard limit goes)', async () => {
  const dir = tempDir('fdflags');
  const r = await roundTrip('fdflags', [dir, '60'], 30);
  const high = /high descriptor: fd (\d+)/.exec(r.reference)![1];
  assert.ok(Number(high) > 1000, `fd ${high}: far above the others`);
  for (const line of [
    /fd 3: pipe:\[\d+\] read end, \d+ bytes in flight flags 024000 owner \d+ signal 23\n/, // O_NONBLOCK | O_ASYNC
    /fd 4: pipe:\[\d+\] write end flags 040001\n/, // O_DIRECT: packet mode
    /fd 5: pipe:\[\d+\] read end flags 0104000\n/, // reopened through /proc: O_LARGEFILE
    /fd 8: \S+\/fifo \(O_PATH\) flags 010000000\n/,
    /fd 12: \S+\/sync pos 0 flags 04110001\n/,
    new RegExp(`fd ${high}: /dev/null flags 01100000\n`), // O_NOATIME
  ]) assert.match(r.show, line);
  assert.is(r.restored, r.reference);
  assert.not.match(r.restored, /WRONG/);
  assert.equal(fs.readdirSync(dir), []);
});

crTest('files and directories whose names were removed, a removed working directory, with owner, group and mode', async () => {
  const dir = tempDir('removed');
  const r = await roundTrip('removed', [dir, '50'], 5);
  assert.match(r.show, /a\/b\/file \(removed file, \d+ bytes saved, mode 0604 owner 1234:5678\) pos \d+/);
  assert.match(r.show, /\/d \(removed directory, mode 0750 owner 0:0\)/);
  assert.match(r.show, /cwd \S+\/c \(removed directory, mode 0710/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /tick 19: line 0019 owner 1234:5678 mode 0604 nlink 0 same inode yes \| dir nlink 0 mode 0750 \| cwd nlink 0 mode 0710, the child's the same \| names gone/);
  assert.equal(fs.readdirSync(dir), [], 'every name recreated for the restore was removed again');
});

test('fanotify, leases, unread inotify events and pty bytes, a deleted name with another link: refused by name, and the task goes on', async () => {
  for (const [mode, why] of [
    ['fanotify', /^cr: pid \d+ fd 3: fanotify is not supported$/],
    ['lease', /^cr: pid \d+ fd 3: lease \(read\) on \S+\/a is not supported$/],
    ['inotify-unread', /^cr: pid \d+ fd 3: inotify with \d+ bytes of unread events is not supported$/],
    ['pty-unread', /^cr: pid \d+ fd 3: pty \d+ has 6 bytes waiting for its master: not supported$/],
    ['linked-deleted', /^cr: pid \d+ fd 3: \S+\/a \(deleted\) still has 1 other name: not supported$/],
  ] as const) {
    const dir = tempDir(`fdrefuse-${mode}`);
    const run = start('fdrefuse', [dir, mode], path.join(tempDir('fdrefuse-out'), 'out.txt'));
    await waitLines(run.out, 1);
    const images = tempDir('fdrefuse-img');
    const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
    assert.is(d.exitCode, 1, mode);
    assert.match(d.stderr.trim(), why);
    assert.ok(alive(run.pid), `${mode}: the task goes on`);
    assert.equal(fs.readdirSync(images), [], `${mode}: no image left behind`);
    run.child.kill('SIGKILL');
    await run.exited;
  }
});

test.run();
