/**
 * Turns the raw records of a comparison into report.md: the feature
 * matrix, per-workload tables (median, min, max), ratios against CRIU,
 * throughput against the VM's own memory bandwidth, and the failures.
 * Pure functions of the raw data, so they are unit-tested on the host.
 */
import type { CheckItem } from '../backends/types.js';
import type { CommandOverhead, Mode, RunRecord } from './harness.js';
import { fmt, fmtSummary, leastSquares, ratio, summarize, type Summary } from './stats.js';
import { DIRTY_PERCENT, features, isVariant, variantOf, workloads } from './workloads.js';

export interface Bandwidth {
  mib: number;
  memcpyMBps: number;
  tmpfsWriteMBps: number;
  tmpfsReadMBps: number;
}

export interface RawResults {
  meta: {
    startedAt: string;
    finishedAt?: string;
    kernel: string;
    where: string;
    options: Record<string, unknown>;
    /** membw's measurements, one per mem size run (ascending). */
    bandwidths?: Bandwidth[];
    /** Wall time of `node -e 0`, the floor under every `cr` command. */
    nodeStartMs?: number;
    /** Wall time of `cr --version` and `criu --version`: each command's start-up. */
    crVersionMs?: number;
    criuVersionMs?: number;
    /** Wall time of a Node that only loads koffi (through koffi's own loader): what the kernel and user backends' native calls need. */
    koffiLoadMs?: number;
    /** Wall time of `cr check --backend=B` per backend (its checks included: `nft --version`, `criu check`…). */
    crCheckMs?: Record<string, number>;
    /** Why the run ended before every case was run (time limit, a crash), if it did. */
    cutShort?: string;
    /** The VM's accelerator ('kvm', 'tcg'), and why TCG when it was; absent on the host. */
    accel?: string;
    accelReason?: string;
    notes?: string[];
  };
  checks: Record<string, { ok: boolean; reason?: string; items?: CheckItem[] }>;
  records: RunRecord[];
}

export const MODE_TEXT: Record<Mode, string> = {
  lib: 'library call',
  cli: '`cr` command',
  native: '`criu` command',
};

/** Summaries of one group of records (same workload, size, backend, mode). */
export interface Row {
  workload: string;
  size: number | null;
  backend: string;
  mode: Mode;
  runs: number;
  passed: number;
  firstFailure?: string;
  dumpMs?: Summary;
  freezeMs?: Summary;
  frozenMs?: Summary;
  restoreMs?: Summary;
  imageMiB?: Summary;
  dumpPeakMiB?: Summary;
  restorePeakMiB?: Summary;
  /** The `cr` command's own overhead ('cli' rows): exec to its backend call, the call's return to exit, and their sum. */
  dumpCommand?: OverheadSummary;
  restoreCommand?: OverheadSummary;
}

export interface OverheadSummary {
  startMs?: Summary;
  nativeMs?: Summary;
  exitMs?: Summary;
  totalMs?: Summary;
}

function overheadSummary(cs: (CommandOverhead | undefined)[]): OverheadSummary | undefined {
  const got = cs.filter((c): c is CommandOverhead => c !== undefined);
  if (!got.length) return undefined;
  return {
    startMs: summarize(got.map((c) => c.startMs)),
    nativeMs: summarize(got.map((c) => c.nativeMs ?? 0)),
    exitMs: summarize(got.map((c) => c.exitMs)),
    totalMs: summarize(got.map((c) => c.startMs + (c.nativeMs ?? 0) + c.exitMs)),
  };
}

const MiB = 1048576;

