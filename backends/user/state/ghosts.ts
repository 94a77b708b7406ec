/**
 * Files and directories still open, or a task's working directory, after
 * their last name was removed (CRIU's ghost files). The dump saves what
 * makes them up: a file's contents, owner, group, mode and times. Restore
 * gives one a name again for just as long as it takes to open it, at its
 * old path (beside it if that is taken), recreating on the way the
 * directories that were removed as well, then removes it all again. Every
 * later open of the same inode, by another open file or as another task's
 * cwd, goes through the first one's /proc/PID/fd/N or /proc/PID/cwd: they
 * share one inode again, as they did.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../../userspace/errors.js';
import { NR } from '../../../userspace/sys/constants.js';
import { dupHigh, liftFd, rememberLeftovers } from './fdtype.js';
import type { RestoreShared, RestoreTask } from './module.js';

export interface Ghost {
  path: string;
  dir: boolean;
  mode: number;
  uid: number;
  gid: number;
  atime_ns: bigint;
  mtime_ns: bigint;
  dev: bigint;
  ino: bigint;
  contents: Buffer;
}

export const DELETED = ' (deleted)';
/** Contents travel inside the image: keep them to what a message can hold comfortably. */
const MAX_CONTENTS = 256 << 20;

/**
 * What makes up the nameless file or directory `source` (/proc/PID/fd/N
 * or /proc/PID/cwd) whose name was `link` (a /proc link target, "… (deleted)").
 */
export function dumpGhost(source: string, link: string, st: fs.BigIntStats, what: string): Ghost {
  if (!link.startsWith('/') || !link.endsWith(DELETED)) throw new CrError(`${what}: ${link} is not a file that can be reopened`);
  if (st.nlink !== 0n) throw new CrError(`${what}: ${link} still has ${st.nlink} other name${st.nlink > 1n ? 's' : ''}: not supported`);
  if (!st.isFile() && !st.isDirectory()) throw new CrError(`${what}: ${link} is neither a file nor a directory: not supported`);
  if (st.size > BigInt(MAX_CONTENTS) && st.isFile()) throw new CrError(`${what}: unlinked file ${link} of ${st.size} bytes is larger than ${MAX_CONTENTS >> 20} MiB`);
  return {
    path: link.slice(0, -DELETED.length), dir: st.isDirectory(), mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
    atime_ns: st.atimeNs, mtime_ns: st.mtimeNs, dev: st.dev, ino: st.ino,
    // Read through our own open of the same file: nobody's offset moves.
    contents: st.isFile() ? fs.readFileSync(source) : Buffer.alloc(0),
  };
}

export function checkGhost(g: Ghost, where: string): void {
  if (!path.isAbsolute(g.path) || g.path === '/') throw new CrError(`${where}: corrupted image (ghost path '${g.path}')`);
  if (g.dir && g.contents.length) throw new CrError(`${where}: corrupted image (a removed directory with contents)`);
  // Permission bits only: chmod(2) takes no more, and Node aborts on a mode past 2^31.
  if (g.mode > 0o7777) throw new CrError(`${where}: corrupted image (ghost mode 0${g.mode.toString(8)})`);
}

/** Where each ghost was first opened in this restore, by inode: a /proc path to it. */
const homes = new WeakMap<RestoreShared, Map<string, string>>();
const keyOf = (g: Ghost) => `${g.dev}:${g.ino}`;
const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

/**
 * Run `use` with the ghost at a name of its own (its home, if it has one
 * already), then take the name and every directory made for it away again.
 */
function withName(task: RestoreTask, g: Ghost, use: (at: string, first: boolean) => void): void {
  const home = homes.get(task.shared)?.get(keyOf(g));
  if (home) return use(home, false);
  const made: string[] = [];
  const at = exists(g.path) ? `${g.path}.cr-restore-${task.pid}-${g.ino}` : g.path;
  try {
    for (let d = path.dirname(at), missing: string[] = []; ; d = path.dirname(d)) {
      if (exists(d)) {
        for (const m of missing) {
          fs.mkdirSync(m, 0o700);
          made.push(m);
        }
        break;
      }
      missing.unshift(d);
    }
    if (g.dir) fs.mkdirSync(at, 0o700);
    else fs.writeFileSync(at, g.contents, { mode: 0o600, flag: 'wx' });
    made.push(at);
    fs.chownSync(at, g.uid, g.gid);
    fs.chmodSync(at, g.mode); // after chown, which clears set-id bits
    fs.utimesSync(at, Number(g.atime_ns) / 1e9, Number(g.mtime_ns) / 1e9);
    use(at, true);
  } finally {
    for (const m of made.reverse()) {
      if (m === at && !g.dir) fs.unlinkSync(m);
      else fs.rmdirSync(m);
    }
  }
}

function remember(task: RestoreTask, g: Ghost, home: string): void {
  const map = homes.get(task.shared) ?? new Map<string, string>();
  homes.set(task.shared, map);
  map.set(keyOf(g), home);
}

/** Open the ghost inside the task with `flags`; returns the descriptor, lifted. */
export function openGhost(task: RestoreTask, g: Ghost, flags: number): number {
  let fd = -1;
  withName(task, g, (at, first) => {
    task.inj.reset();
    fd = liftFd(task, Number(task.tracee.syscallOk(`open ${g.path}`, NR.open, task.inj.putString(at), flags, 0)));
    if (!first) return;
    // A descriptor of its own keeps the home valid until every task is built.
    const keep = dupHigh(task, fd);
    rememberLeftovers(task, [keep]);
    remember(task, g, `/proc/${task.pid}/fd/${keep}`);
  });
  return fd;
}

/** Make the ghost directory the task's working directory. */
export function chdirGhost(task: RestoreTask, g: Ghost): void {
  withName(task, g, (at, first) => {
    task.inj.reset();
    task.tracee.syscallOk(`chdir ${g.path}`, NR.chdir, task.inj.putString(at));
    if (first) remember(task, g, `/proc/${task.pid}/cwd`);
  });
}

export const describeGhost = (g: Ghost) =>
  `${g.path} (removed ${g.dir ? 'directory' : `file, ${g.contents.length} bytes saved`}, mode 0${g.mode.toString(8)} owner ${g.uid}:${g.gid})`;
