/**
 * The guest initramfs: busybox-static + vm-images/init.sh, written as a newc
 * cpio by hand (sorted, fixed mtimes and owners, device nodes without root)
 * and gzipped by zlib (no name, no time), so equal inputs give equal bytes.
 * Each run appends a second small archive holding the command to run.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { cacheRoot, vmImagesDir, VmError } from './common.js';

/** Bump when the archive layout changes. */
const INITRAMFS_RECIPE_VERSION = 1;
const BUSYBOX = '/bin/busybox';

interface Entry {
  path: string;
  /** Full st_mode: type and permission bits. */
  mode: number;
  data?: Buffer;
  /** For character devices. */
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

/** A newc ("070701") archive: owner root, mtime 0, entries sorted by path. */
export function newc(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const push = (e: Entry, ino: number): void => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.path}\0`);
    const fields = [ino, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''));
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).forEach((e, i) => push(e, i + 1));
  push({ path: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

/** gzip without a file name or time stamp (the equivalent of `gzip -n`). */
export const gzip = (data: Buffer): Buffer => gzipSync(data, { level: 9 });

/** Whether an ELF64 file has a PT_INTERP header, i.e. is dynamically linked (package `busybox`, not `busybox-static`). */
function hasInterpreter(elf: Buffer): boolean {
  const PT_INTERP = 3;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === PT_INTERP) return true;
  return false;
}

/** The cached base initramfs for the current init.sh and busybox; built on first use. */
export async function ensureInitramfs(): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new VmError(`${BUSYBOX} is missing: apt-get install --no-install-recommends busybox-static`);
  const busybox = readFileSync(BUSYBOX);
  if (hasInterpreter(busybox)) {
    throw new VmError(`${BUSYBOX} is dynamically linked: apt-get install --no-install-recommends busybox-static`);
  }
  const init = readFileSync(join(vmImagesDir, 'init.sh'));
  const hash = createHash('sha256')
    .update(`recipe ${INITRAMFS_RECIPE_VERSION}\0`)
    .update(init)
    .update(busybox)
    .digest('hex');
  const dir = join(cacheRoot(), 'initramfs');
  const file = join(dir, `${hash}.cpio.gz`);
  if (existsSync(file)) return file;

  const dirs = ['bin', 'cr-lab', 'dev', 'mnt', 'proc', 'sys', 'tmp'];
  const archive = newc([
    ...dirs.map((path) => ({ path, mode: S_IFDIR | 0o755 })),
    // The kernel opens /dev/console for init before anything is mounted.
    { path: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { path: 'bin/busybox', mode: S_IFREG | 0o755, data: busybox },
    { path: 'init', mode: S_IFREG | 0o755, data: init },
  ]);
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, gzip(archive));
  await rename(tmp, file);
  return file;
}

/** The per-run archive: /cr-lab/cmd, appended after the base one (the kernel unpacks both). */
export function commandArchive(script: string): Buffer {
  return gzip(
    newc([
      { path: 'cr-lab', mode: S_IFDIR | 0o755 },
      { path: 'cr-lab/cmd', mode: S_IFREG | 0o644, data: Buffer.from(script) },
    ]),
  );
}
