/**
 * What the user backend is and how its images are known, without loading
 * the backend: the driver imports a backend only to run it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MemoryModes } from '../types.js';

export const summary = 'userspace c/r through /proc and ptrace (the CRIU approach), written in TypeScript';

/** Ways of restoring memory it has besides copying it in (the driver refuses the others). */
export const memoryModes: MemoryModes = { mapPages: false, lazyPages: true };

export const MAGIC = 0x424c5243; // "CRLB" little-endian

/** Whether a file starts with this backend's magic (CRIU's inventory.img does not). */
function isUserImage(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(4);
      return fs.readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === MAGIC;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** An image directory of this backend holds an inventory.img with its magic. */
export const recognizes = (dir: string): boolean => isUserImage(path.join(dir, 'inventory.img'));
