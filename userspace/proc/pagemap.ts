/**
 * Which pages of a task are there, in one ioctl per many ranges:
 * PAGEMAP_SCAN on /proc/PID/pagemap (Linux 6.7+) returns ranges of pages
 * in the categories asked for, where reading pagemap costs an 8-byte entry
 * per page.  Used to find the pages a dump must save (present, not the
 * zero page, not the file's own page under a private file mapping) and,
 * after a pre-dump, the ones written since (soft-dirty or uffd-wp).
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
/** The regions buffer of every scan, made once (the kernel fills what it returns). */
let vec: Buffer | undefined;

/**
 * The pages in [start, end) that hold data of their own: present or
 * swapped, not the shared zero page and, with `anonOnly`, not a file's
 * page under a private mapping. Each range is reported with the
 * categories in `returned` (what tells a page written since a pre-dump).
 */
export function dataPages(pagemapFd: number, start: bigint, end: bigint, opts: { anonOnly: boolean; returned: number }): PageRange[] {
  const not = PAGE_IS.PFNZERO | (opts.anonOnly ? PAGE_IS.FILE : 0);
  const out: PageRange[] = [];
  vec ??= Buffer.allocUnsafeSlow(REGIONS * 24);
  for (let at = start; at < end; ) {
    const { regions, walkEnd } = pagemapScan(pagemapFd, {
      start: at, end, inverted: not, mask: not, anyOf: PAGE_IS.PRESENT | PAGE_IS.SWAPPED, returned: opts.returned,
    }, vec);
    for (let i = 0; i < regions; i++) {
      out.push({ start: vec.readBigUInt64LE(i * 24), end: vec.readBigUInt64LE(i * 24 + 8), categories: Number(vec.readBigUInt64LE(i * 24 + 16)) });
    }
    if (walkEnd <= at) break;
    at = walkEnd;
  }
  return out;
}

const PM_SCAN_WP_MATCHING = 1;
/** Where user space ends on x86-64 (TASK_SIZE_MAX): a scan over [0, this) covers every mapping. */
const USER_END = 0x7ffffffff000n;

/**
 * Write-protect every page of the task's mappings registered with an
 * asynchronous write-protecting userfaultfd, present or not: from here on
 * the first write to each clears its uffd-wp bit, and PAGE_IS_WRITTEN
 * reports it (mappings not so registered are skipped).
 */
export function writeProtect(pid: number): void {
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    pagemapScan(fd, { start: 0n, end: USER_END, inverted: 0, mask: 0, anyOf: 0, returned: 0, flags: PM_SCAN_WP_MATCHING }, Buffer.alloc(0));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * How a pre-dump learns which pages a task writes after it: the kernel's
 * soft-dirty bits (CONFIG_MEM_SOFT_DIRTY: cleared through clear_refs, read
 * in pagemap), or, where it has none, a userfaultfd in asynchronous
 * write-protect mode (Linux 6.7+) that the task holds from the pre-dump on:
 * its pages are write-protected and the first write to each clears the
 * page's uffd-wp bit, with no fault reaching anyone.
 */
export type WriteTracking = 'soft-dirty' | 'uffd-wp';

export interface WrittenTest {
  /** The PAGEMAP_SCAN categories that tell it. */
  returned: number;
  /** Whether a range with these categories was left alone since the pre-dump. */
  clean(categories: number): boolean;
  /** The same, for a /proc/PID/pagemap entry. */
  cleanEntry(entry: bigint): boolean;
}

/** Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst). */
export const PM_PRESENT = 1n << 63n;
export const PM_SWAPPED = 1n << 62n;
export const PM_FILE = 1n << 61n;
/** The page is mapped by this process alone: no fork shares it copy-on-write. */
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
const PM_SOFT_DIRTY = 1n << 55n;
const PM_UFFD_WP = 1n << 57n;
/** The page frame (present) or swap entry (swapped) of an entry. */
export const PM_FRAME = (1n << 55n) - 1n;

export const WRITTEN: Record<WriteTracking, WrittenTest> = {
  'soft-dirty': {
    returned: PAGE_IS.SOFT_DIRTY,
    clean: (c) => !(c & PAGE_IS.SOFT_DIRTY),
    cleanEntry: (e) => !(e & PM_SOFT_DIRTY),
  },
  // Only a page still write-protected in a mapping still registered is
  // clean: a mapping made since, or one the task's own close of the
  // descriptor unregistered, counts as written throughout.
  'uffd-wp': {
    returned: PAGE_IS.WRITTEN | PAGE_IS.WPALLOWED,
    clean: (c) => !!(c & PAGE_IS.WPALLOWED) && !(c & PAGE_IS.WRITTEN),
    cleanEntry: (e) => !!(e & PM_UFFD_WP),
  },
};

let tracking: WriteTracking | null | undefined;

/** Whether this kernel has soft-dirty bits: a page faulted in is born soft-dirty, so some of our present stack and heap pages have the bit. */
function softDirty(): boolean {
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
  return present === 0 || dirty > 0;
}

/**
 * How this kernel lets a pre-dump track the pages a task writes, or null
 * where it cannot. Asynchronous write protection came with PAGEMAP_SCAN
 * (6.7), which every dump needs: a kernel with userfaultfd (its sysctl) has
 * it, unless built without CONFIG_PTE_MARKER_UFFD_WP (a pre-dump there fails
 * in one line naming UFFDIO_API). Told without a system call, so that
 * `cr check` loads no native code.
 */
export function writeTracking(): WriteTracking | null {
  tracking ??= softDirty() ? 'soft-dirty' : hasUserfaultfd() ? 'uffd-wp' : null;
  return tracking;
}

/** Whether the kernel has userfaultfd(2) (CONFIG_USERFAULTFD, which brings its sysctl). */
export const hasUserfaultfd = (): boolean => fs.existsSync('/proc/sys/vm/unprivileged_userfaultfd');

/** Start tracking the pages a task writes: clear its soft-dirty bits (and write-protect its pages). */
export function clearSoftDirty(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '4');
}
