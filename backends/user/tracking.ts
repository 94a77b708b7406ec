/**
 * What a pre-dump leaves behind so that the dump after it saves only the
 * pages written since: cleared soft-dirty bits, or, on a kernel without
 * them, a userfaultfd in asynchronous write-protect mode in every task
 * (userspace/proc/pagemap.ts tells the two apart).
 *
 * The userfaultfd is ours, not the task's: each task gets it at the highest
 * free slot of its descriptor table as the table is (the lowest free
 * numbers, which the program's own next open(2) takes, stay free),
 * close-on-exec; the next dump finds it by its inode, keeps it out of the
 * image and closes it, or a pre-dump on top replaces it. A task that closes
 * it itself unregisters its mappings: the dump then finds every page
 * written, and saves them all.
 */
import fs from 'node:fs';
import { CrError } from '../../userspace/errors.js';
import { clearSoftDirty, writeProtect, type WriteTracking } from '../../userspace/proc/pagemap.js';
import { procLimits, procMaps, statusField } from '../../userspace/proc/parse.js';
import { NR, O, RLIMIT_NOFILE, UFFD } from '../../userspace/sys/constants.js';
import { Injection } from '../../userspace/sys/inject.js';
import { SysError } from '../../userspace/sys/libc.js';
import type { Inventory } from './inventory.js';
import type { SeizedTask } from './tree.js';

/** The userfaultfd a pre-dump left in a task: its descriptor and inode. */
export interface Tracker {
  pid: number;
  fd: number;
  ino: bigint;
}

/** What the pre-dump a dump builds on tracks, and the trackers the tasks still hold. */
export interface PrevTracking {
  method: WriteTracking;
  /** By pid: the tasks whose tracker is still where the pre-dump put it. */
  held: Map<number, Tracker>;
  /** Every tracker's inode: a child forked since holds its parent's too. */
  inos: Set<bigint>;
  /** The tracker descriptors found in each task's table (files.ts), to close once the dump is done. */
  found: Map<number, number[]>;
}

export const IMAGE_TRACKING: Record<WriteTracking, Inventory['tracking']> = { 'soft-dirty': 'SOFT_DIRTY', 'uffd-wp': 'UFFD_WP' };

/** The userfaultfd's own name in /proc/PID/fd. */
const UFFD_LINK = 'anon_inode:[userfaultfd]';
/** uffdio_register structs per injected batch: they and the batch's records share the scratch area. */
const REGISTERS_PER_BATCH = 48;

const inode = (pid: number, fd: number): bigint | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === UFFD_LINK ? fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true }).ino : undefined;
  } catch {
    return undefined;
  }
};

/** The tracking of the pre-dump `prev`, checked against the tasks as they are now. */
export function prevTracking(prev: Inventory, tasks: SeizedTask[]): PrevTracking {
  const method: WriteTracking = prev.tracking === 'UFFD_WP' ? 'uffd-wp' : 'soft-dirty';
  const held = new Map<number, Tracker>();
  for (const k of prev.trackers) {
    const t = tasks.find((s) => s.entry.pid === k.pid && s.threads.length);
    if (t && inode(t.threads[0].pid, k.fd) === k.ino) held.set(k.pid, k);
  }
  return { method, held, inos: new Set(prev.trackers.map((k) => k.ino)), found: new Map() };
}

/** Run calls in a seized task in a session of their own. */
function inTask<T>(t: SeizedTask, fn: (inj: Injection) => T): T {
  const inj = Injection.begin(t.threads[0]);
  try {
    const out = fn(inj);
    inj.end();
    return out;
  } catch (err) {
    inj.abandon();
    throw err;
  }
}

/**
 * The highest descriptor number free in the task's table as it is
 * (FDSize: the table never grows for it; a table of a million slots for a
 * soft RLIMIT_NOFILE of a million would cost the task memory and every
 * fork a copy), below its RLIMIT_NOFILE; `free` counted as free.
 */
function topFreeFd(pid: number, free: number[]): number {
  const used = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number).filter((fd) => !free.includes(fd)));
  // read, not prlimit(2): that needs CAP_SYS_RESOURCE over another user's task
  const limit = Number(procLimits(pid)[RLIMIT_NOFILE]!.cur);
  const size = Number(statusField(pid, 'FDSize') ?? limit);
  let fd = Math.min(limit, size) - 1;
  while (fd >= 0 && used.has(fd)) fd--;
  // a full table: the lowest number past it (the kernel grows the table for it)
  if (fd < 0) for (fd = size; used.has(fd); fd++);
  if (fd >= limit) throw new CrError(`pid ${pid}: no free descriptor for the userfaultfd that tracks the pages it writes`);
  return fd;
}

