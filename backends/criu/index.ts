/**
 * The CRIU backend: the real CRIU binary behind cr-lab's Backend interface,
 * as the reference the other two backends are measured against.
 *
 * dump:    criu dump -t PID -D DIR -o dump.log -v2 [--shell-job] [--leave-running]
 *          [--tcp-established --network-lock nftables]
 * restore: criu restore -D DIR -o restore.log -v2 -d --pidfile F
 *          [--restore-sibling] [--shell-job] [--tcp-established --network-lock nftables]
 *
 * Restore always lets criu exit once the tree runs (-d). Without `detach`
 * it also passes --restore-sibling, so the restored root becomes a child of
 * *this* process instead of criu's: criu's own exit status says nothing
 * about the root (a waiting `criu restore` reaps it and returns 0), whereas
 * as our child we can waitpid() it and report its real status from wait().
 * With `detach` the root is left to whoever adopts orphans.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { CrError } from '../../userspace/errors.js';
import { waitpid, WNOHANG, wstatus } from '../../userspace/sys/libc.js';
import type { Backend, CheckItem, DumpOptions, DumpResult, ExitStatus, ImageDescription, RestoreOptions, RestoreResult } from '../types.js';
import { isCriuImage, memoryModes, summary } from './identity.js';
import { describeImage, readPstree, readStats } from './images.js';

export const CRIU = process.env.CR_CRIU ?? 'criu';
/** CRIU's log level: 2 = errors and warnings (cheap); CR_CRIU_VERBOSE=4 for debugging. */
const VERBOSITY = `-v${process.env.CR_CRIU_VERBOSE ?? '2'}`;

const inVm = 'run it inside the project VM (6.12 kernel): npm run vm -- criu check, npm run vm -- node dist/cr/cr.js …';

/** The first line of a CRIU log that says what went wrong. */
export function criuError(log: string): string | undefined {
  const lines = log.split('\n').map((l) => l.replace(/^\(\s*[\d.]+\)\s*/, '').trim()).filter(Boolean);
  // skip CRIU's generic "a helper exited" lines in favour of the cause
  const errs = lines.filter((l) => /^Error \(/.test(l) || /^Error:/.test(l));
  const err = errs.find((l) => !/exited, status=|killed by signal/.test(l)) ?? errs[0] ?? lines.find((l) => /\berror\b|\bfailed\b|can't|cannot/i.test(l));
  return err?.replace(/^Error \(([^)]*)\):\s*/, '');
}

function readLog(dir: string, name: string): string {
  try {
    return fs.readFileSync(path.join(dir, name), 'utf8');
  } catch {
    return '';
  }
}

function failure(what: string, dir: string, logName: string, r: { exitCode?: number; signal?: string; stderr?: unknown; stdout?: unknown }): CrError {
  const why = criuError(readLog(dir, logName)) ?? criuError(String(r.stderr ?? '')) ?? (String(r.stderr ?? '').trim().split('\n')[0] || `exit status ${r.exitCode ?? r.signal}`);
  const hint = /vDSO/i.test(why) && tooNewKernel() ? `; CRIU < 4.1 cannot run on kernel ${os.release()}, ${inVm}` : '';
  return new CrError(`${what} failed: ${why} (see ${path.join(dir, logName)})${hint}`);
}

interface ProcStat {
  pgrp: number;
  session: number;
  ttyNr: number;
}
function procStat(pid: number): ProcStat | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { pgrp: Number(f[2]), session: Number(f[3]), ttyNr: Number(f[4]) };
  } catch {
    return undefined;
  }
}

/**
 * CRIU needs --shell-job when the root's session or process group belongs
 * to a process outside the dumped tree, or when it has a controlling
 * terminal it does not own — the usual case for a program started from a
 * shell. A tree started with setsid() needs neither.
 */
export function needsShellJob(pid: number, st: ProcStat): boolean {
  return st.session !== pid || st.pgrp !== pid || st.ttyNr !== 0;
}

/**
 * CRIU saves established TCP connections only when asked, and locks them
 * with nftables here (its default, iptables, is not installed); the
 * restore of such an image must be asked the same.
 */
export const CRIU_TCP_ESTABLISHED = ['--tcp-established', '--network-lock', 'nftables'];

/** Whether a CRIU image holds established TCP connections (tcp-stream-*.img). */
function hasTcpStreams(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((f) => f.startsWith('tcp-stream-'));
  } catch {
    return false; // no image there (yet): criu says so itself
  }
}

