/**
 * What the kernel backend is and how its images are known, without
 * loading the backend: the driver imports a backend only to run it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MemoryModes } from '../types.js';

export const summary = 'in-kernel c/r: checkpoint(2)/restart(2) with a loadable engine (the linux-cr approach)';

/** Ways of restoring memory it has besides copying it in (the driver refuses the others). */
export const memoryModes: MemoryModes = { mapPages: true, lazyPages: false };

/** The engine writes one blob, DIR/kernel.img. */
export const IMAGE_NAME = 'kernel.img';

export const recognizes = (dir: string): boolean => fs.existsSync(path.join(dir, IMAGE_NAME));
