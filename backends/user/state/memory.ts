/**
 * Memory: every VMA with its protection, backing and may-write bit, the mm
 * layout fields (brk, stack, argv/env, auxv, exe), the contents of every
 * private page that is not simply the backing file's, and each shmem
 * object (shared anonymous memory, memfd) once, whole, with the first task
 * that maps it.
 *
 * A child's mappings that it still has from its parent (same range, same
 * backing) are marked inherited: restore forks the child from its parent
 * once the parent's memory is in place (tree.ts), so the pages the two
 * still share are shared again, copy-on-write, and only what differs is
 * saved: the child's own copies (`pages`) and the pages the parent has and
 * the child had not (`drop`). Sharing is told by the physical page each
 * address maps (/proc/PID/pagemap, readable as root), as CRIU does.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../../userspace/errors.js';
import { injectFault } from '../../../userspace/fault.js';
import { dataPages, hasUserfaultfd, PM_FILE, PM_FRAME, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SWAPPED, WRITTEN, type WrittenTest } from '../../../userspace/proc/pagemap.js';
import { type SmapsEntry, procMaps, procStat, statField } from '../../../userspace/proc/parse.js';
import { nativeBin } from '../../../userspace/paths.js';
import { ARCH_MAP_VDSO_64, MAP, NR, O, PAGE_SIZE, PR, PROT, SHM, UFFD } from '../../../userspace/sys/constants.js';
import { close, errnoName, fcntl, rawSyscall, SysError } from '../../../userspace/sys/libc.js';
import { imageFile, readImage } from '../image.js';
import { readInventory } from '../inventory.js';
import { tracerDup } from './fdtype.js';
import { defineState, hex, type DumpTask, type RestoreTask } from './module.js';
import { F_GET_SEALS, MFD_ALLOW_SEALING, MFD_CLOEXEC, memfdName, sealMemfd } from './memfd.js';
import { ownNamespace } from './namespaces.js';

type VmaKind = 'ANON_PRIVATE' | 'ANON_SHARED' | 'FILE_PRIVATE' | 'FILE_SHARED' | 'VDSO' | 'VVAR' | 'SYSV_SHM';

export interface Vma {
  start: bigint;
  end: bigint;
  prot: number;
  kind: VmaKind;
  growsdown: boolean;
  path: string;
  pgoff: bigint;
  name: string;
  shmem_id: bigint;
  shmid: number;
  may_write: boolean;
  inherited: boolean;
  advice: string[];
}

/** At dump time only: the mapped file's device and inode, to tell a replaced file from the parent's. */
type DumpVma = Vma & { file: string };

interface MmLayout {
  start_code: bigint; end_code: bigint; start_data: bigint; end_data: bigint;
  start_brk: bigint; brk: bigint; start_stack: bigint;
  arg_start: bigint; arg_end: bigint; env_start: bigint; env_end: bigint;
  auxv: Buffer;
  exe: string;
}

interface PageRun {
  vaddr: bigint;
  nr_pages: number;
  /** Unchanged since the pre-dump the image builds on: the data is in the parent's pages. */
  in_parent: boolean;
}

/** Restore: private pages of the task and where their data is (this image's pages file, or a parent's). */
interface PageSource {
  vaddr: bigint;
  nr_pages: number;
  file: string;
  offset: number;
}

interface ShmemRun {
  pgoff: bigint;
  nr_pages: number;
}

interface ShmemObject {
  id: bigint;
  size: bigint;
  memfd: string;
  seals: number;
  runs: ShmemRun[];
}

export interface MmImage {
  layout: MmLayout;
  vmas: Vma[];
  pages: PageRun[];
  drop: PageRun[];
  shmem: ShmemObject[];
  shared_pages: bigint;
  /** Where the pages file is; not part of the image message. */
  pagesFile: string;
  /** Where every private page's data is, the chain of pre-dumps followed; not part of the image message. */
  sources: PageSource[];
}

const PAGE = BigInt(PAGE_SIZE);
/** Largest run of pages read or written in one go. */
const CHUNK_PAGES = 4096;
let chunk: Buffer | undefined;
/**
 * The one buffer of CHUNK_PAGES pages every copy goes through, made on
 * first use and never cleared: each copy fills what it uses. (A fresh
 * zeroed 16 MiB for each task's private pages and another for its shmem
 * cost a dump of 32 small processes a third of its frozen time.)
 */
const chunkBuffer = (): Buffer => (chunk ??= Buffer.allocUnsafeSlow(CHUNK_PAGES * PAGE_SIZE));
let pagemapChunk: Buffer | undefined;
/** The pagemap entries of one chunk, for the same reason. */
const pagemapBuffer = (): Buffer => (pagemapChunk ??= Buffer.allocUnsafeSlow(CHUNK_PAGES * 8));
const TASK_SIZE = 0x7ffffffff000n;
const HUGETLBFS_MAGIC = 0x958458f6;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const MADV = { DONTNEED: 4, POPULATE_WRITE: 23, MERGEABLE: 12, HUGEPAGE: 14, NOHUGEPAGE: 15, DONTDUMP: 16, WIPEONFORK: 18, DONTFORK: 10 } as const;
/** VmFlags set by madvise(2) that restore sets again (mlock's "lo"/"lf" apart). */
const ADVICE: Record<string, number> = { dc: MADV.DONTFORK, wf: MADV.WIPEONFORK, dd: MADV.DONTDUMP, hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE };
const MLOCK_ONFAULT = 1;
const PRIVATE_KINDS = new Set<VmaKind>(['ANON_PRIVATE', 'FILE_PRIVATE']);

const mapFiles = (pid: number, start: bigint, end: bigint) => `/proc/${pid}/map_files/${start.toString(16)}-${end.toString(16)}`;

/** How a /proc/PID/smaps entry is saved and rebuilt; refuses what this backend cannot. */
function classify(task: DumpTask, m: SmapsEntry): DumpVma | null {
  const pid = task.pid;
  const prot = (m.read ? PROT.READ : 0) | (m.write ? PROT.WRITE : 0) | (m.exec ? PROT.EXEC : 0);
  const base = {
    start: m.start, end: m.end, prot, growsdown: m.path === '[stack]', path: '', pgoff: m.offset / PAGE, name: '', shmem_id: 0n, shmid: 0,
    may_write: m.vmFlags.has('mw'), inherited: false, advice: ['dc', 'wf', 'dd', 'hg', 'nh', 'lo', 'lf'].filter((f) => m.vmFlags.has(f)), file: `${m.dev}:${m.inode}`,
  };
  const where = () => `pid ${pid} mapping ${hex(m.start)}-${hex(m.end)}`;
  if (m.path === '[vsyscall]') return null;
  // The kernel's own, with the flags it gives them.
  if (m.path === '[vdso]') return { ...base, kind: 'VDSO', name: m.path, advice: [] };
  if (m.path === '[vvar]' || m.path === '[vvar_vclock]') return { ...base, kind: 'VVAR', name: m.path, advice: [] };
  if (m.vmFlags.has('ht')) throw new CrError(`${where()}: hugetlb memory is not supported`);
  if (m.path === '' || m.path.startsWith('[')) {
    return { ...base, kind: m.shared ? 'ANON_SHARED' : 'ANON_PRIVATE', name: m.path, pgoff: 0n };
  }
  // Shared anonymous memory is a deleted file on the internal shmem mount,
  // one object (inode) however many tasks share it after fork.
  if (m.shared && m.path === '/dev/zero (deleted)') return { ...base, kind: 'ANON_SHARED', name: m.path, shmem_id: m.inode };
  // A SysV segment (maps inode: its id) is saved and recreated with its namespace (ipc.ts).
  if (m.path.startsWith('/SYSV')) {
    const segment = `SysV shm segment ${m.path.slice(1, 13)} (id ${m.inode})`;
    if (!ownNamespace(pid, 'ipc')) throw new CrError(`${where()}: ${segment} of the host's IPC namespace is not supported`);
    return { ...base, kind: 'SYSV_SHM', name: m.path, shmid: Number(m.inode) };
  }
  // A memfd is shmem too, mapped shared or private; memfd.ts reopens the same object for descriptors.
  if (m.path.startsWith('/memfd:')) return { ...base, kind: m.shared ? 'ANON_SHARED' : 'FILE_PRIVATE', name: m.path, shmem_id: m.inode };
  if (m.path.endsWith(' (deleted)')) throw new CrError(`${where()}: the mapped file ${m.path} was deleted`);
  return { ...base, kind: m.shared ? 'FILE_SHARED' : 'FILE_PRIVATE', path: m.path };
}

