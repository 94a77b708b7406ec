/**
 * The restart group (kmod/group.c) under repetition: the kshare tree (a
 * fork, CLONE_VM, CLONE_FILES, CLONE_FS and CLONE_SIGHAND children and a
 * vfork child the parent waits for) is checkpointed and restarted round
 * after round in one boot, each round checking its own state.  A round
 * whose members take their turns in an unlucky order must end like any
 * other: the vfork parent, last to leave the group, once kept the group's
 * files open until its child ended, and the restarter waited forever for
 * the end of the engine's log.
 *
 * CR_KSHARE_ROUNDS sets the number of rounds (default 6, for the suite);
 * a stress run asks for 100.
 */
import * as assert from 'uvu/assert';
import { test } from '../lib/modes.js';
import { dmesgTrouble, kshareRun, skipReason, verdicts } from './env.js';

const t = skipReason ? test.skip : test;
const ROUNDS = Number(process.env.CR_KSHARE_ROUNDS ?? 6);

t(`kshare restarts ${ROUNDS} times in a row, each time whole: shared mm, vfork wait and all`, async () => {
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`CR_KSHARE_ROUNDS=${process.env.CR_KSHARE_ROUNDS}: not a count`);
  const ref = verdicts((await kshareRun(false)).out);
  for (let round = 1; round <= ROUNDS; round++) {
    const run = await kshareRun(true);
    assert.not.match(run.out, /FAIL/, `round ${round}: ${run.out}`);
    assert.equal(verdicts(run.out), ref, `round ${round}`);
    assert.is(run.status, 0, `round ${round}: ${run.out}`);
  }
  console.log(`  ${ROUNDS} rounds`);
  assert.equal(dmesgTrouble(), []);
});

test.run();
