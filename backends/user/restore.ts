/**
 * Restart from a user-backend image. Every image is read and checked before
 * anything runs; then cr-mktree creates the root as a placeholder task with
 * its original pid, which is seized and rebuilt by injected system calls,
 * one state module after another. Each child is forked from its parent as
 * soon as the parent's memory is in place (tree.ts), so it inherits it, and
 * rebuilt the same way; every task is built before any is let go as the
 * checkpointed program. If anything fails, every task made so far is
 * killed: no half-restored task runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { ExitStatus, RestoreOptions, RestoreResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { injectFault, requestedFault } from '../../userspace/fault.js';
import { nativeBin } from '../../userspace/paths.js';
import { hasUserfaultfd } from '../../userspace/proc/pagemap.js';
import { procMaps, procStat, statField } from '../../userspace/proc/parse.js';
import { SIG } from '../../userspace/sys/constants.js';
import { Injection, SCRATCH_SIZE } from '../../userspace/sys/inject.js';
import { kill, pidFreed, SysError, waitGone } from '../../userspace/sys/libc.js';
import { killTraced, together, Tracee } from '../../userspace/sys/ptrace.js';
import { ownPid, readInventory, type TaskEntry } from './inventory.js';
import { FORKED_AFTER, STATE_MODULES } from './state/index.js';
import { mappedRanges } from './state/memory.js';
import { cloneFlags } from './state/namespaces.js';
import type { LoadedState, RestoreShared, RestoreTask } from './state/module.js';
import { giveForeground, prepareTerminals, restorerTerminal, type Terminals } from './state/tty.js';
import { endAsZombie, forkChild, joinGroups, restoreLastPids, restorePidnsForChildren, type RestoredTree } from './tree.js';

const MMAP_MIN_ADDR = 0x10000n;

/** A free range for the injection area, in both the placeholder's layout and the image's. */
function bootstrapAddress(pid: number, imageRanges: [bigint, bigint][]): number {
  const used = [...procMaps(pid).map((m): [bigint, bigint] => [m.start, m.end]), ...imageRanges].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  let at = MMAP_MIN_ADDR;
  for (const [start, end] of used) {
    if (start >= at + BigInt(SCRATCH_SIZE)) break;
    if (end > at) at = end;
  }
  return Number(at);
}

const HELPER_OPTIONS = (detached: boolean, handed: number[]) =>
  ({
    // fd 3 reports; the descriptors handed to every task follow it (execa's
    // types know integers only at 0-2; at runtime they are the same "share this fd").
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', ...handed] as unknown as ['inherit', 'inherit', 'inherit', 'pipe'], detached, cleanup: !detached, reject: false, buffer: false,
    // Without rseq, the kernel does not write into the placeholder's TLS
    // while its memory is being replaced.
    env: { GLIBC_TUNABLES: 'glibc.pthread.rseq=0' },
  }) as const;
type Helper = ResultPromise<ReturnType<typeof HELPER_OPTIONS>>;