/**
 * `criu dump`, or with `pre` `criu pre-dump`; after a pre-dump, only the
 * pages written since (--track-mem). --file-locks: the other backends save
 * file locks by default; CRIU refuses them without it.
 */
export function dumpArgv(opts: DumpOptions, shellJob: boolean, pre = false): string[] {
  const argv = [pre ? 'pre-dump' : 'dump', '-t', String(opts.pid), '-D', opts.dir, '-o', pre ? 'pre-dump.log' : 'dump.log', VERBOSITY, '--file-locks'];
  if (shellJob) argv.push('--shell-job');
  if (opts.leaveRunning && !pre) argv.push('--leave-running');
  if (opts.tcpEstablished) argv.push(...CRIU_TCP_ESTABLISHED);
  // CRIU takes the previous images relative to -D
  if (opts.prevImagesDir) argv.push('--track-mem', '--prev-images-dir', path.relative(opts.dir, opts.prevImagesDir));
  else if (pre) argv.push('--track-mem');
  return argv;
}

export function restoreArgv(opts: RestoreOptions, pidfile: string, shellJob: boolean): string[] {
  const argv = ['restore', '-D', opts.dir, '-o', 'restore.log', VERBOSITY, '--restore-detached', '--pidfile', pidfile, '--file-locks'];
  if (!opts.detach) argv.push('--restore-sibling');
  if (shellJob) argv.push('--shell-job');
  if (hasTcpStreams(opts.dir)) argv.push(...CRIU_TCP_ESTABLISHED);
  return argv;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : e.isFile() ? fs.statSync(p).size : 0;
  }
  return n;
}

function waitpidNohang(pid: number): { done: false } | { done: true; status?: ExitStatus } {
  let ret: number;
  let st: number;
  try {
    [ret, st] = waitpid(pid, WNOHANG);
  } catch {
    return { done: true };
  }
  if (ret === 0) return { done: false };
  if (wstatus.exited(st)) return { done: true, status: { code: wstatus.exitCode(st), signal: null } };
  const name = Object.entries(os.constants.signals).find(([, n]) => n === wstatus.termSig(st))?.[0] as NodeJS.Signals | undefined;
  return { done: true, status: { code: null, signal: name ?? null } };
}

/** Waits for a child that Node did not spawn, without tying up a thread. */
function waitChild(pid: number): Promise<ExitStatus> {
  return new Promise((resolve, reject) => {
    const poll = () => {
      const r = waitpidNohang(pid);
      if (!r.done) return void setTimeout(poll, 5);
      if (r.status) resolve(r.status);
      else reject(new CrError(`restored root ${pid} is not our child any more (reaped elsewhere?)`));
    };
    poll();
  });
}

