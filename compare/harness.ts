/**
 * The comparison's inner loop, independent of where it runs: for each case
 * (a workload at a size, or a feature probe) through each backend, start
 * the workload, wait until it is READY, dump it (not left running), check
 * that its tasks are gone, restore it, let it finish and compare its
 * checksum with the one it printed before the dump.
 *
 * Every backend is timed twice per repetition: as a library call made in
 * this process ('lib') and as the command a user types ('cli': the `cr`
 * driver; plus 'native' for CRIU: the `criu` binary itself). A failure is
 * a record with ok=false and the reason, never a missing row.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { CRIU_TCP_ESTABLISHED } from '../backends/criu/index.js';
import type { Backend, CheckItem, ExitStatus, RestoreResult } from '../backends/types.js';
import { descendants, hwmWindow, procState, tryReap } from './sys.js';
import type { RawResults } from './report.js';
import { DIRTY_PERCENT, stepLimitSec, variantOf, type Variant } from './workloads.js';

export type Mode = 'lib' | 'cli' | 'native';
export type Stage = 'available' | 'start' | 'dump' | 'gone' | 'restore' | 'finish' | 'check';

export interface CaseSpec {
  kind: 'bench' | 'feature';
  /** Workload name (bench) or feature name (feature). */
  workload: string;
  group?: string;
  size: number | null;
  args: string[];
  /** Wait this long after READY before the dump (the soak varies it; timers and clocks run on meanwhile). */
  dumpAfterMs?: number;
  /** Dump with tcpEstablished (--tcp-established). */
  tcpEstablished?: boolean;
  /** Variants of the run's backends this case is also measured through, as a library call only. */
  variants?: string[];
}

export interface MemoryUse {
  /** Peak resident set in KiB, and what it covers. */
  peakKiB?: number;
  baseKiB?: number;
  source: 'vmhwm-in-process' | 'wait4-maxrss';
}

export interface RunRecord {
  kind: CaseSpec['kind'];
  workload: string;
  group?: string;
  size: number | null;
  backend: string;
  mode: Mode;
  rep: number;
  ok: boolean;
  stage?: Stage;
  reason?: string;
  expected?: string;
  got?: string;
  dump?: {
    wallMs: number;
    totalMs?: number;
    freezeMs?: number;
    frozenMs?: number;
    imageBytes?: number;
    pagesWritten?: number;
    memory?: MemoryUse;
    command?: CommandOverhead;
  };
  restore?: { wallMs: number; totalMs?: number; memory?: MemoryUse; command?: CommandOverhead };
}

/**
 * The `cr` command's own cost around its backend call ('cli' mode, from
 * CR_TIMINGS and rusage's clock): exec to the first backend call (Node's
 * start-up, the CLI, loading the backend's code), the time the calls spent
 * loading koffi (on their first native call) and the last call's return to
 * the end of wait4.
 */
export interface CommandOverhead {
  startMs: number;
  /** Absent in the records of runs before it was measured. */
  nativeMs?: number;
  exitMs: number;
}

export type HarnessEvent =
  | { t: 'plan'; total: number }
  | { t: 'check'; backend: string; ok: boolean; reason?: string; items?: CheckItem[] }
  | { t: 'start'; label: string }
  | { t: 'record'; record: RunRecord }
  | { t: 'info'; msg: string }
  /** The run's header (machine, bandwidth, start-up times), sent before the first case. */
  | { t: 'meta'; meta: RawResults['meta'] };

export interface HarnessConfig {
  registry: Record<string, Backend>;
  backends: string[];
  reps: number;
  /** Repetitions of the 'cli' mode (each costs two Node start-ups); default `reps`. */
  cliReps?: number;
  featureReps: number;
  /** Which ways to invoke each backend for the bench cases (features use the first). */
  modes: Mode[];
  /** Scratch directory on the filesystem under test (tmpfs in the VM). */
  scratch: string;
  wlBin: string;
  rusageBin: string;
  /** argv prefix of the `cr` driver, e.g. ['node', '/…/dist/cr/cr.js']. */
  crCli: string[];
  criuBin: string;
  /** Multiplies every timeout (TCG is slow). */
  timeoutScale: number;
  emit(ev: HarnessEvent): void;
}

