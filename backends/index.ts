/**
 * cr-lab as a library: `import { backends } from 'cr-lab'` gives every
 * backend behind the same interface, so a harness can call dump/restore
 * in-process without paying Node's start-up for each operation.
 */
import type { Backend, BackendName } from './types.js';
import { userBackend } from './user/index.js';
import { criuBackend } from './criu/index.js';
import { kernelBackend } from './kernel/index.js';

export type * from './types.js';
export { CrError } from '../userspace/errors.js';

export const backends: Record<string, Backend> = {
  user: userBackend,
  criu: criuBackend,
  kernel: kernelBackend,
};

export function backendNames(): BackendName[] {
  return Object.keys(backends) as BackendName[];
}