/**
 * Give one task a fresh tracker (closing the old ones `old`): a userfaultfd
 * made in the task, moved to the highest free slot of its table, every
 * private mapping registered with it for write protection, then every page
 * write-protected. A mapping that cannot be registered (VM_IO, shadow
 * stack) is left out: its pages count as written at every dump. If any step
 * fails, the task is left without one.
 */
function arm(t: SeizedTask, old: number[], log: (l: string) => void): Tracker {
  const pid = t.threads[0].pid;
  const mappings = procMaps(pid).filter((m) => !m.shared && !['[vsyscall]', '[vvar]', '[vvar_vclock]', '[vdso]'].includes(m.path));
  const top = topFreeFd(pid, old);
  let placed = false;
  try {
    inTask(t, (inj) => {
      /** A call's result, or the one-line error saying tracking failed there. */
      const ok = (what: string, ret: bigint) => {
        try {
          return inj.tracee.checked(what, ret);
        } catch (err) {
          throw new CrError(`pid ${t.entry.pid}: cannot track the pages it writes: ${what}: ${err instanceof SysError ? err.code : (err as Error).message}`, { cause: err });
        }
      };
      const made = ok('userfaultfd', inj.batch([...old.map((fd) => [NR.close, fd]), [NR.userfaultfd, O.CLOEXEC | O.NONBLOCK | UFFD.USER_MODE_ONLY]], 'userfaultfd').at(-1)!);
      const api = Buffer.alloc(24);
      api.writeBigUInt64LE(BigInt(UFFD.API), 0);
      api.writeBigUInt64LE(BigInt(UFFD.FEATURE_WP_ASYNC), 8);
      inj.reset();
      // the close goes whatever dup3 did: on its failure nothing is left
      const [moved, , apiRet] = inj.batch([[NR.dup3, made, top, O.CLOEXEC], [NR.close, made], [NR.ioctl, top, UFFD.IOC_API, inj.put(api)]], 'userfaultfd set-up');
      ok('dup3', moved);
      placed = true;
      ok('UFFDIO_API (asynchronous write protection)', apiRet);
      for (let i = 0; i < mappings.length; i += REGISTERS_PER_BATCH) {
        inj.reset();
        inj.batch(mappings.slice(i, i + REGISTERS_PER_BATCH).map((m) => {
          const reg = Buffer.alloc(32);
          reg.writeBigUInt64LE(m.start, 0);
          reg.writeBigUInt64LE(m.end - m.start, 8);
          reg.writeBigUInt64LE(BigInt(UFFD.REGISTER_MODE_WP), 16);
          return [NR.ioctl, top, UFFD.IOC_REGISTER, inj.put(reg)];
        }), 'UFFDIO_REGISTER');
      }
    });
    writeProtect(pid);
  } catch (err) {
    if (placed) closeIn(t, [top], log);
    throw err;
  }
  return { pid: t.entry.pid, fd: top, ino: inode(pid, top)! };
}

/** Trackers' descriptors by the pid of the task holding each. */
export const byPid = (trackers: Tracker[]) => new Map(trackers.map((k) => [k.pid, [k.fd]]));

/** Close descriptors in a seized task, never throwing: what is left is only a tracker. */
function closeIn(t: SeizedTask, fds: number[], log: (l: string) => void): void {
  try {
    inTask(t, (inj) => inj.batch(fds.map((fd) => [NR.close, fd]), 'close trackers'));
  } catch (err) {
    log(`pid ${t.entry.pid}: could not close its trackers ${fds.join(' ')}: ${(err as Error).message}`);
  }
}

/**
 * At the end of a pre-dump, the tasks still stopped: start tracking what
 * each writes from now on. Returns the trackers it gave them (uffd-wp). If
 * one task cannot be given one, those given so far are closed again.
 */
export function startTracking(tasks: SeizedTask[], method: WriteTracking, prev: PrevTracking | undefined, log: (l: string) => void): Tracker[] {
  const live = tasks.filter((t) => t.threads.length);
  if (method === 'soft-dirty') {
    for (const t of live) clearSoftDirty(t.threads[0].pid);
    return [];
  }
  const given: [SeizedTask, Tracker][] = [];
  try {
    for (const t of live) {
      const k = arm(t, prev?.found.get(t.entry.pid) ?? [], log);
      given.push([t, k]);
      log(`pid ${t.entry.pid}: tracking the pages it writes with the userfaultfd at fd ${k.fd}`);
    }
  } catch (err) {
    closeTrackers(tasks, byPid(given.map(([, k]) => k)), log);
    throw err;
  }
  return given.map(([, k]) => k);
}

/** Close trackers (by pid, their descriptors) in the tasks that hold them: the dump after a pre-dump, or a pre-dump that failed at its end. */
export function closeTrackers(tasks: SeizedTask[], fds: Map<number, number[]>, log: (l: string) => void): void {
  for (const t of tasks) {
    const mine = fds.get(t.entry.pid);
    if (mine?.length && t.threads.length) closeIn(t, mine, log);
  }
}
