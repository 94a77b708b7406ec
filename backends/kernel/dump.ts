/**
 * Checkpoint through checkpoint(2): the engine freezes the task with its own
 * hold (nobody else can thaw it), writes DIR/kernel.img, and with
 * CHECKPOINT_KILL kills it before thawing, so the task never runs past the
 * image.  Errors come back as an errno and as lines in DIR/kernel.log.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DumpOptions, DumpResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { pidExists } from '../../userspace/sys/libc.js';
import { imagePath, logPath, readHeader } from './image.js';
import { checkpoint, CHECKPOINT_KILL, ensureEngine } from './sys.js';

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
  const imgFd = fs.openSync(img, 'w', 0o600);
  const logFd = fs.openSync(logPath(opts.dir), 'w', 0o644);
  let r;
  try {
    r = checkpoint(pid, imgFd, opts.leaveRunning ? 0 : CHECKPOINT_KILL, logFd);
  } finally {
    fs.closeSync(imgFd);
    fs.closeSync(logFd);
  }
  const logText = fs.readFileSync(logPath(opts.dir), 'utf8');
  for (const line of logText.trim().split('\n').filter(Boolean)) log(line);
  if (r.errno) {
    fs.rmSync(img, { force: true });
    const detail = lastLogLine(logPath(opts.dir));
    throw new CrError(`checkpoint of pid ${pid} failed: ${r.errno}${detail ? `: ${detail}` : ''}`);
  }
  // only the tree: the processes (their threads are in it too); zombies go when whoever inherits them reaps them
  const { tree } = readHeader(img);
  const pids = tree.filter((t) => t.tgid === t.pid).map((t) => t.pid);
  if (!opts.leaveRunning) for (const pid of pids) await waitGone(pid, 2000);

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
