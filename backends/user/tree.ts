/**
 * The process tree. At dump time: every process under the root, each with
 * all its threads seized; children are read only after all of a process's
 * threads are stopped, so no task can appear behind our back. At restore:
 * cr-mktree makes the root; every other task is forked from its restored
 * parent (clone3 with its pid, injected), so it inherits its parent's
 * memory as CRIU's restore does, and takes its session and group.
 */
import fs from 'node:fs';
import { CrError } from '../../userspace/errors.js';
import { procStat, procStatus, statField } from '../../userspace/proc/parse.js';
import { kill, pidExists, rawSyscall, type SysError, waitZombie } from '../../userspace/sys/libc.js';
import { CLONE, NR, PR, SIG } from '../../userspace/sys/constants.js';
import { Injection } from '../../userspace/sys/inject.js';
import { Tracee } from '../../userspace/sys/ptrace.js';
import type { Freezer } from '../../userspace/freezer.js';
import type { TaskEntry } from './inventory.js';

export interface SeizedTask {
  entry: TaskEntry;
  /** The leader first (unless it exited, its threads running on); empty for a zombie. */
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

/** Seize every thread of a process (but a leader that exited), again until no new thread shows up. */
function seizeThreads(pid: number, into: Tracee[], preseized: Map<number, Tracee>, leaderExited: boolean): void {
  const seen = new Set(into.map((t) => t.pid));
  if (leaderExited) seen.add(pid);
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

/** A zombie leader whose threads run on: the process is alive, the leader's /proc shows nothing but its ids. */
const leaderExited = (pid: number) => procStat(pid).state === 'Z' && listTids(pid).length > 1;

function entryOf(pid: number, threads: number[]): TaskEntry {
  const stat = procStat(pid);
  const exited = leaderExited(pid);
  const zombie = stat.state === 'Z' && !exited;
  // A live thread tells whether the process is stopped.
  const state = exited ? procStat(listTids(pid).find((t) => t !== pid)!).state : stat.state;
  return {
    pid, ppid: Number(statField(stat, 4)), pgid: Number(statField(stat, 5)), sid: Number(statField(stat, 6)), comm: stat.comm,
    threads, zombie, exit_status: zombie ? Number(statField(stat, 52)) : 0, stopped: state === 'T', clone_files: false,
    exit_signal: Number(statField(stat, 38)), leader_exited: exited,
  };
}

/**
 * A task waiting in vfork() for its child, which shares its memory until
 * it execs or exits, sleeps where ptrace cannot stop it (kernel_clone
 * waits for the child killably only): seizing it would hang, and its
 * registers cannot be read. Refuse it by name before trying.
 */
function refuseVforkWait(pid: number): void {
  for (const tid of listTids(pid)) {
    let wchan = '';
    try {
      wchan = fs.readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8');
    } catch {
      continue;
    }
    if (wchan !== 'kernel_clone' || procStat(tid).state !== 'D') continue;
    const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    const child = kids.find((c) => same(pid, c, KCMP_VM));
    throw new CrError(`pid ${pid}${tid === pid ? '' : ` thread ${tid}`} is waiting in vfork() for its child ${child ?? '?'}, which shares its memory until it execs or exits: ptrace cannot stop a task in that wait, so its registers cannot be saved (not supported)`);
  }
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
    const exited = leaderExited(pid);
    if (procStat(pid).state === 'Z' && !exited) {
      tasks.push({ entry: entryOf(pid, []), threads: [] });
      return;
    }
    if (exited && pid === root) throw new CrError(`pid ${pid}: its thread group leader has exited while its threads run on: as the root of a dump, not supported (dump its parent)`);
    refuseVforkWait(pid);
    const threads: Tracee[] = [];
    const task: SeizedTask = { entry: entryOf(pid, []), threads };
    tasks.push(task);
    seizeThreads(pid, threads, preseized, exited);
    // Seized, every task shows as traced: keep the state it had before.
    task.entry = { ...entryOf(pid, [...(exited ? [pid] : []), ...threads.map((t) => t.pid)]), stopped: task.entry.stopped };
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
const KCMP_VM = 1;
const KCMP_FILES = 2;
const SHAREABLE = [
  { type: KCMP_VM, flag: 'CLONE_VM', what: 'one address space' },
  { type: KCMP_FILES, flag: 'CLONE_FILES', what: 'one fd table' },
  { type: 3, flag: 'CLONE_FS', what: 'one cwd and umask (fs_struct)' },
  { type: 4, flag: 'CLONE_SIGHAND', what: 'one signal handler table' },
];
const same = (a: number, b: number, type: number) => rawSyscall(NR.kcmp, a, b, type, 0, 0) === 0;
/** The thread we look at a process through: the leader, or a live thread if it exited. */
const liveTid = (t: TaskEntry) => (t.leader_exited ? t.threads[1] : t.pid);

/**
 * What processes share that only threads normally do. An fd table shared
 * with the parent (clone CLONE_FILES) is marked in the task's entry and
 * restored shared; any other sharing, or sharing with a task outside the
 * tree, is refused by name: restoring each with its own copy would lose it
 * silently (an fd one opens would no longer appear in the other).
 */
export function checkSharedTables(tasks: SeizedTask[]): void {
  const live = tasks.filter((t) => t.threads.length).map((t) => t.entry);
  const byPid = new Map(live.map((t) => [t.pid, t]));
  for (const [i, t] of live.entries()) {
    if (i === 0) {
      const outside = Number(statField(procStat(t.pid), 4));
      for (const s of [SHAREABLE[1], SHAREABLE[0]]) {
        // A parent we may not compare with (no ptrace rights) cannot have handed us its table.
        let shared = false;
        try {
          shared = outside > 0 && same(outside, t.pid, s.type);
        } catch {
          /* not ours to inspect */
        }
        if (shared) throw new CrError(`pid ${t.pid} shares ${s.what} with its parent ${outside}, outside the tree (clone ${s.flag}${s.type === KCMP_VM ? ', a vfork child' : ''}): not supported`);
      }
    } else if (same(liveTid(byPid.get(t.ppid)!), liveTid(t), KCMP_FILES)) {
      t.clone_files = true;
    }
  }
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      for (const s of SHAREABLE) {
        // Shared fd tables are fine along parent links: equality is transitive.
        if (s.type === KCMP_FILES && live[j].clone_files) continue;
        if (same(liveTid(live[i]), liveTid(live[j]), s.type)) {
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

// ---- restore: the tree forked top-down, each child from its restored parent ----

/** A task forked from its parent, seized, its injection session open in the bootstrap area it inherited. */
export interface Forked {
  hostPid: number;
  tracee: Tracee;
  inj: Injection;
}

const PR_SET_DUMPABLE = 4;
const KSIGACTION_SIZE = 32;

/** The host pid of the child `parentHost` just created and knows as `pid`. */
function childHostPid(parentHost: number, pid: number): number {
  const level = (procStatus(parentHost).get('NSpid') ?? '').split(/\s+/).filter(Boolean).length - 1;
  const children = fs.readFileSync(`/proc/${parentHost}/task/${parentHost}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  for (const c of children) {
    const chain = (procStatus(c).get('NSpid') ?? String(c)).split(/\s+/).map(Number);
    if (chain[Math.max(level, 0)] === pid) return c;
  }
  throw new CrError(`pid ${pid}: not among its parent's children after creating it`);
}

/**
 * Fork `child` from its parent, whose memory is in place: clone3 in the
 * parent with the child's pid, so the child inherits the parent's address
 * space (and the pages they shared stay shared), then seize it and give it
 * its session or process group. `groups` holds the process groups that
 * exist so far; a group made later is joined by joinGroups().
 */
export function forkChild(parent: { pid: number; entry: TaskEntry; inj: Injection }, child: TaskEntry, groups: Set<number>): Forked {
  const got = parent.inj.clone3(`create pid ${child.pid}`, child.clone_files ? CLONE.FILES : 0, child.exit_signal, [child.pid]);
  if (got !== child.pid) throw new CrError(`pid ${child.pid} came back as ${got}`);
  const hostPid = childHostPid(parent.pid, child.pid);
  const tracee = Tracee.seize(hostPid);
  const inj = Injection.inherit(tracee, parent.inj.scratch);
  // Until restore lets it go: a restorer that dies takes the unfinished tree with it.
  tracee.syscallOk('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, SIG.KILL, 0, 0, 0);
  if (child.sid === child.pid) tracee.syscallOk('setsid', NR.setsid);
  else if (child.pgid === child.pid) tracee.syscallOk('setpgid', NR.setpgid, 0, 0);
  else if (child.pgid !== parent.entry.pgid && groups.has(child.pgid)) tracee.syscallOk(`setpgid ${child.pgid}`, NR.setpgid, 0, child.pgid);
  groups.add(child.pgid);
  return { hostPid, tracee, inj };
}

/**
 * Tasks whose process group was made after them join it now that every
 * task exists. A group whose leader is not in the tree is the one the root
 * was restored into: it is inherited as it is.
 */
export function joinGroups(tasks: { entry: TaskEntry; tracee: Tracee }[]): void {
  const leaders = new Set(tasks.map((t) => t.entry.pid));
  for (const { entry, tracee } of tasks.slice(1)) {
    if (leaders.has(entry.pgid) && entry.pgid !== entry.pid && Number(statField(procStat(tracee.pid), 5)) !== entry.pgid) {
      tracee.syscallOk(`setpgid ${entry.pgid}`, NR.setpgid, 0, entry.pgid);
    }
  }
}

/**
 * End a just-forked child the way a zombie ended, with its exit code or by
 * its signal (and no core): its parent then holds it as a zombie, as at
 * dump time. The SIGCHLD the parent gets meanwhile is dropped by signals.ts.
 */
export function endAsZombie(kid: Forked, status: number): void {
  const { tracee, inj } = kid;
  const signo = status & 0x7f;
  if (signo) {
    inj.reset();
    tracee.syscallOk(`rt_sigaction(${signo})`, NR.rt_sigaction, signo, inj.put(Buffer.alloc(KSIGACTION_SIZE)), 0, 8);
    tracee.syscallOk('prctl(PR_SET_DUMPABLE)', NR.prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  } else {
    // Its last call: exit_group(code), made as it is let go.
    tracee.setRegs({ ...tracee.getRegs(), rip: BigInt(inj.scratch), rax: BigInt(NR.exit_group), rdi: BigInt((status >> 8) & 0xff), orig_rax: BigInt.asUintN(64, -1n) });
  }
  tracee.setSigmask(0n);
  tracee.detach(0);
  if (signo) kill(kid.hostPid, signo);
  if (!waitZombie(kid.hostPid, procStat)) throw new CrError(`pid ${kid.hostPid}: did not end as a zombie`);
}
