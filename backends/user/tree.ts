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
import { procStat, procStatus, readProc, statField, statusField, statusMask, type Stat } from '../../userspace/proc/parse.js';
import { kill, pidExists, rawSyscall, type SysError, waitZombie } from '../../userspace/sys/libc.js';
import { CLONE, NR, O, PR, SIG } from '../../userspace/sys/constants.js';
import { Injection } from '../../userspace/sys/inject.js';
import { killTraced, Tracee } from '../../userspace/sys/ptrace.js';
import type { Freezer } from '../../userspace/freezer.js';
import type { RestoreTask } from './state/module.js';
import { ownPid, type TaskEntry } from './inventory.js';

export interface SeizedTask {
  entry: TaskEntry;
  /** The leader first (unless it exited, its threads running on); empty for a zombie. */
  threads: Tracee[];
  /** The leader's /proc stat, read once every thread was stopped. */
  stat: Stat;
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

/**
 * Seize every thread of a process (but a leader that exited), again until
 * no new thread shows up. `statuses` holds threads' status texts read
 * before (stopPending()): their ids need not be read again.
 */
function seizeThreads(pid: number, into: Tracee[], preseized: Map<number, Tracee>, leaderExited: boolean, statuses: Map<number, string>): void {
  const seen = new Set(into.map((t) => t.pid));
  if (leaderExited) seen.add(pid);
  for (let fresh = listTids(pid).filter((t) => !seen.has(t)); fresh.length; fresh = listTids(pid).filter((t) => !seen.has(t))) {
    // The leader first, so that it is the first entry.
    fresh.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    for (const tid of fresh) {
      const early = preseized.get(tid);
      preseized.delete(tid);
      const thread = early ?? seizeThread(pid, tid);
      const status = statuses.get(tid);
      if (status) thread.knownStatus(status);
      into.push(thread);
      seen.add(tid);
    }
  }
}

/** A zombie leader whose threads run on: the process is alive, the leader's /proc shows nothing but its ids. */
const leaderExited = (pid: number, stat: Stat) => stat.state === 'Z' && listTids(pid).length > 1;

/**
 * A SIGSTOP sent to the process and not yet taken: it stops as soon as it
 * runs. A restore of a stopped task leaves it so (process.ts), and a dump
 * that comes before it ran must not take it for a running one; the
 * signals module saves every other pending signal, but not this one.
 */
function stopPending(pid: number, statuses: Map<number, string>): boolean {
  const bit = 1n << BigInt(SIG.STOP - 1);
  const has = (status: string, key: string) => (statusMask(status, key) & bit) !== 0n;
  try {
    let pending = has(readProc(pid, 'status'), 'ShdPnd');
    for (const tid of listTids(pid)) {
      const status = readProc(pid, `task/${tid}/status`);
      statuses.set(tid, status);
      pending ||= has(status, 'SigPnd');
    }
    return pending;
  } catch {
    return false; // gone
  }
}

/**
 * Whether a live process is stopped, or about to stop: a live thread tells,
 * the leader if it is one. The threads' status texts go into `statuses`.
 */
function isStopped(pid: number, stat: Stat, exited: boolean, statuses: Map<number, string>): boolean {
  const state = exited ? procStat(listTids(pid).find((t) => t !== pid)!).state : stat.state;
  return state === 'T' || stopPending(pid, statuses);
}

function entryOf(pid: number, threads: number[], stat: Stat, exited: boolean, stopped: boolean): TaskEntry {
  const zombie = stat.state === 'Z' && !exited;
  return {
    pid, ppid: Number(statField(stat, 4)), pgid: Number(statField(stat, 5)), sid: Number(statField(stat, 6)), comm: stat.comm,
    threads, zombie, exit_status: zombie ? Number(statField(stat, 52)) : 0, stopped, clone_files: false,
    exit_signal: Number(statField(stat, 38)), leader_exited: exited,
    nspid: [], new_pidns: false, pidns_init: 0, pidns_of_children: 0, unshared_pidns: false, ns_last_pid: 0,
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
      const tgid = Number(statusField(tid, 'Tgid'));
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
  const status = procStatus(root, ['Tgid', 'State']);
  if (Number(status.get('Tgid')) !== root) throw new CrError(`pid ${root} is a thread of process ${status.get('Tgid')}; dump the process`);
  if (status.get('State')?.startsWith('Z')) throw new CrError(`pid ${root} is a zombie`);

  const tasks: SeizedTask[] = [];
  const visit = (pid: number) => {
    const stat = procStat(pid);
    const exited = leaderExited(pid, stat);
    if (stat.state === 'Z' && !exited) {
      tasks.push({ entry: entryOf(pid, [], stat, false, false), threads: [], stat });
      return;
    }
    if (exited && pid === root) throw new CrError(`pid ${pid}: its thread group leader has exited while its threads run on: as the root of a dump, not supported (dump its parent)`);
    refuseVforkWait(pid);
    const threads: Tracee[] = [];
    // Seized, every task shows as traced: the state it has before is the one kept.
    const statuses = new Map<number, string>();
    const stopped = isStopped(pid, stat, exited, statuses);
    const task: SeizedTask = { entry: entryOf(pid, [], stat, exited, stopped), threads, stat };
    tasks.push(task);
    seizeThreads(pid, threads, preseized, exited, statuses);
    task.stat = procStat(pid);
    task.entry = entryOf(pid, [...(exited ? [pid] : []), ...threads.map((t) => t.pid)], task.stat, exited, stopped);
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
/** kcmp(2) orders what it compares (0 the same, 1 less, 2 greater), so sharers sort next to each other. */
const kcmpOrder = (a: number, b: number, type: number) => [0, -1, 1][rawSyscall(NR.kcmp, a, b, type, 0, 0)] ?? 1;
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
  // Sorted by the object each shares, as CRIU's kcmp trees do: n log n
  // comparisons, where every pair of a 64-process tree would take 8064.
  const order = new Map(live.map((t, i) => [t, i]));
  for (const s of SHAREABLE) {
    const sorted = [...live].sort((a, b) => kcmpOrder(liveTid(a), liveTid(b), s.type) || order.get(a)! - order.get(b)!);
    for (let i = 0; i < sorted.length; i++) {
      let j = i + 1;
      while (j < sorted.length && same(liveTid(sorted[i]), liveTid(sorted[j]), s.type)) j++;
      // Among the tasks sharing one object, the first in the tree may; the others only as
      // children that share their parent's fd table (equality is transitive).
      const other = sorted.slice(i + 1, j).find((t) => !(s.type === KCMP_FILES && t.clone_files));
      if (other) throw new CrError(`pids ${sorted[i].pid} and ${other.pid} share ${s.what} (clone ${s.flag} without threads): not supported`);
      i = j - 1;
    }
  }
}

/** A task's pid in every pid namespace from ours inward, as /proc/PID/status NSpid shows it. */
export const nsChain = (pid: number) => (statusField(pid, 'NSpid') ?? String(pid)).split(/\s+/).map(Number);
const nsIno = (pid: number, which: 'pid' | 'pid_for_children') => fs.statSync(`/proc/${pid}/ns/${which}`).ino;
const NS_GET_PARENT = 0xb702;

/** The pid namespace a namespace file's namespace was created in. */
function nsParent(path: string): number | undefined {
  const fd = fs.openSync(path, 'r');
  try {
    const parent = rawSyscall(NR.ioctl, fd, NS_GET_PARENT);
    try {
      return fs.fstatSync(parent).ino;
    } finally {
      fs.closeSync(parent);
    }
  } catch {
    return undefined; // the dumper's own, or one above it
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Record the pid namespaces the tree made for itself: each task's pids in
 * every nested namespace, which task is the init of a new one, which
 * enters its parent's namespace for children, and where each task's own
 * children go. What restore cannot make again the same way is refused.
 */
export function recordPidNamespaces(tasks: SeizedTask[]): void {
  const dumperNs = fs.statSync('/proc/self/ns/pid').ino;
  const byPid = new Map(tasks.map((t) => [t.entry.pid, t.entry]));
  const ns = new Map<number, { own: number; children: number }>();
  for (const { entry, threads } of tasks) {
    // a live thread's NStgid is the process's chain (its leader's NSpid), known since the seize
    const chain = threads.length ? threads[0].nsIds().tgids : nsChain(entry.pid);
    entry.nspid = chain.length > 1 ? chain : [];
    if (entry.zombie) continue;
    const tid = liveTid(entry);
    ns.set(entry.pid, { own: nsIno(tid, 'pid'), children: nsIno(tid, 'pid_for_children') });
  }
  const level = (t: TaskEntry) => Math.max(t.nspid.length, 1);
  const initOf = (id: number) => tasks.find((t) => ns.get(t.entry.pid)?.own === id && ownPid(t.entry) === 1)?.entry;
  for (const [i, { entry: t }] of tasks.entries()) {
    const mine = ns.get(t.pid);
    if (i === 0) {
      if (mine!.own !== dumperNs) throw new CrError(`pid ${t.pid} lives in a pid namespace of its own (pid ${ownPid(t)} there): as the root of a dump, not supported (dump its parent)`);
      continue;
    }
    const parent = byPid.get(t.ppid)!;
    const theirs = ns.get(parent.pid)!;
    const refuse = () => new CrError(`pid ${t.pid} (pid ${ownPid(t)} in its pid namespace): a pid namespace neither its parent's, nor new with it as its init, nor one its parent entered: not supported`);
    if (!mine) {
      if (level(t) !== level(parent)) throw new CrError(`pid ${t.pid}: a zombie in another pid namespace than its parent's is not supported`);
      continue;
    }
    if (mine.own === theirs.own) continue;
    if (ownPid(t) === 1 && level(t) === level(parent) + 1 && nsParent(`/proc/${liveTid(t)}/ns/pid`) === theirs.own) {
      t.new_pidns = true;
      continue;
    }
    const init = initOf(mine.own);
    if (mine.own !== theirs.children || !init || tasks.findIndex((x) => x.entry === init) > i) throw refuse();
    t.pidns_init = init.pid;
  }
  for (const { entry: p } of tasks) {
    const mine = ns.get(p.pid);
    if (!mine || mine.children === mine.own) continue;
    const inside = tasks.find((t) => ns.get(t.entry.pid)?.own === mine.children)?.entry;
    if (inside) p.pidns_of_children = inside.pid;
    else if (nsParent(`/proc/${liveTid(p)}/ns/pid_for_children`) === mine.own) p.unshared_pidns = true;
    else throw new CrError(`pid ${p.pid}: its children's pid namespace is neither its own, nor one of the tree's, nor new: not supported`);
  }
}

const NS_LAST_PID = '/proc/sys/kernel/ns_last_pid';

/** Run `fn` on ns_last_pid opened in the task: the sysctl is the opener's own pid namespace's. */
function onLastPid(inj: Injection, mode: number, fn: (fd: number) => void): void {
  inj.reset();
  const fd = Number(inj.tracee.syscallOk(`open ${NS_LAST_PID}`, NR.open, inj.putString(NS_LAST_PID), mode | O.CLOEXEC, 0));
  try {
    fn(fd);
  } finally {
    inj.tracee.syscall(NR.close, fd);
  }
}

/** The init of a new pid namespace reads the namespace's last pid. */
export function saveLastPid(entry: TaskEntry, inj: Injection): void {
  if (!entry.new_pidns) return;
  onLastPid(inj, O.RDONLY, (fd) => {
    const buf = inj.alloc(16);
    const n = Number(inj.tracee.syscallOk(`read ${NS_LAST_PID}`, NR.read, fd, buf, 15));
    entry.ns_last_pid = Number(inj.tracee.readMem(buf, n).toString().trim());
  });
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

const ownPidns = fs.statSync('/proc/self/ns/pid').ino;

/** The host pid of the child `parentHost` just created and knows as `pid`. */
function childHostPid(parentHost: number, pid: number): number {
  // A parent in our own pid namespace numbers its child as we do.
  if (fs.statSync(`/proc/${parentHost}/ns/pid`).ino === ownPidns) return pid;
  const level = (statusField(parentHost, 'NSpid') ?? '').split(/\s+/).filter(Boolean).length - 1;
  const children = fs.readFileSync(`/proc/${parentHost}/task/${parentHost}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  for (const c of children) {
    const chain = (statusField(c, 'NSpid') ?? String(c)).split(/\s+/).map(Number);
    if (chain[Math.max(level, 0)] === pid) return c;
  }
  throw new CrError(`pid ${pid}: not among its parent's children after creating it`);
}

/**
 * Fork `child` from its parent, whose memory is in place: clone3 in the
 * parent with the child's pid, so the child inherits the parent's address
 * space (and the pages they shared stay shared), then seize it and give it
 * its session or process group. `tree` says which tasks exist so far (by
 * image pid, with the pids we see them as); a group made later is joined
 * by joinGroups().
 */
export function forkChild(parent: { pid: number; entry: TaskEntry; inj: Injection }, child: TaskEntry, tree: RestoredTree): Forked {
  const { hostPids } = tree;
  // Into a pid namespace an earlier task is the init of: the parent enters it for this one fork.
  if (child.pidns_init) enterPidns(parent, hostPids.get(child.pidns_init)!);
  // Its pid in each namespace, innermost first; with CLONE_NEWPID, that is 1 in the new one.
  const chain = child.nspid.length ? child.nspid : [child.pid];
  const flags = (child.clone_files ? CLONE.FILES : 0) | (child.new_pidns ? CLONE.NEWPID : 0);
  const got = parent.inj.clone3(`create pid ${child.pid}`, flags, child.exit_signal, [...chain].reverse());
  if (child.pidns_init) enterPidns(parent, parent.pid);
  // clone3 gives its pid in the parent's namespace.
  const expected = chain[Math.max(parent.entry.nspid.length, 1) - 1];
  if (got !== expected) throw new CrError(`pid ${child.pid} came back as ${got}`);
  const hostPid = childHostPid(parent.pid, got);
  // Known at once: a restore that fails from here on kills it with the others.
  hostPids.set(child.pid, hostPid);
  const tracee = Tracee.seize(hostPid);
  try {
    const inj = Injection.inherit(tracee, parent.inj.scratch);
    // Until restore lets it go: a restorer that dies takes the unfinished tree with it. Its session or group goes in the same round trip.
    const calls: [string, (number | bigint)[]][] = [['prctl(PR_SET_PDEATHSIG)', [NR.prctl, PR.SET_PDEATHSIG, SIG.KILL, 0, 0, 0]]];
    if (child.sid === child.pid) calls.push(['setsid', [NR.setsid]]);
    else if (child.pgid === child.pid) calls.push(['setpgid', [NR.setpgid, 0, 0]]);
    else if (child.pgid !== parent.entry.pgid && hostPids.has(child.pgid)) calls.push([`setpgid ${child.pgid}`, [NR.setpgid, 0, groupInTask(child, tree)]]);
    inj.batchOk(calls.map(([, c]) => c), (i) => calls[i][0]);
    tree.groups.set(child.pid, calls.length > 1 ? (child.sid === child.pid ? child.pid : child.pgid) : tree.groups.get(parent.entry.pid)!);
    const tty = tree.ctty.get(child.pid);
    // Before it forks: its whole session shares the terminal.
    if (child.sid === child.pid && tty) takeTerminal(inj, tty);
    return { hostPid, tracee, inj };
  } catch (err) {
    // Not among the restore's built tasks yet: take its death here. A traced
    // zombie is its tracer's to reap, and its pid would stay taken while we run.
    killTraced([[tracee]]);
    throw err;
  }
}

/** The task, a session leader, makes `tty` its controlling terminal. */
function takeTerminal(inj: Injection, tty: string): void {
  inj.reset();
  const fd = Number(inj.tracee.syscallOk(`open ${tty}`, NR.open, inj.putString(tty), O.RDWR | O.NOCTTY | O.CLOEXEC, 0));
  try {
    inj.tracee.syscallOk(`take terminal ${tty}`, NR.ioctl, fd, TIOCSCTTY, 0);
  } finally {
    inj.tracee.syscall(NR.close, fd);
  }
}
const TIOCSCTTY = 0x540e;

/** Make the children the task forks from now on go into the pid namespace `nsHostPid` lives in (setns, injected). */
function enterPidns(task: { pid: number; inj: Injection }, nsHostPid: number): void {
  const { inj } = task;
  inj.reset();
  const path = `/proc/${nsHostPid}/ns/pid`;
  const fd = Number(inj.tracee.syscallOk(`open ${path}`, NR.open, inj.putString(path), O.RDONLY | O.CLOEXEC, 0));
  try {
    inj.tracee.syscallOk(`setns ${path}`, NR.setns, fd, CLONE.NEWPID);
  } finally {
    inj.tracee.syscall(NR.close, fd);
  }
}

/**
 * Where each task's own children go from now on, as at dump time: the
 * pid namespace of a task of the tree, or a new one it unshared. After
 * its threads exist: a task cannot make threads while that differs from
 * its own namespace.
 */
export function restorePidnsForChildren(tasks: { entry: TaskEntry; task: RestoreTask }[], hostPids: Map<number, number>): void {
  for (const { entry, task } of tasks) {
    if (entry.pidns_of_children) enterPidns(task, hostPids.get(entry.pidns_of_children)!);
    else if (entry.unshared_pidns) task.tracee.syscallOk('unshare(CLONE_NEWPID)', NR.unshare, CLONE.NEWPID);
  }
}

/**
 * Each new pid namespace hands out next the pid it would have: pids given
 * with set_tid do not move its cursor. Written by its init, before any
 * task has given up the rights that takes.
 */
export function restoreLastPids(tasks: { entry: TaskEntry; task: RestoreTask }[]): void {
  for (const { entry, task } of tasks) {
    if (!entry.new_pidns) continue;
    onLastPid(task.inj, O.WRONLY, (fd) => {
      const text = String(entry.ns_last_pid);
      task.tracee.syscallOk(`write ${NS_LAST_PID}`, NR.write, fd, task.inj.putString(text), text.length);
    });
  }
}

/**
 * Tasks whose process group was made after them join it now that every
 * task exists. A group whose leader is not in the tree is the one the root
 * was restored into: it is inherited as it is.
 */
export function joinGroups(tasks: { entry: TaskEntry; tracee: Tracee }[], tree: RestoredTree): void {
  for (const { entry, tracee } of tasks.slice(1)) {
    if (!tree.hostPids.has(entry.pgid) || entry.pgid === entry.pid || tree.groups.get(entry.pid) === entry.pgid) continue;
    joinGroup(tracee, entry, tree);
    tree.groups.set(entry.pid, entry.pgid);
  }
}

/** The tasks restored so far, by image pid: their entries and the pids we see them as. */
export interface RestoredTree {
  entries: Map<number, TaskEntry>;
  hostPids: Map<number, number>;
  /** The terminal each session leader controls (tty.ts made it), by image pid. */
  ctty: Map<number, string>;
  /**
   * The process group each task is in so far, by image pids: its own as a
   * leader, the one it joined, or the one it inherited at fork (which a
   * group made after it may not be yet: joinGroups() puts it right).
   */
  groups: Map<number, number>;
}

/** The process group `t` joins, by its leader's pid in the task's own pid namespace. */
function groupInTask(t: TaskEntry, tree: RestoredTree): number {
  const leader = tree.entries.get(t.pgid)!;
  const pgid = (leader.nspid.length ? leader.nspid : [leader.pid])[Math.max(t.nspid.length, 1) - 1];
  if (pgid === undefined) throw new CrError(`pid ${t.pid}: its process group leader ${t.pgid} is not in its pid namespace`);
  return pgid;
}

/** setpgid(0, PGID) in the task. */
function joinGroup(tracee: Tracee, t: TaskEntry, tree: RestoredTree): void {
  tracee.syscallOk(`setpgid ${t.pgid}`, NR.setpgid, 0, groupInTask(t, tree));
}

/**
 * End a just-forked child the way a zombie ended, with its exit code or by
 * its signal (and no core): its parent then holds it as a zombie, as at
 * dump time. The SIGCHLD the parent gets meanwhile is dropped by signals.ts.
 */
export function endAsZombie(kid: Forked, status: number): void {
  const { tracee, inj } = kid;
  const signo = status & 0x7f;
  try {
    if (signo) {
      inj.reset();
      tracee.syscallOk(`rt_sigaction(${signo})`, NR.rt_sigaction, signo, inj.put(Buffer.alloc(KSIGACTION_SIZE)), 0, 8);
      tracee.syscallOk('prctl(PR_SET_DUMPABLE)', NR.prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    } else {
      // Its last call: exit_group(code), made as it is let go.
      tracee.setRegs({ ...tracee.getRegs(), rip: BigInt(inj.scratch), rax: BigInt(NR.exit_group), rdi: BigInt((status >> 8) & 0xff), orig_rax: BigInt.asUintN(64, -1n) });
    }
    tracee.setSigmask(0n);
  } catch (err) {
    killTraced([[tracee]]); // as in forkChild
    throw err;
  }
  tracee.detach(0);
  if (signo) kill(kid.hostPid, signo);
  if (!waitZombie(kid.hostPid, procStat)) throw new CrError(`pid ${kid.hostPid}: did not end as a zombie`);
}
