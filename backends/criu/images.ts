/**
 * A reader for CRIU's image files, independent of the criu binary (no
 * crit needed): a file is one or two 32-bit magics followed by entries,
 * each a little-endian u32 length and a protobuf message. The schemas are
 * the minimal ones under ./images/ — enough for the tree, the tasks, the
 * memory layout and CRIU's statistics.
 */
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { CrError } from '../../userspace/errors.js';
import { packageRoot } from '../../userspace/paths.js';
import { INVENTORY_MAGIC, isCriuImage } from './identity.js';

export const MAGIC = {
  IMG_COMMON: 0x54564319,
  IMG_SERVICE: 0x55105940,
  INVENTORY: INVENTORY_MAGIC,
  PSTREE: 0x50273030,
  CORE: 0x55053847,
  MM: 0x57492820,
  PAGEMAP: 0x56084025,
  STATS: 0x57093306,
} as const;

const protoDir = path.join(packageRoot, 'backends', 'criu', 'images');
let root: protobuf.Root | undefined;
function schema(): protobuf.Root {
  root ??= new protobuf.Root().loadSync(['inventory.proto', 'pstree.proto', 'core.proto', 'mm.proto', 'pagemap.proto', 'stats.proto'].map((f) => path.join(protoDir, f)), { keepCase: true });
  return root;
}

const toObj = { longs: Number, enums: String, defaults: false } as const;

/**
 * Decodes one image file: checks its magic (the common or service magic,
 * if any, then the per-type one) and returns its entries as plain objects.
 * `types[i]` decodes entry i; the last type repeats for the rest.
 */
export function readImage(file: string, magic: number, types: string[]): Record<string, any>[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new CrError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const name = path.basename(file);
  if (buf.length < 4) throw new CrError(`${name}: too short for a CRIU image`);
  let off = 0;
  let m = buf.readUInt32LE(off);
  off += 4;
  if (m === MAGIC.IMG_COMMON || m === MAGIC.IMG_SERVICE) {
    if (buf.length < 8) throw new CrError(`${name}: truncated after the common magic`);
    m = buf.readUInt32LE(off);
    off += 4;
  }
  if (m !== magic) throw new CrError(`${name}: magic 0x${m.toString(16)} is not the expected 0x${magic.toString(16)}`);
  const out: Record<string, any>[] = [];
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new CrError(`${name}: truncated entry header at byte ${off}`);
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) throw new CrError(`${name}: entry of ${len} bytes at byte ${off - 4} runs past the end`);
    const type = schema().lookupType(types[Math.min(out.length, types.length - 1)]);
    try {
      out.push(type.toObject(type.decode(buf.subarray(off, off + len)), toObj));
    } catch (err) {
      throw new CrError(`${name}: entry ${out.length} is not a valid ${type.name}: ${(err as Error).message}`);
    }
    off += len;
  }
  return out;
}

export interface PstreeEntry {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads?: number[];
}

export function readPstree(dir: string): PstreeEntry[] {
  return readImage(path.join(dir, 'pstree.img'), MAGIC.PSTREE, ['pstree_entry']) as PstreeEntry[];
}

export interface DumpStatsEntry {
  freezing_time?: number;
  frozen_time?: number;
  memdump_time?: number;
  memwrite_time?: number;
  pages_scanned?: number;
  pages_skipped_parent?: number;
  pages_written?: number;
  pages_lazy?: number;
}
export interface RestoreStatsEntry {
  pages_compared?: number;
  pages_skipped_cow?: number;
  forking_time?: number;
  restore_time?: number;
  pages_restored?: number;
}

/** CRIU's own statistics of the last dump or restore into `dir`, if it wrote them. */
export async function readStats(dir: string, which: 'dump'): Promise<DumpStatsEntry | undefined>;
export async function readStats(dir: string, which: 'restore'): Promise<RestoreStatsEntry | undefined>;
export async function readStats(dir: string, which: 'dump' | 'restore'): Promise<Record<string, number> | undefined> {
  const file = path.join(dir, `stats-${which}`);
  if (!fs.existsSync(file)) return undefined;
  const [e] = readImage(file, MAGIC.STATS, ['stats_entry']);
  return e?.[which];
}

const TASK_STATE: Record<number, string> = { 1: 'alive', 2: 'dead', 3: 'stopped', 6: 'zombie' };
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const hex = (n: number) => `0x${n.toString(16)}`;

