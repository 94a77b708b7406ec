/**
 * Which pages of a task are there, in one ioctl per many ranges:
 * PAGEMAP_SCAN on /proc/PID/pagemap (Linux 6.7+) returns ranges of pages
 * in the categories asked for, where reading pagemap costs an 8-byte entry
 * per page.  Used to find the pages a dump must save (present, not the
 * zero page, not the file's own page under a private file mapping) and,
 * after a pre-dump, the ones written since (soft-dirty).
 */
import fs from 'node:fs';
import { pagemapScan } from '../sys/libc.js';

export const PAGE_IS = { WPALLOWED: 1, WRITTEN: 2, FILE: 4, PRESENT: 8, SWAPPED: 16, PFNZERO: 32, HUGE: 64, SOFT_DIRTY: 128 } as const;

export interface PageRange {
  start: bigint;
  end: bigint;
  /** The PAGE_IS_* categories asked to be returned. */
  categories: number;
}

const REGIONS = 4096;

/**
 * The pages in [start, end) that hold data of their own: present or
 * swapped, not the shared zero page and, with `anonOnly`, not a file's
 * page under a private mapping; with `written`, only those soft-dirty.
 * Each range is reported with its SOFT_DIRTY bit.
 */
export function dataPages(pagemapFd: number, start: bigint, end: bigint, opts: { anonOnly: boolean; written: boolean }): PageRange[] {
  const not = PAGE_IS.PFNZERO | (opts.anonOnly ? PAGE_IS.FILE : 0);
  const out: PageRange[] = [];
  const vec = Buffer.alloc(REGIONS * 24);
  for (let at = start; at < end; ) {
    const { regions, walkEnd } = pagemapScan(pagemapFd, {
      start: at, end, inverted: not, mask: not | (opts.written ? PAGE_IS.SOFT_DIRTY : 0),
      anyOf: PAGE_IS.PRESENT | PAGE_IS.SWAPPED, returned: PAGE_IS.SOFT_DIRTY,
    }, vec);
    for (let i = 0; i < regions; i++) {
      out.push({ start: vec.readBigUInt64LE(i * 24), end: vec.readBigUInt64LE(i * 24 + 8), categories: Number(vec.readBigUInt64LE(i * 24 + 16)) });
    }
    if (walkEnd <= at) break;
    at = walkEnd;
  }
  return out;
}

const PM_PRESENT = 1n << 63n;
const PM_SOFT_DIRTY = 1n << 55n;
let tracking: boolean | undefined;

/**
 * Whether this kernel tracks the pages a task writes (CONFIG_MEM_SOFT_DIRTY).
 * Without it every soft-dirty bit reads 0, and a page written since a
 * pre-dump would pass for one that was not.  A page faulted in is born
 * soft-dirty: among the present pages of our own stack and heap, some have
 * the bit unless the kernel has no such bit.
 */
export function tracksWrittenPages(): boolean {
  if (tracking !== undefined) return tracking;
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  const entries = Buffer.alloc(64 * 8);
  let present = 0;
  let dirty = 0;
  try {
    for (const m of maps.matchAll(/^([0-9a-f]+)-[0-9a-f]+ rw.p .*\[(?:stack|heap)\]$/gm)) {
      const n = fs.readSync(fd, entries, 0, entries.length, Number((BigInt(`0x${m[1]}`) / 4096n) * 8n));
      for (let i = 0; i + 8 <= n; i += 8) {
        const e = entries.readBigUInt64LE(i);
        if (e & PM_PRESENT) present++;
        if (e & PM_PRESENT && e & PM_SOFT_DIRTY) dirty++;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  tracking = present === 0 || dirty > 0;
  return tracking;
}

/** Start tracking the pages a task writes: clear its soft-dirty bits (and write-protect its pages). */
export function clearSoftDirty(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '4');
}
