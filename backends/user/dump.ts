/**
 * Checkpoint through /proc and ptrace: seize the whole tree, let every
 * state module save its part of each process (asking the task itself,
 * through injected system calls, for what /proc does not show), then kill
 * the tree or let it go. On any failure every task is given back exactly
 * as it was and the partial image is removed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DumpOptions, DumpResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { writeTracking } from '../../userspace/proc/pagemap.js';
import { procSmaps } from '../../userspace/proc/parse.js';
import { Injection } from '../../userspace/sys/inject.js';
import { SysError } from '../../userspace/sys/libc.js';
import { killTraced, type Steps, together } from '../../userspace/sys/ptrace.js';
import { loadSchema } from './codec.js';
import { FORMAT_VERSION, ImageWriter } from './image.js';
import { recognizes } from './identity.js';
import { readInventory, type Inventory } from './inventory.js';
import { STATE_MODULES } from './state/index.js';
import { inForeground } from './state/tty.js';
import type { DumpShared, DumpTask } from './state/module.js';
import { checkSharedTables, recordPidNamespaces, releaseTree, saveLastPid, seizeFrozen, seizeTree, type SeizedTask } from './tree.js';
import { Freezer } from '../../userspace/freezer.js';
import { injectFault, requestedFault } from '../../userspace/fault.js';
import { byPid, closeTrackers, IMAGE_TRACKING, prevTracking, startTracking, type Tracker } from './tracking.js';

function asCrError(err: unknown): Error {
  if (err instanceof CrError) return err;
  if (err instanceof SysError) return new CrError(err.message, { cause: err });
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EACCES' || code === 'EROFS' || code === 'EIO') {
    return new CrError(`cannot write the image: ${code}`, { cause: err });
  }
  return err as Error;
}

/** A process whose injection session is open, and its answers to every module's questions. */
interface AskedProcess {
  task: DumpTask;
  answers: unknown[];
}

/**
 * Open a process's injection session and ask every module's questions in
 * one round trip, in steps (together() runs all processes' side by side).
 * The session goes into `sessions` as soon as it is open: the caller ends
 * it when the tasks are let go, and need not when they are killed (the
 * scratch area and borrowed registers go with them).
 */
function* askProcess(t: SeizedTask, sessions: Injection[], common: Pick<DumpTask, 'images' | 'shared' | 'stats' | 'prevImagesDir' | 'log'>): Steps<AskedProcess> {
  const [leader] = t.threads;
  const maps = procSmaps(leader.pid);
  const inj = yield* Injection.beginSteps(leader, undefined, maps);
  sessions.push(inj);
  const task: DumpTask = { ...common, pid: t.entry.pid, entry: t.entry, tracee: leader, threads: t.threads, inj, maps, stat: t.stat };
  const questions = STATE_MODULES.map((m) => m.ask?.(task));
  const calls = questions.flatMap((q) => q?.calls ?? []);
  const results = yield* inj.batchOkSteps(calls.map(([, call]) => call), (i) => calls[i][0]);
  let next = 0;
  return { task, answers: questions.map((q) => q?.answer(results.slice(next, (next += q.calls.length)))) };
}

function saveProcess({ task, answers }: AskedProcess): void {
  STATE_MODULES.forEach((m, i) => {
    m.dump(task, answers[i]);
    task.log(`pid ${task.pid}: ${m.name} saved`);
  });
  saveLastPid(task.entry, task.inj);
}

/** The pre-dump named by --prev-images-dir, checked before any task is seized. */
function readParent(dir: string): Inventory {
  if (!recognizes(dir)) throw new CrError(`${dir} holds no user-backend image to build on`);
  const inv = readInventory(dir);
  if (!inv.tracks_memory) throw new CrError(`${dir} is not a pre-dump: it tracks no pages (cr pre-dump)`);
  if (inv.tracking !== 'SOFT_DIRTY' && inv.tracking !== 'UFFD_WP') throw new CrError(`${dir}: corrupted image (pages tracked by ${String(inv.tracking)})`);
  return inv;
}

export const dump = (opts: DumpOptions): Promise<DumpResult> => dumpTree(opts, false);

/**
 * A pre-dump: everything saved as by a dump, the tasks left running, and
 * the pages they write from now on tracked before they run again
 * (tracking.ts), so that those are the ones a dump naming this image saves.
 */
export const preDump = (opts: DumpOptions): Promise<DumpResult> => dumpTree({ ...opts, leaveRunning: true }, true);

