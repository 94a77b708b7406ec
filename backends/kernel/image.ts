/**
 * Reading kernel-backend images in TypeScript: the framing and the public
 * objects (include/uapi/linux/checkpoint.h) and, for `cr show`, the
 * engine's own objects (kmod/ckpt_image.h, image version 1).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../userspace/errors.js';
import { IMAGE_NAME } from './identity.js';

export const LOG_NAME = 'kernel.log';
export const imagePath = (dir: string): string => path.join(dir, IMAGE_NAME);
export const logPath = (dir: string): string => path.join(dir, LOG_NAME);

export const MAGIC_HEAD = 0x54504b4358554e4cn;
export const MAGIC_TAIL = 0x4c494154544b4344n;
export const IMAGE_VERSION = 1;

export const TYPE_NAMES: Record<number, string> = {
  1: 'HEADER', 2: 'TREE', 3: 'TASK', 4: 'FS', 5: 'FILE', 6: 'FD', 7: 'MM', 8: 'VMA',
  9: 'CPU', 10: 'FPU', 11: 'PAGES', 12: 'SIGNAL', 32: 'SIGPENDING', 33: 'CRED', 34: 'RLIMITS', 35: 'PIPE', 36: 'ZOMBIE',
  40: 'THREAD', 41: 'SIGHAND', 42: 'SHMEM', 43: 'DROP', 80: 'PROCESS', 81: 'ITIMERS', 82: 'POSIX_TIMER', 126: 'ERROR', 127: 'TAIL',
};
const T = {
  HEADER: 1, TREE: 2, TASK: 3, FS: 4, FILE: 5, FD: 6, MM: 7, VMA: 8, CPU: 9, FPU: 10, PAGES: 11, SIGNAL: 12, SIGPENDING: 32, CRED: 33, RLIMITS: 34, PIPE: 35, ZOMBIE: 36,
  THREAD: 40, SIGHAND: 41, SHMEM: 42, DROP: 43, PROCESS: 80, ITIMERS: 81, POSIX_TIMER: 82, ERROR: 126, TAIL: 127,
};
/** enum ckpt_share: what a TASK object names by id. */
const SHARE_NAMES = ['mm', 'files', 'fs', 'sighand', 'signal'];
const RLIMIT_NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'];
const RLIM_INFINITY = 0xffffffffffffffffn;
const SCHED_POLICIES = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', '4', 'SCHED_IDLE', 'SCHED_DEADLINE'];
const CLOCKS = ['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_PROCESS_CPUTIME_ID', 'CLOCK_THREAD_CPUTIME_ID', '4', '5', '6', 'CLOCK_BOOTTIME', '8', '9', '10', 'CLOCK_TAI'];
const CPU_CLOCKS = ['PROF', 'VIRT', 'SCHED'];
/** madvise(2)/mlock(2) flags of a VMA that restart replays (kmod/vma.c), by vm_flags bit. */
const VMA_ADVICE: [bigint, string][] = [
  [0x2000n, 'locked'], [0x8000n, 'seq'], [0x10000n, 'rand'], [0x20000n, 'dontfork'], [0x2000000n, 'wipeonfork'],
  [0x4000000n, 'dontdump'], [0x20000000n, 'hugepage'], [0x40000000n, 'nohugepage'], [0x80000000n, 'mergeable'],
];

/** A timer value in ns as cr show prints it: what is left, and the period. */
const timerValue = (o: Buffer, at: number): string => {
  const ms = (v: bigint) => `${(Number(v) / 1e6).toFixed(3)} ms`;
  const value = o.readBigUInt64LE(at);
  const interval = o.readBigUInt64LE(at + 8);
  return value ? `${ms(value)} left${interval ? `, every ${ms(interval)}` : ''}` : 'disarmed';
};