/** The line protocol of wl (see compare/workloads/wl.c). */
export interface WlOutput {
  ready?: { pid: number; sum: string };
  /** After SIGUSR2 with dirty=P: the checksum of the memory as rewritten. */
  dirtied?: string;
  done?: string;
  bad: string[];
}

export function parseWlOutput(text: string): WlOutput {
  const out: WlOutput = { bad: [] };
  for (const line of text.split('\n')) {
    let m;
    if ((m = line.match(/^READY (\d+) ([0-9a-f]{16})/))) out.ready = { pid: Number(m[1]), sum: m[2] };
    else if ((m = line.match(/^DIRTIED ([0-9a-f]{16})/))) out.dirtied = m[1];
    else if ((m = line.match(/^DONE ([0-9a-f]{16})/))) out.done = m[1];
    else if (line.startsWith('BAD ')) out.bad.push(line.slice(4));
  }
  return out;
}

const variantDumpFlags = (v: Variant, prev: string) => [...(v.cow ? ['--cow'] : []), ...(v.pre ? ['--prev-images-dir', prev] : [])];
const variantRestoreFlags = (v: Variant) => [...(v.map ? ['--map-pages'] : []), ...(v.lazy ? ['--lazy-pages'] : [])];

export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? (err.name === 'CrError' ? err.message : `${err.name}: ${err.message}`) : String(err);
  return msg.split('\n').find((l) => l.trim())?.trim() ?? 'unknown error';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => T | undefined | false, timeoutMs: number, stepMs = 20): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(stepMs);
  }
}

/** What a workload that does not answer is doing: its state, signal masks and tracer, from /proc. */
function workloadState(pid: number): string {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const keep = ['State', 'TracerPid', 'SigPnd', 'ShdPnd', 'SigBlk', 'SigCgt'];
    const fields = status.split('\n').filter((l) => keep.some((k) => l.startsWith(`${k}:`))).map((l) => l.replace(/:\s+/, ' '));
    let wchan = '';
    try {
      wchan = fs.readFileSync(`/proc/${pid}/wchan`, 'utf8');
    } catch {
      /* not readable here */
    }
    return [...fields, ...(wchan ? [`wchan ${wchan}`] : [])].join(', ');
  } catch {
    return `pid ${pid} is gone`;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]).finally(() => clearTimeout(timer));
}

export function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

function parseRusage(file: string): { wallMs: number; maxrssKiB: number; status: string } | undefined {
  try {
    const t = fs.readFileSync(file, 'utf8');
    const m = t.match(/wall_us=(\d+) maxrss_kb=(\d+).*status=(\S+)/);
    return m ? { wallMs: Number(m[1]) / 1000, maxrssKiB: Number(m[2]), status: m[3] } : undefined;
  } catch {
    return undefined;
  }
}

/** A command's overhead from rusage's line and the command's CR_TIMINGS line (see userspace/cli/timings.ts); undefined if either lacks its times. */
export function commandOverhead(rusageLine: string, timingsLine: string): CommandOverhead | undefined {
  const ru = rusageLine.match(/start_us=(\d+) end_us=(\d+)/);
  const cr = timingsLine.match(/call_start_us=(\d+) call_end_us=(\d+)(?: native_load_us=(\d+))?/);
  if (!ru || !cr) return undefined;
  const [start, end, callStart, callEnd, native] = [ru[1], ru[2], cr[1], cr[2], cr[3] ?? 0].map(Number);
  if (!(start <= callStart && callStart + native <= callEnd && callEnd <= end)) return undefined;
  return { startMs: (callStart - start) / 1000, nativeMs: native / 1000, exitMs: (end - callEnd) / 1000 };
}

const readOr = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');

/** A failed command's most telling line: the first error-looking line, else the last line. */
export function telling(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^(cr: |Error|error)/.test(l)) ?? lines.at(-1) ?? '(no output)';
}

class CaseFailure extends Error {
  constructor(readonly stage: Stage, message: string) {
    super(message);
  }
}

/** Kill and reap whatever is left of a tree (best effort). */
async function cleanupTree(pids: number[], reap: (pid: number) => void): Promise<void> {
  const all = new Set<number>();
  for (const p of pids) for (const d of descendants(p)) all.add(d);
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await until(() => {
    for (const p of all) reap(p);
    return [...all].every((p) => procState(p) === null) || undefined;
  }, 3000);
}

