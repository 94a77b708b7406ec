/** inventory.img: what wrote the image, and the task tree it holds. */
import { CrError } from '../../userspace/errors.js';
import { imageFile, readImage } from './image.js';

export interface TaskEntry {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  comm: string;
  /** Thread ids, the leader first; empty for a zombie. */
  threads: number[];
  zombie: boolean;
  /** A zombie's wait status. */
  exit_status: number;
  /** Stopped by a signal when dumped: it is stopped again after restore. */
  stopped: boolean;
  /** Shares its parent's fd table (created with CLONE_FILES, not a thread). */
  clone_files: boolean;
  /** The signal its parent gets when it ends. */
  exit_signal: number;
  /** The thread group leader (threads[0]) exited; the other threads run on. */
  leader_exited: boolean;
  /** Its pid in each nested pid namespace from the dumper's inward; empty if it lives in the dumper's. */
  nspid: number[];
  /** The init of a new pid namespace (CLONE_NEWPID). */
  new_pidns: boolean;
  /** In a pid namespace its parent entered to fork it: that of this init. */
  pidns_init: number;
  /** Its children's pid namespace (pid_for_children), if not its own: that of this task. */
  pidns_of_children: number;
  /** Its children's pid namespace is a new one it unshared, with nobody in it yet. */
  unshared_pidns: boolean;
  /** new_pidns: the last pid its namespace handed out. */
  ns_last_pid: number;
}

/** A task's pid in the pid namespace it lives in (what getpid() says there). */
export const ownPid = (t: TaskEntry) => t.nspid.at(-1) ?? t.pid;

export interface Inventory {
  format_version: number;
  arch: string;
  kernel_release: string;
  created_ms: bigint;
  page_size: number;
  tasks: TaskEntry[];
  /** Dumped with --shell-job: the terminal it ran on is cr restore's at restore, and whether it was the foreground job there. */
  shell_job: boolean;
  foreground: boolean;
  /** A pre-dump: a later dump may build on it. */
  tracks_memory: boolean;
  /** How the pre-dump tracks the pages written after it, and the userfaultfds it left in the tasks (tracking.ts). */
  tracking: 'SOFT_DIRTY' | 'UFFD_WP';
  trackers: { pid: number; fd: number; ino: bigint }[];
}

export function readInventory(dir: string): Inventory {
  const inv = readImage<Inventory>(dir, 'inventory');
  const file = imageFile(dir, 'inventory');
  if (inv.arch !== process.arch) throw new CrError(`${file}: image is for ${inv.arch}, this machine is ${process.arch}`);
  if (inv.page_size !== 4096) throw new CrError(`${file}: page size ${inv.page_size} is not supported`);
  if (!inv.tasks.length) throw new CrError(`${file}: corrupted image (no tasks)`);
  if (inv.foreground && !inv.shell_job) throw new CrError(`${file}: corrupted image (a foreground job that is no shell job)`);
  const seen = new Set<number>();
  for (const [i, t] of inv.tasks.entries()) {
    const threadsOk = t.zombie ? t.threads.length === 0 : t.threads[0] === t.pid && (!t.leader_exited || t.threads.length > 1);
    const parent = inv.tasks.find((p) => p.pid === t.ppid);
    const pidsOk = (t.nspid.length === 0 || t.nspid[0] === t.pid) && (i === 0 ? !t.nspid.length && !t.new_pidns && !t.pidns_init
      : t.nspid.length >= (parent?.nspid.length ?? 0) && (!t.new_pidns || ownPid(t) === 1) && (!t.pidns_init || seen.has(t.pidns_init)));
    if (t.pid <= 0 || t.exit_signal > 64 || seen.has(t.pid) || (i > 0 && !seen.has(t.ppid)) || !threadsOk || !pidsOk || (i === 0 && (t.zombie || t.clone_files)) || (t.zombie && t.clone_files)) {
      throw new CrError(`${file}: corrupted image (bad task tree)`);
    }
    seen.add(t.pid);
  }
  return inv;
}
