/**
 * cr-lab as a library: `import { backends } from 'cr-lab'` gives every
 * backend behind the same interface, so a harness can call dump/restore
 * in-process without paying Node's start-up for each operation.
 *
 * A backend's code is imported when one of its operations is first
 * called: `cr dump --backend=kernel` never loads the protobuf schemas of
 * the user backend nor the CRIU driver. Recognizing an image directory
 * needs only each backend's small identity module.
 */
import { CrError } from '../userspace/errors.js';
import type { Backend, BackendName, DumpOptions, MemoryModes, RestoreOptions } from './types.js';
import * as criu from './criu/identity.js';
import * as kernel from './kernel/identity.js';
import * as user from './user/identity.js';

export type * from './types.js';
export { CrError };

interface Identity {
  summary: string;
  memoryModes: MemoryModes;
  recognizes(dir: string): boolean;
}

/** A backend whose code loads on first use; `optional` names the optional operations it has (the driver tests for them). */
function lazy(name: BackendName, id: Identity, get: () => Promise<Backend>, optional: { thaw?: boolean; preDump?: boolean } = {}): Backend {
  return {
    name,
    summary: id.summary,
    check: async () => (await get()).check(),
    dump: async (opts) => (await get()).dump(opts),
    memoryModes: id.memoryModes,
    restore: async (opts) => {
      refuseMemoryModes({ name, memoryModes: id.memoryModes }, opts);
      return (await get()).restore(opts);
    },
    recognizes: async (dir) => id.recognizes(dir),
    describe: async (dir) => (await get()).describe(dir),
    ...(optional.thaw && { thaw: async (pid: number) => (await get()).thaw!(pid) }),
    ...(optional.preDump && { preDump: async (opts: DumpOptions) => (await get()).preDump!(opts) }),
  };
}

/** Refuse, by name and before anything is touched, a way of restoring memory that the backend does not have. */
export function refuseMemoryModes(b: Pick<Backend, 'name' | 'memoryModes'>, opts: RestoreOptions): void {
  if (opts.mapPages && opts.lazyPages) throw new CrError('--map-pages and --lazy-pages exclude each other');
  if (opts.mapPages && !b.memoryModes.mapPages) throw new CrError(`the ${b.name} backend cannot map memory from the image: restore without --map-pages`);
  if (opts.lazyPages && !b.memoryModes.lazyPages) throw new CrError(`the ${b.name} backend has no lazy restore of pages: restore without --lazy-pages`);
}

const once = (load: () => Promise<Backend>) => {
  let loaded: Promise<Backend> | undefined;
  return () => (loaded ??= load());
};

const loaders: Record<BackendName, () => Promise<Backend>> = {
  user: once(async () => (await import('./user/index.js')).userBackend),
  criu: once(async () => (await import('./criu/index.js')).criuBackend),
  kernel: once(async () => (await import('./kernel/index.js')).kernelBackend),
};

export const backends: Record<string, Backend> = {
  user: lazy('user', user, loaders.user, { preDump: true }),
  criu: lazy('criu', criu, loaders.criu, { preDump: true }),
  kernel: lazy('kernel', kernel, loaders.kernel, { thaw: true, preDump: true }),
};

export function backendNames(): BackendName[] {
  return Object.keys(backends) as BackendName[];
}

/** A backend with its code loaded: what `backends[name]` loads on its first call, loaded now (the `cr` command times its calls without the loading). */
export function loadBackend(name: BackendName): Promise<Backend> {
  return loaders[name]();
}
