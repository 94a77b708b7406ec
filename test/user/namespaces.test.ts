/**
 * A container-style tree: the root unshares its UTS and IPC namespaces and
 * works with SysV shared memory, a message queue and semaphores shared
 * with its child. Restored, it must be in fresh namespaces with its names,
 * objects, ids and queued messages, and go on to print what an undisturbed
 * run prints. SysV shm of the host's namespace stays refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, sleep, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { checkpointRestart, crTest, test } from '../lib/modes.js';

const nsOf = (pid: number | 'self', kind: string) => fs.statSync(`/proc/${pid}/ns/${kind}`).ino;
const childrenOf = (pid: number) => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

crTest('a tree in its own UTS and IPC namespaces, with SysV shm, messages and semaphores', async () => {
  const ref = await undisturbed('container', ['150'], tempDir('nsref'));
  const run = start('container', ['150'], path.join(tempDir('ns'), 'out.txt'));
  await waitLines(run.out, 10);
  const { show } = await checkpointRestart(run, { detach: true });
  assert.match(show, /own uts and ipc namespaces {2}hostname cr-lab-box {2}domainname lab\.example/);
  assert.match(show, /msg key 0x1234beef id \d+ mode 0620 .* 4 messages/, 'the queued messages are saved, not consumed');
  for (const kind of ['uts', 'ipc']) {
    assert.is.not(nsOf(run.pid, kind), nsOf('self', kind), `the restored root has its own ${kind} namespace`);
    for (const child of childrenOf(run.pid)) assert.is(nsOf(child, kind), nsOf(run.pid, kind), `its child shares the root's ${kind} namespace`);
  }
  while (!fs.readFileSync(run.out, 'utf8').includes('\npid ')) await sleep(50);
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body);
  assert.is(got.pid, run.pid);
}, { sample: true });

test('SysV shm attached in the host IPC namespace is refused, and the task goes on', async () => {
  const images = tempDir('nshostimg');
  const run = start('container', ['400', 'host'], path.join(tempDir('nshost'), 'out.txt'));
  await waitLines(run.out, 3);
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is.not(d.exitCode, 0);
  assert.match(d.stderr, /SysV shm segment SYSV00000000 \(id \d+\) of the host's IPC namespace is not supported/);
  assert.ok(alive(run.pid));
  assert.not.ok(fs.existsSync(path.join(images, 'inventory.img')));
  run.child.kill('SIGKILL');
  await run.exited;
});

test.run();
