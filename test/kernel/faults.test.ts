/**
 * CR_FAULT in the kernel backend: the engine's `fault` parameter makes each
 * stage of checkpoint(2) and of a restart group fail, on a chain of three
 * processes and a zombie (test/lib/faults.ts); and an image whose last
 * process has a broken object fails as a whole, the tasks rebuilt before
 * it killed.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { pidExists } from '../../userspace/sys/libc.js';
import { dumpFaults, type FaultProgram, restoreFaults, strayHelpers } from '../lib/faults.js';
import { cr, sleep, tempDir } from '../lib/harness.js';
import { test } from '../lib/modes.js';
import { dmesgTrouble, kprogram, skipReason, startTo, verdicts, waitFor } from './env.js';
import { fixTrailer, objectsOf, objectTypes } from './fuzz/format.js';

const t = skipReason ? test.skip : test;

const ktree = (iters: number): FaultProgram => ({
  argv: (dir) => [kprogram('ktree'), dir, String(iters), '50'],
  ready: (dir) => waitFor(path.join(dir, 'p2.txt'), 'iter 3 '),
  progress: (dir) => path.join(dir, 'p2.txt'),
  answer: (dir) => ['p0.txt', 'p1.txt', 'p2.txt'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join(''),
});

t('a checkpoint failing after the freeze, after 5 objects, in the page data: one line, the tree runs on as before, no image', async () => {
  await dumpFaults('kernel', ktree(400), ['dump-frozen', 'dump-objects:5', 'dump-pages:1']);
  assert.equal(dmesgTrouble(), []);
});

t('a restart failing before the root or the last task is changed, in a member once changed, with the whole tree rebuilt: nothing is left', async () => {
  await restoreFaults('kernel', ktree(200));
  assert.equal(dmesgTrouble(), []);
});

const typeOf = (name: string): number => [...objectTypes().values()].find((o) => o.name === name)!.type;

/**
 * @img with the first object of type @name in the part of the tree's last
 * task retyped RLIMITS, the trailer made to agree: only that task, in its
 * turn, finds it, after the root was rebuilt (fuzz case 2128 retyped an
 * INET object TREE, which userspace refuses before the engine sees it).
 */
function retypedInLastTask(img: Buffer, name: string): Buffer {
  const out = Buffer.from(img);
  const objs = objectsOf(out);
  const last = objs.map((o) => o.type).lastIndexOf(typeOf('TASK'));
  const obj = objs.slice(last).find((o) => o.type === typeOf(name));
  if (!obj) throw new Error(`the last task has no ${name} object`);
  out.writeUInt32LE(typeOf('RLIMITS'), obj.offset);
  fixTrailer(out);
  return out;
}

t('an object of the last process retyped (its fd, its mm, its registers): the restart fails in one line, no task of the image is left; a second TREE object is refused; unbroken it restarts and runs on', async () => {
  const dir = tempDir('kbroken');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kinet'), ['established'], out);
  await waitFor(out, 'ready');
  const images = tempDir('kbrokenimg');
  const d = await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(await child.done, 'SIGKILL');
  assert.is(d.pids.length, 2, 'a parent and its child');
  const img = fs.readFileSync(path.join(images, 'kernel.img'));
  for (const name of ['FD', 'MM', 'CPU']) {
    const broken = tempDir('kbrokenedit');
    fs.writeFileSync(path.join(broken, 'kernel.img'), retypedInLastTask(img, name));
    const r = await cr(['restore', '--backend=kernel', '-D', broken]);
    assert.is.not(r.exitCode, 0, `${name}: the restart fails`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `${name}: one line of error, got:\n${r.stderr}`);
    assert.match(lines[0]!, new RegExp(`^cr: restart of pid ${d.pids[0]} failed: crengine\\[\\d+\\]: error -22: object \\d+: expected \\w+, found RLIMITS`), `${name}: ${lines[0]}`);
    for (let tries = 0; tries < 100 && d.pids.some(pidExists); tries++) await sleep(50);
    assert.equal(d.pids.filter(pidExists), [], `${name}: no task of the image is left`);
    assert.equal(strayHelpers(d.pids[0]!), [], `${name}: no cr-mktree of it is left`);
  }
  // fuzz case 2128: an INET object retyped TREE is a second task list, a stranger's pids
  const inet = objectsOf(img).filter((o) => o.type === typeOf('INET'))[3]!;
  const twoTrees = Buffer.from(img);
  twoTrees.writeUInt32LE(typeOf('TREE'), inet.offset);
  fixTrailer(twoTrees);
  const twice = tempDir('kbrokenedit');
  fs.writeFileSync(path.join(twice, 'kernel.img'), twoTrees);
  const refused = await cr(['restore', '--backend=kernel', '-D', twice]);
  assert.equal(refused.stderr.trim().split('\n').length, 1, `one line of error, got:\n${JSON.stringify(refused.stderr)}`);
  assert.match(refused.stderr.trim(), /^cr: \S+kernel\.img: not a valid kernel-backend image: object \d+: a second TREE object$/, JSON.stringify(refused.stderr));
  assert.equal(d.pids.filter(pidExists), [], 'nothing was created');
  const r = await kernelBackend.restore({ dir: images });
  assert.equal(r.pids, d.pids);
  process.kill(r.pids[0]!, 'SIGUSR1');
  const status = await r.wait();
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /FAIL/, text);
  assert.ok(verdicts(text).length > 0, text);
  assert.equal(status, { code: 0, signal: null }, text);
  assert.equal(dmesgTrouble(), []);
});

test.run();
