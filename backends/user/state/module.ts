/**
 * The table every kind of state plugs into. A module holds, side by side,
 * how its state is saved from a seized task and how it is put back into a
 * placeholder task; the generic dump and restore code only walks the table.
 */
import type { Injection } from '../../../userspace/sys/inject.js';
import type { Tracee } from '../../../userspace/sys/ptrace.js';
import type { SmapsEntry, Stat } from '../../../userspace/proc/parse.js';
import type { ImageWriter } from '../image.js';
import type { PrevTracking } from '../tracking.js';
import type { TaskEntry } from '../inventory.js';
import type { Vma } from './memory.js';
import type { Terminals } from './tty.js';

/** An open file the dump saved, as the first descriptor that showed it. */
export interface SavedFile {
  id: number;
  pid: number;
  fd: number;
  dev: bigint;
}

/** Objects that several descriptors or tasks share, saved once: the dump's object hash. */
export interface DumpShared {
  /** The open files saved so far (ids count from 1), by inode: descriptors of one task or many may be one open file. */
  files: { byIno: Map<bigint, SavedFile[]>; count: number };
  /** Pipes whose buffered data is already in the image, by inode. */
  pipes: Set<bigint>;
  /** Shmem objects (shared anonymous memory, memfd) already in the image, by inode. */
  shmem: Set<bigint>;
  /** Each process's mappings as saved, by pid: a child's are compared with its parent's. */
  mms: Map<number, { procPid: number; vmas: Vma[] }>;
  /** Every pid of the tree, and whether it is dumped as a shell job (--shell-job). */
  tree: number[];
  shellJob: boolean;
  /** Whether TCP connections to peers outside the tree may be saved (--tcp-established). */
  tcpEstablished: boolean;
  /**
   * Run once every task is saved, or the dump failed, just before the tasks
   * are killed (`killed`) or let go: give back what the dump held or changed.
   */
  done: ((killed: boolean) => void)[];
  /** What the pre-dump this dump builds on tracks written pages with, and where its trackers are. */
  prev?: PrevTracking;
}

/** Where restore created each shared object, so that others can take it from there. */
export interface RestoreShared {
  files: Map<number, { pid: number; fd: number }>;
  pipes: Map<bigint, { pid: number; rd: number; wr: number }>;
  /** Shmem objects by inode: the task that created it, and a path that opens it there. */
  shmem: Map<bigint, { pid: number; path: string }>;
  /** Each task's pid inside its pid namespace, by the pid we see; the same unless restored with --pidns. */
  nsPids: Map<number, number>;
  /** Descriptors to close in a task once every task is built (pipe ends nobody had). */
  leftovers: Map<number, number[]>;
  /** The ptys cr restore made before the tasks (tty.ts). */
  terminals: Terminals;
  /** Run once every task is built, before any settles: every task is still seized with its injection open. */
  built: (() => void)[];
  /** Run once every task has settled, just before they run (`ok`), or when the restore failed: give back what restore held. */
  done: ((ok: boolean) => void)[];
}

export interface DumpTask {
  pid: number;
  entry: TaskEntry;
  /**
   * The thread group leader, whose injection session is open; if the
   * leader exited, the first live thread. /proc is read through it: an
   * exited leader's /proc shows no memory, files or namespaces.
   */
  tracee: Tracee;
  /** Every live thread, the leader first, all stopped. */
  threads: Tracee[];
  inj: Injection;
  /** The task's mappings with their VmFlags, read before the injection added its scratch area. */
  maps: SmapsEntry[];
  /** The leader's /proc stat (its fields of an exited leader are zeros but its ids and name), read with every thread stopped. */
  stat: Stat;
  images: ImageWriter;
  shared: DumpShared;
  stats: { pagesWritten: number };
  /** The pre-dump this dump builds on: pages unchanged since are left in it. */
  prevImagesDir?: string;
  log: (line: string) => void;
}

export interface RestoreTask {
  pid: number;
  dir: string;
  /** The leader, whose injection session is open. */
  tracee: Tracee;
  /** Every thread once created (cpu.ts), the leader first; all stay stopped until the end. */
  threads: Tracee[];
  /** Each thread's tid in the image and in its own pid namespace, as `threads`. */
  threadIds: { image: number; own: number }[];
  inj: Injection;
  shared: RestoreShared;
  /** Lowest descriptor number the image does not use: temporaries go at or above it. */
  fdBase: number;
  /** Where the task keeps the descriptors cr restore handed it (terminals.handed), once files.ts lifted them. */
  handed: number[];
  /** Its pages are put in on first touch, the rest while it runs (RestoreOptions.lazyPages). */
  lazyPages: boolean;
  log: (line: string) => void;
}

/**
 * Injected calls a module's dump needs the task to make, and what their
 * results (each a success, in order) say once made. Every module's go into
 * one batch before any module saves anything: one round trip per process,
 * not one per module.
 */
export interface Question<A> {
  calls: [what: string, call: (number | bigint)[]][];
  answer(results: bigint[]): A;
}

export interface StateDefinition<T, A = undefined> {
  readonly name: string;
  /** What only the task can tell this module, asked with every other module's questions (Question). */
  ask?(task: DumpTask): Question<A>;
  /** Save this kind of state of a seized task (its injection session is open), given the task's answers. */
  dump(task: DumpTask, answers: A): void;
  /** Read and check the image before any task is created; throws CrError on a bad image. */
  load(dir: string, entry: TaskEntry): T;
  /** Rebuild the state inside the placeholder task, through injected calls. */
  restore(task: RestoreTask, state: T): void;
  /** Once every task is rebuilt, still through injected calls: tidy up what other tasks needed. */
  settle?(task: RestoreTask, state: T): void;
  /** After the last injected call: what plain ptrace sets (registers, mask). */
  finish?(task: RestoreTask, state: T): void;
  /** Readable lines for `cr show`. */
  describe(state: T): string[];
}

/** A kind of state's image, loaded and checked, ready to be put back. */
export interface LoadedState {
  restore(task: RestoreTask): void;
  settle(task: RestoreTask): void;
  finish(task: RestoreTask): void;
  describe(): string[];
}

export interface StateModule {
  readonly name: string;
  ask?(task: DumpTask): Question<unknown>;
  dump(task: DumpTask, answers: unknown): void;
  load(dir: string, entry: TaskEntry): LoadedState;
}

/** Erase a definition's image type, so modules of every kind fit one table. */
export function defineState<T, A = undefined>(def: StateDefinition<T, A>): StateModule {
  const { ask } = def;
  return {
    name: def.name,
    ask: ask && ((task) => ask(task)),
    dump: (task, answers) => def.dump(task, answers as A),
    load(dir, entry) {
      const state = def.load(dir, entry);
      return {
        restore: (task) => def.restore(task, state),
        settle: (task) => def.settle?.(task, state),
        finish: (task) => def.finish?.(task, state),
        describe: () => def.describe(state),
      };
    },
  };
}

export const hex = (v: bigint | number) => `0x${v.toString(16)}`;
