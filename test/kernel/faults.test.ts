/**
 * CR_FAULT in the kernel backend: the engine's `fault` parameter makes each
 * stage of checkpoint(2) and of a restart group fail, on a chain of three
 * processes and a zombie (test/lib/faults.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { dumpFaults, type FaultProgram, restoreFaults } from '../lib/faults.js';
import { test } from '../lib/modes.js';
import { dmesgTrouble, kprogram, skipReason, waitFor } from './env.js';

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

test.run();
