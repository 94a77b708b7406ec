/** The statistics and the report built from raw records. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RunRecord } from '../../compare/harness.js';
import { makePlan, parseSizes } from '../../compare/plan.js';
import { makePlots } from '../../compare/plots.js';
import { bandwidthAt, cell, featureMatrix, ratioTable, renderReport, rowsOf, slopeTable, startupLines, throughputTable, variantTable, type RawResults } from '../../compare/report.js';
import { stepLimitSec } from '../../compare/workloads.js';
import { fmt, fmtSummary, leastSquares, median, ratio, summarize } from '../../compare/stats.js';

test('median, min, max over finite values only', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.equal(summarize([5, undefined, 1, NaN, 3, null]), { n: 3, median: 3, min: 1, max: 5 });
  assert.is(summarize([undefined]), undefined);
  assert.is(ratio(summarize([2]), summarize([4])), 0.5);
  assert.is(ratio(summarize([2]), undefined), undefined);
  assert.is(fmtSummary(summarize([1, 2, 30])), '2.00 (1.00–30.0)');
  assert.is(fmt(undefined), '–');
  assert.is(fmt(1234.4, 'ms'), '1234 ms');
});

const rec = (backend: string, mode: RunRecord['mode'], ok: boolean, dumpMs: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  kind: 'bench', workload: 'mem', size: 16, backend, mode, rep: 0, ok,
  ...(ok ? { dump: { wallMs: dumpMs, frozenMs: dumpMs / 2, imageBytes: 16 * 1048576, memory: { peakKiB: 2048, source: 'wait4-maxrss' } }, restore: { wallMs: dumpMs * 2 } }
    : { stage: 'check', reason: 'checksum 1 ≠ expected 2' }),
  ...extra,
});

const raw: RawResults = {
  meta: { startedAt: 'T', kernel: '6.12', where: 'test', options: {}, bandwidths: [{ mib: 64, memcpyMBps: 4000, tmpfsWriteMBps: 1000, tmpfsReadMBps: 2000 }], nodeStartMs: 2200 },
  checks: { user: { ok: true }, kernel: { ok: false, reason: 'backend not available' }, criu: { ok: true } },
  records: [
    rec('criu', 'lib', true, 100), rec('criu', 'lib', true, 300), rec('criu', 'lib', true, 200),
    rec('user', 'lib', true, 50), rec('user', 'lib', true, 60), rec('user', 'lib', false, 0),
    rec('kernel', 'lib', false, 0, { stage: 'available', reason: 'backend not available' }),
    { kind: 'feature', workload: 'pipes with data in flight', group: 'files', size: null, backend: 'user', mode: 'lib', rep: 0, ok: false, stage: 'dump', reason: 'fd 3: pipe | not supported' },
    { kind: 'feature', workload: 'pipes with data in flight', group: 'files', size: null, backend: 'criu', mode: 'lib', rep: 0, ok: true },
  ],
};

test('rows group by workload, size, backend and mode; failures do not enter the timings', () => {
  const rows = rowsOf(raw.records);
  const user = rows.find((r) => r.backend === 'user')!;
  assert.is(user.runs, 3);
  assert.is(user.passed, 2);
  assert.equal(user.dumpMs, { n: 2, median: 55, min: 50, max: 60 });
  assert.match(user.firstFailure!, /checksum/);
  const criu = rows.find((r) => r.backend === 'criu')!;
  assert.equal(criu.dumpMs, { n: 3, median: 200, min: 100, max: 300 });
  assert.is(criu.imageMiB!.median, 16);
  assert.is(criu.dumpPeakMiB!.median, 2);
});

test('cells: ✅ only when every run passed, ❌ with stage and reason otherwise', () => {
  assert.is(cell(raw.records.filter((r) => r.backend === 'criu' && r.kind === 'bench')), '✅ 3/3');
  assert.match(cell(raw.records.filter((r) => r.backend === 'user' && r.kind === 'bench')), /^❌ 2\/3 — check: checksum/);
  assert.is(cell([]), '❌ not run');
});

test('slopes: least squares over the sizes, per backend and way of invoking', () => {
  assert.equal(leastSquares([[1, 3], [2, 5], [3, 7]]), { slope: 2, intercept: 1 });
  assert.is(leastSquares([[4, 1], [4, 2]]), undefined, 'one size is no slope');
  const at = (size: number, backend: string, dump: number) => ({ ...rec(backend, 'lib', true, dump), size, dump: { wallMs: dump, frozenMs: dump / 2, imageBytes: size * 1048576 }, restore: { wallMs: 2 * dump } });
  const rows = rowsOf([at(64, 'user', 100), at(256, 'user', 292), at(1024, 'user', 1060), at(64, 'criu', 50)]);
  const t = slopeTable(rows);
  assert.ok(t.some((l) => /^\| mem \| ms per MiB \| user \| library call \| 1\.00 \(\+36\.0\) \| 0\.500 \(\+18\.0\) \| 2\.00 \(\+72\.0\) \| 64, 256, 1024 \|$/.test(l)), t.join('\n'));
  assert.not.ok(t.some((l) => l.includes('| criu |')), 'criu ran one size only');
  const tree = slopeTable(rowsOf([1, 8].map((n) => ({ ...at(n, 'user', 10 * n), workload: 'tree' }))));
  assert.ok(tree.some((l) => l.startsWith('| tree | ms per process | user |')), tree.join('\n'));
});

test('start-up: cr and criu against node -e 0, and the cr command\'s overhead over the library call', () => {
  const lib = { ...rec('kernel', 'lib', true, 100), size: 8 };
  const cli = { ...rec('kernel', 'cli', true, 400), size: 8 };
  const lines = startupLines({ ...raw.meta, nodeStartMs: 200, crVersionMs: 280, criuVersionMs: 30, koffiLoadMs: 500, crCheckMs: { user: 900, kernel: 300 } }, rowsOf([lib, cli]));
  assert.ok(lines.includes('- `cr check` (its checks included): user 900 ms (4.50× `node -e 0`), kernel 300 ms (1.50× `node -e 0`)'), lines.join('\n'));
  assert.ok(lines.includes('- start-up: `cr --version` 280 ms (1.40× `node -e 0`), `criu --version` 30.0 ms'), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('- a Node that only loads koffi takes 500 ms (2.50× `node -e 0`)')), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith("- the `cr` command's own overhead, kernel backend (mem 8 MiB, command minus library call): dump 300 ms (1.50× `node -e 0`)")), lines.join('\n'));
});

test('start-up: the cr command\'s own overhead as it times its backend call, koffi\'s load inside it included, medians per backend', () => {
  const cli = (startMs: number, exitMs: number, nativeMs?: number) => {
    const r = { ...rec('user', 'cli', true, 900), size: 8 };
    return { ...r, dump: { ...r.dump!, command: { startMs, nativeMs, exitMs } }, restore: { ...r.restore!, command: { startMs: startMs + 100, exitMs } } };
  };
  const rows = rowsOf([cli(240, 10, 30), cli(260, 20, 40), cli(280, 30, 50)]);
  assert.equal(rows[0].dumpCommand?.totalMs, { n: 3, median: 320, min: 280, max: 360 });
  const lines = startupLines({ ...raw.meta, nodeStartMs: 200 }, rows);
  assert.ok(lines.includes("- the `cr` command's own overhead, user backend (mem 8 MiB, as the command times its backend call, medians of 3): " +
    'dump 320 ms (1.60× `node -e 0`) = 260 exec→call + 40.0 koffi load in the call + 20.0 return→exit; ' +
    'restore 380 ms (1.90× `node -e 0`) = 360 exec→call + 20.0 return→exit'), lines.join('\n'));
});

test('a run cut short says so, and reports what it finished', () => {
  const md = renderReport({ ...raw, meta: { ...raw.meta, cutShort: 'the VM run ended (exit 124, killed at its 900 s limit) before the last case' } });
  assert.match(md, /⚠️ \*\*cut short\*\*: the VM run ended \(exit 124, killed at its 900 s limit\) before the last case\. What follows is every run that finished\./);
  assert.match(md, /## Feature matrix/);
});

test('each step of a case may take longer the larger the case', () => {
  assert.ok(stepLimitSec({ workload: 'mem', size: 1024 }) > stepLimitSec({ workload: 'mem', size: 64 }));
  assert.ok(stepLimitSec({ workload: 'mem', size: 1024 }) >= 600, 'a 1 GiB step under TCG gets minutes');
  assert.is(stepLimitSec({ workload: 'unlinked open file', size: null }), stepLimitSec({ workload: 'mem', size: 0 }));
});

test('the report says which accelerator ran it, and how to read its times', () => {
  const tcg = renderReport({ ...raw, meta: { ...raw.meta, accel: 'tcg', accelReason: 'KVM: /dev/kvm present but a guest did not answer in 10 s; using TCG' } });
  assert.match(tcg, /- accelerator: \*\*TCG\*\* \(software emulation; KVM: \/dev\/kvm present but a guest did not answer in 10 s; using TCG\) — read times only as ratios/);
  assert.match(renderReport({ ...raw, meta: { ...raw.meta, accel: 'kvm' } }), /- accelerator: \*\*KVM\*\* — times are meaningful in absolute terms/);
});

test('feature matrix has every backend as a column and escapes table pipes', () => {
  const m = featureMatrix(raw);
  assert.match(m[0], /\| user \| kernel \| criu \|/);
  const row = m.find((l) => l.includes('pipes with data in flight'))!;
  assert.match(row, /❌ 0\/1 — dump: fd 3: pipe \\\| not supported/);
  assert.match(row, /❌ not run/); // kernel: no record for the feature at all
  assert.match(row, /\| ✅ \|$/);
  assert.ok(m.some((l) => l.startsWith('| workload | mem (16 MiB')));
});

test('ratios against CRIU and throughput against tmpfs bandwidth', () => {
  const rows = rowsOf(raw.records);
  const rt = ratioTable(rows);
  assert.match(rt[0], /user\/CRIU dump/);
  assert.match(rt[0], /kernel\/CRIU dump/);
  const line = rt.find((l) => l.startsWith('| mem'))!;
  assert.match(line, /\| 0\.275× \| 0\.275× \| 0\.275× \|/); // 55 / 200
  const tt = throughputTable(rows, raw.meta.bandwidths);
  const criu = tt.find((l) => l.includes('| criu |'))!;
  // 16 MiB in 200 ms = 83.9 MB/s = 8.39 % of 1000 MB/s
  assert.match(criu, /\| 83\.9 \| 8\.39 % \|/);
  // each size against the write measured at its own size, else the nearest one measured
  const bw = (mib: number, w: number) => ({ mib, memcpyMBps: 4000, tmpfsWriteMBps: w, tmpfsReadMBps: 2000 });
  const sized = throughputTable(rows, [bw(8, 500), bw(16, 200), bw(1024, 100)]).find((l) => l.includes('| criu |'))!;
  assert.match(sized, /\| 83\.9 \| 41\.9 % \|/);
  assert.equal(bandwidthAt([bw(64, 1), bw(256, 2), bw(1024, 3)], 512)?.mib, 256);
  assert.equal(bandwidthAt([], 16), undefined);
});

test('variants against their plain backend and against CRIU; the CRIU ratios leave them out', () => {
  const rows = rowsOf([...raw.records, rec('user+pre', 'lib', true, 10), rec('user+pre', 'lib', true, 12)]);
  assert.not.match(ratioTable(rows)[0], /user\+pre/);
  const vt = variantTable(rows);
  const line = vt.find((l) => l.includes('| user+pre |'))!;
  // 11 against user's 55 and CRIU's 200, for each of dump, frozen and restore
  assert.match(line, /\| 0\.200× \| 0\.200× \| 0\.200× \| 0\.055× \| 0\.055× \| 0\.055× \|$/);
  assert.equal(variantTable(rowsOf(raw.records)), []);
  // throughput: a +pre image holds only what changed, a +cow pause copies nothing, nor a +lazy restore
  const tt = throughputTable(rowsOf([...raw.records, rec('user+pre', 'lib', true, 10), rec('kernel+cow', 'lib', true, 10), rec('user+lazy', 'lib', true, 10)]), raw.meta.bandwidths);
  assert.not.ok(tt.some((l) => l.includes('user+pre')));
  assert.match(tt.find((l) => l.includes('| kernel+cow |'))!, /^\| 16 \| kernel\+cow \| library call \| [\d.]+ \| [\d.]+ % \| [\d.]+ % \| – \| – \| – \|/);
  assert.match(tt.find((l) => l.includes('| user+lazy |'))!, /\| [\d.]+ \| [\d.]+ % \| [\d.]+ % \| – \| – \| – \|$/);
});

test('the report names every failure and every unavailable backend', async () => {
  const md = renderReport(raw, [{ file: 'mem-time.svg', title: 'mem' }]);
  assert.match(md, /\*\*kernel\*\*: ❌ backend not available/);
  assert.match(md, /## Feature matrix/);
  assert.match(md, /!\[mem\]\(mem-time\.svg\)/);
  assert.match(md, /user · mem 16 · library call — check: checksum 1 ≠ expected 2/);
  assert.match(md, /memcpy 4000 MB\/s/);
  const plots = await makePlots(rowsOf(raw.records));
  assert.ok(plots.length >= 1);
  assert.match(plots[0].svg, /^<svg/);
});

test('plans: quick, sizes per workload, unknown names refused', () => {
  const q = makePlan({ quick: true, workloads: 'mem,features' });
  assert.is(q.reps, 2);
  assert.is(q.cliReps, 1);
  assert.is(makePlan({ reps: 3 }).cliReps, 3);
  assert.ok(q.cases.filter((c) => c.kind === 'bench').every((c) => c.workload === 'mem'));
  assert.ok(q.cases.some((c) => c.kind === 'feature'));
  assert.equal(parseSizes('mem=8,32;tree=2'), { per: { mem: [8, 32], tree: [2] } });
  assert.equal(makePlan({ workloads: 'tree', sizes: '3,5' }).cases.map((c) => c.size), [3, 5]);
  assert.throws(() => makePlan({ workloads: 'nope' }), /unknown workload/);
  assert.equal(makePlan({ workloads: 'startup' }).cases.map((c) => [c.workload, c.size]), [['mem', 8]], 'startup: the smallest mem case alone');
  assert.equal(makePlan({ workloads: 'startup', sizes: '16' }).cases.map((c) => c.size), [16]);
  assert.throws(() => makePlan({ modes: 'fast' }), /unknown mode/);
  const variantsOf = (o: Parameters<typeof makePlan>[0]) => makePlan({ workloads: 'mem,tree', ...o }).cases.map((c) => [c.workload, c.variants ?? []]);
  assert.ok(variantsOf({}).every(([w, v]) => (w === 'mem' ? v.includes('kernel+cow') && v.includes('user+pre') : !v.length)), 'a full run: the mem workload\'s variants');
  assert.ok(variantsOf({ quick: true }).every(([, v]) => !v.length), '--quick: none');
  assert.ok(variantsOf({ backends: 'user,criu' }).every(([, v]) => !v.length), '-b: only what it names');
});

test.run();
