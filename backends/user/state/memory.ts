/**
 * Memory: every VMA with its protection and backing, the mm layout fields
 * (brk, stack, argv/env, auxv, exe), and the contents of every page that
 * is not simply the backing file's: anonymous pages and the private copies
 * a process made of file pages.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { CrError } from '../../../userspace/errors.js';
import { injectFault } from '../../../userspace/fault.js';
import { type MapsEntry, procMaps, procStat, statField } from '../../../userspace/proc/parse.js';
import { ARCH_MAP_VDSO_64, MAP, NR, O, PAGE_SIZE, PR, PROT, SHM } from '../../../userspace/sys/constants.js';
import { imageFile, readImage } from '../image.js';
import { defineState, hex, type DumpTask, type RestoreTask } from './module.js';
import { MFD_ALLOW_SEALING, memfdName } from './memfd.js';
import { ownNamespace } from './namespaces.js';

type VmaKind = 'ANON_PRIVATE' | 'ANON_SHARED' | 'FILE_PRIVATE' | 'FILE_SHARED' | 'VDSO' | 'VVAR' | 'SYSV_SHM';

interface Vma {
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
  memfd_size: bigint;
}

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
}

export interface MmImage {
  layout: MmLayout;
  vmas: Vma[];
  pages: PageRun[];
  pages_crc32: number;
  /** Where the pages file is; not part of the image message. */
  pagesFile: string;
}

const PAGE = BigInt(PAGE_SIZE);
/** Largest run of pages read or written in one go. */
const CHUNK_PAGES = 4096;
const PM_PRESENT = 1n << 63n;
const PM_SWAPPED = 1n << 62n;
const PM_FILE = 1n << 61n;
const TASK_SIZE = 0x7ffffffff000n;

