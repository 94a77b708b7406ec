/**
 * The table every kind of state plugs into. A module holds, side by side,
 * how its state is saved from a seized task and how it is put back into a
 * placeholder task; the generic dump and restore code only walks the table.
 */
import type { Injection } from '../../../userspace/sys/inject.js';
import type { Tracee } from '../../../userspace/sys/ptrace.js';
import type { MapsEntry } from '../../../userspace/proc/parse.js';
import type { ImageWriter } from '../image.js';

export interface DumpTask {
  pid: number;
  tracee: Tracee;
  inj: Injection;
  /** The task's mappings, read before the injection added its scratch area. */
  maps: MapsEntry[];
  images: ImageWriter;
  stats: { pagesWritten: number };
  log: (line: string) => void;
}

export interface RestoreTask {
  pid: number;
  dir: string;
  tracee: Tracee;
  inj: Injection;
  log: (line: string) => void;
}

export interface StateDefinition<T> {
  readonly name: string;
  /** Save this kind of state of a seized task (its injection session is open). */
  dump(task: DumpTask): void;
  /** Read and check the image before any task is created; throws CrError on a bad image. */
  load(dir: string, pid: number): T;
  /** Rebuild the state inside the placeholder task, through injected calls. */
  restore(task: RestoreTask, state: T): void;
  /** After the last injected call: what plain ptrace sets (registers, mask). */
  finish?(task: RestoreTask, state: T): void;
  /** Readable lines for `cr show`. */
  describe(state: T): string[];
}

/** A kind of state's image, loaded and checked, ready to be put back. */
export interface LoadedState {
  restore(task: RestoreTask): void;
  finish(task: RestoreTask): void;
  describe(): string[];
}

export interface StateModule {
  readonly name: string;
  dump(task: DumpTask): void;
  load(dir: string, pid: number): LoadedState;
}

/** Erase a definition's image type, so modules of every kind fit one table. */
export function defineState<T>(def: StateDefinition<T>): StateModule {
  return {
    name: def.name,
    dump: (task) => def.dump(task),
    load(dir, pid) {
      const state = def.load(dir, pid);
      return {
        restore: (task) => def.restore(task, state),
        finish: (task) => def.finish?.(task, state),
        describe: () => def.describe(state),
      };
    },
  };
}

export const hex = (v: bigint | number) => `0x${v.toString(16)}`;