/** clockid_t as cr show prints it: a CPU clock is its pid (0: the task itself) and kind. */
const clockName = (c: number): string =>
  c >= 0 ? (CLOCKS[c] ?? `clock ${c}`) : `${c & 4 ? 'thread' : 'process'} ${CPU_CLOCKS[c & 3] ?? '?'} CPU clock${~(c >> 3) ? ` of pid ${~(c >> 3)}` : ''}`;

export interface ImageObject {
  type: number;
  name: string;
  offset: number;
  len: number;
}

export interface ImageHeader {
  version: number;
  arch: string;
  flags: number;
  time: Date;
  pageSize: number;
  release: string;
}

export interface TreeTask {
  pid: number;
  tgid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** A zombie's wait status (from its ZOMBIE object; full decode only). */
  zombie?: number;
}

export interface DecodedImage {
  header: ImageHeader;
  tree: TreeTask[];
  objects: ImageObject[];
  tail?: { nrObjects: number; checksum: string; checksumOk: boolean };
  error?: { errno: number; message: string };
  /** Details of the engine's objects, one human line each (cr show). */
  details: string[];
  pages: number;
}

const hex = (n: bigint): string => `0x${n.toString(16)}`;
const cstr = (buf: Buffer, start: number, end: number): string => {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
};

/**
 * The image's checksum, as kmod/image.c computes it (FNV-style over u64
 * words), in two 32-bit halves: BigInt arithmetic takes minutes on a large
 * image. The prime is 2^40 + 435, so x * prime = (x << 40) + x * 435.
 */
function checksum(buf: Buffer, end: number): bigint {
  const TWO32 = 0x100000000;
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let off = 0; off + 8 <= end; off += 8) {
    lo = (lo ^ buf.readUInt32LE(off)) >>> 0;
    hi = (hi ^ buf.readUInt32LE(off + 4)) >>> 0;
    const low = lo * 435;
    const carry = Math.floor(low / TWO32);
    hi = (hi * 435 + carry + (lo % 0x1000000) * 256) % TWO32;
    lo = low % TWO32;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** The most a header and a TREE object take: CKPT_TASKS_MAX (1024) tasks of 24 bytes. */
const HEAD_MAX = 64 << 10;

/** Only the framing, header and tree: what restore needs before it starts. */
export function readHeader(file: string): { header: ImageHeader; tree: TreeTask[] } {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(HEAD_MAX);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return parse(buf.subarray(0, n), file, true);
  } finally {
    fs.closeSync(fd);
  }
}

export function decodeImage(file: string): DecodedImage {
  return parse(fs.readFileSync(file), file, false) as DecodedImage;
}