/** The pieces of the SysV attachment starting at `base` (mprotect may have split it). */
const attachment = (vmas: Vma[], shmid: number, base: bigint) =>
  vmas.filter((o) => o.kind === 'SYSV_SHM' && o.shmid === shmid && o.start - o.pgoff * PAGE === base);

/** One shmat maps a whole segment: refuse attachments that are no longer whole. */
function checkSysvAttachments(task: DumpTask, vmas: Vma[]): void {
  for (const v of vmas) {
    if (v.kind !== 'SYSV_SHM') continue;
    const base = v.start - v.pgoff * PAGE;
    const pieces = attachment(vmas, v.shmid, base);
    // The segment's size: map_files leads to its shmem file.
    const size = BigInt(fs.statSync(mapFiles(task.tracee.pid, pieces[0].start, pieces[0].end)).size);
    const mapped = pieces.reduce((n, o) => n + (o.end - o.start), 0n);
    if (pieces[0].start !== base || mapped !== ((size + PAGE - 1n) / PAGE) * PAGE) {
      throw new CrError(`pid ${task.pid} mapping ${hex(v.start)}-${hex(v.end)}: SysV shm id ${v.shmid} attached but partly unmapped is not supported`);
    }
  }
}

/**
 * Attach a SysV segment where it was: ipc.ts recreated it with its id and
 * contents. The first piece of an attachment attaches it all, with the
 * widest protection its pieces have; each piece then gets its own.
 */
function attachSysv(task: RestoreTask, v: Vma, vmas: Vma[]): void {
  if (v.pgoff === 0n) {
    const prot = attachment(vmas, v.shmid, v.start).reduce((p, o) => p | o.prot, 0);
    const flags = (prot & PROT.WRITE ? 0 : SHM.RDONLY) | (prot & PROT.EXEC ? SHM.EXEC : 0);
    // No SHM_REMAP: the placeholder's mappings are gone and nothing may be replaced.
    const at = task.tracee.syscallOk(`shmat id ${v.shmid} at ${hex(v.start)}`, NR.shmat, v.shmid, v.start, flags);
    if (at !== v.start) throw new CrError(`pid ${task.pid}: SysV shm id ${v.shmid} attached at ${hex(at)}, not ${hex(v.start)}`);
  }
  task.tracee.syscallOk('mprotect', NR.mprotect, v.start, v.end - v.start, v.prot);
}

/**
 * Pagemap entries as pairs of 32-bit words (low, high): every page of every
 * inherited mapping is looked at, and a BigInt per entry cost more than the
 * copy of the pages that differ. The bits of the high word:
 */
const HIGH = {
  PRESENT: Number(PM_PRESENT >> 32n), SWAPPED: Number(PM_SWAPPED >> 32n), FILE: Number(PM_FILE >> 32n), FRAME: Number(PM_FRAME >> 32n),
} as const;

const entryWords = (b: Buffer, n: number) => new Uint32Array(b.buffer, b.byteOffset, n * 2);

/** Whether private page `i` of `words` (entryWords) must be saved. */
function mustSave(kind: VmaKind, words: Uint32Array, i: number): boolean {
  const high = words[2 * i + 1]!;
  if (!(high & (HIGH.PRESENT | HIGH.SWAPPED))) return false;
  return kind === 'ANON_PRIVATE' || !(high & HIGH.FILE); // of a file mapping, only the private copies
}

/** Whether entries `i` of `a` and `b` are the same physical page (or swap slot); unknown without the frame numbers. */
function samePage(a: Uint32Array, b: Uint32Array, i: number): boolean {
  const ha = a[2 * i + 1]!;
  const hb = b[2 * i + 1]!;
  if ((ha ^ hb) & (HIGH.PRESENT | HIGH.SWAPPED)) return false;
  const low = a[2 * i]!;
  return (low !== 0 || (ha & HIGH.FRAME) !== 0) && low === b[2 * i] && (ha & HIGH.FRAME) === (hb & HIGH.FRAME);
}

/**
 * Whether parent mapping `p` backs the same memory as child mapping `v`
 * where they overlap: the kind, the file (or shmem object, segment), the
 * offset into it and the may-write bit must agree.
 */
function compatible(p: Vma, v: Vma): boolean {
  const linear = (x: Vma) => x.pgoff - x.start / PAGE;
  return p.kind === v.kind && p.path === v.path && p.name === v.name && p.shmem_id === v.shmem_id && p.shmid === v.shmid &&
    p.growsdown === v.growsdown && p.may_write === v.may_write && (v.kind === 'ANON_PRIVATE' || linear(p) === linear(v));
}

/** Whether compatible parent mappings cover all of `v`: a fork left it to the child as it is. */
function coveredByParent(v: Vma, parent: Vma[]): boolean {
  let at = v.start;
  for (const p of parent) {
    if (p.end <= at || p.start >= v.end) continue;
    if (p.start > at || !compatible(p, v)) return false;
    at = p.end;
    if (at >= v.end) return true;
  }
  return false;
}

/** Mark the mappings a child still has from its parent; the vDSO only if all of it is where the parent's is. */
function markInherited(vmas: DumpVma[], parent: DumpVma[]): void {
  for (const v of vmas) {
    if (v.kind === 'VDSO' || v.kind === 'VVAR') v.inherited = parent.some((p) => p.start === v.start && p.end === v.end && p.name === v.name);
    else v.inherited = coveredByParent(v, parent) && parent.filter((p) => p.start < v.end && p.end > v.start).every((p) => p.file === v.file);
  }
  const special = vmas.filter((v) => v.kind === 'VDSO' || v.kind === 'VVAR');
  if (special.some((v) => !v.inherited) || special.length !== parent.filter((p) => p.kind === 'VDSO' || p.kind === 'VVAR').length) {
    for (const v of special) v.inherited = false;
  }
}

/** Runs of page data each task's dump has written: CR_FAULT=dump-pages:N fails after the N-th. */
const pageWrites = new WeakMap<DumpTask, number>();

