/**
 * Restart from a user-backend image. Every image is read and checked before
 * anything runs; then cr-mktree creates placeholder tasks with the original
 * pids, and each is seized and rebuilt by injected system calls, one state
 * module after another, before it is let go as the checkpointed program.
 * If anything fails, every placeholder is killed: no half-restored task runs.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { ExitStatus, RestoreOptions, RestoreResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { injectFault, requestedFault } from '../../userspace/fault.js';
import { nativeBin } from '../../userspace/paths.js';
import { procMaps, procStat, statField } from '../../userspace/proc/parse.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { SIG } from '../../userspace/sys/constants.js';
import { Injection, SCRATCH_SIZE } from '../../userspace/sys/inject.js';
import { kill, pidExists, SysError, waitGone } from '../../userspace/sys/libc.js';
import { killTraced, Tracee } from '../../userspace/sys/ptrace.js';
import { readInventory, type Inventory, type TaskEntry } from './inventory.js';
import { STATE_MODULES } from './state/index.js';
import { mappedRanges } from './state/memory.js';
import { cloneFlags } from './state/namespaces.js';
import type { LoadedState, RestoreShared, RestoreTask } from './state/module.js';
import { giveForeground, prepareTerminals, restorerTerminal, type Terminals } from './state/tty.js';

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

const ZOMBIE_GRACE_MS = 3000;

/**
 * Fail unless `pid` is free. A just-killed tree's zombies can hold their
 * pids until whoever inherited them reaps them: give that a moment.
 */
async function claimPid(pid: number): Promise<void> {
  for (const deadline = Date.now() + ZOMBIE_GRACE_MS; pidExists(pid); await sleep(20)) {
    let zombie = false;
    try {
      zombie = procStat(pid).state === 'Z';
    } catch {
      continue; // gone meanwhile
    }
    if (!zombie || Date.now() > deadline) throw new CrError(`pid ${pid} is in use: cannot restore the task with its original pid`);
  }
}

/** Returns the helper wrapped: awaiting a ResultPromise itself would wait for its exit. */
async function createTasks(inv: Inventory, detach: boolean, pidns: boolean, nsFlags: number, terminals: Terminals): Promise<{ helper: Helper; hostPids: Map<number, number> }> {
  const ctty = (t: TaskEntry) => (t.sid === t.pid && terminals.ctty.has(t.pid) ? `:t${terminals.ctty.get(t.pid)}` : '');
  const args = [
    ...(pidns ? ['-p'] : []), ...(nsFlags ? ['-n', nsFlags.toString(16)] : []), ...(terminals.handed.length ? ['-h', String(terminals.handed.length)] : []),
    ...inv.tasks.map((t) => `${t.pid}:${t.ppid}:${t.pgid}:${t.sid}${t.zombie ? `:z${t.exit_status}` : ''}${t.clone_files ? ':f' : ''}${ctty(t)}`),
  ];
  const helper = execa(nativeBin('cr-mktree'), args, HELPER_OPTIONS(detach, terminals.handed));
  // Image pid -> pid as we see it: they differ inside a new pid namespace.
  const ready = new Map<number, number>();
  const lines = readline.createInterface({ input: helper.stdio[3] as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /^(ready|error) (\d+)(?: (\d+)|: (.*))?$/.exec(line);
    if (m?.[1] === 'error') {
      helper.kill('SIGKILL');
      throw new CrError(`cannot create pid ${m[2]}: ${m[4]}`);
    }
    if (m) ready.set(Number(m[2]), Number(m[3]));
    if (ready.size === inv.tasks.length) break;
  }
  if (ready.size !== inv.tasks.length) {
    const r = await helper;
    throw new CrError(`cr-mktree failed to create the tasks (${r.signal ?? `exit ${r.exitCode}`})`);
  }
  return { helper, hostPids: ready };
}

/**
 * Seize a placeholder (image pid `imagePid`, our `pid`, task `index` of the
 * image's tree) and rebuild it; it stays stopped, its injection session open.
 */
function rebuild(imagePid: number, index: number, pid: number, dir: string, states: LoadedState[], shared: RestoreShared, log: (l: string) => void,
  seized: Tracee[][]): RestoreTask {
  injectFault('restore-prepare', index);
  const tracee = Tracee.seize(pid);
  // Its threads (cpu.ts adds them as it creates them): a failure kills and reaps them all.
  const threads = [tracee];
  seized.push(threads);
  const inj = Injection.begin(tracee, bootstrapAddress(pid, mappedRanges(dir, imagePid)));
  const task: RestoreTask = { pid, dir, tracee, threads, inj, shared, fdBase: 0, handed: [], log };
  STATE_MODULES.forEach((m, i) => {
    states[i].restore(task);
    log(`pid ${pid}: ${m.name} restored`);
    if (!i) injectFault('restore-member', index);
  });
  return task;
}

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  if (!fs.existsSync(opts.dir)) throw new CrError(`image directory ${opts.dir} does not exist`);
  requestedFault(); // a CR_FAULT that names no stage is refused before anything is touched
  const inv = readInventory(opts.dir);
  if (inv.shell_job && !opts.shellJob) throw new CrError(`${opts.dir} holds a shell job: restore it with --shell-job`);
  if (inv.shell_job) restorerTerminal(); // fails now if cr restore has no terminal to give it
  // Zombies need no state: cr-mktree makes them end the way they ended.
  const loaded = inv.tasks.map((t, index) => ({ t, index })).filter(({ t }) => !t.zombie)
    .map(({ t, index }) => ({ pid: t.pid, index, states: STATE_MODULES.map((m) => m.load(opts.dir, t)) }));
  // In a new pid namespace the original pids are free by construction.
  if (!opts.pidns) for (const t of inv.tasks) await claimPid(t.pid);

  // The ptys exist before the tasks: a session leader takes its terminal before it forks.
  const terminals = prepareTerminals(opts.dir, inv, log);
  // The root goes into fresh namespaces of the kinds it had of its own.
  let created: Awaited<ReturnType<typeof createTasks>>;
  try {
    created = await createTasks(inv, !!opts.detach, !!opts.pidns, cloneFlags(opts.dir, inv.tasks[0].pid), terminals);
  } catch (err) {
    terminals.close();
    throw err;
  }
  const { helper, hostPids } = created;
  const seized: Tracee[][] = [];
  try {
    // Every task is built before any runs: they may take shared objects from each other.
    const nsPids = new Map([...hostPids].map(([image, host]) => [host, image]));
    const shared: RestoreShared = { files: new Map(), pipes: new Map(), shmem: new Map(), leftovers: new Map(), nsPids, terminals };
    const tasks = loaded.map((t) => ({ task: rebuild(t.pid, t.index, hostPids.get(t.pid)!, opts.dir, t.states, shared, log, seized), states: t.states }));
    for (const { task, states } of tasks) {
      for (const s of states) s.settle(task);
      task.inj.endRestore();
      for (const s of states) s.finish(task);
    }
    terminals.finish();
    if (inv.foreground) giveForeground(Number(statField(procStat(hostPids.get(inv.tasks[0].pid)!), 5)), log);
    injectFault('restore-tree');
    for (const { task } of tasks) for (const th of task.threads) th.detach();
    terminals.close();
  } catch (err) {
    terminals.close();
    killTraced(seized);
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
    throw err instanceof SysError ? new CrError(`restore failed: ${err.message}`, { cause: err }) : err;
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
