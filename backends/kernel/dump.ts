/**
 * Checkpoint through checkpoint(2): the engine freezes the task with its own
 * hold (nobody else can thaw it), writes DIR/kernel.img, and with
 * CHECKPOINT_KILL kills it before thawing, so the task never runs past the
 * image.  Errors come back as an errno and as lines in DIR/kernel.log.
 *
 * A pre-dump is a checkpoint with CHECKPOINT_TRACK that leaves the tasks
 * running (copy-on-write: they are frozen only while everything but their
 * pages is saved); a dump with `prevImagesDir` adds CHECKPOINT_INCREMENTAL,
 * and the engine saves only the pages written since the last pre-dump,
 * naming that image as the parent the others are in.
 *
 * With --tcp-established the tree's TCP connections to peers outside it
 * are held back by the network lock (inet.ts) from before the call.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DumpOptions, DumpResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { pidExists, waitGone } from '../../userspace/sys/libc.js';
import { imagePath, logPath, readImage } from './image.js';
import { HeldConnections, netlockPath } from './inet.js';
import { armEngineFault, checkpoint, CHECKPOINT_COW, CHECKPOINT_INCREMENTAL, CHECKPOINT_KILL, CHECKPOINT_SHELL_JOB, CHECKPOINT_TCP_ESTABLISHED, CHECKPOINT_TRACK, ensureEngine } from './sys.js';

/** The engine's last log line, the most specific reason for a failure. */
export function lastLogLine(file: string): string | undefined {
  try {
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
    const errors = lines.filter((l) => /error/.test(l));
    return (errors.at(-1) ?? lines.at(-1))?.replace(/^crengine\[\d+\]: /, '');
  } catch {
    return undefined;
  }
}

function dirBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
}

/** checkpoint(2) flags for a dump (or, with `track`, a pre-dump). */
function flagsFor(opts: DumpOptions, track: boolean): number {
  const leaveRunning = track || opts.leaveRunning;
  // copy-on-write is the default where the tasks run on anyway
  const cow = opts.cow ?? !!leaveRunning;
  return (leaveRunning ? 0 : CHECKPOINT_KILL) | (cow ? CHECKPOINT_COW : 0) |
    (track ? CHECKPOINT_TRACK : 0) | (opts.prevImagesDir ? CHECKPOINT_INCREMENTAL : 0) |
    (opts.shellJob ? CHECKPOINT_SHELL_JOB : 0) | (opts.tcpEstablished ? CHECKPOINT_TCP_ESTABLISHED : 0);
}

/** The pre-dump named by --prev-images-dir, checked before anything happens. */
function parentImage(dir: string): string {
  const img = imagePath(dir);
  if (!fs.existsSync(img)) throw new CrError(`${dir} holds no kernel-backend image to build on`);
  const { chain } = readImage(img);
  if (!chain?.tracking) throw new CrError(`${img} is not a pre-dump: it tracks no pages (cr pre-dump)`);
  return fs.realpathSync(img);
}

export async function checkpointTree(opts: DumpOptions, track: boolean): Promise<DumpResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const { pid } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new CrError(`bad pid ${pid}`);
  if (!pidExists(pid)) throw new CrError(`no process with pid ${pid}`);
  const parent = opts.prevImagesDir ? parentImage(opts.prevImagesDir) : undefined;
  const why = ensureEngine(log);
  if (why) throw new CrError(why);

  fs.mkdirSync(opts.dir, { recursive: true });
  const img = imagePath(opts.dir);
  // a new file, never the old one rewritten: a tree restored by mapping may still map it
  fs.rmSync(img, { force: true });
  fs.rmSync(netlockPath(opts.dir), { force: true });
  const leaveRunning = track || opts.leaveRunning;
  const held = opts.tcpEstablished ? HeldConnections.take(pid) : undefined;
  let r;
  try {
    const imgFd = fs.openSync(img, 'wx', 0o600);
    const logFd = fs.openSync(logPath(opts.dir), 'w', 0o644);
    const disarm = armEngineFault();
    try {
      r = checkpoint(pid, imgFd, flagsFor(opts, track), logFd);
    } finally {
      disarm();
      fs.closeSync(imgFd);
      fs.closeSync(logFd);
    }
  } catch (err) {
    held?.release();
    throw err;
  }
  const logText = fs.readFileSync(logPath(opts.dir), 'utf8');
  for (const line of logText.trim().split('\n').filter(Boolean)) log(line);
  if (r.errno || leaveRunning) held?.release();
  if (r.errno) {
    fs.rmSync(img, { force: true });
    const detail = lastLogLine(logPath(opts.dir));
    throw new CrError(`checkpoint of pid ${pid} failed: ${r.errno}${detail ? `: ${detail}` : ''}`);
  }
  const { tree, chain, sockets } = readImage(img);
  if (held && !leaveRunning) held.keep(opts.dir, sockets, log);
  if (parent && chain?.parentPath !== parent) {
    log(`note: the engine's last pre-dump of these tasks is ${chain?.parentPath}, not ${parent}: the image builds on that one`);
  }
  const pids = tree.map((t) => t.pid);
  // zombies go when whoever inherits them reaps them
  if (!leaveRunning) await waitGone(tree.filter((t) => t.zombie === undefined).map((t) => t.pid), 2000);

  const sum = (re: RegExp): number | undefined => {
    const all = [...logText.matchAll(re)];
    return all.length ? all.reduce((n, m) => n + Number(m[1]), 0) : undefined;
  };
  const freezeUs = sum(/froze in (\d+) us/g);
  const frozenUs = sum(/frozen for (\d+) us/g);
  return {
    pids,
    stats: {
      freezeMs: freezeUs === undefined ? undefined : freezeUs / 1000,
      frozenMs: frozenUs === undefined ? undefined : frozenUs / 1000,
      totalMs: performance.now() - t0,
      imageBytes: dirBytes(opts.dir),
      pagesWritten: sum(/(\d+) pages saved/g),
    },
  };
}

export const dump = (opts: DumpOptions): Promise<DumpResult> => checkpointTree(opts, false);
export const preDump = (opts: DumpOptions): Promise<DumpResult> => checkpointTree({ ...opts, leaveRunning: true }, true);