/** Append a run of page data to the pages file. */
function writePages(task: DumpTask, fd: number, buf: Buffer): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done);
  const n = (pageWrites.get(task) ?? 0) + 1;
  pageWrites.set(task, n);
  injectFault('dump-pages', n);
}

/** Append a run of pages to `runs`, merging it with the last one if they touch. */
function addRun(runs: PageRun[], from: number, vaddr: bigint, n: number, in_parent = false): void {
  const last = runs.length > from ? runs.at(-1) : undefined;
  if (last && last.in_parent === in_parent && last.vaddr + BigInt(last.nr_pages) * PAGE === vaddr) last.nr_pages += n;
  else runs.push({ vaddr, nr_pages: n, in_parent });
}

interface SavedPages {
  pages: PageRun[];
  drop: PageRun[];
  shared: bigint;
}

/** Both bits are in an entry's high word. */
const EXCLUSIVE_HIGH = Number((PM_PRESENT | PM_MMAP_EXCLUSIVE) >> 32n);

/** Whether pages `from` to `from + n` of `words` (entryWords) are in memory and mapped by this process alone. */
function exclusive(words: Uint32Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if ((words[2 * i + 1]! & EXCLUSIVE_HIGH) >>> 0 !== EXCLUSIVE_HIGH) return false;
  return true;
}

/**
 * Copy `n` pages at `vaddr` from the task into the pages file: a chunk
 * whose pages the task alone maps with one copy (readMemPinned), any
 * other through /proc/PID/mem, which leaves copy-on-write sharing alone.
 * `known`: their pagemap entries, where the caller has just read them.
 */
function savePages(task: DumpTask, pagemap: number, out: number, data: Buffer, vaddr: bigint, n: number, known?: { words: Uint32Array; from: number }): void {
  const entries = pagemapBuffer();
  for (let done = 0; done < n; ) {
    const k = Math.min(CHUNK_PAGES, n - done);
    const at = vaddr + BigInt(done) * PAGE;
    const into = data.subarray(0, k * PAGE_SIZE);
    if (!known) fs.readSync(pagemap, entries, 0, k * 8, Number((at / PAGE) * 8n));
    const alone = known ? exclusive(known.words, known.from + done, k) : exclusive(entryWords(entries, k), 0, k);
    const read = alone ? task.tracee.readMemPinned(Number(at), into.length, into) : task.tracee.readMem(Number(at), into.length, into);
    writePages(task, out, read);
    done += k;
  }
  task.stats.pagesWritten += n;
}

/**
 * The addresses whose pages the pre-dump chain holds for a task, as sorted
 * [start, end) ranges: every run of its parent's mm image, its own and
 * those it leaves in its own parent. A page the tasks did not write since
 * the pre-dump but that the chain does not hold (one that came in without a
 * write, e.g. a huge page made from small ones) must be saved again.
 */
type Coverage = [bigint, bigint][];

/** What a dump on a pre-dump knows: the pages the chain holds, and how a page written since shows. */
interface Chain {
  cover: Coverage;
  written: WrittenTest;
}

function chainCoverage(prevImagesDir: string, pid: number): Coverage {
  const runs = readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(prevImagesDir, 'mm', pid).pages;
  const ranges = runs.map((r): [bigint, bigint] => [r.vaddr, r.vaddr + BigInt(r.nr_pages) * PAGE]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const merged: Coverage = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1]) last[1] = r[1] > last[1] ? r[1] : last[1];
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

/** Split the @n pages at @start into pieces [vaddr, pages, held by the chain]. */
function byCoverage(cover: Coverage, start: bigint, n: number): [bigint, number, boolean][] {
  const end = start + BigInt(n) * PAGE;
  const out: [bigint, number, boolean][] = [];
  let at = start;
  for (const [from, to] of cover) {
    if (to <= at) continue;
    if (from >= end) break;
    if (from > at) out.push([at, Number((from - at) / PAGE), false]);
    const upTo = to < end ? to : end;
    const from2 = from > at ? from : at;
    out.push([from2, Number((upTo - from2) / PAGE), true]);
    at = upTo;
  }
  if (at < end) out.push([at, Number((end - at) / PAGE), false]);
  return out;
}

/**
 * The pages of a private mapping that it does not share with a parent:
 * those that hold data of their own (present or swapped, not the zero
 * page, of a file mapping only the task's copies), which PAGEMAP_SCAN
 * finds range by range. With `chain`, those not written since the
 * pre-dump that the chain holds go as runs in the parent.
 */
function saveOwnMapping(task: DumpTask, pagemap: number, vma: Vma, chain: Chain | undefined, out: number, data: Buffer, saved: SavedPages): void {
  const first = saved.pages.length;
  for (const r of dataPages(pagemap, vma.start, vma.end, { anonOnly: vma.kind === 'FILE_PRIVATE', returned: chain?.written.returned ?? 0 })) {
    const n = Number((r.end - r.start) / PAGE);
    const clean = chain?.written.clean(r.categories);
    for (const [vaddr, k, inParent] of clean ? byCoverage(chain!.cover, r.start, n) : [[r.start, n, false] as const]) {
      addRun(saved.pages, first, vaddr, k, inParent);
      if (!inParent) savePages(task, pagemap, out, data, vaddr, k);
    }
  }
}

/**
 * Save the private pages of every private mapping: all that must be saved,
 * but in an inherited one only those that are not the very page the
 * parent maps there; note the parent's pages this task does not have.
 * With `chain` (the pre-dump this dump builds on tracks the pages the
 * task writes, and the chain holds these pages), a page not written since
 * goes as a run in the parent.
 */
function dumpPrivatePages(task: DumpTask, vmas: Vma[], parentPid: number | undefined, chain: Chain | undefined, out: number): SavedPages {
  const pagemap = fs.openSync(`/proc/${task.tracee.pid}/pagemap`, 'r');
  const parentMap = parentPid === undefined ? -1 : fs.openSync(`/proc/${parentPid}/pagemap`, 'r');
  const saved: SavedPages = { pages: [], drop: [], shared: 0n };
  const entries = Buffer.alloc(CHUNK_PAGES * 8);
  const theirs = Buffer.alloc(CHUNK_PAGES * 8);
  const data = chunkBuffer();
  try {
    for (const vma of vmas) {
      if (!PRIVATE_KINDS.has(vma.kind)) continue;
      const inherited = vma.inherited && parentMap >= 0;
      if (!inherited) {
        saveOwnMapping(task, pagemap, vma, chain, out, data, saved);
        continue;
      }
      // Runs never span two mappings.
      const firstPage = saved.pages.length;
      const firstDrop = saved.drop.length;
      for (let at = vma.start; at < vma.end; ) {
        const n = Number((vma.end - at) / PAGE < CHUNK_PAGES ? (vma.end - at) / PAGE : BigInt(CHUNK_PAGES));
        fs.readSync(pagemap, entries, 0, n * 8, Number((at / PAGE) * 8n));
        fs.readSync(parentMap, theirs, 0, n * 8, Number((at / PAGE) * 8n));
        const mine = entryWords(entries, n);
        const parents = entryWords(theirs, n);
        const own = (i: number) => {
          if (!mustSave(vma.kind, mine, i)) return false;
          if (samePage(mine, parents, i)) {
            saved.shared++;
            return false;
          }
          return true;
        };
        const clean = (i: number) => !!chain && chain.written.cleanEntry(entries.readBigUInt64LE(i * 8)) &&
          byCoverage(chain.cover, at + BigInt(i) * PAGE, 1)[0]![2];
        for (let i = 0; i < n; ) {
          if (!mustSave(vma.kind, mine, i) && mustSave(vma.kind, parents, i)) {
            addRun(saved.drop, firstDrop, at + BigInt(i) * PAGE, 1);
          }
          if (!own(i)) {
            i++;
            continue;
          }
          let j = i + 1;
          while (j < n && own(j) && clean(j) === clean(i)) j++;
          const vaddr = at + BigInt(i) * PAGE;
          addRun(saved.pages, firstPage, vaddr, j - i, clean(i));
          if (!clean(i)) savePages(task, pagemap, out, data, vaddr, j - i, { words: mine, from: i });
          i = j;
        }
        at += BigInt(n) * PAGE;
      }
    }
  } finally {
    fs.closeSync(pagemap);
    if (parentMap >= 0) fs.closeSync(parentMap);
  }
  return saved;
}

