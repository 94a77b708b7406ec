/**
 * The contract between the `cr` driver and a checkpoint/restart backend.
 * The driver (and any harness that imports cr-lab as a library) talks to
 * backends through this interface only; backends never import each other.
 */

export type BackendName = 'user' | 'kernel' | 'criu';

/** One probed prerequisite, as `cr check` prints it. */
export interface CheckItem {
  /** Short name of the interface or condition, e.g. "ptrace", "clone3 set_tid". */
  name: string;
  ok: boolean;
  /** Whether the backend cannot work without it. */
  required: boolean;
  /** What was found, or what is missing and how to get it. */
  detail: string;
}

export interface DumpOptions {
  /** Root of the process tree to checkpoint. */
  pid: number;
  /** Image directory; created if missing. */
  dir: string;
  /** Keep the tasks running after a successful dump (default: kill them). */
  leaveRunning?: boolean;
  /**
   * Copy-on-write: the tasks run again once everything but their memory is
   * saved, and their pages are written from a snapshot (the kernel backend;
   * its default with `leaveRunning` and for pre-dumps). With a dump that
   * kills the tasks, what they do during the write-out is not in the image.
   */
  cow?: boolean;
  /**
   * An earlier pre-dump of the same tasks (`preDump`): save only the pages
   * written since, the image refers to that one for the rest.
   */
  prevImagesDir?: string;
  /**
   * A cgroup directory holding the whole tree: it is frozen while the tasks
   * are collected, so none can fork or exit meanwhile (CRIU's --freeze-cgroup).
   */
  freezeCgroup?: string;
  /**
   * The tree is a job of an interactive shell (CRIU's --shell-job): the
   * terminal it runs on and its session leader are outside the tree.
   */
  shellJob?: boolean;
  /**
   * Save TCP connections to peers outside the tree too (CRIU's
   * --tcp-established): their packets are held back by a network lock from
   * the dump until the restore, and the restored tree goes on with them.
   * Without it such a connection is refused.
   */
  tcpEstablished?: boolean;
  /** Progress and diagnostics, one line per call. */
  log?: (line: string) => void;
}

/** Timings in milliseconds, sizes in bytes; absent where a backend cannot tell. */
export interface DumpStats {
  /** From the start of the dump call until every task is stopped. */
  freezeMs?: number;
  /** Downtime: from the moment the tasks stop until they are resumed or killed. */
  frozenMs?: number;
  /** Wall time of the whole dump call. */
  totalMs: number;
  /** Size of the image directory after the dump. */
  imageBytes: number;
  /** Memory pages written to the image. */
  pagesWritten?: number;
}

export interface DumpResult {
  /** Pids of every task that was checkpointed, root first. */
  pids: number[];
  stats: DumpStats;
}

export interface RestoreOptions {
  dir: string;
  /**
   * Map private anonymous memory copy-on-write from the image file instead
   * of copying it (kernel backend). The image must then stay as it is while
   * the tree runs; MADV_DONTNEED on such memory reads back the image's data.
   */
  mapPages?: boolean;
  /**
   * Restore private memory on demand: each page on first touch, through
   * userfaultfd, the rest in the background while the tree runs (user
   * backend).
   */
  lazyPages?: boolean;
  /** Return once the tree runs; nobody waits for the root task. */
  detach?: boolean;
  /** Restore into a fresh pid namespace (where the backend supports it). */
  pidns?: boolean;
  /**
   * Restore a shell job: the tree joins the session of the caller, its
   * terminal descriptors are the caller's terminal, and it becomes the
   * foreground job if it was one (required for images dumped so).
   */
  shellJob?: boolean;
  /**
   * Leave the restored tasks frozen (where the backend supports it): nothing
   * of the tree runs until `thaw()`, so a harness can attach first.
   */
  frozen?: boolean;
  log?: (line: string) => void;
}

/** Ways of restoring memory other than copying all of it in before the tree runs. */
export interface MemoryModes {
  /** `RestoreOptions.mapPages` */
  mapPages: boolean;
  /** `RestoreOptions.lazyPages` */
  lazyPages: boolean;
}

export interface RestoreStats {
  /** Wall time of the restore call until the tree runs. */
  totalMs: number;
}

/** How a restored root task ended, as waitpid(2) reports it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RestoreResult {
  /** Pids of the restored tasks, root first (the original pids). */
  pids: number[];
  stats: RestoreStats;
  /** Resolves when the restored root task ends; rejects if restored with `detach`. */
  wait(): Promise<ExitStatus>;
  /** Restored with `frozen`: let the tree run. */
  thaw?(): Promise<void>;
}

/** A readable description of an image, for `cr show`. */
export interface ImageDescription {
  backend: BackendName;
  /** Human-readable lines. */
  lines: string[];
  /** The same content as plain JSON data, for `cr show --json`. */
  data: unknown;
}

export interface Backend {
  readonly name: BackendName;
  /** One line saying what this backend is. */
  readonly summary: string;
  /** What `restore` takes besides copying memory in; the rest it refuses (`refuseMemoryModes`). */
  readonly memoryModes: MemoryModes;
  /** Probe the running kernel and machine for what this backend needs. */
  check(): Promise<CheckItem[]>;
  /** Checkpoint a process tree. On failure the tasks are left running as before. */
  dump(opts: DumpOptions): Promise<DumpResult>;
  /**
   * Save the tree's memory while it keeps running, and track the pages it
   * writes from then on, for a later `dump` (or pre-dump) with
   * `prevImagesDir` naming this one. Absent where the backend has none.
   */
  preDump?(opts: DumpOptions): Promise<DumpResult>;
  /** Restart a tree from an image. On failure no restored task is left running. */
  restore(opts: RestoreOptions): Promise<RestoreResult>;
  /** Whether `dir` holds an image written by this backend. */
  recognizes(dir: string): Promise<boolean>;
  /** Decode an image for display; rejects with a CrError on a bad image. */
  describe(dir: string): Promise<ImageDescription>;
  /** Let a tree that `restore({ frozen })` left frozen at root `pid` run (where supported). */
  thaw?(pid: number): Promise<void>;
}
