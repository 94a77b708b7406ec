/**
 * Restart through restart(2), linux-cr style: a helper creates the root
 * with its original pid, session and group (clone_with_pids(2)) and it
 * calls restart(ROOT, fd, RESTART_TASKSELF, logfd); the engine rebuilds it,
 * clones every other task (threads too) from its rebuilt creator with its
 * original pid, and lets them all return into the checkpointed programs
 * together.  A shell job (--shell-job) joins our session, and the helper
 * makes it the foreground job of our terminal.  The helper stays the
 * root's parent, reports "ready PID HOSTPID" per task or "error PID: why"
 * on fd 3, and exits with the root's status.  A root that had UTS or IPC
 * namespaces of its own is created in fresh ones of those kinds, where the
 * engine rebuilds them.  With `pidns` the tree gets a pid namespace of its
 * own under the helper's small init, with the original pids inside it and,
 * for the root where it is free, outside it too.  Restored `frozen`
 * (RESTART_FROZEN), every task stays held frozen by the engine until
 * thaw() (`cr thaw ROOT`, with ROOT's pid outside), which is restart(ROOT,
 * -1, RESTART_FROZEN, -1).  With `mapPages` (cr-mktree -m: RESTART_MAP)
 * the engine maps private anonymous memory from the image instead of
 * copying it.  The network lock of a dump with --tcp-established is
 * released once every task is back (its connections are live by then, and
 * their peers' retransmissions get through); after a failed restart it
 * stays, for another try.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { execa } from 'execa';
import type { ExitStatus, RestoreOptions, RestoreResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { pidFreed, waitGone } from '../../userspace/sys/libc.js';
import { armEngineFault, ensureEngine, helperPath, RESTART_FROZEN, restart } from './sys.js';
import { imagePath, logPath, readImage, type TreeTask } from './image.js';
import { releaseNetlock } from './inet.js';

/** A task for cr-mktree -k: the root it creates, or one the engine clones (it waits for them all). */
function mktreeArg(t: TreeTask): string {
  return `${t.pid}:${t.ppid}:${t.pgid}:${t.sid}${t.zombie === undefined ? '' : `:z${t.zombie}`}`;
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  if (!fs.existsSync(opts.dir)) throw new CrError(`image directory ${opts.dir} does not exist`);
  const img = imagePath(opts.dir);
  if (!fs.existsSync(img)) throw new CrError(`${opts.dir} holds no kernel-backend image (${path.basename(img)})`);
  const image = readImage(img);
  const { tree, chain, shellJob } = image;
  if (chain?.parentPath && !fs.existsSync(chain.parentPath)) {
    throw new CrError(`${img} takes its unchanged pages from ${chain.parentPath}, which is gone`);
  }
  if (shellJob && !opts.shellJob) throw new CrError(`${opts.dir} holds a shell job (its terminal was its shell's): restore it with --shell-job`);
  if (!opts.pidns) for (const t of tree) if (!(await pidFreed(t.pid))) throw new CrError(`pid ${t.pid} is in use: cannot restore the task with its original pid`);
  const why = ensureEngine(log);
  if (why) throw new CrError(why);
  if (!fs.existsSync(helperPath())) throw new CrError(`${helperPath()} is missing: run npm run build`);

  const disarm = armEngineFault();
  try {
    return await restartTree(opts, img, image, log, t0);
  } finally {
    disarm();
  }
}

/** Let cr-mktree create the tree and have each task call restart(2); resolves once all run. */
async function restartTree(opts: RestoreOptions, img: string, { tree, cloneFlags }: ReturnType<typeof readImage>, log: (l: string) => void, t0: number): Promise<RestoreResult> {
  const pid = tree[0].pid;
  const args = [
    ...(opts.shellJob ? ['-j'] : []), ...(opts.mapPages ? ['-m'] : []), '-k', img, logPath(opts.dir), ...(opts.frozen ? ['-F'] : []), ...(opts.pidns ? ['-p'] : []), ...(cloneFlags ? ['-n', cloneFlags.toString(16)] : []),
    ...tree.map(mktreeArg),
  ];
  const helper = execa(helperPath(), args, {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'], detached: !!opts.detach, cleanup: !opts.detach, reject: false, buffer: false,
  });
  // each task's pid as we see it: the same but in a pid namespace of its own
  const ready = new Map<number, number>();
  const lines = readline.createInterface({ input: helper.stdio[3] as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /^(ready|error) (-?\d+)(?: (\d+)|: (.*))?$/.exec(line);
    if (m?.[1] === 'error') {
      helper.kill('SIGKILL');
      await helper;
      // The tasks the engine killed, and the ones that gave up, are gone when we say it failed.
      await waitGone(opts.pidns ? [...ready.values()] : tree.map((t) => t.pid), 5000);
      throw new CrError(`restart of pid ${pid} failed: ${m[4]}`);
    }
    if (m?.[1] === 'ready') {
      ready.set(Number(m[2]), Number(m[3] ?? m[2]));
      log(`pid ${m[2]} restarted${m[3] && m[3] !== m[2] ? ` (pid ${m[3]} outside its pid namespace)` : ''}`);
      if (ready.size === tree.length) break;
    }
  }
  if (ready.size !== tree.length) {
    const r = await helper;
    throw new CrError(`cr-mktree failed (${r.signal ?? `exit ${r.exitCode}`})`);
  }
  releaseNetlock(opts.dir, log);
  if (opts.detach) {
    helper.unref();
    helper.stdio[3]?.destroy();
  }
  return {
    pids: tree.filter((t) => t.tgid === t.pid).map((t) => t.pid),
    stats: { totalMs: performance.now() - t0 },
    ...(opts.frozen ? { thaw: async () => thaw(ready.get(pid) ?? pid) } : {}),
    async wait(): Promise<ExitStatus> {
      if (opts.detach) throw new CrError('the restored process was detached; nobody waits for it');
      const r = await helper;
      return { code: r.signal ? null : (r.exitCode ?? null), signal: (r.signal as NodeJS.Signals | undefined) ?? null };
    },
  };
}

/** Let the tree that a frozen restore left at root @pid run. */
export async function thaw(pid: number): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw new CrError(`bad pid ${pid}`);
  const why = ensureEngine();
  if (why) throw new CrError(why);
  const r = restart(pid, -1, RESTART_FROZEN, -1);
  if (r.errno === 'ESRCH') throw new CrError(`no tree restored frozen at pid ${pid}`);
  if (r.errno === 'EPERM') throw new CrError(`no permission to thaw the tree at pid ${pid}`);
  if (r.errno) throw new CrError(`thaw of pid ${pid} failed: ${r.errno}`);
}