/** One dump + restore + check of one workload through one backend in one mode. */
export async function runCycle(cfg: HarnessConfig, spec: CaseSpec, backendName: string, mode: Mode, rep: number): Promise<RunRecord> {
  const rec: RunRecord = { kind: spec.kind, workload: spec.workload, group: spec.group, size: spec.size, backend: backendName, mode, rep, ok: false };
  const variant = variantOf(backendName);
  const backend = cfg.registry[variant.base];
  const id = `${spec.workload}-${spec.size ?? 0}-${backendName}-${mode}-${rep}`.replace(/[^A-Za-z0-9_.-]+/g, '_');
  const root = path.join(cfg.scratch, id);
  const work = path.join(root, 'work');
  const img = path.join(root, 'img');
  const preImg = path.join(root, 'pre');
  const log = path.join(root, 'out.log');
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(img, { recursive: true });
  const T = (ms: number) => ms * cfg.timeoutScale;
  const stepMs = T(stepLimitSec(spec) * 1000);
  /** A library call that does not end within the step's limit fails the run instead of hanging the comparison. */
  const bounded = async <R>(stage: Stage, p: Promise<R>): Promise<R> => {
    const r = await withTimeout(p, stepMs);
    if (r === 'timeout') throw new CaseFailure(stage, `no result within ${Math.round(stepMs / 1000)} s`);
    return r;
  };
  const readLog = () => parseWlOutput(fs.readFileSync(log, 'utf8'));
  let pids: number[] = [];
  const reap = (p: number) => void tryReap(p);

  try {
    // start: detached (wl forks and the first process exits), in its own
    // session (so no backend needs a shell-job mode), output to a file. The
    // workload is then nobody's known child: this process adopts it as a
    // child subreaper and reaps it by pid, and an in-process ptrace dumper
    // may wait for it without stealing an exit that Node is waiting for.
    const logFd = fs.openSync(log, 'a');
    const args = variant.pre ? [...spec.args, `dirty=${DIRTY_PERCENT}`] : spec.args;
    const launcher = spawn(cfg.wlBin, ['--detach', work, ...args], { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    launcher.once('error', () => {});
    await new Promise((r) => launcher.once('exit', r));
    const ready = await until(() => {
      const o = readLog();
      if (o.ready) return o.ready;
      if (o.bad.length) return false;
      return undefined;
    }, stepMs);
    if (!ready) {
      const o = readLog();
      throw new CaseFailure('start', o.bad.length ? `workload failed before READY (${o.bad[0]})` : 'workload not READY in time');
    }
    const wlPid = ready.pid;
    let expected = ready.sum;
    pids = descendants(wlPid);
    if (spec.dumpAfterMs) await sleep(spec.dumpAfterMs);

    // a pre-dump, then DIRTY_PERCENT of the memory rewritten: the dump saves only that
    if (variant.pre) {
      try {
        if (mode === 'lib') {
          if (!backend?.preDump) throw new Error(`the ${variant.base} backend has no pre-dump`);
          await bounded('dump', backend.preDump({ pid: wlPid, dir: preImg }));
        } else {
          const r = await execa(cfg.crCli[0], [...cfg.crCli.slice(1), 'pre-dump', `--backend=${variant.base}`, '-t', String(wlPid), '-D', preImg], { reject: false, all: true, timeout: stepMs });
          if (r.exitCode !== 0) throw new Error(`cr pre-dump exited ${r.exitCode}: ${telling(r.all ?? '')}`);
        }
      } catch (err) {
        throw new CaseFailure('dump', `pre-dump: ${oneLine(err)}`);
      }
      // Asked again until it answers: a SIGUSR2 that lands while the
      // workload is between two sigsuspend() calls waits for the next
      // signal, and rewriting the same part again changes nothing.
      let asked = 0;
      const dirtied = await until(() => {
        const d = readLog().dirtied;
        if (!d && asked++ % 100 === 0) process.kill(wlPid, 'SIGUSR2');
        return d;
      }, stepMs);
      if (!dirtied) throw new CaseFailure('dump', `the workload did not rewrite its memory after the pre-dump (${workloadState(wlPid)})`);
      expected = dirtied;
    }
    rec.expected = expected;

    // dump, not left running
    if (mode === 'lib') {
      if (!backend) throw new CaseFailure('available', 'backend not available');
      const hwm = hwmWindow();
      const t0 = performance.now();
      try {
        const r = await bounded('dump', backend.dump({
          pid: wlPid, dir: img, leaveRunning: false, tcpEstablished: spec.tcpEstablished, cow: variant.cow || undefined, prevImagesDir: variant.pre ? preImg : undefined,
        }));
        const wallMs = performance.now() - t0;
        const m = hwm();
        rec.dump = { wallMs, totalMs: r.stats.totalMs, freezeMs: r.stats.freezeMs, frozenMs: r.stats.frozenMs, imageBytes: r.stats.imageBytes,
          pagesWritten: r.stats.pagesWritten, memory: { ...m, source: 'vmhwm-in-process' } };
        if (r.pids.length) pids = [...new Set([...r.pids, ...pids])];
      } catch (err) {
        throw new CaseFailure('dump', oneLine(err));
      }
    } else {
      const ru = path.join(root, 'dump.rusage');
      const timings = path.join(root, 'dump.timings');
      const argv = mode === 'cli'
        ? [...cfg.crCli, 'dump', `--backend=${variant.base}`, '-t', String(wlPid), '-D', img, ...(spec.tcpEstablished ? ['--tcp-established'] : []), ...variantDumpFlags(variant, preImg)]
        : [cfg.criuBin, 'dump', '-t', String(wlPid), '-D', img, '-o', 'dump.log', '-v2', ...(spec.tcpEstablished ? CRIU_TCP_ESTABLISHED : [])];
      const r = await execa(cfg.rusageBin, [ru, ...argv], { reject: false, all: true, timeout: stepMs, env: mode === 'cli' ? { CR_TIMINGS: timings } : undefined });
      const u = parseRusage(ru);
      if (r.exitCode !== 0) {
        const why = mode === 'native' ? criuLogError(path.join(img, 'dump.log')) ?? telling(r.all ?? '') : telling(r.all ?? '');
        throw new CaseFailure('dump', `${mode === 'native' ? 'criu' : 'cr'} dump exited ${r.exitCode}: ${why}`);
      }
      rec.dump = { wallMs: u?.wallMs ?? NaN, imageBytes: dirBytes(img), memory: { peakKiB: u?.maxrssKiB, source: 'wait4-maxrss' } };
      const over = mode === 'cli' ? commandOverhead(readOr(ru), readOr(timings)) : undefined;
      if (over) rec.dump.command = over;
      if (mode === 'native' || variant.base === 'criu') Object.assign(rec.dump, await criuStats(img, 'dump'));
      else {
        // `cr dump` reports "(frozen N ms)" when the backend measured it
        const fr = (r.all ?? '').match(/\(frozen (\d+(?:\.\d+)?) ms\)/);
        if (fr) rec.dump.frozenMs = Number(fr[1]);
      }
    }

    // the tasks must be gone
    const alive = await until(() => {
      const left = pids.filter((p) => {
        reap(p);
        const s = procState(p);
        return s !== null && s !== 'Z';
      });
      return left.length === 0 ? true : undefined;
    }, T(5000));
    if (!alive) {
      const left = pids.filter((p) => procState(p) !== null && procState(p) !== 'Z');
      throw new CaseFailure('gone', `task${left.length > 1 ? 's' : ''} ${left.join(' ')} still running after the dump`);
    }
    // zombies of the old tree hold their pids; they must be reaped before restore
    await until(() => pids.every((p) => procState(p) === null || (reap(p), procState(p) === null)) || undefined, T(3000));

    // restore
    let rootPid = wlPid;
    let result: RestoreResult | undefined;
    if (mode === 'lib') {
      const hwm = hwmWindow();
      const t0 = performance.now();
      try {
        result = await bounded('restore', backend!.restore({ dir: img, detach: false, mapPages: variant.map || undefined, lazyPages: variant.lazy || undefined }));
      } catch (err) {
        throw new CaseFailure('restore', oneLine(err));
      }
      rec.restore = { wallMs: performance.now() - t0, totalMs: result.stats.totalMs, memory: { ...hwm(), source: 'vmhwm-in-process' } };
      if (result.pids[0]) rootPid = result.pids[0];

    } else {
      const ru = path.join(root, 'restore.rusage');
      const timings = path.join(root, 'restore.timings');
      const argv = mode === 'cli'
        ? [...cfg.crCli, 'restore', `--backend=${variant.base}`, '-D', img, '--detach', ...variantRestoreFlags(variant)]
        : [cfg.criuBin, 'restore', '-D', img, '-d', '-o', 'restore.log', '-v2', ...(spec.tcpEstablished ? CRIU_TCP_ESTABLISHED : [])];
      const r = await execa(cfg.rusageBin, [ru, ...argv], { reject: false, all: true, timeout: stepMs, env: mode === 'cli' ? { CR_TIMINGS: timings } : undefined });
      const u = parseRusage(ru);
      if (r.exitCode !== 0) {
        const why = mode === 'native' ? criuLogError(path.join(img, 'restore.log')) ?? telling(r.all ?? '') : telling(r.all ?? '');
        throw new CaseFailure('restore', `${mode === 'native' ? 'criu' : 'cr'} restore exited ${r.exitCode}: ${why}`);
      }
      rec.restore = { wallMs: u?.wallMs ?? NaN, memory: { peakKiB: u?.maxrssKiB, source: 'wait4-maxrss' } };
      const over = mode === 'cli' ? commandOverhead(readOr(ru), readOr(timings)) : undefined;
      if (over) rec.restore.command = over;
      if (mode === 'native' || variant.base === 'criu') {
        const s = await criuStats(img, 'restore');
        if (s.restoreMs !== undefined) rec.restore.totalMs = s.restoreMs;
      }
      const printed = Number((r.stdout ?? '').trim().split('\n').at(-1));
      if (mode === 'cli' && printed > 0) rootPid = printed;
    }
    pids = [...new Set([rootPid, ...pids])];
    if (procState(rootPid) === null) {
      const o = readLog();
      throw new CaseFailure('restore', `restored root ${rootPid} is not running${o.bad[0] ? ` (${o.bad[0]})` : ''}`);
    }

    // finish: SIGUSR1, then DONE and an exit status
    try {
      process.kill(rootPid, 'SIGUSR1');
    } catch (err) {
      throw new CaseFailure('finish', `cannot signal restored root ${rootPid}: ${oneLine(err)}`);
    }
    const finishMs = stepMs;
    let status: ExitStatus | undefined;
    if (result) {
      const st = await withTimeout(result.wait().catch(() => undefined), finishMs);
      if (st !== 'timeout' && st) status = st;
    }
    if (!status) {
      status = await until(() => {
        const r = tryReap(rootPid);
        if (r.state === 'exited') return { code: r.code, signal: r.signal };
        if (r.state === 'not-our-child' && procState(rootPid) === null) return { code: null, signal: null };
        return undefined;
      }, finishMs);
    }
    const out = readLog();
    if (!status) {
      throw new CaseFailure('finish', `restored workload did not finish (state ${procState(rootPid)}${out.bad[0] ? `; ${out.bad[0]}` : ''})`);
    }

    // check
    rec.got = out.done;
    const problems: string[] = [];
    if (!out.done) problems.push('no DONE line');
    else if (out.done !== expected) problems.push(`checksum ${out.done} ≠ expected ${expected}`);
    if (out.bad.length) problems.push(out.bad.slice(0, 2).join('; '));
    if (status.signal) problems.push(`killed by ${status.signal}`);
    else if (status.code !== null && status.code !== 0) problems.push(`exit status ${status.code}`);
    if (problems.length) throw new CaseFailure('check', problems.join('; '));
    rec.ok = true;
  } catch (err) {
    if (err instanceof CaseFailure) {
      rec.stage = err.stage;
      rec.reason = err.message;
    } else {
      rec.stage = 'check';
      rec.reason = `harness error: ${oneLine(err)}`;
    }
  } finally {
    await cleanupTree(pids, reap);
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rec;
}

/** The first error line of a CRIU log ("Error (criu/…): …"), if any. */
export function criuLogError(file: string): string | undefined {
  try {
    const t = fs.readFileSync(file, 'utf8');
    const line = t.split('\n').find((l) => /Error \(|^Error|\bERROR\b/.test(l));
    return line?.replace(/^\(\s*[\d.]+\)\s*/, '').trim();
  } catch {
    return undefined;
  }
}

/** CRIU's own statistics for a native run, decoded by the criu backend's image reader. */
async function criuStats(dir: string, which: 'dump' | 'restore'): Promise<{ freezeMs?: number; frozenMs?: number; pagesWritten?: number; restoreMs?: number }> {
  try {
    const { readStats } = await import('../backends/criu/images.js');
    if (which === 'dump') {
      const s = await readStats(dir, 'dump');
      if (!s) return {};
      return { freezeMs: s.freezing_time !== undefined ? s.freezing_time / 1000 : undefined, frozenMs: s.frozen_time !== undefined ? s.frozen_time / 1000 : undefined,
        pagesWritten: s.pages_written };
    }
    const s = await readStats(dir, 'restore');
    return { restoreMs: s?.restore_time !== undefined ? s.restore_time / 1000 : undefined };
  } catch {
    return {};
  }
}

/** The backends a case runs through: the run's, then the case's variants of them. */
export function backendsFor(cfg: HarnessConfig, c: CaseSpec): string[] {
  const variants = (c.variants ?? []).filter((v) => cfg.backends.includes(variantOf(v).base) && !cfg.backends.includes(v));
  return [...cfg.backends, ...variants];
}

/** Which modes a backend is measured in: a case's own variant only as a library call. */
export function modesFor(cfg: HarnessConfig, backend: string, c: CaseSpec): Mode[] {
  if (!cfg.backends.includes(backend)) return cfg.modes.filter((x) => x === 'lib');
  const m = cfg.modes.filter((x) => x !== 'native' || backend === 'criu');
  return c.kind === 'feature' ? m.slice(0, 1) : m;
}

/** The whole matrix: every case through every backend, every mode, every repetition. */
export async function runAll(cfg: HarnessConfig, cases: CaseSpec[]): Promise<{ records: RunRecord[]; checks: Record<string, { ok: boolean; reason?: string; items?: CheckItem[] }> }> {
  const checks: Record<string, { ok: boolean; reason?: string; items?: CheckItem[] }> = {};
  for (const b of cfg.backends) {
    const backend = cfg.registry[variantOf(b).base];
    if (!backend) {
      checks[b] = { ok: false, reason: 'backend not available' };
    } else {
      try {
        const items = await backend.check();
        const failed = items.filter((i) => i.required && !i.ok);
        checks[b] = failed.length ? { ok: false, reason: `check failed: ${failed.map((i) => `${i.name}: ${i.detail}`).join('; ')}`, items } : { ok: true, items };
      } catch (err) {
        checks[b] = { ok: false, reason: `check failed: ${oneLine(err)}` };
      }
    }
    cfg.emit({ t: 'check', backend: b, ...checks[b] });
  }

  const repsOf = (c: CaseSpec, mode: Mode) => (c.kind === 'feature' ? cfg.featureReps : mode === 'cli' ? cfg.cliReps ?? cfg.reps : cfg.reps);
  let total = 0;
  for (const c of cases) for (const b of backendsFor(cfg, c)) for (const m of modesFor(cfg, b, c)) total += repsOf(c, m);
  cfg.emit({ t: 'plan', total });

  const records: RunRecord[] = [];
  for (const c of cases) {
    for (const b of backendsFor(cfg, c)) {
      const check = checks[b] ?? checks[variantOf(b).base];
      for (const mode of modesFor(cfg, b, c)) {
        const reps = repsOf(c, mode);
        for (let rep = 0; rep < reps; rep++) {
          cfg.emit({ t: 'start', label: `${c.workload}${c.size !== null ? ` ${c.size}` : ''} · ${b} · ${mode} · #${rep + 1}` });
          let rec: RunRecord;
          if (!check.ok) {
            rec = { kind: c.kind, workload: c.workload, group: c.group, size: c.size, backend: b, mode, rep, ok: false, stage: 'available', reason: check.reason };
          } else {
            rec = await runCycle(cfg, c, b, mode, rep);
          }
          records.push(rec);
          cfg.emit({ t: 'record', record: rec });
        }
      }
    }
  }
  return { records, checks };
}
