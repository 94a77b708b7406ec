/**
 * The harness must tell a good restore from a broken one: a stand-in that
 * prints the right checksum passes, one that prints another checksum, says
 * BAD, exits non-zero, leaves the tasks running or throws fails with the
 * stage and the reason; a backend missing from the registry or failing its
 * check is ❌ in every cell, never a silent gap.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execaSync } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../backends/types.js';
import { runAll, parseWlOutput, type HarnessConfig, type HarnessEvent, type RunRecord } from '../../compare/harness.js';
import { becomeSubreaper } from '../../compare/sys.js';
import { packageRoot } from '../../userspace/paths.js';
import { fakeBackend } from './fakes.js';

const bin = (n: string) => path.join(packageRoot, 'compare', 'workloads', 'bin', n);
let scratch = '';

test.before(() => {
  execaSync('make', ['-s', '-C', path.join(packageRoot, 'compare', 'workloads')]);
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-compare-test-'));
  becomeSubreaper();
});
test.after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function config(registry: Record<string, Backend>, backends: string[], events: HarnessEvent[] = []): HarnessConfig {
  return {
    registry, backends, reps: 2, featureReps: 1, modes: ['lib'], scratch,
    wlBin: bin('wl'), rusageBin: bin('rusage'), crCli: ['false'], criuBin: 'false', timeoutScale: 0.3,
    emit: (ev) => events.push(ev),
  };
}

const memCase = { kind: 'bench' as const, workload: 'mem', size: 1, args: ['mem=1'] };

test('wl protocol parses', () => {
  const o = parseWlOutput('READY 42 00000000deadbeef\nBAD p1: lost\nDONE 00000000deadbeef (with BAD lines)\n');
  assert.equal(o.ready, { pid: 42, sum: '00000000deadbeef' });
  assert.is(o.done, '00000000deadbeef');
  assert.equal(o.bad, ['p1: lost']);
});

test('a faithful restore passes, with timings recorded', async () => {
  const { records } = await runAll(config({ good: fakeBackend('good', {}) }, ['good']), [memCase]);
  assert.is(records.length, 2);
  for (const r of records) {
    assert.ok(r.ok, `${r.stage}: ${r.reason}`);
    assert.is(r.got, r.expected);
    assert.ok(r.dump!.wallMs >= 0 && r.restore!.wallMs >= 0);
    assert.is(r.dump!.frozenMs, 1);
    assert.is(r.dump!.imageBytes, 1234);
  }
});

test('a restore that prints another checksum fails at check', async () => {
  const { records } = await runAll(config({ bad: fakeBackend('bad', { done: () => 'DONE 0123456789abcdef' }) }, ['bad']), [memCase]);
  for (const r of records) {
    assert.not.ok(r.ok);
    assert.is(r.stage, 'check');
    assert.match(r.reason!, /checksum 0123456789abcdef ≠ expected [0-9a-f]{16}/);
  }
});

test('BAD lines and a non-zero exit fail even with the right checksum', async () => {
  const reg = { lossy: fakeBackend('lossy', { done: (s) => `BAD p0: mem: 1 of 2 words differ\nDONE ${s}`, exitCode: 1 }) };
  const { records } = await runAll(config(reg, ['lossy']), [memCase]);
  assert.not.ok(records[0].ok);
  assert.match(records[0].reason!, /mem: 1 of 2 words differ/);
  assert.match(records[0].reason!, /exit status 1/);
});

test('a dump error, a restore error and tasks left running are reported by stage', async () => {
  const reg = {
    d: fakeBackend('d', { dumpThrows: 'criu dump failed: cannot seize 1234' }),
    r: fakeBackend('r', { restoreThrows: 'image is corrupt' }),
    g: fakeBackend('g', { leaveRunning: true }),
  };
  const { records } = await runAll({ ...config(reg, ['d', 'r', 'g']), reps: 1 }, [memCase]);
  const by = (b: string) => records.find((x: RunRecord) => x.backend === b)!;
  assert.is(by('d').stage, 'dump');
  assert.is(by('d').reason, 'criu dump failed: cannot seize 1234');
  assert.is(by('r').stage, 'restore');
  assert.is(by('r').reason, 'image is corrupt');
  assert.is(by('g').stage, 'gone');
  assert.match(by('g').reason!, /still running after the dump/);
});

test('a backend missing from the registry or failing its check is ❌ everywhere', async () => {
  const events: HarnessEvent[] = [];
  const reg = { sick: fakeBackend('sick', { checkFails: 'no such syscall' }) };
  const { records, checks } = await runAll(config(reg, ['kernel', 'sick'], events), [memCase]);
  assert.is(records.length, 4);
  assert.ok(records.every((r) => !r.ok && r.stage === 'available'));
  assert.is(checks.kernel.reason, 'backend not available');
  assert.match(checks.sick.reason!, /check failed: fake: no such syscall/);
  assert.ok(events.some((e) => e.t === 'plan' && e.total === 4));
});

test('a case\'s variants of the run\'s backends run as library calls; a variant of a backend not run is left out', async () => {
  const events: HarnessEvent[] = [];
  const reg = { good: fakeBackend('good', {}) };
  const cfg = { ...config(reg, ['good'], events), reps: 1, modes: ['lib', 'cli'] as HarnessConfig['modes'] };
  const { records } = await runAll(cfg, [{ ...memCase, variants: ['good+cow', 'other+pre'] }]);
  assert.equal(records.map((r) => [r.backend, r.mode]), [['good', 'lib'], ['good', 'cli'], ['good+cow', 'lib']]);
  assert.ok(records.find((r) => r.backend === 'good+cow')!.ok);
  assert.ok(events.some((e) => e.t === 'plan' && e.total === 3));
});

test('the workload itself notices a changed checksum (no backend involved)', async () => {
  // run wl twice with different workdirs: the pid differs, so the checksums must too
  const sums: string[] = [];
  for (let i = 0; i < 2; i++) {
    const log = path.join(scratch, `direct${i}.log`);
    const fd = fs.openSync(log, 'w');
    const { spawn } = await import('node:child_process');
    const c = spawn(bin('wl'), [scratch, 'mem=1'], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    for (let k = 0; k < 300 && !parseWlOutput(fs.readFileSync(log, 'utf8')).ready; k++) await new Promise((r) => setTimeout(r, 10));
    c.kill('SIGUSR1');
    await new Promise((r) => c.once('exit', r));
    const o = parseWlOutput(fs.readFileSync(log, 'utf8'));
    assert.is(o.done, o.ready!.sum);
    sums.push(o.done!);
  }
  assert.is.not(sums[0], sums[1]);
});

test.run();