function kernelVersion(): [number, number] {
  const m = os.release().match(/^(\d+)\.(\d+)/);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** Kernels from 6.13 on moved the vDSO clock pages; CRIU before 4.1 cannot cope. */
function tooNewKernel(): boolean {
  const [maj, min] = kernelVersion();
  return maj > 6 || (maj === 6 && min >= 13);
}

async function criuVersion(): Promise<[number, number, number] | undefined> {
  try {
    const r = await execa(CRIU, ['--version'], { reject: false });
    const m = r.stdout.match(/Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
  } catch {
    return undefined;
  }
}


/** `criu dump` (or pre-dump): the tree stays running after a pre-dump. */
async function criuDump(opts: DumpOptions, pre: boolean): Promise<DumpResult> {
  if (opts.cow) throw new CrError('CRIU has no copy-on-write dump (--cow): its pages are copied while the tasks are frozen');
  const st = procStat(opts.pid);
  if (!st) throw new CrError(`no process ${opts.pid}`);
  if (opts.prevImagesDir && !isCriuImage(opts.prevImagesDir)) throw new CrError(`${opts.prevImagesDir} holds no CRIU image to build on`);
  fs.mkdirSync(opts.dir, { recursive: true });
  const shellJob = !!opts.shellJob || needsShellJob(opts.pid, st);
  const argv = dumpArgv(opts, shellJob, pre);
  const logName = pre ? 'pre-dump.log' : 'dump.log';
  opts.log?.(`${CRIU} ${argv.join(' ')}`);
  const t0 = performance.now();
  const r = await execa(CRIU, argv, { reject: false, stdin: 'ignore' });
  const totalMs = performance.now() - t0;
  if (r.exitCode !== 0) throw failure(`criu ${argv[0]}`, opts.dir, logName, r);
  let pids: number[] = [];
  try {
    pids = readPstree(opts.dir).map((e) => e.pid);
  } catch (err) {
    opts.log?.(`cannot read pstree.img: ${(err as Error).message}`);
  }
  const s = await readStats(opts.dir, 'dump').catch(() => undefined);
  opts.log?.(`dumped ${pids.join(' ')} in ${totalMs.toFixed(0)} ms`);
  return {
    pids,
    stats: {
      totalMs,
      freezeMs: s?.freezing_time !== undefined ? s.freezing_time / 1000 : undefined,
      frozenMs: s?.frozen_time !== undefined ? s.frozen_time / 1000 : undefined,
      imageBytes: dirBytes(opts.dir),
      pagesWritten: s?.pages_written,
    },
  };
}

export const criuBackend: Backend = {
  name: 'criu',
  summary,
  memoryModes,

  async check(): Promise<CheckItem[]> {
    const items: CheckItem[] = [];
    const ver = await criuVersion();
    items.push({ name: 'criu binary', ok: !!ver, required: true, detail: ver ? `${CRIU} ${ver.join('.')}` : `${CRIU} not found (apt-get install criu)` });
    const newKernel = tooNewKernel();
    const oldCriu = !!ver && (ver[0] < 4 || (ver[0] === 4 && ver[1] < 1));
    items.push({
      name: 'kernel vs CRIU version',
      ok: !(newKernel && oldCriu),
      required: true,
      detail: newKernel && oldCriu
        ? `CRIU ${ver!.join('.')} cannot run on kernel ${os.release()}: kernels ≥ 6.13 map the vDSO data pages differently and CRIU < 4.1 stops with "Unexpected rt vDSO area bounds"; ${inVm}`
        : `kernel ${os.release()}`,
    });
    items.push({ name: 'root', ok: process.getuid?.() === 0, required: true, detail: process.getuid?.() === 0 ? 'running as root' : 'criu needs root (CAP_SYS_ADMIN and friends)' });
    if (ver) {
      const r = await execa(CRIU, ['check'], { reject: false, all: true });
      const out = (r.all ?? '').trim();
      const ok = r.exitCode === 0 && /Looks good/.test(out);
      items.push({ name: 'criu check', ok, required: true, detail: ok ? 'Looks good.' : (criuError(out) ?? out.split('\n').at(-1) ?? `exit status ${r.exitCode}`) });
    }
    return items;
  },

  dump: (opts) => criuDump(opts, false),
  preDump: (opts) => criuDump(opts, true),

  async restore(opts: RestoreOptions): Promise<RestoreResult> {
    if (!isCriuImage(opts.dir)) throw new CrError(`${opts.dir} holds no CRIU image (no inventory.img)`);
    if (opts.pidns) throw new CrError('the criu backend restores into the current pid namespace only (a new one needs a dump taken with --namespaces pid)');
    const tree = readPstree(opts.dir);
    if (!tree.length) throw new CrError(`${opts.dir}: pstree.img lists no process`);
    const rootTask = tree[0];
    const shellJob = !!opts.shellJob || rootTask.sid !== rootTask.pid || rootTask.pgid !== rootTask.pid;
    const pidfile = path.join(opts.dir, 'restore.pid');
    fs.rmSync(pidfile, { force: true });
    const argv = restoreArgv(opts, pidfile, shellJob);
    opts.log?.(`${CRIU} ${argv.join(' ')}`);
    const t0 = performance.now();
    const r = await execa(CRIU, argv, { reject: false, stdin: 'ignore' });
    const totalMs = performance.now() - t0;
    if (r.exitCode !== 0) throw failure('criu restore', opts.dir, 'restore.log', r);
    const rootPid = Number(readLog(opts.dir, 'restore.pid').trim()) || rootTask.pid;
    const pids = [rootPid, ...tree.slice(1).map((e) => e.pid)];
    opts.log?.(`restored ${pids.join(' ')} in ${totalMs.toFixed(0)} ms`);
    let waiting: Promise<ExitStatus> | undefined;
    return {
      pids,
      stats: { totalMs },
      wait: () => {
        if (opts.detach) return Promise.reject(new CrError('restored with detach: nobody waits for the root task'));
        waiting ??= waitChild(rootPid);
        return waiting;
      },
    };
  },

  async recognizes(dir: string): Promise<boolean> {
    return isCriuImage(dir);
  },

  async describe(dir: string): Promise<ImageDescription> {
    const d = await describeImage(dir);
    return { backend: 'criu', lines: d.lines, data: d.data };
  },
};
