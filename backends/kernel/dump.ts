/**
 * Checkpoint through checkpoint(2): the engine freezes the task with its own
 * hold (nobody else can thaw it), writes DIR/kernel.img, and with
 * CHECKPOINT_KILL kills it before thawing, so the task never runs past the
 * image.  Errors come back as an errno and as lines in DIR/kernel.log.
 * With --tcp-established the tree's TCP connections to peers outside it
 * are held back by the network lock (inet.ts) from before the call.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DumpOptions, DumpResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { pidExists } from '../../userspace/sys/libc.js';
import { decodeImage, imagePath, logPath } from './image.js';
import { HeldConnections, netlockPath } from './inet.js';
import { checkpoint, CHECKPOINT_KILL, CHECKPOINT_SHELL_JOB, CHECKPOINT_TCP_ESTABLISHED, ensureEngine } from './sys.js';

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

async function waitGone(pid: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) [ZX] /.test(stat)) return;
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function dump(opts: DumpOptions): Promise<DumpResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const { pid } = opts;
  if (!Number.isInteger(pid) || pid <= 0) throw new CrError(`bad pid ${pid}`);
  if (!pidExists(pid)) throw new CrError(`no process with pid ${pid}`);
  const why = ensureEngine(log);
  if (why) throw new CrError(why);

  fs.mkdirSync(opts.dir, { recursive: true });
  const img = imagePath(opts.dir);
  fs.rmSync(netlockPath(opts.dir), { force: true });
  const held = opts.tcpEstablished ? HeldConnections.take(pid) : undefined;
  const flags = (opts.leaveRunning ? 0 : CHECKPOINT_KILL) | (opts.shellJob ? CHECKPOINT_SHELL_JOB : 0) | (opts.tcpEstablished ? CHECKPOINT_TCP_ESTABLISHED : 0);
  let r;
  try {
    const imgFd = fs.openSync(img, 'w', 0o600);
    const logFd = fs.openSync(logPath(opts.dir), 'w', 0o644);
    try {
      r = checkpoint(pid, imgFd, flags, logFd);
    } finally {
      fs.closeSync(imgFd);
      fs.closeSync(logFd);
    }
  } catch (err) {
    held?.release();
    throw err;
  }
  const logText = fs.readFileSync(logPath(opts.dir), 'utf8');
  for (const line of logText.trim().split('\n').filter(Boolean)) log(line);
  if (r.errno || opts.leaveRunning) held?.release();
  if (r.errno) {
    fs.rmSync(img, { force: true });
    const detail = lastLogLine(logPath(opts.dir));
    throw new CrError(`checkpoint of pid ${pid} failed: ${r.errno}${detail ? `: ${detail}` : ''}`);
  }
  const { tree, sockets } = decodeImage(img);
  if (held && !opts.leaveRunning) held.keep(opts.dir, sockets, log);
  const pids = tree.map((t) => t.pid);
  // zombies go when whoever inherits them reaps them
  if (!opts.leaveRunning) for (const t of tree) if (t.zombie === undefined) await waitGone(t.pid, 2000);

  const num = (re: RegExp): number | undefined => {
    const m = re.exec(logText);
    return m ? Number(m[1]) : undefined;
  };
  const freezeUs = num(/froze in (\d+) us/);
  const frozenUs = num(/frozen for (\d+) us/);
  return {
    pids,
    stats: {
      freezeMs: freezeUs === undefined ? undefined : freezeUs / 1000,
      frozenMs: frozenUs === undefined ? undefined : frozenUs / 1000,
      totalMs: performance.now() - t0,
      imageBytes: dirBytes(opts.dir),
      pagesWritten: num(/(\d+) pages saved/),
    },
  };
}