/** lseek(2) with SEEK_DATA/SEEK_HOLE, which Node does not offer; null past the last data. */
function seek(fd: number, offset: number, whence: number): number | null {
  try {
    return rawSyscall(NR.lseek, fd, offset, whence);
  } catch (err) {
    if ((err as SysError).code === 'ENXIO') return null;
    throw err;
  }
}

/**
 * Save every shmem object this task is the first to map: through the
 * object's own file (map_files), so pages no mapping has touched, or that
 * are swapped out, are saved as well; only the ranges that hold data.
 */
function dumpShmemObjects(task: DumpTask, vmas: Vma[], out: number): ShmemObject[] {
  const objects: ShmemObject[] = [];
  const buf = chunkBuffer();
  for (const v of vmas) {
    if (!v.shmem_id || task.shared.shmem.has(v.shmem_id)) continue;
    task.shared.shmem.add(v.shmem_id);
    const path = mapFiles(task.tracee.pid, v.start, v.end);
    if (fs.statfsSync(path).type === HUGETLBFS_MAGIC) throw new CrError(`pid ${task.pid} mapping ${hex(v.start)}-${hex(v.end)}: a hugetlb memfd is not supported`);
    const fd = fs.openSync(path, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const memfd = v.name.startsWith('/memfd:') ? memfdName(v.name) : '';
      const obj: ShmemObject = { id: v.shmem_id, size: BigInt(size), memfd, seals: memfd ? fcntl(fd, F_GET_SEALS) : 0, runs: [] };
      for (let data = seek(fd, 0, SEEK_DATA); data !== null && data < size; data = seek(fd, data, SEEK_DATA)) {
        const hole = Math.min(seek(fd, data, SEEK_HOLE) ?? size, size);
        const pages = Math.ceil((hole - data) / PAGE_SIZE);
        for (let done = 0; done < pages; ) {
          const n = Math.min(CHUNK_PAGES, pages - done);
          const chunk = buf.subarray(0, n * PAGE_SIZE).fill(0);
          fs.readSync(fd, chunk, 0, Math.min(chunk.length, size - data - done * PAGE_SIZE), data + done * PAGE_SIZE);
          writePages(task, out, chunk);
          task.stats.pagesWritten += n;
          done += n;
        }
        obj.runs.push({ pgoff: BigInt(data / PAGE_SIZE), nr_pages: pages });
        data = data + pages * PAGE_SIZE;
      }
      objects.push(obj);
    } finally {
      fs.closeSync(fd);
    }
  }
  return objects;
}

function layoutOf(task: DumpTask, brk: bigint): MmLayout {
  const pid = task.tracee.pid;
  // an exited leader's shows no memory: a live thread's does
  const stat = task.entry.leader_exited ? procStat(pid) : task.stat;
  const f = (n: number) => statField(stat, n);
  let exe: string;
  try {
    exe = fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    throw new CrError(`pid ${task.pid}: cannot read its executable (a kernel thread?)`);
  }
  if (exe.endsWith(' (deleted)')) throw new CrError(`pid ${task.pid}: its executable ${exe} was deleted`);
  return {
    start_code: f(26), end_code: f(27), start_stack: f(28),
    start_data: f(45), end_data: f(46), start_brk: f(47), brk,
    arg_start: f(48), arg_end: f(49), env_start: f(50), env_end: f(51),
    auxv: fs.readFileSync(`/proc/${pid}/auxv`),
    exe,
  };
}

/** struct prctl_mm_map for PR_SET_MM_MAP. */
function prctlMmMap(l: MmLayout, auxvAddr: number, exeFd: number): Buffer {
  const b = Buffer.alloc(104);
  [l.start_code, l.end_code, l.start_data, l.end_data, l.start_brk, l.brk, l.start_stack,
    l.arg_start, l.arg_end, l.env_start, l.env_end, BigInt(auxvAddr)].forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
  b.writeUInt32LE(l.auxv.length, 96);
  b.writeInt32LE(exeFd, 100);
  return b;
}

/** mm->saved_auxv on x86_64, 2 * (AT_VECTOR_SIZE_ARCH + AT_VECTOR_SIZE_BASE + 1) words: the most PR_SET_MM_MAP takes. */
const SAVED_AUXV_BYTES = 2 * (3 + 22 + 1) * 8;

function checkVmas(file: string, vmas: Vma[]): void {
  let prevEnd = 0n;
  for (const v of vmas) {
    if (v.start % PAGE || v.end % PAGE || v.start >= v.end || v.start < prevEnd || v.end > TASK_SIZE) {
      throw new CrError(`${file}: corrupted image (bad mapping ${hex(v.start)}-${hex(v.end)})`);
    }
    if (v.shmem_id && v.kind !== 'ANON_SHARED' && !(v.kind === 'FILE_PRIVATE' && v.name.startsWith('/memfd:'))) {
      throw new CrError(`${file}: corrupted image (shmem object on a ${v.kind} mapping)`);
    }
    prevEnd = v.end;
  }
}

/** Inherited mappings must be covered by the parent's, as at dump time; the root inherits nothing. */
function checkInherited(dir: string, file: string, ppid: number, vmas: Vma[]): void {
  if (!vmas.some((v) => v.inherited)) return;
  if (!fs.existsSync(imageFile(dir, 'mm', ppid))) throw new CrError(`${file}: corrupted image (mappings inherited from a parent not in the image)`);
  const parent = readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(dir, 'mm', ppid).vmas;
  for (const v of vmas) {
    const ok = v.kind === 'VDSO' || v.kind === 'VVAR' ? parent.some((p) => p.start === v.start && p.end === v.end && p.name === v.name) : coveredByParent(v, parent);
    if (v.inherited && !ok) throw new CrError(`${file}: corrupted image (mapping ${hex(v.start)}-${hex(v.end)} is not the parent's to inherit)`);
  }
}

const within = (vmas: Vma[], vaddr: bigint, pages: number, ok: (v: Vma) => boolean) =>
  vmas.some((v) => ok(v) && v.start <= vaddr && vaddr + BigInt(pages) * PAGE <= v.end);

