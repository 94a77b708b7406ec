/**
 * `npm run soak` on the host, for a few seconds: it goes through at least
 * one run, and ends with the counts a researcher reads — every failure
 * listed with its stage and reason, then `N runs, N passed, N failed`,
 * the exit status saying whether any failed.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import * as assert from 'uvu/assert';
import { test } from '../lib/modes.js';

const soak = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'soak.js');

test('a short host soak ends with its counts, each failure by stage and reason', async () => {
  const r = await execa(process.execPath, [soak, '--minutes', '0.05', '--seed', '5'], { reject: false, all: true });
  const lines = r.stdout.trim().split('\n');
  const last = lines.at(-1) ?? '';
  const m = /^(\d+) runs, (\d+) passed, (\d+) failed \(0\.05 min, user backend, seed 5\)$/.exec(last);
  assert.ok(m, `the summary line: ${last}\n${r.all}`);
  const [runs, passed, failed] = m.slice(1).map(Number);
  assert.ok(runs >= 1, 'at least one run');
  assert.is(passed + failed, runs);
  assert.is(lines.filter((l) => /^run \d+: /.test(l)).length, runs, 'one line per run');
  const listed = lines.slice(lines.indexOf(`failures (${failed}):`) + 1).filter((l) => /^ {2}\S+: .+ — /.test(l));
  assert.is(listed.length, failed, 'each failure with its stage and reason');
  assert.is(r.exitCode, failed ? 1 : 0);
  assert.is(failed, 0, r.all);
});

test('a negative soak duration is refused in one line', async () => {
  const r = await execa(process.execPath, [soak, '--minutes', '-1'], { reject: false, all: true });
  assert.is.not(r.exitCode, 0);
  assert.match(r.stderr.trim(), /^error: option '--minutes <m>' argument '-1' is invalid\. a positive number of minutes$/);
});

test.run();
