/**
 * The kernel backend on namespaces: kipc, started in IPC and UTS
 * namespaces of its own (unshare -iu), builds SysV shm segments, message
 * queues and semaphore sets with SEM_UNDO adjustments and names its host,
 * then checks all of it after restart into fresh namespaces; kpidns
 * checks its pids after `cr restore --pidns`, restarted into a pid
 * namespace of its own with the same pids inside and outside it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { readImage, imagePath } from '../../backends/kernel/image.js';
import { kernelBackend } from '../../backends/kernel/index.js';
import { helperPath } from '../../backends/kernel/sys.js';
import { CrError } from '../../userspace/errors.js';
import { alive, cr, sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, skipReason, startTo, waitFor } from './env.js';

const t = skipReason ? test.skip : test;
if (skipReason) console.log(`kernel backend tests skipped: ${skipReason}`);

/** The pids of task @pid in each pid namespace it is in, outermost first (NSpid). */
const nsPids = (pid: number): number[] =>
  /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1].split(/\s+/).map(Number);

t('SysV segments, queues and semaphores with SEM_UNDO, and the host name, come back in fresh IPC and UTS namespaces', async () => {
  const dir = tempDir('kipc');
  const images = tempDir('kipcimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo('unshare', ['-iu', kprogram('kipc')], out);
  await waitFor(out, '\nready\n');
  const ids = /^ids (.*)$/m.exec(fs.readFileSync(out, 'utf8'))![1].split(' ').map(Number);
  const [a, b, c, q, , s] = ids;

  const d = await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(d.pids.length, 3);
  assert.is(await child.done, 'SIGKILL');
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  assert.match(show, /uts namespace of its own: hostname kipc-host domainname kipc\.domain/);
  assert.match(show, /ipc namespace of its own: 3 shm segments, 2 message queues, 2 semaphore sets/);
  assert.match(show, new RegExp(`shm id ${a} key 0x6b495043 mode 0640 uid 65534 gid 65534 creator 0:0 size 12388`));
  assert.match(show, new RegExp(`shm id ${b} key 0x00000000 mode 0600 .* locked size 8192\\n\\s+2 pages saved`));
  assert.match(show, new RegExp(`shm id ${c} .* removed size 4096`));
  assert.match(show, new RegExp(`msg queue id ${q} key 0x6b4d5347 mode 0620 .* qbytes 100000, 4 messages`));
  assert.match(show, /message type 2, 5000 bytes/);
  assert.match(show, new RegExp(`sem set id ${s} key 0x6b53454d mode 0600 .* values 3 4 1`));
  assert.match(show, new RegExp(`sem undo: set ${s} adjustments 2 -4 0`));
  assert.match(show, new RegExp(`sem undo: set ${s} adjustments 0 0 10`));
  assert.match(show, new RegExp(`vma 0x[0-9a-f]+-0x[0-9a-f]+ r-- sysv shm id ${a} pgoff 0`));
  assert.match(show, new RegExp(`vma 0x[0-9a-f]+-0x[0-9a-f]+ rw- sysv shm id ${a} pgoff 1`));

  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, d.pids);
  process.kill(r.pids[0], 'SIGUSR1');
  const status = await r.wait();
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /FAIL/, text);
  for (const ok of ['hostname', 'segment A\'s contents, through both attachments', 'attachments and their protections', 'segment B\'s contents',
    'segment C: removed, still attached, its contents', 'message 3: type 3, 8000 bytes', 'values 3 4 1', 'child 1\'s write is seen',
    'child 1\'s SEM_UNDO undone: 5 0 1', 'child 2\'s SEM_UNDO undone: 5 0 11']) assert.ok(text.includes(`ok ${ok}\n`), `${ok}\n${text}`);
  assert.equal(status, { code: 0, signal: null }, text);
  assert.equal(dmesgTrouble(), []);
});

t('an image with namespaces of its own is not restarted in the restarter\'s', async () => {
  const dir = tempDir('kipcns');
  const images = tempDir('kipcnsimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo('unshare', ['-iu', kprogram('kipc')], out);
  await waitFor(out, 'ready\n');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  await child.done;
  // as if cr-mktree had not been given -n: the engine refuses to rename the restarter's host
  const { tree } = readImage(imagePath(images));
  const h = await execa(helperPath(), ['-k', imagePath(images), path.join(images, 'again.log'), ...tree.map((p) => `${p.pid}:${p.ppid}:${p.pgid}:${p.sid}`)], {
    reject: false, stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  assert.is(h.exitCode, 125);
  assert.match(fs.readFileSync(path.join(images, 'again.log'), 'utf8'), /had a UTS namespace of its own: restart it in a new one/);
  assert.equal(dmesgTrouble(), []);
});

t('cr restore --pidns: the tree comes back in a pid namespace of its own, with its pids inside and outside it', async () => {
  const dir = tempDir('kpidns');
  const images = tempDir('kpidnsimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kpidns'), [], out);
  await waitFor(out, 'ready\n');
  const d = await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(d.pids.length, 3);
  await child.done;

  const r = await kernelBackend.restore({ dir: images, pidns: true });
  assert.equal(r.pids, d.pids);
  for (const p of d.pids) assert.equal(nsPids(p), [p, p], `pid ${p} has its pid at both levels`);
  assert.equal(nsPids(d.pids[0]).length, 2, 'one level below the restarter');

  // a tree so restored is checkpointed again from outside, and restored by the command
  const again = tempDir('kpidnsimg2');
  await kernelBackend.dump({ pid: d.pids[0], dir: again });
  await r.wait();
  const cmd = await cr(['restore', '--backend=kernel', '--pidns', '--detach', '-D', again]);
  assert.is(cmd.exitCode, 0, cmd.all);
  for (const p of d.pids) assert.equal(nsPids(p), [p, p]);
  process.kill(d.pids[0], 'SIGUSR1');
  await waitFor(out, 'root\'s parent is pid ');
  while (alive(d.pids[0])) await sleep(10);
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /FAIL/, text);
  assert.match(text, /root's parent is pid 1\n/, 'inside, the root\'s parent is the small init');
  for (const [i, p] of d.pids.entries()) assert.ok(text.includes(`ok level ${i}: pid ${p}\n`), text);
  assert.ok(text.includes(`ok level 2: parent ${d.pids[1]}, found by its pid\n`), text);
  assert.equal(dmesgTrouble(), []);
});

t('a tree whose pids differ in a pid namespace of its own is refused by name', async () => {
  const out = path.join(tempDir('kpidnsno'), 'out.txt');
  const outer = startTo('unshare', ['-pf', kprogram('kpidns')], out);
  await waitFor(out, 'ready\n');
  const root = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number)
    .find((p) => { try { return Number(fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === outer.pid; } catch { return false; } })!;
  const err = await kernelBackend.dump({ pid: root, dir: tempDir('kpidnsnoimg') }).catch((e: unknown) => e);
  assert.instance(err, CrError);
  assert.match((err as Error).message, new RegExp(`pid ${root} is in a pid namespace that is not the checkpointer's \\(pid 1 there\\): not supported`));
  assert.ok(alive(root), 'a refused checkpoint leaves the tree running');
  process.kill(outer.pid, 'SIGKILL');
  process.kill(root, 'SIGKILL');
  await outer.done;
  assert.equal(dmesgTrouble(), []);
});

test.run();