/**
 * The pages file must hold exactly the listed pages (page data is checked
 * by its size, not by a checksum: a pass over it would cost what the copy
 * costs).
 */
function checkPages(img: Omit<MmImage, 'sources'>, file: string): void {
  let total = 0;
  for (const run of img.pages) {
    if (run.nr_pages <= 0 || !within(img.vmas, run.vaddr, run.nr_pages, (v) => PRIVATE_KINDS.has(v.kind))) {
      throw new CrError(`${file}: corrupted image (pages at ${hex(run.vaddr)} lie outside any saved mapping)`);
    }
    if (!run.in_parent) total += run.nr_pages * PAGE_SIZE;
  }
  for (const run of img.drop) {
    if (run.nr_pages <= 0 || !within(img.vmas, run.vaddr, run.nr_pages, (v) => PRIVATE_KINDS.has(v.kind) && v.inherited)) {
      throw new CrError(`${file}: corrupted image (pages to drop at ${hex(run.vaddr)} lie outside any inherited mapping)`);
    }
  }
  for (const obj of img.shmem) {
    const pages = (obj.size + PAGE - 1n) / PAGE;
    for (const run of obj.runs) {
      if (run.nr_pages <= 0 || run.pgoff + BigInt(run.nr_pages) > pages) throw new CrError(`${file}: corrupted image (shmem object ${obj.id} pages beyond its size)`);
      total += run.nr_pages * PAGE_SIZE;
    }
  }
  let size: number;
  try {
    size = fs.statSync(img.pagesFile).size;
  } catch {
    throw new CrError(`${img.pagesFile}: missing pages file`);
  }
  if (size !== total) throw new CrError(`${img.pagesFile}: truncated or corrupted (${size} bytes, expected ${total})`);
}

/** A pre-dump this image builds on (DIR/parent), as a directory. */
export function parentDir(dir: string): string | undefined {
  const link = path.join(dir, 'parent');
  return fs.existsSync(link) ? fs.realpathSync(link) : undefined;
}

const MAX_CHAIN = 64;

/**
 * Where the data of every saved private page of task `pid` is: this
 * image's pages file for its own runs, and for a run in the parent, the
 * pre-dumps' pages up the chain (each checked as this one).
 */
function pageSources(dir: string, pid: number, runs: PageRun[], depth = 0): PageSource[] {
  const own: PageSource[] = [];
  const wanted: PageRun[] = [];
  let offset = 0;
  for (const run of runs) {
    if (run.in_parent) {
      wanted.push(run);
      continue;
    }
    own.push({ vaddr: run.vaddr, nr_pages: run.nr_pages, file: imageFile(dir, 'pages', pid), offset });
    offset += run.nr_pages * PAGE_SIZE;
  }
  if (!wanted.length) return own;
  const parent = parentDir(dir);
  if (!parent) throw new CrError(`${imageFile(dir, 'mm', pid)}: pages unchanged since a pre-dump, but its parent ${path.join(dir, 'parent')} is gone`);
  if (depth === MAX_CHAIN) throw new CrError(`${dir}: a chain of more than ${MAX_CHAIN} pre-dumps`);
  const file = imageFile(parent, 'mm', pid);
  const img = { ...readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(parent, 'mm', pid), pagesFile: imageFile(parent, 'pages', pid) };
  checkPages(img, file);
  const theirs = pageSources(parent, pid, img.pages, depth + 1).sort((a, b) => (a.vaddr < b.vaddr ? -1 : 1));
  for (const w of wanted) {
    let at = w.vaddr;
    const end = w.vaddr + BigInt(w.nr_pages) * PAGE;
    for (const t of theirs) {
      const tEnd = t.vaddr + BigInt(t.nr_pages) * PAGE;
      if (tEnd <= at || t.vaddr >= end) continue;
      if (t.vaddr > at) break;
      const upTo = tEnd < end ? tEnd : end;
      own.push({ vaddr: at, nr_pages: Number((upTo - at) / PAGE), file: t.file, offset: t.offset + Number(at - t.vaddr) });
      at = upTo;
      if (at === end) break;
    }
    if (at !== end) throw new CrError(`${imageFile(dir, 'mm', pid)}: the page at ${hex(at)} is in no image of the chain of pre-dumps`);
  }
  return own;
}

/** The address ranges the image maps, for choosing where restore can work meanwhile. */
export function mappedRanges(dir: string, pid: number): [bigint, bigint][] {
  return readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(dir, 'mm', pid).vmas.map((v) => [v.start, v.end]);
}

/** [start, end) minus every range in `keep`. */
function subtract(start: bigint, end: bigint, keep: Vma[]): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  let at = start;
  for (const k of keep) {
    if (k.end <= at || k.start >= end) continue;
    if (k.start > at) out.push([at, k.start]);
    at = k.end;
  }
  if (at < end) out.push([at, end]);
  return out;
}

/**
 * Create a shmem object this task is the first to map, with its size and
 * contents, and return a descriptor of it in the task: a memfd by its
 * name, shared anonymous memory as mmap makes it (then kept by its file).
 * The contents go in through that file, from here, not through any mapping.
 */
function createShmem(task: RestoreTask, obj: ShmemObject, pages: number, pagesAt: number): number {
  const { tracee, inj } = task;
  inj.reset();
  let fd: number;
  if (obj.memfd) {
    fd = Number(tracee.syscallOk(`memfd_create ${obj.memfd}`, NR.memfd_create, inj.putString(obj.memfd), MFD_ALLOW_SEALING | MFD_CLOEXEC));
    tracee.syscallOk(`ftruncate memfd ${obj.memfd}`, NR.ftruncate, fd, obj.size);
  } else {
    const at = tracee.syscallOk('mmap shared anonymous memory', NR.mmap, 0, obj.size, PROT.READ | PROT.WRITE, MAP.SHARED | MAP.ANONYMOUS, -1, 0);
    fd = Number(tracee.syscallOk('open its file', NR.open, inj.putString(mapFiles(task.pid, at, at + obj.size)), O.RDWR | O.CLOEXEC, 0));
    tracee.syscallOk('munmap', NR.munmap, at, obj.size);
  }
  const ours = fs.openSync(`/proc/${task.pid}/fd/${fd}`, 'r+');
  const buf = chunkBuffer();
  let at = pagesAt;
  try {
    for (const run of obj.runs) {
      for (let done = 0; done < run.nr_pages; ) {
        const n = Math.min(CHUNK_PAGES, run.nr_pages - done);
        if (fs.readSync(pages, buf, 0, n * PAGE_SIZE, at) !== n * PAGE_SIZE) throw new CrError(`pid ${task.pid}: pages file truncated`);
        at += n * PAGE_SIZE;
        const off = (Number(run.pgoff) + done) * PAGE_SIZE;
        const len = Math.min(n * PAGE_SIZE, Number(obj.size) - off);
        for (let w = 0; w < len; ) w += fs.writeSync(ours, buf, w, len - w, off + w);
        done += n;
      }
    }
  } finally {
    fs.closeSync(ours);
  }
  return fd;
}
/** Paths opened per round trip: their names go in the scratch area. */
const OPEN_BATCH_BYTES = 8192;

