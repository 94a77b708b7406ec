/**
 * CR_FAULT in the user backend: every stage of a dump and of a restore made
 * to fail, on a tree of threaded processes with a zombie (test/lib/faults.ts).
 */
import fs from 'node:fs';
import * as assert from 'uvu/assert';
import { alive, cr, programBin, start, tempDir, waitLines, withoutPid } from '../lib/harness.js';
import { dumpFaults, type FaultProgram, restoreFaults } from '../lib/faults.js';
import { test } from '../lib/modes.js';

const tree = (steps: number): FaultProgram => ({
  argv: () => [programBin('tree'), String(steps)],
  ready: (dir) => waitLines(`${dir}/stdout`, 5),
  progress: (dir) => `${dir}/stdout`,
  answer: (dir) => withoutPid(fs.readFileSync(`${dir}/stdout`, 'utf8')).body,
});

test('a dump failing after the freeze, after 3 image files, in the page data: one line, the tree runs on as before, no image', () =>
  dumpFaults('user', tree(2000), ['dump-frozen', 'dump-objects:3', 'dump-pages:1']));

test('a restore failing before the root or the last task is changed, in a child once changed, with the whole tree built: nothing is left', () =>
  restoreFaults('user', tree(400)));

test('CR_FAULT naming no stage is refused before anything is done', async () => {
  const run = start('bigmem', ['8', '300'], `${tempDir('fault-bad')}/out.txt`);
  await waitLines(run.out, 3);
  for (const [value, why] of [['bogus', /^cr: CR_FAULT=bogus: not a fault stage \(dump-frozen, dump-objects\[:N\]/], ['dump-frozen:2', /^cr: CR_FAULT=dump-frozen:2: dump-frozen takes no count$/]] as const) {
    const images = tempDir('fault-bad-img');
    const r = await cr(['dump', '-t', String(run.pid), '-D', images], { env: { CR_FAULT: value } });
    assert.is(r.exitCode, 1);
    assert.match(r.stderr.trim(), why);
    assert.equal(fs.readdirSync(images), []);
    assert.ok(alive(run.pid));
  }
  run.child.kill('SIGKILL');
  await run.exited;
});

test.run();