/** cr-mktree makes the root; the helper comes back wrapped: awaiting a ResultPromise itself would wait for its exit. */
async function createRoot(root: TaskEntry, detach: boolean, pidns: boolean, nsFlags: number, terminals: Terminals): Promise<{ helper: Helper; hostPid: number }> {
  const ctty = root.sid === root.pid && terminals.ctty.has(root.pid) ? `:t${terminals.ctty.get(root.pid)}` : '';
  const args = [
    ...(pidns ? ['-p'] : []), ...(nsFlags ? ['-n', nsFlags.toString(16)] : []), ...(terminals.handed.length ? ['-h', String(terminals.handed.length)] : []),
    `${root.pid}:${root.ppid}:${root.pgid}:${root.sid}${ctty}`,
  ];
  const helper = execa(nativeBin('cr-mktree'), args, HELPER_OPTIONS(detach, terminals.handed));
  const lines = readline.createInterface({ input: helper.stdio[3] as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /^(ready|error) (\d+)(?: (\d+)|: (.*))?$/.exec(line);
    if (m?.[1] === 'error') {
      helper.kill('SIGKILL');
      throw new CrError(`cannot create pid ${m[2]}: ${m[4]}`);
    }
    // Its pid as we see it: it differs inside a new pid namespace.
    if (m) return { helper, hostPid: Number(m[3]) };
  }
  const r = await helper;
  throw new CrError(`cr-mktree failed to create the root task (${r.signal ?? `exit ${r.exitCode}`})`);
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  if (!fs.existsSync(opts.dir)) throw new CrError(`image directory ${opts.dir} does not exist`);
  requestedFault(); // a CR_FAULT that names no stage is refused before anything is touched
  if (opts.lazyPages && !hasUserfaultfd()) throw new CrError(`kernel ${os.release()} has no userfaultfd (CONFIG_USERFAULTFD): restore without --lazy-pages`);
  const inv = readInventory(opts.dir);
  if (inv.shell_job && !opts.shellJob) throw new CrError(`${opts.dir} holds a shell job: restore it with --shell-job`);
  if (inv.shell_job) restorerTerminal(); // fails now if cr restore has no terminal to give it
  // Zombies need no state: they are forked only to end the way they ended.
  const loaded = new Map(inv.tasks.filter((t) => !t.zombie).map((t) => [t.pid, STATE_MODULES.map((m) => m.load(opts.dir, t))]));
  // In a new pid namespace the original pids are free by construction.
  if (!opts.pidns) {
    for (const t of inv.tasks) if (!(await pidFreed(t.pid))) throw new CrError(`pid ${t.pid} is in use: cannot restore the task with its original pid`);
  }
  // Every task inherits the bootstrap area: it must be free in all their layouts.
  const imageRanges = [...loaded.keys()].flatMap((pid) => mappedRanges(opts.dir, pid));
  log(`${inv.tasks.length} task${inv.tasks.length === 1 ? '' : 's'}: images read and checked`);

  // The ptys exist before the tasks: a session leader takes its terminal before it forks.
  const terminals = prepareTerminals(opts.dir, inv, log);
  // The root goes into fresh namespaces of the kinds it had of its own.
  const root = inv.tasks[0];
  let created: Awaited<ReturnType<typeof createRoot>>;
  try {
    created = await createRoot(root, !!opts.detach, !!opts.pidns, cloneFlags(opts.dir, root.pid), terminals);
  } catch (err) {
    terminals.close();
    throw err;
  }
  const { helper, hostPid: rootHost } = created;
  log(`pid ${rootHost}: created by cr-mktree`);
  const hostPids = new Map([[root.pid, rootHost]]);
  // nsPids: each task's pid inside its namespace, by the pid we see.
  const shared: RestoreShared = {
    files: new Map(), pipes: new Map(), shmem: new Map(), leftovers: new Map(), nsPids: new Map([[rootHost, root.pid]]), terminals, built: [], done: [],
  };
  const built: { entry: TaskEntry; task: RestoreTask; states: LoadedState[] }[] = [];
  try {
    // cr-mktree put the root in its group (or left it in ours, when the group's leader is not in the tree).
    const tree: RestoredTree = { entries: new Map(inv.tasks.map((t) => [t.pid, t])), hostPids, ctty: terminals.ctty, groups: new Map([[root.pid, root.pgid]]) };
    // Depth first, as the image lists the tasks: a task's memory, then its children from it.
    const build = (entry: TaskEntry, tracee: Tracee, inj: Injection) => {
      const states = loaded.get(entry.pid)!;
      // Its threads (cpu.ts adds them as it creates them): a failure kills and reaps them all.
      const task: RestoreTask = { pid: tracee.pid, dir: opts.dir, tracee, threads: [tracee], threadIds: [{ image: entry.pid, own: ownPid(entry) }], inj, shared, fdBase: 0, handed: [], lazyPages: !!opts.lazyPages, log };
      built.push({ entry, task, states });
      const index = inv.tasks.indexOf(entry);
      injectFault('restore-prepare', index);
      STATE_MODULES.slice(0, FORKED_AFTER).forEach((m, i) => {
        states[i].restore(task);
        log(`pid ${task.pid}: ${m.name} restored`);
        if (!i) injectFault('restore-member', index);
      });
      for (const child of inv.tasks.filter((c) => c.ppid === entry.pid && c !== root)) {
        const kid = forkChild({ pid: task.pid, entry, inj }, child, tree);
        shared.nsPids.set(kid.hostPid, ownPid(child));
        log(`pid ${kid.hostPid}: forked from ${task.pid}`);
        if (child.zombie) endAsZombie(kid, child.exit_status);
        else build(child, kid.tracee, kid.inj);
      }
    };
    const rootTracee = Tracee.seize(rootHost);
    let rootInj: Injection;
    try {
      rootInj = Injection.begin(rootTracee, bootstrapAddress(rootHost, imageRanges));
    } catch (err) {
      killTraced([[rootTracee]]); // not built yet: as in forkChild
      throw err;
    }
    build(root, rootTracee, rootInj);
    joinGroups(built.map(({ entry, task }) => ({ entry, tracee: task.tracee })), tree);
    restoreLastPids(built);
    // Every task is built before any runs: they may take shared objects from each other.
    for (const { task, states } of built) {
      STATE_MODULES.slice(FORKED_AFTER).forEach((m, i) => {
        states[FORKED_AFTER + i].restore(task);
        log(`pid ${task.pid}: ${m.name} restored`);
      });
    }
    restorePidnsForChildren(built, hostPids);
    for (const fn of shared.built) fn();
    for (const { task, states } of built) for (const s of states) s.settle(task);
    // The last injected call of every task, their stops side by side.
    together(built.map(({ task }) => task.inj.endRestoreSteps()));
    for (const { task, states } of built) for (const s of states) s.finish(task);
    terminals.finish();
    if (inv.foreground) giveForeground(Number(statField(procStat(rootHost), 5)), log);
    injectFault('restore-tree');
    for (const fn of shared.done.splice(0)) fn(true);
    for (const { task } of built) for (const th of task.threads) th.detach();
    terminals.close();
  } catch (err) {
    terminals.close();
    // Take the tracer's notice of every death, so their pids are free again at once.
    killTraced(built.map(({ task }) => task.threads));
    for (const fn of shared.done.splice(0)) {
      try {
        fn(false);
      } catch {
        /* the restore failed already; this is its tidying up */
      }
    }
    for (const pid of hostPids.values()) {
      try {
        kill(pid, SIG.KILL);
      } catch {
        /* already gone */
      }
    }
    helper.kill('SIGKILL');
    await helper;
    await waitGone([...hostPids.values()], 5000);
    // A failed system call, ours (SysError) or Node's (an fs error): one line saying which.
    const failedCall = err instanceof SysError || typeof (err as NodeJS.ErrnoException).syscall === 'string';
    throw failedCall ? new CrError(`restore failed: ${(err as Error).message}`, { cause: err }) : err;
  }

  if (opts.detach) {
    helper.unref();
    helper.stdio[3]?.destroy();
  }
  return {
    pids: inv.tasks.map((t) => hostPids.get(t.pid)!),
    stats: { totalMs: performance.now() - t0 },
    async wait(): Promise<ExitStatus> {
      if (opts.detach) throw new CrError('the restored tree was detached; nobody waits for it');
      const r = await helper;
      return { code: r.signal ? null : (r.exitCode ?? null), signal: (r.signal as NodeJS.Signals | undefined) ?? null };
    },
  };
}