/** Open files in the task, as many per round trip as the scratch area takes; returns each one's descriptor by key. */
function openFiles(task: RestoreTask, files: [string, { path: string; flags: number }][]): Map<string, number> {
  const { tracee, inj } = task;
  const out = new Map<string, number>();
  for (let i = 0; i < files.length; ) {
    inj.reset();
    const chunk: typeof files = [];
    for (let bytes = 0; i < files.length && (!chunk.length || bytes + files[i][1].path.length < OPEN_BATCH_BYTES); i++) {
      bytes += Buffer.byteLength(files[i][1].path) + 8;
      chunk.push(files[i]);
    }
    const ret = inj.batch(chunk.map(([, f]) => [NR.open, inj.putString(f.path), f.flags, 0]), 'open');
    chunk.forEach(([key, f], k) => out.set(key, Number(tracee.checked(`open ${f.path}`, ret[k]))));
  }
  return out;
}

/** Runs shorter than this take their faults: a madvise each would cost more than it saves. */
const POPULATE_MIN_PAGES = 16;
/** iovecs per injected preadv: they go in the scratch area, and IOV_MAX is 1024. */
const IOV_BATCH = 512;
/** Bytes per injected preadv (a read returns at most 2 GiB). */
const READ_BATCH = 1 << 30;
const READ_PAGES = READ_BATCH / PAGE_SIZE;

/** A run in pieces that one read can take. */
function splitRun(r: PageSource): PageSource[] {
  const out: PageSource[] = [];
  for (let done = 0; done < r.nr_pages; done += READ_PAGES) {
    const n = Math.min(READ_PAGES, r.nr_pages - done);
    out.push({ ...r, vaddr: r.vaddr + BigInt(done) * PAGE, nr_pages: n, offset: r.offset + done * PAGE_SIZE });
  }
  return out;
}

/**
 * Fill the task's private pages from the image: the task itself reads each
 * pages file straight into its memory, one injected preadv per batch of
 * runs that follow each other in the file.
 */
function fillPages(task: RestoreTask, sources: PageSource[]): void {
  const { tracee, inj } = task;
  for (const file of new Set(sources.map((r) => r.file))) {
    const runs = sources.filter((r) => r.file === file).sort((a, b) => a.offset - b.offset).flatMap(splitRun);
    inj.reset();
    const fd = Number(tracee.syscallOk(`open ${file}`, NR.open, inj.putString(file), O.RDONLY | O.CLOEXEC, 0));
    let closed = false;
    try {
      for (let i = 0; i < runs.length; ) {
        let j = i;
        let len = 0;
        while (j < runs.length && j - i < IOV_BATCH && len + runs[j].nr_pages * PAGE_SIZE <= READ_BATCH &&
          (j === i || runs[j].offset === runs[j - 1].offset + runs[j - 1].nr_pages * PAGE_SIZE)) {
          len += runs[j].nr_pages * PAGE_SIZE;
          j++;
        }
        const iov = Buffer.alloc(16 * (j - i));
        runs.slice(i, j).forEach((r, k) => {
          iov.writeBigUInt64LE(r.vaddr, k * 16);
          iov.writeBigUInt64LE(BigInt(r.nr_pages * PAGE_SIZE), k * 16 + 8);
        });
        inj.reset();
        // The pages made present first, in the same round trip: the read then takes no fault per page.
        const populate = runs.slice(i, j).filter((r) => r.nr_pages >= POPULATE_MIN_PAGES).map((r) => [NR.madvise, r.vaddr, r.nr_pages * PAGE_SIZE, MADV.POPULATE_WRITE]);
        const read = [NR.preadv, fd, inj.put(iov), j - i, runs[i].offset, 0];
        // The file closed after its last read, in the same round trip.
        const last = j === runs.length;
        const got = Number(tracee.checked(`preadv ${file}`, inj.batch([...populate, read, ...(last ? [[NR.close, fd]] : [])], `preadv ${file}`)[populate.length]));
        closed = last;
        if (got !== len) throw new CrError(`${file}: truncated (read ${got} of ${len} bytes at ${runs[i].offset})`);
        i = j;
      }
    } finally {
      if (!closed) tracee.syscall(NR.close, fd);
    }
  }
}

/** Below this many pages a task reads its own: starting cr-pages would cost more than it saves. */
const SERVE_MIN_PAGES = 2048;

/**
 * The mappings the task's children inherit (restore forks them from it
 * once its memory is in, tree.ts): a lazy restore puts their pages in
 * before the fork, so that the children share them again.
 */
function inheritedByChildren(task: RestoreTask): Vma[] {
  const me = task.threadIds[0].image;
  return readInventory(task.dir).tasks.filter((t) => t.ppid === me && !t.zombie)
    .flatMap((t) => readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(task.dir, 'mm', t.pid).vmas.filter((v) => v.inherited));
}

/**
 * The runs cr-pages can put in: those in the task's own private anonymous
 * mappings, which are fresh (nothing present, so nothing to merge with)
 * and which userfaultfd serves. Lazily, all of those no child inherits;
 * else all, if there are enough to pay for the helper.
 */
function servable(task: RestoreTask, mm: MmImage): { vmas: Vma[]; runs: PageSource[] } {
  const lazy = task.lazyPages;
  if (!lazy && !hasUserfaultfd()) return { vmas: [], runs: [] };
  const children = lazy ? inheritedByChildren(task) : [];
  const vmas = mm.vmas.filter((v) => v.kind === 'ANON_PRIVATE' && !v.inherited && !children.some((c) => c.start < v.end && v.start < c.end));
  const inside = (r: PageSource) => vmas.some((v) => r.vaddr >= v.start && r.vaddr < v.end);
  const runs = mm.sources.filter(inside);
  if (!lazy && runs.reduce((n, r) => n + r.nr_pages, 0) < SERVE_MIN_PAGES) return { vmas: [], runs: [] };
  return { vmas: vmas.filter((v) => runs.some((r) => r.vaddr >= v.start && r.vaddr < v.end)), runs };
}

/**
 * Put pages in through a userfaultfd of the task that cr-pages
 * (userspace/native) serves: all now, by a thread per CPU (UFFDIO_COPY
 * allocates a page and fills it in one step: nothing is zeroed first), or
 * with `lazy` each on first touch and the rest in the background while the
 * tree runs.
 */
