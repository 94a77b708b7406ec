/**
 * The process tree at dump time: every process under the root, each with
 * all its threads seized. Children are read only after all of a process's
 * threads are stopped, so no task can appear behind our back.
 */
import fs from 'node:fs';
import { CrError } from '../../userspace/errors.js';
import { procStat, procStatus, statField } from '../../userspace/proc/parse.js';
import { pidExists, rawSyscall, type SysError } from '../../userspace/sys/libc.js';
import { NR } from '../../userspace/sys/constants.js';
import { Tracee } from '../../userspace/sys/ptrace.js';
import type { Freezer } from '../../userspace/freezer.js';
import type { TaskEntry } from './inventory.js';

export interface SeizedTask {
  entry: TaskEntry;
  /** The leader first; empty for a zombie. */
  threads: Tracee[];
}

function seizeThread(pid: number, tid: number, later = false): Tracee {
  try {
    return later ? Tracee.seizeLater(tid) : Tracee.seize(tid);
  } catch (err) {
    const code = (err as SysError).code;
    if (code === 'EPERM') throw new CrError(`pid ${pid}: not permitted to trace it (checkpoint needs ptrace rights over the task)`);
    if (code === 'ESRCH') throw new CrError(`pid ${tid === pid ? pid : `${pid} thread ${tid}`} vanished during the dump`);
    throw err;
  }
}

const listTids = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).map(Number);

/** Seize every thread of a process, again until no new thread shows up. */
function seizeThreads(pid: number, into: Tracee[], preseized: Map<number, Tracee>): void {
  const seen = new Set(into.map((t) => t.pid));
  for (let fresh = listTids(pid).filter((t) => !seen.has(t)); fresh.length; fresh = listTids(pid).filter((t) => !seen.has(t))) {
    // The leader first, so that it is the first entry.
    fresh.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    for (const tid of fresh) {
      const early = preseized.get(tid);
      preseized.delete(tid);
      into.push(early ?? seizeThread(pid, tid));
      seen.add(tid);
    }
  }
}

function entryOf(pid: number, threads: number[]): TaskEntry {
  const stat = procStat(pid);
  const zombie = stat.state === 'Z';
  return {
    pid, ppid: Number(statField(stat, 4)), pgid: Number(statField(stat, 5)), sid: Number(statField(stat, 6)), comm: stat.comm,
    threads, zombie, exit_status: zombie ? Number(statField(stat, 52)) : 0, stopped: stat.state === 'T', clone_files: false,
  };
}

/**
 * Seize every thread of a frozen cgroup, then thaw it: each stops for us
 * before it runs again, so the set of tasks cannot change in between.
 */
export async function seizeFrozen(freezer: Freezer): Promise<Map<number, Tracee>> {
  const seized = new Map<number, Tracee>();
  await freezer.freeze();
  try {
    for (const tid of freezer.threads()) {
      const tgid = Number(procStatus(tid).get('Tgid'));
      seized.set(tid, seizeThread(tgid, tid, true));
    }
  } catch (err) {
    for (const t of seized.values()) t.detachQuietly();
    throw err;
  } finally {
    freezer.thaw();
  }
  try {
    for (const t of seized.values()) t.waitStopped();
  } catch (err) {
    for (const t of seized.values()) t.detachQuietly();
    throw err;
  }
  return seized;
}

/**
 * Seize the tree under `root` (using threads already seized, if given);
 * on failure every task seized so far is let go.
 */
export function seizeTree(root: number, preseized = new Map<number, Tracee>()): SeizedTask[] {
  if (!Number.isInteger(root) || root <= 0) throw new CrError(`invalid pid ${root}`);
  if (root === process.pid) throw new CrError(`pid ${root} is cr itself`);
  if (!pidExists(root)) throw new CrError(`pid ${root} does not exist`);
  const status = procStatus(root);
  if (Number(status.get('Tgid')) !== root) throw new CrError(`pid ${root} is a thread of process ${status.get('Tgid')}; dump the process`);
  if (status.get('State')?.startsWith('Z')) throw new CrError(`pid ${root} is a zombie`);

  const tasks: SeizedTask[] = [];
  const visit = (pid: number) => {
    if (procStat(pid).state === 'Z') {
      tasks.push({ entry: entryOf(pid, []), threads: [] });
      return;
    }
    const threads: Tracee[] = [];
    const task: SeizedTask = { entry: entryOf(pid, []), threads };
    tasks.push(task);
    seizeThreads(pid, threads, preseized);
    // Seized, every task shows as traced: keep the state it had before.
    task.entry = { ...entryOf(pid, threads.map((t) => t.pid)), stopped: task.entry.stopped };
    const children = threads.flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    for (const child of children.sort((a, b) => a - b)) visit(child);
  };
  try {
    visit(root);
  } catch (err) {
    releaseTree(tasks);
    throw err;
  } finally {
    // Frozen together with the tree but not part of it.
    for (const t of preseized.values()) t.detachQuietly();
  }
  return tasks;
}

/** kcmp(2) types of what clone(2) lets two processes share without being threads of one. */
const KCMP_FILES = 2;
const SHAREABLE = [
  { type: 1, flag: 'CLONE_VM', what: 'one address space' },
  { type: KCMP_FILES, flag: 'CLONE_FILES', what: 'one fd table' },
  { type: 3, flag: 'CLONE_FS', what: 'one cwd and umask (fs_struct)' },
  { type: 4, flag: 'CLONE_SIGHAND', what: 'one signal handler table' },
];
const same = (a: number, b: number, type: number) => rawSyscall(NR.kcmp, a, b, type, 0, 0) === 0;

/**
 * What processes share that only threads normally do. An fd table shared
 * with the parent (clone CLONE_FILES) is marked in the task's entry and
 * restored shared; any other sharing, or sharing with a task outside the
 * tree, is refused by name: restoring each with its own copy would lose it
 * silently (an fd one opens would no longer appear in the other).
 */
export function checkSharedTables(tasks: SeizedTask[]): void {
  const live = tasks.filter((t) => t.threads.length).map((t) => t.entry);
  for (const [i, t] of live.entries()) {
    if (i === 0) {
      const outside = Number(statField(procStat(t.pid), 4));
      // A parent we may not compare with (no ptrace rights) cannot have handed us its table.
      let shared = false;
      try {
        shared = outside > 0 && same(outside, t.pid, KCMP_FILES);
      } catch {
        /* not ours to inspect */
      }
      if (shared) throw new CrError(`pid ${t.pid} shares its fd table with its parent ${outside}, outside the tree: not supported`);
    } else if (same(t.ppid, t.pid, KCMP_FILES)) {
      t.clone_files = true;
    }
  }
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      for (const s of SHAREABLE) {
        // Shared fd tables are fine along parent links: equality is transitive.
        if (s.type === KCMP_FILES && live[j].clone_files) continue;
        if (same(live[i].pid, live[j].pid, s.type)) {
          throw new CrError(`pids ${live[i].pid} and ${live[j].pid} share ${s.what} (clone ${s.flag} without threads): not supported`);
        }
      }
    }
  }
}

/** Let every seized thread go, as it was. */
export function releaseTree(tasks: SeizedTask[]): void {
  for (const t of tasks) for (const th of t.threads) th.detachQuietly();
}