export function rowsOf(records: RunRecord[], kind: RunRecord['kind'] = 'bench'): Row[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    if (r.kind !== kind) continue;
    const k = JSON.stringify([r.workload, r.size, r.backend, r.mode]);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const rows: Row[] = [];
  for (const rs of groups.values()) {
    const ok = rs.filter((r) => r.ok);
    const bad = rs.find((r) => !r.ok);
    rows.push({
      workload: rs[0].workload,
      size: rs[0].size,
      backend: rs[0].backend,
      mode: rs[0].mode,
      runs: rs.length,
      passed: ok.length,
      firstFailure: bad ? `${bad.stage}: ${bad.reason}` : undefined,
      dumpMs: summarize(ok.map((r) => r.dump?.wallMs)),
      freezeMs: summarize(ok.map((r) => r.dump?.freezeMs)),
      frozenMs: summarize(ok.map((r) => r.dump?.frozenMs)),
      restoreMs: summarize(ok.map((r) => r.restore?.wallMs)),
      imageMiB: summarize(ok.map((r) => (r.dump?.imageBytes !== undefined ? r.dump.imageBytes / MiB : undefined))),
      dumpPeakMiB: summarize(ok.map((r) => (r.dump?.memory?.peakKiB !== undefined ? r.dump.memory.peakKiB / 1024 : undefined))),
      restorePeakMiB: summarize(ok.map((r) => (r.restore?.memory?.peakKiB !== undefined ? r.restore.memory.peakKiB / 1024 : undefined))),
      dumpCommand: overheadSummary(ok.map((r) => r.dump?.command)),
      restoreCommand: overheadSummary(ok.map((r) => r.restore?.command)),
    });
  }
  return rows;
}

/** ✅ when every run passed, ❌ with the first failure's stage and reason otherwise. */
export function cell(rs: RunRecord[]): string {
  if (!rs.length) return '❌ not run';
  const bad = rs.filter((r) => !r.ok);
  if (!bad.length) return rs.length > 1 ? `✅ ${rs.length}/${rs.length}` : '✅';
  const why = `${bad[0].stage}: ${bad[0].reason ?? 'failed'}`.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const short = why.length > 160 ? `${why.slice(0, 157)}…` : why;
  return `❌ ${rs.length - bad.length}/${rs.length} — ${short}`;
}

export function featureMatrix(raw: RawResults): string[] {
  const backends = Object.keys(raw.checks);
  const out: string[] = [];
  out.push(`| group | state that must survive | ${backends.join(' | ')} |`);
  out.push(`|---|---|${backends.map(() => '---').join('|')}|`);
  const fnames = [...new Set(raw.records.filter((r) => r.kind === 'feature').map((r) => r.workload))];
  const order = features.map((f) => f.name).filter((n) => fnames.includes(n)).concat(fnames.filter((n) => !features.some((f) => f.name === n)));
  for (const f of order) {
    const group = raw.records.find((r) => r.kind === 'feature' && r.workload === f)?.group ?? '';
    out.push(`| ${group} | ${f} | ${backends.map((b) => cell(raw.records.filter((r) => r.kind === 'feature' && r.workload === f && r.backend === b))).join(' | ')} |`);
  }
  const wnames = [...new Set(raw.records.filter((r) => r.kind === 'bench').map((r) => r.workload))];
  for (const w of wnames) {
    const sizes = [...new Set(raw.records.filter((r) => r.kind === 'bench' && r.workload === w).map((r) => r.size))];
    const unit = workloads.find((x) => x.name === w)?.unit ?? '';
    out.push(`| workload | ${w} (${sizes.join(', ')} ${unit}, all modes) | ${backends.map((b) => cell(raw.records.filter((r) => r.kind === 'bench' && r.workload === w && r.backend === b))).join(' | ')} |`);
  }
  return out;
}

function workloadTable(rows: Row[], unit: string): string[] {
  const out: string[] = [];
  out.push(`| ${unit} | backend | invoked as | passed | dump ms | freeze ms | frozen (downtime) ms | restore ms | image MiB | dumper peak RSS MiB | restorer peak RSS MiB |`);
  out.push('|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const why = r.firstFailure ? ` ${r.firstFailure.replace(/\|/g, '\\|')}` : '';
    const passed = r.passed === r.runs ? `✅ ${r.passed}/${r.runs}` : `❌ ${r.passed}/${r.runs}${why.length > 70 ? `${why.slice(0, 69)}…` : why}`;
    out.push(`| ${r.size ?? ''} | ${r.backend} | ${MODE_TEXT[r.mode]} | ${passed} | ${fmtSummary(r.dumpMs)} | ${fmtSummary(r.freezeMs)} | ${fmtSummary(r.frozenMs)} | ` +
      `${fmtSummary(r.restoreMs)} | ${fmtSummary(r.imageMiB)} | ${fmtSummary(r.dumpPeakMiB)} | ${fmtSummary(r.restorePeakMiB)} |`);
  }
  return out;
}

