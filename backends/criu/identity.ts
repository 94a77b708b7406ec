/**
 * What the CRIU backend is and how CRIU's images are known, without
 * loading the backend: the driver imports a backend only to run it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MemoryModes } from '../types.js';

export const summary = 'CRIU, the reference userspace checkpoint/restore tool, driven through its command line';

/** Ways of restoring memory it has besides copying it in (the driver refuses the others). */
export const memoryModes: MemoryModes = { mapPages: false, lazyPages: false };

/** The magic of CRIU's inventory.img (images/magic.h). */
export const INVENTORY_MAGIC = 0x58313116;

/** Whether `dir` holds a CRIU image: an inventory.img with CRIU's magic (after the common one, or alone). */
export function isCriuImage(dir: string): boolean {
  try {
    const fd = fs.openSync(path.join(dir, 'inventory.img'), 'r');
    const b = Buffer.alloc(8);
    const n = fs.readSync(fd, b, 0, 8, 0);
    fs.closeSync(fd);
    return n >= 4 && (b.readUInt32LE(0) === INVENTORY_MAGIC || (n === 8 && b.readUInt32LE(4) === INVENTORY_MAGIC));
  } catch {
    return false;
  }
}

export const recognizes = isCriuImage;