/** How a /proc/PID/maps entry is saved and rebuilt; refuses what this backend cannot. */
function classify(pid: number, m: MapsEntry): Vma | null {
  const prot = (m.read ? PROT.READ : 0) | (m.write ? PROT.WRITE : 0) | (m.exec ? PROT.EXEC : 0);
  const base = { start: m.start, end: m.end, prot, growsdown: m.path === '[stack]', path: '', pgoff: m.offset / PAGE, name: '', shmem_id: 0n, shmid: 0, memfd_size: 0n };
  const where = `pid ${pid} mapping ${hex(m.start)}-${hex(m.end)}`;
  if (m.path === '[vsyscall]') return null;
  if (m.path === '[vdso]') return { ...base, kind: 'VDSO', name: m.path };
  if (m.path === '[vvar]' || m.path === '[vvar_vclock]') return { ...base, kind: 'VVAR', name: m.path };
  if (m.path === '' || m.path.startsWith('[')) {
    return { ...base, kind: m.shared ? 'ANON_SHARED' : 'ANON_PRIVATE', name: m.path, pgoff: 0n };
  }
  // Shared anonymous memory is a deleted file on the internal shmem mount,
  // one object (inode) however many tasks share it after fork.
  if (m.shared && m.path === '/dev/zero (deleted)') return { ...base, kind: 'ANON_SHARED', shmem_id: m.inode };
  // A SysV segment (maps inode: its id) is saved and recreated with its namespace (ipc.ts).
  if (m.path.startsWith('/SYSV')) {
    const segment = `SysV shm segment ${m.path.slice(1, 13)} (id ${m.inode})`;
    if (!ownNamespace(pid, 'ipc')) throw new CrError(`${where}: ${segment} of the host's IPC namespace is not supported`);
    return { ...base, kind: 'SYSV_SHM', name: m.path, shmid: Number(m.inode) };
  }
  // A memfd is shmem too: its pages go with the first mapping; restore
  // recreates it by name (and memfd.ts reopens it for descriptors).
  if (m.path.startsWith('/memfd:')) {
    if (!m.shared) throw new CrError(`${where}: a private mapping of a memfd is not supported`);
    const size = BigInt(fs.statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`).size);
    return { ...base, kind: 'ANON_SHARED', name: m.path, shmem_id: m.inode, memfd_size: size };
  }
  if (m.path.endsWith(' (deleted)')) throw new CrError(`${where}: the mapped file ${m.path} was deleted`);
  return { ...base, kind: m.shared ? 'FILE_SHARED' : 'FILE_PRIVATE', path: m.path };
}

/** The pieces of the SysV attachment starting at `base` (mprotect may have split it). */
const attachment = (vmas: Vma[], shmid: number, base: bigint) =>
  vmas.filter((o) => o.kind === 'SYSV_SHM' && o.shmid === shmid && o.start - o.pgoff * PAGE === base);

/** One shmat maps a whole segment: refuse attachments that are no longer whole. */
function checkSysvAttachments(pid: number, vmas: Vma[]): void {
  for (const v of vmas) {
    if (v.kind !== 'SYSV_SHM') continue;
    const base = v.start - v.pgoff * PAGE;
    const pieces = attachment(vmas, v.shmid, base);
    // The segment's size: map_files leads to its shmem file.
    const size = BigInt(fs.statSync(`/proc/${pid}/map_files/${pieces[0].start.toString(16)}-${pieces[0].end.toString(16)}`).size);
    const mapped = pieces.reduce((n, o) => n + (o.end - o.start), 0n);
    if (pieces[0].start !== base || mapped !== ((size + PAGE - 1n) / PAGE) * PAGE) {
      throw new CrError(`pid ${pid} mapping ${hex(v.start)}-${hex(v.end)}: SysV shm id ${v.shmid} attached but partly unmapped is not supported`);
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

/** Whether a page's contents must be saved, given its pagemap entry. */
function mustSave(kind: VmaKind, entry: bigint): boolean {
  if (!(entry & (PM_PRESENT | PM_SWAPPED))) return false;
  if (kind === 'FILE_PRIVATE') return !(entry & PM_FILE); // only the private copies
  return kind === 'ANON_PRIVATE' || kind === 'ANON_SHARED';
}

function dumpPages(task: DumpTask, vmas: Vma[]): { runs: PageRun[]; crc: number } {
  const pagemap = fs.openSync(`/proc/${task.pid}/pagemap`, 'r');
  const out = task.images.openRaw('pages', task.pid);
  const runs: PageRun[] = [];
  const entries = Buffer.alloc(CHUNK_PAGES * 8);
  const data = Buffer.alloc(CHUNK_PAGES * PAGE_SIZE);
  let crc = 0;
  let writes = 0;
  try {
    for (const vma of vmas) {
      if (vma.kind !== 'ANON_PRIVATE' && vma.kind !== 'ANON_SHARED' && vma.kind !== 'FILE_PRIVATE') continue;
      // Shared memory's pages are saved with the first task that maps it.
      if (vma.shmem_id) {
        if (task.shared.shmem.has(vma.shmem_id)) continue;
        task.shared.shmem.add(vma.shmem_id);
      }
      const firstRun = runs.length; // runs never span two mappings
      for (let at = vma.start; at < vma.end; ) {
        const n = Number((vma.end - at) / PAGE < CHUNK_PAGES ? (vma.end - at) / PAGE : BigInt(CHUNK_PAGES));
        fs.readSync(pagemap, entries, 0, n * 8, Number((at / PAGE) * 8n));
        for (let i = 0; i < n; ) {
          if (!mustSave(vma.kind, entries.readBigUInt64LE(i * 8))) {
            i++;
            continue;
          }
          let j = i + 1;
          while (j < n && mustSave(vma.kind, entries.readBigUInt64LE(j * 8))) j++;
          const vaddr = at + BigInt(i) * PAGE;
          const bytes = task.tracee.readMem(Number(vaddr), (j - i) * PAGE_SIZE, data.subarray(0, (j - i) * PAGE_SIZE));
          writeAll(out, bytes);
          injectFault('dump-pages', ++writes);
          crc = zlib.crc32(bytes, crc);
          const last = runs.length > firstRun ? runs.at(-1) : undefined;
          if (last && last.vaddr + BigInt(last.nr_pages) * PAGE === vaddr) last.nr_pages += j - i;
          else runs.push({ vaddr, nr_pages: j - i });
          task.stats.pagesWritten += j - i;
          i = j;
        }
        at += BigInt(n) * PAGE;
      }
    }
    fs.fsyncSync(out);
  } finally {
    fs.closeSync(pagemap);
    fs.closeSync(out);
  }
  return { runs, crc };
}

function writeAll(fd: number, buf: Buffer): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done);
}

function layoutOf(task: DumpTask): MmLayout {
  const stat = procStat(task.pid);
  const f = (n: number) => statField(stat, n);
  let exe: string;
  try {
    exe = fs.readlinkSync(`/proc/${task.pid}/exe`);
  } catch {
    throw new CrError(`pid ${task.pid}: cannot read its executable (a kernel thread?)`);
  }
  if (exe.endsWith(' (deleted)')) throw new CrError(`pid ${task.pid}: its executable ${exe} was deleted`);
  return {
    start_code: f(26), end_code: f(27), start_stack: f(28),
    start_data: f(45), end_data: f(46), start_brk: f(47),
    // stat does not show the current break: ask the task itself.
    brk: task.tracee.syscallOk('brk(0)', NR.brk, 0),
    arg_start: f(48), arg_end: f(49), env_start: f(50), env_end: f(51),
    auxv: fs.readFileSync(`/proc/${task.pid}/auxv`),
    exe,
  };
}

/** struct prctl_mm_map for PR_SET_MM_MAP. */
function prctlMmMap(l: MmLayout, auxvAddr: number, exeFd: number): Buffer {
  const b = Buffer.alloc(104);
  [l.start_code, l.end_code, l.start_data, l.end_data, l.start_brk, l.brk, l.start_stack,
    l.arg_start, l.arg_end, l.env_start, l.env_end, BigInt(auxvAddr)].forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
  b.writeUInt32LE(l.auxv.length, 96);
  b.writeUInt32LE(exeFd, 100);
  return b;
}

function checkVmas(file: string, vmas: Vma[]): void {
  let prevEnd = 0n;
  for (const v of vmas) {
    if (v.start % PAGE || v.end % PAGE || v.start >= v.end || v.start < prevEnd || v.end > TASK_SIZE) {
      throw new CrError(`${file}: corrupted image (bad mapping ${hex(v.start)}-${hex(v.end)})`);
    }
    prevEnd = v.end;
  }
}

/** The pages file must hold exactly the listed pages, with the recorded checksum. */
function checkPages(img: MmImage, file: string): void {
  const saved = new Set<VmaKind>(['ANON_PRIVATE', 'ANON_SHARED', 'FILE_PRIVATE']);
  let total = 0;
  for (const run of img.pages) {
    const end = run.vaddr + BigInt(run.nr_pages) * PAGE;
    if (run.nr_pages <= 0 || !img.vmas.some((v) => saved.has(v.kind) && v.start <= run.vaddr && end <= v.end)) {
      throw new CrError(`${file}: corrupted image (pages at ${hex(run.vaddr)} lie outside any saved mapping)`);
    }
    total += run.nr_pages * PAGE_SIZE;
  }
  let size: number;
  try {
    size = fs.statSync(img.pagesFile).size;
  } catch {
    throw new CrError(`${img.pagesFile}: missing pages file`);
  }
  if (size !== total) throw new CrError(`${img.pagesFile}: truncated or corrupted (${size} bytes, expected ${total})`);
  const fd = fs.openSync(img.pagesFile, 'r');
  const buf = Buffer.alloc(CHUNK_PAGES * PAGE_SIZE);
  let crc = 0;
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) crc = zlib.crc32(buf.subarray(0, n), crc);
  } finally {
    fs.closeSync(fd);
  }
  if (crc !== img.pages_crc32) throw new CrError(`${img.pagesFile}: corrupted (checksum mismatch)`);
}

/** The address ranges the image maps, for choosing where restore can work meanwhile. */
export function mappedRanges(dir: string, pid: number): [bigint, bigint][] {
  return readImage<Omit<MmImage, 'pagesFile'>>(dir, 'mm', pid).vmas.map((v) => [v.start, v.end]);
}

export const memory = defineState<MmImage>({
  name: 'memory',

  dump(task) {
    const vmas = task.maps.map((m) => classify(task.pid, m)).filter((v): v is Vma => v !== null);
    checkSysvAttachments(task.pid, vmas);
    const layout = layoutOf(task);
    const { runs, crc } = dumpPages(task, vmas);
    task.images.write('mm', task.pid, { layout, vmas, pages: runs, pages_crc32: crc });
  },

  load(dir, { pid }) {
    const file = imageFile(dir, 'mm', pid);
    const img = readImage<Omit<MmImage, 'pagesFile'>>(dir, 'mm', pid);
    if (!img.layout) throw new CrError(`${file}: corrupted image (no mm layout)`);
    const full = { ...img, pagesFile: imageFile(dir, 'pages', pid) };
    checkVmas(file, full.vmas);
    checkPages(full, file);
    return full;
  },

  restore(task, mm) {
    const { tracee, inj } = task;
    // Clear the placeholder's own address space, all but the injection area.
    for (const m of procMaps(task.pid)) {
      if (m.path === '[vsyscall]' || Number(m.start) === inj.scratch) continue;
      tracee.syscallOk(`munmap ${hex(m.start)}`, NR.munmap, m.start, m.end - m.start);
    }

    // The vDSO goes back where the task's code expects it.
    const special = mm.vmas.filter((v) => v.kind === 'VDSO' || v.kind === 'VVAR');
    if (special.length) {
      const base = special.reduce((lo, v) => (v.start < lo ? v.start : lo), special[0].start);
      tracee.syscallOk('map vDSO', NR.arch_prctl, ARCH_MAP_VDSO_64, base);
      const placed = procMaps(task.pid).filter((m) => m.path === '[vdso]' || m.path.startsWith('[vvar'));
      const want = special.map((v) => `${v.name}@${hex(v.start)}-${hex(v.end)}`).sort().join(' ');
      const got = placed.map((m) => `${m.path}@${hex(m.start)}-${hex(m.end)}`).sort().join(' ');
      if (want !== got) throw new CrError(`the image's vDSO layout (${want}) does not match this kernel's (${got})`);
    }

    for (const v of mm.vmas) {
      if (v.kind === 'VDSO' || v.kind === 'VVAR') continue;
      if (v.kind === 'SYSV_SHM') {
        attachSysv(task, v, mm.vmas);
        continue;
      }
      const shared = v.kind === 'ANON_SHARED' || v.kind === 'FILE_SHARED';
      // Pages are written through /proc/PID/mem, which can write private
      // read-only pages but not shared ones: those get PROT_WRITE for now.
      const prot = v.kind === 'ANON_SHARED' ? v.prot | PROT.WRITE : v.prot;
      let flags = (shared ? MAP.SHARED : MAP.PRIVATE) | MAP.FIXED_NOREPLACE | (v.growsdown ? MAP.GROWSDOWN : 0);
      let fd = -1;
      let offset = v.pgoff * PAGE;
      inj.reset();
      const first = v.shmem_id ? task.shared.shmem.get(v.shmem_id) : undefined;
      if (first) {
        // Another mapping of shared memory already rebuilt: map that same object.
        const path = `/proc/${first.pid}/map_files/${first.start.toString(16)}-${first.end.toString(16)}`;
        fd = Number(tracee.syscallOk(`open ${path}`, NR.open, inj.putString(path), O.RDWR | O.CLOEXEC, 0));
        offset = (v.pgoff - first.pgoff) * PAGE;
      } else if (v.name.startsWith('/memfd:')) {
        fd = Number(tracee.syscallOk(`memfd_create ${v.name}`, NR.memfd_create, inj.putString(memfdName(v.name)), MFD_ALLOW_SEALING));
        tracee.syscallOk(`ftruncate ${v.name}`, NR.ftruncate, fd, v.memfd_size);
      } else if (v.kind === 'FILE_PRIVATE' || v.kind === 'FILE_SHARED') {
        const mode = v.kind === 'FILE_SHARED' && v.prot & PROT.WRITE ? O.RDWR : O.RDONLY;
        fd = Number(tracee.syscallOk(`open ${v.path}`, NR.open, inj.putString(v.path), mode | O.CLOEXEC, 0));
      } else {
        flags |= MAP.ANONYMOUS;
      }
      tracee.syscallOk(`mmap ${hex(v.start)}-${hex(v.end)} ${v.path}`, NR.mmap, v.start, v.end - v.start, prot, flags, fd, offset);
      if (fd >= 0) tracee.syscall(NR.close, fd);
      if (v.shmem_id && !first) task.shared.shmem.set(v.shmem_id, { pid: task.pid, start: v.start, end: v.end, pgoff: v.pgoff });
    }

    const src = fs.openSync(mm.pagesFile, 'r');
    const buf = Buffer.alloc(CHUNK_PAGES * PAGE_SIZE);
    try {
      for (const run of mm.pages) {
        for (let done = 0; done < run.nr_pages; ) {
          const n = Math.min(CHUNK_PAGES, run.nr_pages - done);
          const len = n * PAGE_SIZE;
          if (fs.readSync(src, buf, 0, len, null) !== len) throw new CrError(`${mm.pagesFile}: truncated`);
          tracee.writeMem(Number(run.vaddr) + done * PAGE_SIZE, buf.subarray(0, len));
          done += n;
        }
      }
    } finally {
      fs.closeSync(src);
    }
    for (const v of mm.vmas) {
      if (v.kind === 'ANON_SHARED' && !(v.prot & PROT.WRITE)) tracee.syscallOk('mprotect', NR.mprotect, v.start, v.end - v.start, v.prot);
    }

    // brk, stack, argv/env bounds, auxv and /proc/PID/exe, all at once.
    inj.reset();
    const exeFd = Number(tracee.syscallOk(`open ${mm.layout.exe}`, NR.open, inj.putString(mm.layout.exe), O.RDONLY | O.CLOEXEC, 0));
    const auxv = inj.put(mm.layout.auxv);
    const map = inj.put(prctlMmMap(mm.layout, auxv, exeFd));
    tracee.syscallOk('prctl(PR_SET_MM_MAP)', NR.prctl, PR.SET_MM, PR.SET_MM_MAP, map, 104, 0);
    tracee.syscall(NR.close, exeFd);
  },

  describe(mm) {
    const pages = mm.pages.reduce((n, r) => n + r.nr_pages, 0);
    return [
      `exe ${mm.layout.exe}  brk ${hex(mm.layout.start_brk)}-${hex(mm.layout.brk)}  ${pages} pages saved`,
      ...mm.vmas.map((v) => {
        const prot = `${v.prot & PROT.READ ? 'r' : '-'}${v.prot & PROT.WRITE ? 'w' : '-'}${v.prot & PROT.EXEC ? 'x' : '-'}`;
        return `  ${hex(v.start).padStart(14)}-${hex(v.end).padEnd(14)} ${prot} ${v.kind.padEnd(12)} ${v.path || v.name}`;
      }),
    ];
  },
});