/** Median ratios of each backend against CRIU, same workload, size and invocation mode. */
export function ratioTable(rows: Row[]): string[] {
  const others = [...new Set(rows.map((r) => r.backend))].filter((b) => b !== 'criu' && !isVariant(b));
  const out: string[] = [];
  if (!others.length || !rows.some((r) => r.backend === 'criu')) return out;
  out.push(`| workload | size | invoked as | ${others.map((b) => `${b}/CRIU dump | ${b}/CRIU frozen | ${b}/CRIU restore`).join(' | ')} |`);
  out.push(`|---|---:|---|${others.map(() => '---:|---:|---:').join('|')}|`);
  const keys = [...new Set(rows.filter((r) => r.backend === 'criu' && r.mode !== 'native').map((r) => JSON.stringify([r.workload, r.size, r.mode])))];
  for (const k of keys) {
    const [w, size, mode] = JSON.parse(k) as [string, number | null, Mode];
    const c = rows.find((r) => r.backend === 'criu' && r.workload === w && r.size === size && r.mode === mode)!;
    const cells = others.map((b) => {
      const o = rows.find((r) => r.backend === b && r.workload === w && r.size === size && r.mode === mode);
      const x = (v?: number) => (v === undefined ? '–' : `${fmt(v)}×`);
      return `${x(ratio(o?.dumpMs, c.dumpMs))} | ${x(ratio(o?.frozenMs, c.frozenMs))} | ${x(ratio(o?.restoreMs, c.restoreMs))}`;
    });
    out.push(`| ${w} | ${size ?? ''} | ${MODE_TEXT[mode]} | ${cells.join(' | ')} |`);
  }
  return out;
}

/**
 * Each variant (kernel+cow, user+pre…) against its plain backend and
 * against plain CRIU, same workload, size and mode: what the way of
 * dumping or restoring buys.
 */
export function variantTable(rows: Row[]): string[] {
  const variants = rows.filter((r) => isVariant(r.backend));
  if (!variants.length) return [];
  const find = (v: Row, backend: string) => rows.find((r) => r.backend === backend && r.workload === v.workload && r.size === v.size && r.mode === v.mode);
  const x = (v?: number) => (v === undefined ? '–' : `${fmt(v)}×`);
  const out = ['| workload | size | variant | invoked as | dump / plain | frozen / plain | restore / plain | dump / CRIU | frozen / CRIU | restore / CRIU |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|---:|'];
  for (const v of variants) {
    const plain = find(v, variantOf(v.backend).base), criu = find(v, 'criu');
    out.push(`| ${v.workload} | ${v.size ?? ''} | ${v.backend} | ${MODE_TEXT[v.mode]} | ${x(ratio(v.dumpMs, plain?.dumpMs))} | ${x(ratio(v.frozenMs, plain?.frozenMs))} | ` +
      `${x(ratio(v.restoreMs, plain?.restoreMs))} | ${x(ratio(v.dumpMs, criu?.dumpMs))} | ${x(ratio(v.frozenMs, criu?.frozenMs))} | ${x(ratio(v.restoreMs, criu?.restoreMs))} |`);
  }
  return out;
}

/** A unit's name for one of it: processes → process, threads → thread, MiB stays. */
const singular = (unit: string): string => unit.replace(/(ss)es$|(?<=[a-z])s$/, '$1');

/**
 * How each time grows with the size of a workload: the least-squares slope
 * of the median over the sizes (ms per MiB, per process, per thread…),
 * where a backend passed at two sizes or more.
 */