async function dumpTree(opts: DumpOptions, track: boolean): Promise<DumpResult> {
  if (opts.cow) throw new CrError('the user backend has no copy-on-write dump (--cow): it copies the pages while the tasks are stopped');
  // asked only of a dump that tracks or builds on tracking: it reads our own maps and pagemap
  const method = track || opts.prevImagesDir ? writeTracking() : null;
  if ((track || opts.prevImagesDir) && !method) {
    throw new CrError(`kernel ${os.release()} cannot track the pages a task writes (neither CONFIG_MEM_SOFT_DIRTY nor asynchronous userfaultfd write protection): ${track ? 'pre-dumps' : 'dumps with --prev-images-dir'} are not available`);
  }
  const parent = opts.prevImagesDir ? readParent(opts.prevImagesDir) : undefined;
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  requestedFault(); // a CR_FAULT that names no stage is refused before anything is touched
  loadSchema(); // read by the first image written: not while the tasks are stopped
  const preseized = opts.freezeCgroup ? await seizeFrozen(new Freezer(opts.freezeCgroup)) : undefined;
  if (preseized) log(`froze ${opts.freezeCgroup}: seized ${preseized.size} threads`);
  const tasks = seizeTree(opts.pid, preseized);
  // Seize first: a tree we may not trace leaves the image directory untouched.
  let images: ImageWriter;
  try {
    images = new ImageWriter(opts.dir);
  } catch (err) {
    releaseTree(tasks);
    throw err;
  }
  const frozenAt = performance.now();
  const pids = tasks.map((t) => t.entry.pid);
  log(`seized ${pids.join(' ')} in ${(frozenAt - t0).toFixed(1)} ms`);

  const stats = { pagesWritten: 0 };
  const shared: DumpShared = {
    files: { byIno: new Map(), count: 0 }, pipes: new Set(), shmem: new Set(), mms: new Map(), tree: pids, shellJob: !!opts.shellJob, tcpEstablished: !!opts.tcpEstablished, done: [],
    prev: parent && prevTracking(parent, tasks),
  };
  let trackers: Tracker[] = [];
  // Every hook runs even after one failed; the first failure is thrown then.
  const finish = (killed: boolean) => {
    let failure: unknown;
    for (const fn of shared.done.splice(0)) {
      try {
        fn(killed);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure) throw failure;
  };
  // The processes' injection sessions, still open.
  const sessions: Injection[] = [];
  const abandonSessions = () => {
    for (const inj of sessions.splice(0)) inj.abandon();
  };
  try {
    injectFault('dump-frozen');
    checkSharedTables(tasks);
    recordPidNamespaces(tasks);
    const asked = together(tasks.filter((t) => t.threads.length).map((t) => askProcess(t, sessions, { images, shared, stats, prevImagesDir: opts.prevImagesDir, log })));
    log(`asked ${asked.length} processes`);
    for (const p of asked) saveProcess(p);
    // Tasks that go on running get their registers, mask and memory back (before any tracking starts).
    if (opts.leaveRunning) for (; sessions.length; sessions.shift()) sessions[0].end();
    if (opts.prevImagesDir) images.link('parent', path.relative(fs.realpathSync(opts.dir), fs.realpathSync(opts.prevImagesDir)));
    // still stopped: nothing is written between the copy and the start of the tracking
    if (track) trackers = startTracking(tasks, method!, shared.prev, log);
    images.write('inventory', undefined, {
      format_version: FORMAT_VERSION,
      arch: process.arch,
      kernel_release: os.release(),
      created_ms: BigInt(Date.now()),
      page_size: 4096,
      tasks: tasks.map((t) => t.entry),
      shell_job: !!opts.shellJob,
      foreground: !!opts.shellJob && inForeground(opts.pid),
      tracks_memory: track,
      tracking: IMAGE_TRACKING[method ?? 'soft-dirty'],
      trackers,
    });
  } catch (err) {
    images.discard();
    try {
      finish(false);
    } catch {
      /* the dump failed already: its own error says why */
    }
    abandonSessions();
    closeTrackers(tasks, byPid(trackers), log);
    releaseTree(tasks);
    throw asCrError(err);
  }

  try {
    finish(!opts.leaveRunning);
  } catch (err) {
    images.discard();
    abandonSessions();
    releaseTree(tasks);
    throw asCrError(err);
  }
  // The pre-dump's trackers have done their work (a pre-dump on top replaced them already).
  if (opts.leaveRunning && !track && shared.prev) closeTrackers(tasks, shared.prev.found, log);
  // Downtime ends once the tasks run again or are killed, as CRIU's frozen_time: reaping
  // killed tasks waits for their memory to be freed (a quarter second for 1 GiB under
  // TCG), but none of them is stopped then.
  let downtimeEnd: number;
  if (opts.leaveRunning) {
    releaseTree(tasks);
    downtimeEnd = performance.now();
  } else {
    downtimeEnd = performance.now(); // killTraced sends every SIGKILL before it waits
    killTraced(tasks.map((t) => t.threads));
  }
  const end = performance.now();
  return {
    pids,
    stats: {
      freezeMs: frozenAt - t0, frozenMs: downtimeEnd - frozenAt, totalMs: end - t0, imageBytes: images.bytes(), pagesWritten: stats.pagesWritten,
    },
  };
}
