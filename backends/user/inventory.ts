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
}

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
    const threadsOk = t.zombie ? t.threads.length === 0 : t.threads[0] === t.pid;
    if (t.pid <= 0 || seen.has(t.pid) || (i > 0 && !seen.has(t.ppid)) || !threadsOk || (i === 0 && (t.zombie || t.clone_files)) || (t.zombie && t.clone_files)) {
      throw new CrError(`${file}: corrupted image (bad task tree)`);
    }
    seen.add(t.pid);
  }
  return inv;
}