export function slopeTable(rows: Row[]): string[] {
  const out: string[] = [];
  const keys = [...new Set(rows.filter((r) => r.size !== null).map((r) => JSON.stringify([r.workload, r.backend, r.mode])))];
  const lines: string[] = [];
  for (const k of keys) {
    const [w, b, mode] = JSON.parse(k) as [string, string, Mode];
    const rs = rows.filter((r) => r.workload === w && r.backend === b && r.mode === mode && r.size !== null);
    const fit = (pick: (r: Row) => Summary | undefined) =>
      leastSquares(rs.filter((r) => pick(r)).map((r): [number, number] => [r.size!, pick(r)!.median]));
    const fits = [fit((r) => r.dumpMs), fit((r) => r.frozenMs), fit((r) => r.restoreMs)];
    if (fits.every((f) => !f)) continue;
    const unit = workloads.find((x) => x.name === w)?.unit ?? 'unit';
    const cellOf = (f?: { slope: number; intercept: number }) => (f ? `${fmt(f.slope)} (+${fmt(Math.max(0, f.intercept))})` : '–');
    lines.push(`| ${w} | ms per ${singular(unit)} | ${b} | ${MODE_TEXT[mode]} | ${fits.map(cellOf).join(' | ')} | ${rs.map((r) => r.size).join(', ')} |`);
  }
  if (!lines.length) return out;
  out.push('| workload | slope | backend | invoked as | dump | frozen (downtime) | restore | sizes |', '|---|---|---|---|---:|---:|---:|---|', ...lines);
  return out;
}

/** The bandwidth measured with a buffer of @mib, else at the nearest size measured. */
export function bandwidthAt(bandwidths: Bandwidth[], mib: number): Bandwidth | undefined {
  let best: Bandwidth | undefined;
  for (const b of bandwidths) if (!best || Math.abs(b.mib - mib) < Math.abs(best.mib - mib)) best = b;
  return best;
}

/**
 * Image bytes per second of dump (and restore) time, against tmpfs write
 * (read) bandwidth measured with a buffer of the same size. Not for `+pre`, whose image is what changed since the
 * pre-dump and whose restore reads the whole chain; a `+cow` pause copies
 * no pages, so it has no frozen-time rate.
 */
export function throughputTable(rows: Row[], bandwidths: Bandwidth[] = []): string[] {
  const out: string[] = [];
  const mem = rows.filter((r) => r.workload === 'mem' && r.imageMiB && (r.dumpMs || r.restoreMs) && !variantOf(r.backend).pre);
  if (!mem.length) return out;
  out.push('| MiB | backend | invoked as | dump MB/s | of tmpfs write | of memcpy | frozen-time MB/s | of tmpfs write | of memcpy | restore MB/s | of tmpfs read | of memcpy |');
  out.push('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of mem) {
    const bytes = r.imageMiB!.median * MiB;
    const rate = (ms?: Summary) => (ms ? bytes / 1e6 / (ms.median / 1000) : undefined);
    const pct = (x?: number, limit?: number) => (x === undefined || !limit ? '–' : `${fmt((100 * x) / limit)} %`);
    // a +cow pause copies no pages, nor does a +map or +lazy restore before it returns
    const v = variantOf(r.backend);
    const d = rate(r.dumpMs), f = v.cow ? undefined : rate(r.frozenMs), s = v.map || v.lazy ? undefined : rate(r.restoreMs);
    const bw = bandwidthAt(bandwidths, r.size!);
    const mc = bw?.memcpyMBps;
    out.push(`| ${r.size} | ${r.backend} | ${MODE_TEXT[r.mode]} | ${fmt(d)} | ${pct(d, bw?.tmpfsWriteMBps)} | ${pct(d, mc)} | ${fmt(f)} | ${pct(f, bw?.tmpfsWriteMBps)} | ${pct(f, mc)} | ` +
      `${fmt(s)} | ${pct(s, bw?.tmpfsReadMBps)} | ${pct(s, mc)} |`);
  }
  return out;
}