function parse(buf: Buffer, file: string, headOnly: boolean): DecodedImage {
  const bad = (why: string) => new CrError(`${file}: not a valid kernel-backend image: ${why}`);
  const objects: ImageObject[] = [];
  const details: string[] = [];
  let header: ImageHeader | undefined;
  let tree: TreeTask[] | undefined;
  let tail: DecodedImage['tail'];
  let error: DecodedImage['error'];
  let pages = 0;
  let off = 0;
  while (off + 8 <= buf.length) {
    const type = buf.readUInt32LE(off);
    const len = buf.readUInt32LE(off + 4);
    if (len < 8 || len % 8) throw bad(`object ${objects.length} at offset ${off} has length ${len}`);
    if (off + len > buf.length) {
      if (headOnly && header && tree) break;
      throw bad(`truncated in object ${objects.length} (${TYPE_NAMES[type] ?? type})`);
    }
    const o = buf.subarray(off, off + len);
    objects.push({ type, name: TYPE_NAMES[type] ?? `unknown(${type})`, offset: off, len });
    if (objects.length === 1) {
      if (type !== T.HEADER || len < 120 || o.readBigUInt64LE(8) !== MAGIC_HEAD) throw bad('bad magic');
      header = {
        version: o.readUInt32LE(16),
        arch: o.readUInt32LE(20) === 1 ? 'x86_64' : `arch ${o.readUInt32LE(20)}`,
        flags: Number(o.readBigUInt64LE(24)),
        time: new Date(Number(o.readBigInt64LE(32)) * 1000),
        pageSize: o.readUInt32LE(40),
        release: cstr(o, 48, 48 + 65),
      };
      if (header.version !== IMAGE_VERSION) throw bad(`image version ${header.version}, this reader knows ${IMAGE_VERSION}`);
    } else if (type === T.TREE) {
      const nr = o.readUInt32LE(8);
      if (len < 16 + nr * 24) throw bad('short TREE object');
      tree = [];
      for (let i = 0; i < nr; i++) {
        const p = 16 + i * 24;
        tree.push({ pid: o.readInt32LE(p), tgid: o.readInt32LE(p + 4), ppid: o.readInt32LE(p + 8), pgid: o.readInt32LE(p + 12), sid: o.readInt32LE(p + 16) });
      }
      if (headOnly) break;
    } else if (type === T.TAIL && len >= 32) {
      const want = o.readBigUInt64LE(24);
      tail = { nrObjects: Number(o.readBigUInt64LE(16)), checksum: hex(want), checksumOk: checksum(buf, off) === want };
      off += len;
      break;
    } else if (type === T.ERROR && len >= 16) {
      error = { errno: o.readInt32LE(8), message: cstr(o, 16, len) };
    } else if (type === T.TASK && len >= 72) {
      const pid = o.readInt32LE(8);
      const tgid = o.readInt32LE(12);
      const shares = SHARE_NAMES.map((n, i) => `${n} #${o.readInt32LE(40 + i * 4)}`).join(' ');
      const vfork = o.readUInt32LE(20) & 1 ? `, in vfork for pid ${o.readInt32LE(60)}` : '';
      details.push(`task pid ${pid}${tgid === pid ? '' : ` (thread of ${tgid})`} comm ${cstr(o, 24, 40)}, uses ${shares}${vfork}`);
    } else if (type === T.THREAD && len >= 56) {
      details.push(`  thread: clear_child_tid ${hex(o.readBigUInt64LE(16))} robust_list ${hex(o.readBigUInt64LE(24))} rseq ${hex(o.readBigUInt64LE(40))}`);
    } else if (type === T.SIGHAND && len >= 8 + 64 * 32) {
      const handled: number[] = [];
      for (let i = 0; i < 64; i++) if (o.readBigUInt64LE(8 + i * 32) > 1n) handled.push(i + 1);
      details.push(`  signal handlers for: ${handled.length ? handled.join(' ') : 'none'}`);
    } else if (type === T.SIGNAL && len >= 40) {
      const alt = o.readBigUInt64LE(24) ? `, altstack ${hex(o.readBigUInt64LE(16))}+${o.readBigUInt64LE(24)}` : '';
      details.push(`  blocked ${hex(o.readBigUInt64LE(8))}${alt}`);
    } else if (type === T.SHMEM && len >= 24) {
      details.push(`  shmem #${o.readInt32LE(8)}: ${o.readBigUInt64LE(16)} bytes of shared anonymous memory`);
    } else if (type === T.FS && len >= 16) {
      details.push(`cwd ${cstr(o, 16, len)} umask ${o.readUInt32LE(8).toString(8).padStart(4, '0')}`);
    } else if (type === T.FILE && len >= 40) {
      const kind = ['?', 'file', 'dir', 'chardev', 'pipe end', 'fifo'][o.readUInt32LE(12)] ?? '?';
      const where = kind === 'pipe end' ? `of pipe #${o.readInt32LE(36)}` : kind === 'fifo' ? `${cstr(o, 40, len)} of pipe #${o.readInt32LE(36)}` : `${cstr(o, 40, len)} `;
      details.push(`file #${o.readInt32LE(8)} ${kind} ${where} flags 0${o.readUInt32LE(16).toString(8)}${kind === 'pipe end' ? '' : ` pos ${o.readBigInt64LE(24)}`}`);
    } else if (type === T.ZOMBIE && len >= 32) {
      const task = tree?.find((t) => t.pid === o.readInt32LE(8));
      if (task) task.zombie = o.readUInt32LE(12);
      details.push(`zombie pid ${o.readInt32LE(8)}, wait status 0x${o.readUInt32LE(12).toString(16)} (${cstr(o, 16, 32)})`);
    } else if (type === T.PIPE && len >= 16) {
      details.push(`pipe #${o.readInt32LE(8)}: ${o.readUInt32LE(12)} bytes in flight`);
    } else if (type === T.FD && len >= 24) {
      const kind = o.readUInt32LE(16) === 2 ? 'inherited from the restarter' : `file #${o.readInt32LE(12)}`;
      details.push(`fd ${o.readInt32LE(8)}: ${kind}${o.readUInt32LE(20) ? ' (cloexec)' : ''}`);
    } else if (type === T.MM && len >= 128) {
      const parent = o.readInt32LE(120) ? `, a fork copy of mm #${o.readInt32LE(120)}` : '';
      details.push(`mm: ${o.readUInt32LE(112)} mappings, brk ${hex(o.readBigUInt64LE(40))}-${hex(o.readBigUInt64LE(48))}, vdso ${hex(o.readBigUInt64LE(96))}${parent}`);
    } else if (type === T.VMA && len >= 56) {
      const kinds = ['?', 'anon private', 'anon shared', 'file private', 'file shared'];
      const prot = o.readUInt32LE(44);
      const rwx = `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}`;
      const ref = o.readInt32LE(48);
      const what = o.readUInt32LE(40) === 2 ? 'shmem' : 'file';
      const fromParent = len >= 64 && o.readUInt32LE(56) ? ' (the parent\'s, kept from the fork)' : '';
      const vmFlags = o.readBigUInt64LE(32);
      const advice = VMA_ADVICE.filter(([bit]) => vmFlags & bit).map(([, name]) => ` ${name}`).join('');
      details.push(`  vma ${hex(o.readBigUInt64LE(8))}-${hex(o.readBigUInt64LE(16))} ${rwx} ${kinds[o.readUInt32LE(40)] ?? '?'}${ref ? ` ${what} #${ref} pgoff ${o.readBigUInt64LE(24)}` : ''}${o.readUInt32LE(52) ? ' growsdown' : ''}${advice}${fromParent}`);
    } else if (type === T.CPU && len >= 8 + 27 * 8) {
      details.push(`cpu: ip ${hex(o.readBigUInt64LE(8 + 16 * 8))} sp ${hex(o.readBigUInt64LE(8 + 19 * 8))} orig_ax ${o.readBigInt64LE(8 + 15 * 8)} fs_base ${hex(o.readBigUInt64LE(8 + 21 * 8))}`);
    } else if (type === T.FPU && len >= 16) {
      details.push(`fpu: ${o.readUInt32LE(12)} bytes (${o.readUInt32LE(8) === 0x202 ? 'XSAVE' : 'FXSAVE'} layout)`);
    } else if (type === T.SIGPENDING && len >= 16) {
      const sigs: string[] = [];
      for (let i = 0, p = 16; i < o.readUInt32LE(8) && p + 56 <= len; i++, p += 56) {
        sigs.push(`${o.readInt32LE(p + 8)}${o.readUInt32LE(p) ? ' (process)' : ''} code ${o.readInt32LE(p + 16)}`);
      }
      details.push(`pending signals: ${sigs.length ? sigs.join(', ') : 'none'}`);
    } else if (type === T.CRED && len >= 88) {
      const groups = Array.from({ length: Math.min(o.readUInt32LE(84), (len - 88) / 4) }, (_, i) => o.readUInt32LE(88 + i * 4));
      const ids = (at: number) => [0, 4, 8, 12].map((d) => o.readUInt32LE(at + d)).join('/');
      details.push(`creds: uid ${ids(8)} gid ${ids(24)} groups [${groups.join(' ')}]`);
      details.push(`  caps: effective ${hex(o.readBigUInt64LE(56))} permitted ${hex(o.readBigUInt64LE(48))} inheritable ${hex(o.readBigUInt64LE(40))} bounding ${hex(o.readBigUInt64LE(64))} ambient ${hex(o.readBigUInt64LE(72))} securebits ${hex(BigInt(o.readUInt32LE(80)))}`);
    } else if (type === T.RLIMITS && len >= 16) {
      const lim = (v: bigint) => (v === RLIM_INFINITY ? '∞' : v.toString());
      const set: string[] = [];
      for (let i = 0; i < Math.min(o.readUInt32LE(8), RLIMIT_NAMES.length) && 16 + i * 16 + 16 <= len; i++) {
        set.push(`${RLIMIT_NAMES[i]} ${lim(o.readBigUInt64LE(16 + i * 16))}/${lim(o.readBigUInt64LE(24 + i * 16))}`);
      }
      details.push(`rlimits: ${set.join(', ')}`);
    } else if (type === T.PROCESS && len >= 88) {
      const flags = o.readUInt32LE(20);
      const policy = o.readUInt32LE(40);
      const exe = o.readUInt32LE(60) ? cstr(o, 88, len) : '(none)';
      details.push(`process: exe ${exe}, personality ${hex(BigInt(o.readUInt32LE(8)))}, pdeathsig ${o.readUInt32LE(12)}, dumpable ${o.readUInt32LE(16)}` +
        `${flags & 1 ? ', child subreaper' : ''}${flags & 2 ? ', no_new_privs' : ''}` +
        `${flags & 4 ? `, stopped by signal ${o.readUInt32LE(52)}${o.readUInt32LE(56) ? ' (not waited for)' : ''}` : ''}`);
      details.push(`  sched: ${SCHED_POLICIES[policy] ?? `policy ${policy}`}${flags & 8 ? '|SCHED_RESET_ON_FORK' : ''} priority ${o.readUInt32LE(44)} nice ${o.readInt32LE(48)}` +
        `${policy === 6 ? ` runtime ${o.readBigUInt64LE(64)} deadline ${o.readBigUInt64LE(72)} period ${o.readBigUInt64LE(80)} ns` : ''}, timer slack ${o.readBigUInt64LE(24)} ns (default ${o.readBigUInt64LE(32)})`);
    } else if (type === T.ITIMERS && len >= 56) {
      details.push(`itimers: real ${timerValue(o, 8)}, virtual ${timerValue(o, 24)}, prof ${timerValue(o, 40)}`);
    } else if (type === T.POSIX_TIMER && len >= 64) {
      const notify = o.readUInt32LE(16);
      const how = ['SIGEV_SIGNAL', 'SIGEV_NONE'][notify & ~4] ?? `notify ${notify}`;
      details.push(`posix timer ${o.readInt32LE(8)}: ${clockName(o.readInt32LE(12))}, ${how}${notify & 4 ? ` to tid ${o.readInt32LE(32)}` : ''}` +
        `${notify & ~4 ? '' : ` signal ${o.readUInt32LE(20)} value ${o.readBigUInt64LE(24)}`}, ${timerValue(o, 40)}, overrun ${o.readBigInt64LE(56)}`);
    } else if (type === T.PAGES && len >= 16) {
      pages += o.readUInt32LE(8);
    } else if (type === T.DROP && len >= 16) {
      let n = 0;
      for (let i = 0, p = 16; i < o.readUInt32LE(8) && p + 16 <= len; i++, p += 16) n += Number((o.readBigUInt64LE(p + 8) - o.readBigUInt64LE(p)) / 4096n);
      details.push(`  ${n} pages of the parent's copy dropped`);
    }
    off += len;
  }
  if (!header) throw bad('no header');
  if (!tree) throw bad('no task tree');
  if (!headOnly && !tail && !error) throw bad('no trailer (truncated)');
  return { header, tree, objects, tail, error, details, pages };
}
