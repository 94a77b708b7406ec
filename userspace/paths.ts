/** Where cr-lab's own files are, whether run from dist/ or imported as a library. */
import path from 'node:path';

/** The package root: the folder that holds package.json. */
export const packageRoot = path.resolve(import.meta.dirname, '..', '..');

export const nativeBin = (name: string) => path.join(packageRoot, 'userspace', 'native', 'bin', name);

/** The `cr` command as built (the bundle of userspace/cli/cr.ts, scripts/bundle.mjs). */
export const crCommand = path.join(packageRoot, 'dist', 'cr', 'cr.js');