export function failureList(records: RunRecord[]): string[] {
  const counts = new Map<string, number>();
  for (const r of records) {
    if (r.ok) continue;
    const k = `${r.backend} · ${r.workload}${r.size !== null ? ` ${r.size}` : ''} · ${MODE_TEXT[r.mode]} — ${r.stage}: ${r.reason}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `- ${k}${n > 1 ? ` (×${n})` : ''}`);
}

/**
 * A command's own cost: `cr --version` and `criu --version` against
 * `node -e 0`; the `cr` command's overhead around its backend call as it
 * measures it (CR_TIMINGS: exec to the call, return to exit); and what the
 * command adds to a dump and a restore over the same library call (the
 * smallest mem case, medians).
 */
export function startupLines(m: RawResults['meta'], rows: Row[]): string[] {
  const out: string[] = [];
  const node = m.nodeStartMs;
  const times = (x?: number) => (x !== undefined && node ? ` (${fmt(x / node)}× \`node -e 0\`)` : '');
  if (node !== undefined) out.push(`- \`node -e 0\` takes ${fmt(node)} ms here: the floor under every \`cr\` command`);
  if (m.crVersionMs !== undefined) out.push(`- start-up: \`cr --version\` ${fmt(m.crVersionMs)} ms${times(m.crVersionMs)}` +
    `${m.criuVersionMs !== undefined ? `, \`criu --version\` ${fmt(m.criuVersionMs)} ms` : ''}`);
  if (m.koffiLoadMs !== undefined) out.push(`- a Node that only loads koffi takes ${fmt(m.koffiLoadMs)} ms${times(m.koffiLoadMs)}: the kernel and user backends bind their system calls through it (\`cr\` requires its native module directly, on the first native call)`);
  const checks = Object.entries(m.crCheckMs ?? {});
  if (checks.length) out.push(`- \`cr check\` (its checks included): ${checks.map(([b, ms]) => `${b} ${fmt(ms)} ms${times(ms)}`).join(', ')}`);
  const mem = rows.filter((r) => r.workload === 'mem' && r.size !== null);
  const smallest = Math.min(...mem.map((r) => r.size!));
  for (const b of [...new Set(mem.map((r) => r.backend))]) {
    const lib = mem.find((r) => r.backend === b && r.size === smallest && r.mode === 'lib');
    const cli = mem.find((r) => r.backend === b && r.size === smallest && r.mode === 'cli');
    const own = (what: string, o?: OverheadSummary) => (o?.totalMs
      ? `${what} ${fmt(o.totalMs.median)} ms${times(o.totalMs.median)} = ${fmt(o.startMs?.median)} exec→call${o.nativeMs?.median ? ` + ${fmt(o.nativeMs.median)} koffi load in the call` : ''} + ${fmt(o.exitMs?.median)} return→exit`
      : undefined);
    const parts = [own('dump', cli?.dumpCommand), own('restore', cli?.restoreCommand)].filter(Boolean);
    if (parts.length) out.push(`- the \`cr\` command's own overhead, ${b} backend (mem ${smallest} MiB, as the command times its backend call, medians of ${cli!.dumpCommand?.totalMs?.n ?? cli!.restoreCommand?.totalMs?.n}): ${parts.join('; ')}`);
    if (!lib || !cli) continue;
    const over = (a?: Summary, c?: Summary) => (a && c ? c.median - a.median : undefined);
    const d = over(lib.dumpMs, cli.dumpMs), r = over(lib.restoreMs, cli.restoreMs);
    if (d === undefined && r === undefined) continue;
    out.push(`- the \`cr\` command's own overhead, ${b} backend (mem ${smallest} MiB, command minus library call): dump ${fmt(d)} ms${times(d)}, restore ${fmt(r)} ms${times(r)}`);
  }
  return out;
}

export function renderReport(raw: RawResults, plots: { file: string; title: string }[] = []): string {
  const m = raw.meta;
  const L: string[] = [];
  L.push(`# cr-lab comparison — ${m.startedAt}`, '');
  L.push(`- where: ${m.where}, kernel ${m.kernel}`);
  if (m.accel === 'kvm') L.push('- accelerator: **KVM** — times are meaningful in absolute terms');
  else if (m.accel) L.push(`- accelerator: **${m.accel.toUpperCase()}** (software emulation${m.accelReason ? `; ${m.accelReason}` : ''}) — read times only as ratios between backends`);
  L.push(`- options: \`${JSON.stringify(m.options)}\``);
  if (m.bandwidths?.length) {
    L.push(`- physical limit, same boot (best of 3 with a buffer of each size): ${m.bandwidths.map((b) => `${b.mib} MiB: memcpy ${fmt(b.memcpyMBps)} MB/s, ` +
      `write(2) to tmpfs ${fmt(b.tmpfsWriteMBps)} MB/s, read(2) from tmpfs ${fmt(b.tmpfsReadMBps)} MB/s`).join('; ')}`);
  }
  if (m.cutShort) L.push(`- ⚠️ **cut short**: ${m.cutShort}. What follows is every run that finished.`);
  L.push(...startupLines(m, rowsOf(raw.records)));
  for (const n of m.notes ?? []) L.push(`- ${n}`);
  L.push('');
  L.push('## Backends', '');
  for (const [b, c] of Object.entries(raw.checks)) L.push(`- **${b}**: ${c.ok ? '✅ check passed' : `❌ ${c.reason}`}`);
  L.push('');

  L.push('## Feature matrix', '');
  L.push('Each row is one run of the workload program with only that kind of state, dumped, its tasks checked gone, restored and let finish; ' +
    '✅ means the checksum it printed after the restore equals the one before the dump, the exit status was 0 and it reported nothing amiss. ' +
    '❌ gives the stage that failed (available, start, dump, gone, restore, finish, check) and why.', '');
  L.push(...featureMatrix(raw), '');

  const rows = rowsOf(raw.records);
  if (rows.length) {
    L.push('## Timings', '');
    L.push('Cells are median (min–max) over the passing repetitions. *dump*/*restore* are wall times measured by the harness around the library call or the whole command. ' +
      '*freeze* and *frozen* come from the backend itself (CRIU: `stats-dump` freezing_time and frozen_time). ' +
      '*Peak RSS*: for a library call, the VmHWM of the harness process over the call (reset through /proc/self/clear_refs; includes Node itself, excludes children such as the criu binary); ' +
      'for a command, wait4()\'s ru_maxrss (the largest single process of the command and the children it waited for).', '');
    for (const w of [...new Set(rows.map((r) => r.workload))]) {
      const wl = workloads.find((x) => x.name === w);
      L.push(`### ${w}${wl ? ` — ${wl.about}` : ''}`, '');
      const order: Mode[] = ['lib', 'cli', 'native'];
      const rs = rows.filter((r) => r.workload === w)
        .sort((a, b) => (a.size ?? 0) - (b.size ?? 0) || a.backend.localeCompare(b.backend) || order.indexOf(a.mode) - order.indexOf(b.mode));
      L.push(...workloadTable(rs, wl?.unit ?? 'size'), '');
      for (const p of plots.filter((p) => p.file.startsWith(`${w}-`))) L.push(`![${p.title}](${p.file})`, '');
    }
    const rt = ratioTable(rows);
    if (rt.length) L.push('## Ratios against CRIU', '', 'Median over median, same workload, size and way of invoking; below 1 is faster than CRIU.', '', ...rt, '');
    const vt = variantTable(rows);
    if (vt.length) {
      L.push('## Variants', '', 'Each way of dumping or restoring (`+cow`: the tasks thawed before their pages are written; `+pre`: the dump after a pre-dump, ' +
        `the workload having rewritten ${DIRTY_PERCENT} % of its memory since; \`+map\`: memory mapped from the image; \`+lazy\`: pages brought in on first touch) ` +
        'against the same backend run plainly and against plain CRIU: median over median, same size and way of invoking.', '', ...vt, '');
    }
    const st = slopeTable(rows);
    if (st.length) L.push('## Growth with size', '', 'Least-squares slope of the median time over the sizes run (its intercept in brackets): what one more MiB, process or thread costs.', '', ...st, '');
    const tt = throughputTable(rows, m.bandwidths);
    if (tt.length) L.push('## Throughput (mem workload)', '', 'Image bytes over the median time, against what the VM can write to (read from) tmpfs and copy in memory (memcpy) with a buffer of the same size, measured in the same boot (– where the time moves no pages: a `+cow` pause, a `+map` or `+lazy` restore).', '', ...tt, '');
  }
  const fl = failureList(raw.records);
  L.push('## Failures', '', ...(fl.length ? fl : ['none']), '');
  return L.join('\n');
}