function servePages(task: RestoreTask, vmas: Vma[], runs: PageSource[], lazy: boolean): void {
  const { tracee, inj } = task;
  const files = [...new Set(runs.map((r) => r.file))];
  const index = new Map(files.map((f, i) => [f, i]));
  inj.reset();
  // A lazy task takes faults in system calls too; an eager fill, done while it is stopped, takes none.
  const made = tracee.syscall(NR.userfaultfd, O.CLOEXEC | (lazy ? 0 : UFFD.USER_MODE_ONLY));
  if (made < 0) throw new CrError(`pid ${task.pid}: no userfaultfd to put its pages in (${errnoName(Number(-made))})${lazy ? ': restore without --lazy-pages' : ''}`);
  let ours: number;
  try {
    ours = tracerDup(task.pid, Number(made));
  } finally {
    tracee.syscall(NR.close, made);
  }
  try {
    const input = [
      ...vmas.map((v) => `R ${v.start.toString(16)} ${v.end.toString(16)}\n`),
      ...runs.map((r) => `P ${r.vaddr.toString(16)} ${r.nr_pages} ${index.get(r.file)} ${r.offset}\n`),
    ].join('');
    const r = spawnSync(nativeBin('cr-pages'), [...(lazy ? ['-l'] : []), String(task.pid), ...files], { input, stdio: ['pipe', 'ignore', 'pipe', ours], encoding: 'utf8' });
    if (r.status !== 0) throw new CrError(`pid ${task.pid}: ${r.stderr?.trim() || `cr-pages ${r.error?.message ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.status}`)}`}`);
  } finally {
    close(ours);
  }
}

export const memory = defineState<MmImage, bigint>({
  name: 'memory',

  // stat does not show the current break: only the task can tell.
  ask: () => ({ calls: [['brk(0)', [NR.brk, 0]]], answer: ([brk]) => brk }),

  dump(task, brk) {
    const vmas = task.maps.map((m) => classify(task, m)).filter((v): v is DumpVma => v !== null);
    checkSysvAttachments(task, vmas);
    const layout = layoutOf(task, brk);
    // Tree order: a parent is saved before its children.
    const parent = task.shared.mms.get(task.entry.ppid);
    if (parent) markInherited(vmas, parent.vmas as DumpVma[]);
    // tracked since the pre-dump this dump builds on, if that one has the task and (uffd-wp) the task still has its tracker
    const prev = task.shared.prev;
    const tracked = task.prevImagesDir && prev && (prev.method === 'soft-dirty' || prev.held.has(task.pid)) && fs.existsSync(imageFile(task.prevImagesDir, 'mm', task.pid));
    const chain = tracked ? { cover: chainCoverage(task.prevImagesDir!, task.pid), written: WRITTEN[prev.method] } : undefined;
    const out = task.images.openRaw('pages', task.pid);
    let saved: SavedPages;
    let shmem: ShmemObject[];
    try {
      saved = dumpPrivatePages(task, vmas, parent?.procPid, chain, out);
      shmem = dumpShmemObjects(task, vmas, out);
    } finally {
      fs.closeSync(out);
    }
    task.images.write('mm', task.pid, { layout, vmas, pages: saved.pages, drop: saved.drop, shmem, shared_pages: saved.shared });
    task.shared.mms.set(task.pid, { procPid: task.tracee.pid, vmas });
  },

  load(dir, { pid, ppid }) {
    const file = imageFile(dir, 'mm', pid);
    const img = readImage<Omit<MmImage, 'pagesFile' | 'sources'>>(dir, 'mm', pid);
    if (!img.layout) throw new CrError(`${file}: corrupted image (no mm layout)`);
    if (img.layout.auxv.length > SAVED_AUXV_BYTES) throw new CrError(`${file}: corrupted image (an auxv of ${img.layout.auxv.length} bytes)`);
    const full = { ...img, pagesFile: imageFile(dir, 'pages', pid) };
    checkVmas(file, full.vmas);
    checkInherited(dir, file, ppid, full.vmas);
    checkPages(full, file);
    return { ...full, sources: pageSources(dir, pid, full.pages) };
  },

  restore(task, mm) {
    const { tracee, inj } = task;
    // Clear what the task has, all but the injection area and what it inherited.
    const keep = mm.vmas.filter((v) => v.inherited);
    inj.reset();
    const unmaps = procMaps(task.pid).filter((m) => m.path !== '[vsyscall]' && Number(m.start) !== inj.scratch)
      .flatMap((m) => subtract(m.start, m.end, keep).map(([s, e]) => [NR.munmap, s, e - s]));
    inj.batchOk(unmaps, (i) => `munmap ${hex(BigInt(unmaps[i][1]))}`);

    // The vDSO goes back where the task's code expects it.
    const special = mm.vmas.filter((v) => v.kind === 'VDSO' || v.kind === 'VVAR');
    if (special.length && !special[0].inherited) {
      const base = special.reduce((lo, v) => (v.start < lo ? v.start : lo), special[0].start);
      tracee.syscallOk('map vDSO', NR.arch_prctl, ARCH_MAP_VDSO_64, base);
      const placed = procMaps(task.pid).filter((m) => m.path === '[vdso]' || m.path.startsWith('[vvar'));
      const want = special.map((v) => `${v.name}@${hex(v.start)}-${hex(v.end)}`).sort().join(' ');
      const got = placed.map((m) => `${m.path}@${hex(m.start)}-${hex(m.end)}`).sort().join(' ');
      if (want !== got) throw new CrError(`the image's vDSO layout (${want}) does not match this kernel's (${got})`);
    }

    const pages = fs.openSync(mm.pagesFile, 'r');
    try {
      // Shmem objects' bytes follow the private pages, one object after another.
      const created = new Map<bigint, number>();
      let objectsAt = mm.pages.reduce((n, r) => n + (r.in_parent ? 0 : r.nr_pages * PAGE_SIZE), 0);
      const objects = new Map(mm.shmem.map((o) => {
        const at = objectsAt;
        objectsAt += o.runs.reduce((n, r) => n + r.nr_pages * PAGE_SIZE, 0);
        return [o.id, { o, at }];
      }));
      // Private pages go in through cr-pages or, the rest, are read by the task itself: mappings that receive such are writable until then.
      const served = servable(task, mm);
      const servedRuns = new Set(served.runs);
      const read = mm.sources.filter((r) => !servedRuns.has(r));
      const filled = new Set(mm.vmas.filter((v) => PRIVATE_KINDS.has(v.kind) && read.some((r) => r.vaddr >= v.start && r.vaddr < v.end)));
      const prot = (v: Vma) => (filled.has(v) ? v.prot | PROT.WRITE : v.prot);
      // What it inherited only takes its protection, in one batch.
      const inherited = mm.vmas.filter((v) => v.inherited && v.kind !== 'VDSO' && v.kind !== 'VVAR');
      inj.reset();
      inj.batchOk(inherited.map((v) => [NR.mprotect, v.start, v.end - v.start, prot(v)]), (i) => `mprotect ${hex(inherited[i].start)}`);
      const own = mm.vmas.filter((v) => v.kind !== 'VDSO' && v.kind !== 'VVAR' && !v.inherited);
      const flagsOf = (v: Vma) => (v.kind === 'ANON_SHARED' || v.kind === 'FILE_SHARED' ? MAP.SHARED : MAP.PRIVATE) | MAP.FIXED_NOREPLACE | (v.growsdown ? MAP.GROWSDOWN : 0);
      // A shared mapping's file is open for writing only if it was (VM_MAYWRITE).
      const modeOf = (v: Vma) => ((v.kind === 'ANON_SHARED' || v.kind === 'FILE_SHARED') && v.may_write ? O.RDWR : O.RDONLY);
      const mmapCall = (v: Vma, fd: number) => [NR.mmap, v.start, v.end - v.start, prot(v), flagsOf(v) | (fd < 0 ? MAP.ANONYMOUS : 0), fd, fd >= 0 ? v.pgoff * PAGE : 0n];
      const mmapWhat = (v: Vma) => `mmap ${hex(v.start)}-${hex(v.end)} ${v.path || v.name}`;
      // Anonymous memory and plain files in one batch, each file opened once however often it is mapped.
      const plain = own.filter((v) => v.kind !== 'SYSV_SHM' && !v.shmem_id);
      const fileKey = (v: Vma) => `${modeOf(v)}:${v.path}`;
      const fds = openFiles(task, [...new Map(plain.filter((v) => v.path).map((v) => [fileKey(v), { path: v.path, flags: modeOf(v) | O.CLOEXEC }])).entries()]);
      inj.reset();
      const maps = plain.map((v) => mmapCall(v, v.path ? fds.get(fileKey(v))! : -1));
      const mapped = inj.batch([...maps, ...[...fds.values()].map((fd) => [NR.close, fd])], 'mmap');
      maps.forEach((_, i) => tracee.checked(mmapWhat(plain[i]), mapped[i]));
      for (const v of own) {
        if (v.kind === 'SYSV_SHM') {
          attachSysv(task, v, mm.vmas);
          continue;
        }
        if (!v.shmem_id) continue;
        inj.reset();
        let path = task.shared.shmem.get(v.shmem_id)?.path;
        if (!path && !created.has(v.shmem_id)) {
          const obj = objects.get(v.shmem_id);
          if (!obj) throw new CrError(`pid ${task.pid} mapping ${hex(v.start)}-${hex(v.end)}: its shmem object ${v.shmem_id} is in no task of the image`);
          created.set(v.shmem_id, createShmem(task, obj.o, pages, obj.at));
        }
        path ??= `/proc/${task.pid}/fd/${created.get(v.shmem_id)}`;
        inj.reset();
        const fd = Number(tracee.syscallOk(`open ${path}`, NR.open, inj.putString(path), modeOf(v) | O.CLOEXEC, 0));
        const [nr, ...args] = mmapCall(v, fd);
        tracee.syscallOk(mmapWhat(v), Number(nr), ...args);
        tracee.syscall(NR.close, fd);
      }
      // Later tasks (and memfd descriptors) open each object through one of this task's mappings.
      if (created.size) {
        const live = procMaps(task.pid);
        for (const [id, fd] of created) {
          const v = mm.vmas.find((x) => x.shmem_id === id && !x.inherited)!;
          const m = live.find((x) => x.start <= v.start && v.start < x.end)!;
          task.shared.shmem.set(id, { pid: task.pid, path: mapFiles(task.pid, m.start, m.end) });
          tracee.syscall(NR.close, fd);
        }
      }

      if (served.runs.length) servePages(task, served.vmas, served.runs, task.lazyPages);
      fillPages(task, read);
      const sealed = [...filled].filter((v) => !(v.prot & PROT.WRITE));
      // brk, stack, argv/env bounds, auxv and /proc/PID/exe, all at once. A
      // forked child has its parent's exe already, which the kernel will not
      // replace while it is mapped: then it stays.
      inj.reset();
      const sameExe = fs.readlinkSync(`/proc/${task.pid}/exe`) === mm.layout.exe;
      const exeFd = sameExe ? -1 : Number(tracee.syscallOk(`open ${mm.layout.exe}`, NR.open, inj.putString(mm.layout.exe), O.RDONLY | O.CLOEXEC, 0));
      const auxv = inj.put(mm.layout.auxv);
      const map = inj.put(prctlMmMap(mm.layout, auxv, exeFd));
      // In one batch: the filled mappings get their own protection; what the parent has and this
      // task had not is gone again, as after its own munmap or before any write; then the layout.
      const calls: [string, (number | bigint)[]][] = [
        ...sealed.map((v): [string, bigint[]] => [`mprotect ${hex(v.start)}`, [BigInt(NR.mprotect), v.start, v.end - v.start, BigInt(v.prot)]]),
        ...mm.drop.map((run): [string, bigint[]] => [`madvise ${hex(run.vaddr)}`, [BigInt(NR.madvise), run.vaddr, BigInt(run.nr_pages) * PAGE, BigInt(MADV.DONTNEED)]]),
        ['prctl(PR_SET_MM_MAP)', [NR.prctl, PR.SET_MM, PR.SET_MM_MAP, map, 104, 0]],
      ];
      const ret = inj.batch([...calls.map(([, c]) => c), ...(exeFd >= 0 ? [[NR.close, exeFd]] : [])], 'mprotect');
      calls.forEach(([what], i) => tracee.checked(what, ret[i]));
    } finally {
      fs.closeSync(pages);
    }
  },

  settle(task, mm) {
    // Advice that would change what children inherit waits until every task is forked.
    const calls: [string, (number | bigint)[]][] = [];
    for (const v of mm.vmas) {
      const len = v.end - v.start;
      for (const a of v.advice) if (ADVICE[a]) calls.push([`madvise ${a} ${hex(v.start)}`, [NR.madvise, v.start, len, ADVICE[a]]]);
      if (v.advice.includes('lo')) calls.push([`mlock ${hex(v.start)}`, [NR.mlock2, v.start, len, v.advice.includes('lf') ? MLOCK_ONFAULT : 0]]);
    }
    task.inj.reset();
    task.inj.batchOk(calls.map(([, c]) => c), (i) => calls[i][0]);
    // Seals last, from here: a write seal forbids the writes that put the contents in.
    for (const obj of mm.shmem) {
      const at = task.shared.shmem.get(obj.id);
      if (obj.seals && at?.pid === task.pid) sealMemfd(at.path, obj.seals, `pid ${task.pid} memfd:${obj.memfd}`);
    }
  },

  describe(mm) {
    const pages = mm.pages.reduce((n, r) => n + (r.in_parent ? 0 : r.nr_pages), 0);
    const unchanged = mm.pages.reduce((n, r) => n + (r.in_parent ? r.nr_pages : 0), 0);
    const dropped = mm.drop.reduce((n, r) => n + r.nr_pages, 0);
    return [
      `exe ${mm.layout.exe}  brk ${hex(mm.layout.start_brk)}-${hex(mm.layout.brk)}  ${pages} pages saved` +
        (unchanged ? `, ${unchanged} unchanged since the pre-dump` : '') +
        (mm.vmas.some((v) => v.inherited) ? `, ${mm.shared_pages} shared with the parent, ${dropped} dropped` : ''),
      ...mm.vmas.map((v) => {
        const prot = `${v.prot & PROT.READ ? 'r' : '-'}${v.prot & PROT.WRITE ? 'w' : '-'}${v.prot & PROT.EXEC ? 'x' : '-'}`;
        const notes = [v.inherited ? 'inherited' : '', v.kind === 'FILE_SHARED' || v.kind === 'ANON_SHARED' ? (v.may_write ? '' : 'read-only file') : '', ...v.advice].filter(Boolean);
        return `  ${hex(v.start).padStart(14)}-${hex(v.end).padEnd(14)} ${prot} ${v.kind.padEnd(12)} ${v.path || v.name}${notes.length ? `  (${notes.join(' ')})` : ''}`;
      }),
      ...mm.shmem.map((o) => `  shmem object ${o.id}: ${o.memfd ? `memfd:${o.memfd}` : 'shared anonymous memory'} ${o.size} bytes, ${o.runs.reduce((n, r) => n + r.nr_pages, 0)} pages saved${o.seals ? ` seals 0x${o.seals.toString(16)}` : ''}`),
    ];
  },
});