/** The whole image, decoded: tree, per-task core and memory, statistics. */
export async function describeImage(dir: string): Promise<{ lines: string[]; data: Record<string, unknown> }> {
  if (!isCriuImage(dir)) throw new CrError(`${dir} holds no CRIU image (no inventory.img with CRIU's magic)`);
  const [inv] = readImage(path.join(dir, 'inventory.img'), MAGIC.INVENTORY, ['inventory_entry']);
  const tree = readPstree(dir);
  const files = fs.readdirSync(dir).sort();
  const lines: string[] = [];
  lines.push(`CRIU image, format version ${inv?.img_version ?? '?'}${inv?.dump_uptime ? `, dumped ${(inv.dump_uptime / 1e6).toFixed(1)} s after boot` : ''}`);

  const tasks: Record<string, unknown>[] = [];
  const byPid = new Map(tree.map((t) => [t.pid, t]));
  const depth = (t: PstreeEntry): number => (byPid.has(t.ppid) ? 1 + depth(byPid.get(t.ppid)!) : 0);
  lines.push(`process tree (${tree.length} process${tree.length === 1 ? '' : 'es'}):`);
  for (const t of tree) {
    const threads = t.threads ?? [t.pid];
    let core: Record<string, any> | undefined;
    try {
      [core] = readImage(path.join(dir, `core-${t.pid}.img`), MAGIC.CORE, ['core_entry']);
    } catch {
      /* shown as unknown */
    }
    const tc = core?.tc ?? {};
    let mm: Record<string, any> | undefined;
    let pages = 0;
    try {
      [mm] = readImage(path.join(dir, `mm-${t.pid}.img`), MAGIC.MM, ['mm_entry']);
    } catch {
      /* none */
    }
    try {
      const pm = readImage(path.join(dir, `pagemap-${t.pid}.img`), MAGIC.PAGEMAP, ['pagemap_head', 'pagemap_entry']);
      for (const e of pm.slice(1)) if (!e.in_parent) pages += e.nr_pages ?? 0;
    } catch {
      /* none */
    }
    const vmas: Record<string, number>[] = mm?.vmas ?? [];
    const mapped = vmas.reduce((s, v) => s + (v.end - v.start), 0);
    const state = TASK_STATE[tc.task_state] ?? String(tc.task_state ?? '?');
    lines.push(`${'  '.repeat(depth(t) + 1)}${t.pid} ${tc.comm ?? '?'} [${state}] ppid ${t.ppid} pgid ${t.pgid} sid ${t.sid}` +
      `${threads.length > 1 ? `, threads ${threads.join(' ')}` : ''}; ${vmas.length} VMAs, ${mib(mapped)} mapped, ${pages} pages (${mib(pages * 4096)}) in the image` +
      `${tc.blk_sigset ? `, blocked ${hex(tc.blk_sigset)}` : ''}`);
    tasks.push({ ...t, arch: core?.mtype, comm: tc.comm, state, exitCode: tc.exit_code, blockedSignals: tc.blk_sigset, ids: core?.ids, vmas, pagesInImage: pages,
      brk: mm ? { start: mm.mm_start_brk, end: mm.mm_brk } : undefined });
  }

  const dumpStats = await readStats(dir, 'dump').catch(() => undefined);
  const restoreStats = await readStats(dir, 'restore').catch(() => undefined);
  const ms = (us?: number) => (us === undefined ? '?' : `${(us / 1000).toFixed(1)} ms`);
  if (dumpStats) {
    lines.push(`dump statistics: freezing ${ms(dumpStats.freezing_time)}, frozen ${ms(dumpStats.frozen_time)}, memdump ${ms(dumpStats.memdump_time)}, ` +
      `memwrite ${ms(dumpStats.memwrite_time)}; pages scanned ${dumpStats.pages_scanned ?? '?'}, written ${dumpStats.pages_written ?? '?'}`);
  }
  if (restoreStats) {
    lines.push(`restore statistics: forking ${ms(restoreStats.forking_time)}, restore ${ms(restoreStats.restore_time)}; pages restored ${restoreStats.pages_restored ?? '?'}`);
  }
  const sizes = files.map((f) => {
    const st = fs.statSync(path.join(dir, f));
    return { name: f, bytes: st.isFile() ? st.size : 0 };
  });
  const total = sizes.reduce((s, f) => s + f.bytes, 0);
  lines.push(`${files.length} files, ${mib(total)}: ${sizes.filter((f) => f.name.endsWith('.img')).map((f) => f.name).join(' ')}`);
  return { lines, data: { format: 'criu', inventory: inv, tasks, stats: { dump: dumpStats, restore: restoreStats }, files: sizes } };
}
