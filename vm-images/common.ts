/** Paths, the cache location and the error type shared by the vm-images tools. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * An expected failure (missing package, failed build step, bad option): the
 * CLIs print its message as one line, without a stack trace.
 */
export class VmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmError';
  }
}

/** The repository root: the nearest ancestor of this module holding vm-images/kernel.json. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'vm-images', 'kernel.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new VmError('cannot find the cr-lab repository (vm-images/kernel.json) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const repoRoot = findRepoRoot();
/** Source files of this directory (not the compiled dist/ copy). */
export const vmImagesDir = join(repoRoot, 'vm-images');

/** `${CR_LAB_CACHE:-${XDG_CACHE_HOME:-~/.cache}}/cr-lab`: kept outside the repository. */
export function cacheRoot(): string {
  const base = process.env.CR_LAB_CACHE || process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'cr-lab');
}

/** Run a CLI entry: expected failures print one line and exit 1; anything else keeps its stack. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof VmError) {
        process.stderr.write(`error: ${err.message}\n`);
      } else {
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      }
      process.exitCode = 1;
    },
  );
}
