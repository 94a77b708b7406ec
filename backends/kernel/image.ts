/**
 * Reading kernel-backend images in TypeScript: the framing and the public
 * objects (include/uapi/linux/checkpoint.h) and, for `cr show`, the
 * engine's own objects (kmod/ckpt_image.h, image version 2). Page data is
 * never read: an image of several GiB costs what its metadata costs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../userspace/errors.js';
import { cpuList, maskCpus } from '../../userspace/cpus.js';
import { AF, formatEndpoint } from '../../userspace/net/socket.js';
import { IMAGE_NAME } from './identity.js';
import { CLONE, RLIMIT_NAMES } from '../../userspace/sys/constants.js';

export const LOG_NAME = 'kernel.log';
export const imagePath = (dir: string): string => path.join(dir, IMAGE_NAME);
export const logPath = (dir: string): string => path.join(dir, LOG_NAME);

export const MAGIC_HEAD = 0x54504b4358554e4cn;
export const MAGIC_TAIL = 0x4c494154544b4344n;
export const IMAGE_VERSION = 2;

export const TYPE_NAMES: Record<number, string> = {
  1: 'HEADER', 2: 'TREE', 3: 'TASK', 4: 'FS', 5: 'FILE', 6: 'FD', 7: 'MM', 8: 'VMA',
  9: 'CPU', 10: 'FPU', 11: 'PAGES', 12: 'SIGNAL', 32: 'SIGPENDING', 33: 'CRED', 34: 'RLIMITS', 35: 'PIPE', 36: 'ZOMBIE',
  40: 'THREAD', 41: 'SIGHAND', 42: 'SHMEM', 43: 'DROP', 60: 'DATA', 61: 'SOCKET', 62: 'SKB', 63: 'EVENTFD', 64: 'TIMERFD', 65: 'SIGNALFD', 66: 'EPOLL', 67: 'INOTIFY',
  68: 'INOTIFY_WATCH', 69: 'MEMFD', 70: 'GHOST', 71: 'LOCK', 72: 'TTY', 73: 'CTTY', 80: 'PROCESS', 81: 'ITIMERS', 82: 'POSIX_TIMER',
  83: 'UTS_NS', 84: 'IPC_NS', 85: 'SHM', 86: 'MSG_QUEUE', 87: 'MSG', 88: 'SEM', 89: 'SEM_UNDO', 100: 'SECCOMP', 120: 'CHAIN',
  140: 'INET', 141: 'DGRAM', 126: 'ERROR', 127: 'TAIL',
};
const T = {
  HEADER: 1, TREE: 2, TASK: 3, FS: 4, FILE: 5, FD: 6, MM: 7, VMA: 8, CPU: 9, FPU: 10, PAGES: 11, SIGNAL: 12, SIGPENDING: 32, CRED: 33, RLIMITS: 34, PIPE: 35, ZOMBIE: 36,
  THREAD: 40, SIGHAND: 41, SHMEM: 42, DROP: 43,
  DATA: 60, SOCKET: 61, SKB: 62, EVENTFD: 63, TIMERFD: 64, SIGNALFD: 65, EPOLL: 66, INOTIFY: 67, INOTIFY_WATCH: 68, MEMFD: 69, GHOST: 70, LOCK: 71, TTY: 72, CTTY: 73,
  PROCESS: 80, ITIMERS: 81, POSIX_TIMER: 82, UTS_NS: 83, IPC_NS: 84, SHM: 85, MSG_QUEUE: 86, MSG: 87, SEM: 88, SEM_UNDO: 89,
  SECCOMP: 100, CHAIN: 120, INET: 140, DGRAM: 141, ERROR: 126, TAIL: 127,
};
/** CLONE_NEW* flags of the namespaces a root had of its own, by the object that saves them. */
const NS_CLONE_FLAGS: Record<number, number> = { [T.UTS_NS]: CLONE.NEWUTS, [T.IPC_NS]: CLONE.NEWIPC };
/** enum ckpt_share: what a TASK object names by id. */
const SHARE_NAMES = ['mm', 'files', 'fs', 'sighand', 'signal'];
/** enum ckpt_file_kind (kmod/ckpt_image.h) */
const FILE_KINDS = ['?', 'file', 'dir', 'chardev', 'pipe end', 'fifo', 'unix socket', 'eventfd', 'timerfd', 'signalfd', 'epoll', 'inotify', 'memfd', 'unlinked file', 'terminal', '/dev/tty', 'inet socket'];
const SOCK_TYPES: Record<number, string> = { 1: 'stream', 2: 'datagram', 5: 'seqpacket' };
const SOCK_STATES = ['?', 'unconnected', 'listening', 'connected', 'pending'];
const SO_FLAGS: [number, string][] = [[0x1, 'passcred'], [0x2, 'passsec'], [0x4, 'passpidfd'], [0x40, 'client closed']];
const LOCK_KINDS = ['?', 'posix', 'ofd', 'flock'];
/** enum ckpt_inet_state, struct ckpt_hdr_inet's flags and the options it carries (kmod/ckpt_image.h, kmod/inet.c) */
const INET = { UNCONNECTED: 1, LISTEN: 2, CONNECTED: 3, ESTABLISHED: 4 };
const INET_FLAGS = { BOUND_ADDR: 0x1, BOUND_PORT: 0x2, SNDBUF: 0x4, RCVBUF: 0x8, REUSEADDR: 0x10, OUTSIDE: 0x20 };
const INET_HDR = 200;
const TCPOPT = { SACK: 0x1, WSCALE: 0x2, TIMESTAMP: 0x4 };
const SOCKOPT_NAMES: Record<number, Record<number, string>> = {
  0: {
    1: 'IP_TOS', 2: 'IP_TTL', 8: 'IP_PKTINFO', 10: 'IP_MTU_DISCOVER', 11: 'IP_RECVERR', 12: 'IP_RECVTTL', 13: 'IP_RECVTOS', 15: 'IP_FREEBIND',
    19: 'IP_TRANSPARENT', 20: 'IP_RECVORIGDSTADDR', 24: 'IP_BIND_ADDRESS_NO_PORT', 33: 'IP_MULTICAST_TTL', 34: 'IP_MULTICAST_LOOP',
  },
  41: {
    16: 'IPV6_UNICAST_HOPS', 18: 'IPV6_MULTICAST_HOPS', 19: 'IPV6_MULTICAST_LOOP', 23: 'IPV6_MTU_DISCOVER', 25: 'IPV6_RECVERR', 26: 'IPV6_V6ONLY',
    49: 'IPV6_RECVPKTINFO', 51: 'IPV6_RECVHOPLIMIT', 66: 'IPV6_RECVTCLASS', 67: 'IPV6_TCLASS', 74: 'IPV6_RECVORIGDSTADDR', 75: 'IPV6_TRANSPARENT',
    78: 'IPV6_FREEBIND',
  },
  6: {
    1: 'TCP_NODELAY', 2: 'TCP_MAXSEG', 3: 'TCP_CORK', 4: 'TCP_KEEPIDLE', 5: 'TCP_KEEPINTVL', 6: 'TCP_KEEPCNT', 7: 'TCP_SYNCNT', 8: 'TCP_LINGER2',
    9: 'TCP_DEFER_ACCEPT', 10: 'TCP_WINDOW_CLAMP', 13: 'TCP_CONGESTION', 16: 'TCP_THIN_LINEAR_TIMEOUTS', 18: 'TCP_USER_TIMEOUT', 23: 'TCP_FASTOPEN',
    25: 'TCP_NOTSENT_LOWAT', 36: 'TCP_INQ',
  },
  17: { 1: 'UDP_CORK', 101: 'UDP_NO_CHECK6_TX', 102: 'UDP_NO_CHECK6_RX', 103: 'UDP_SEGMENT', 104: 'UDP_GRO' },
  1: {
    5: 'SO_DONTROUTE', 6: 'SO_BROADCAST', 9: 'SO_KEEPALIVE', 10: 'SO_OOBINLINE', 12: 'SO_PRIORITY', 13: 'SO_LINGER', 15: 'SO_REUSEPORT',
    18: 'SO_RCVLOWAT', 25: 'SO_BINDTODEVICE', 29: 'SO_TIMESTAMP_OLD', 35: 'SO_TIMESTAMPNS_OLD', 36: 'SO_MARK', 37: 'SO_TIMESTAMPING_OLD',
    40: 'SO_RXQ_OVFL', 42: 'SO_PEEK_OFF', 46: 'SO_BUSY_POLL', 47: 'SO_MAX_PACING_RATE', 60: 'SO_ZEROCOPY', 61: 'SO_TXTIME',
    63: 'SO_TIMESTAMP_NEW', 64: 'SO_TIMESTAMPNS_NEW', 66: 'SO_RCVTIMEO_NEW', 67: 'SO_SNDTIMEO_NEW', 75: 'SO_RCVMARK',
  },
};
/** Options shown only when they are not what a new socket has. */
const SOCKOPT_DEFAULTS: Record<string, string> = {
  IP_TTL: '64', IPV6_UNICAST_HOPS: '64', IP_MTU_DISCOVER: '1', IPV6_MTU_DISCOVER: '1', IP_MULTICAST_TTL: '1', IP_MULTICAST_LOOP: '1',
  IPV6_MULTICAST_HOPS: '1', IPV6_MULTICAST_LOOP: '1', TCP_KEEPIDLE: '7200', TCP_KEEPINTVL: '75', TCP_KEEPCNT: '9', TCP_SYNCNT: '6',
  TCP_LINGER2: '60', TCP_MAXSEG: '536', SO_RCVLOWAT: '1', SO_PEEK_OFF: '-1', TCP_NOTSENT_LOWAT: '-1', SO_MAX_PACING_RATE: '-1',
};
const OWNER_TYPES = ['?', 'tid', 'pid', 'pgrp'];
const RLIM_INFINITY = 0xffffffffffffffffn;
/** sizeof(struct ckpt_hdr_process): the CPU affinity bitmap (from byte 88) ends it, the executable's path follows. */
const PROCESS_SIZE = 216;
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

/** struct ckpt_ipc_perm (kmod/ckpt_image.h) as cr show prints it. */
const ipcPerm = (o: Buffer, at: number): string =>
  `id ${o.readInt32LE(at + 4)} key 0x${(o.readInt32LE(at) >>> 0).toString(16).padStart(8, '0')} mode 0${(o.readUInt32LE(at + 24) & 0o777).toString(8)}` +
  ` uid ${o.readUInt32LE(at + 8)} gid ${o.readUInt32LE(at + 12)} creator ${o.readUInt32LE(at + 16)}:${o.readUInt32LE(at + 20)}` +
  `${o.readUInt32LE(at + 24) & 0o1000 ? ' removed' : ''}${o.readUInt32LE(at + 24) & 0o2000 ? ' locked' : ''}`;

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
  /** A zombie's wait status (from its ZOMBIE object). */
  zombie?: number;
}

export interface KernelImage {
  header: ImageHeader;
  tree: TreeTask[];
  /** CLONE_NEW* flags of the namespaces the root had of its own (UTS, IPC): restart makes fresh ones. */
  cloneFlags: number;
  /** A terminal of the image is its shell's (saved with CHECKPOINT_SHELL_JOB). */
  shellJob: boolean;
  /** Where the image stands in a chain of checkpoints (pre-dumps), if it does. */
  chain?: { id: string; parentId?: string; parentPath?: string; tracking: boolean };
  objects: ImageObject[];
  /** checksumOk: whether the trailer's checksum matches (only read with `full`). */
  tail?: { nrObjects: number; checksum: string; checksumOk?: boolean };
  error?: { errno: number; message: string };
  /** Details of the engine's objects, one human line each (cr show; `full` only). */
  details: string[];
  /** Pages whose data the image holds. */
  pages: number;
  /** Pages it leaves in its parent (`full` only). */
  parentPages: number;
  /** Its TCP and UDP sockets. */
  sockets: ImageSocket[];
}

/** An inet socket of an image. */
export interface ImageSocket {
  objref: number;
  family: number;
  /** "tcp connection 127.0.0.1:5000 -> 127.0.0.1:40000", "udp6 socket bound to [::1]:53", … */
  name: string;
  local: { addr: Buffer; port: number };
  remote: { addr: Buffer; port: number };
  /** An established connection to a peer outside the tree (saved with --tcp-established). */
  outside: boolean;
}

/** struct ckpt_inet_addr at @at */
function inetAddr(o: Buffer, at: number, family: number): { family: number; addr: Buffer; port: number } {
  return { family, addr: Buffer.from(o.subarray(at, at + (family === AF.INET6 ? 16 : 4))), port: o.readUInt16LE(at + 16) };
}

/** One struct ckpt_sockopt as cr show prints it ("TCP_NODELAY=1"), or '' for a default value */
function sockopt(o: Buffer, at: number): string {
  const level = o.readUInt32LE(at);
  const optname = o.readUInt32LE(at + 4);
  const len = Math.min(o.readUInt32LE(at + 8), 16);
  const val = o.subarray(at + 16, at + 16 + len);
  const name = SOCKOPT_NAMES[level]?.[optname] ?? `${level}/${optname}`;
  let text: string;
  if (name === 'TCP_CONGESTION' || name === 'SO_BINDTODEVICE') text = cstr(val, 0, len);
  else if (name === 'SO_LINGER') text = val.readInt32LE(0) ? `${val.readInt32LE(4)}s` : '';
  else if (name.endsWith('TIMEO_NEW')) text = val.readBigInt64LE(0) || val.readBigInt64LE(8) ? `${val.readBigInt64LE(0)}.${String(val.readBigInt64LE(8)).padStart(6, '0')}s` : '';
  else if (len === 8) text = String(val.readBigInt64LE(0));
  else text = len >= 4 ? String(val.readInt32LE(0)) : '';
  return text && text !== '0' && SOCKOPT_DEFAULTS[name] !== text ? `${name}=${text}` : '';
}

/** An INET object as cr show prints it, and what the dump needs to know of it */
function inetSocket(o: Buffer, len: number): { socket: ImageSocket; lines: string[] } {
  const family = o.readUInt32LE(12);
  const tcp = o.readUInt32LE(16) === 1;
  const state = o.readUInt32LE(20);
  const flags = o.readUInt32LE(24);
  const proto = `${tcp ? 'tcp' : 'udp'}${family === AF.INET6 ? '6' : ''}`;
  const local = inetAddr(o, 64, family);
  const remote = inetAddr(o, 96, family);
  const at = formatEndpoint(local);
  let name: string;
  let what: string;
  if (state === INET.ESTABLISHED) {
    name = `${proto} connection ${at} -> ${formatEndpoint(remote)}`;
    const peer = o.readInt32LE(28);
    // struct ckpt_tcp_conn at 128
    const [recv, send, unsent] = [o.readUInt32LE(144), o.readUInt32LE(148), o.readUInt32LE(136) - o.readUInt32LE(132)];
    const opts = o.readUInt32LE(160);
    const agreed = [`mss ${o.readUInt32LE(152)}`, opts & TCPOPT.WSCALE ? `wscale ${o.readUInt32LE(164)}/${o.readUInt32LE(168)}` : '', opts & TCPOPT.SACK ? 'sack' : '', opts & TCPOPT.TIMESTAMP ? 'timestamps' : ''];
    what = `${name} (${flags & INET_FLAGS.OUTSIDE ? 'to a peer outside the tree' : `peer #${peer} in the image`}): ${send} bytes to send (${unsent >>> 0} never sent), ${recv} to read; ${agreed.filter(Boolean).join(', ')}`;
  } else {
    const bound = local.port || flags & (INET_FLAGS.BOUND_ADDR | INET_FLAGS.BOUND_PORT);
    name = `${proto} socket ${state === INET.LISTEN ? 'listening on' : bound ? 'bound to' : 'unbound'}${bound ? ` ${at}` : ''}`;
    what = `${name}${state === INET.LISTEN ? ` (backlog ${o.readUInt32LE(32)})` : ''}${state === INET.CONNECTED ? `, connected to ${formatEndpoint(remote)}` : ''}${tcp ? '' : `, ${o.readUInt32LE(56)} datagrams queued`}`;
  }
  const sh = o.readUInt32LE(36);
  const extra = [
    flags & INET_FLAGS.REUSEADDR ? 'reuseaddr' : '', flags & INET_FLAGS.SNDBUF ? `sndbuf ${o.readUInt32LE(44)}` : '', flags & INET_FLAGS.RCVBUF ? `rcvbuf ${o.readUInt32LE(48)}` : '',
    sh ? `shutdown ${sh & 1 ? 'rd' : ''}${sh & 2 ? 'wr' : ''}` : '', o.readInt32LE(40) ? `error ${o.readInt32LE(40)}` : '',
  ].filter(Boolean);
  const opts: string[] = [];
  for (let i = 0, p = INET_HDR; i < o.readUInt32LE(60) && p + 32 <= len; i++, p += 32) opts.push(sockopt(o, p));
  const shown = opts.filter(Boolean);
  return {
    socket: { objref: o.readInt32LE(8), family, name, local, remote, outside: !!(flags & INET_FLAGS.OUTSIDE) },
    lines: [`inet #${o.readInt32LE(8)}: ${what}${extra.length ? `; ${extra.join(', ')}` : ''}`, ...(shown.length ? [`  options: ${shown.join(' ')}`] : [])],
  };
}

const hex = (n: bigint): string => `0x${n.toString(16)}`;
const oct = (n: number): string => `0${n.toString(8)}`;
const secs = (ns: bigint): string => `${(Number(ns) / 1e9).toFixed(3)} s`;

/** A struct ckpt_sockaddr at @at: "" if none, "@name" for an abstract one. */
function sockaddr(o: Buffer, at: number): string {
  const len = o.readUInt32LE(at);
  if (len <= 2) return '';
  const name = o.subarray(at + 8 + 2, at + 8 + Math.min(len, 112));
  return name[0] === 0 ? `@${name.subarray(1).toString('latin1').replace(/\0+$/, '')}` : cstr(name, 0, name.length);
}
const cstr = (buf: Buffer, start: number, end: number): string => {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
};

const MASK64 = (1n << 64n) - 1n;

/** The image's checksum, as kmod/image.c computes it (FNV-style over u64 words), continued over @buf. */
function checksum(sum: bigint, buf: Buffer): bigint {
  for (let off = 0; off + 8 <= buf.length; off += 8) sum = ((sum ^ buf.readBigUInt64LE(off)) * 0x100000001b3n) & MASK64;
  return sum;
}
const CHECKSUM_SEED = 0xcbf29ce484222325n;

/**
 * The object types userspace reads even without `full`: the tree, zombies, the chain, terminals, namespaces
 * and inet sockets (whose connections to the outside the dump holds back).
 */
const ALWAYS = new Set([T.HEADER, T.TREE, T.CHAIN, T.ZOMBIE, T.TTY, T.UTS_NS, T.IPC_NS, T.INET, T.TAIL, T.ERROR]);
/** Bytes of a PAGES object's fixed part: header, pid, nr_runs, nr_pages, data_off. */
const PAGES_FIXED = 32;

/**
 * Read an image object by object with positioned reads: never the page
 * data (PAGES objects are read up to their data_off), and without `full`
 * only the header, tree, chain, zombies and trailer (each other object
 * costs one 8-byte read). With `full`, every object's details and the
 * checksum of the trailer (which covers everything but page data).
 */
export function readImage(file: string, full = false): KernelImage {
  const fd = fs.openSync(file, 'r');
  try {
    return parse(fd, fs.fstatSync(fd).size, file, full);
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(fd: number, len: number, pos: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, pos + got);
    if (!n) break;
    got += n;
  }
  return buf.subarray(0, got);
}

function parse(fd: number, size: number, file: string, full: boolean): KernelImage {
  const bad = (why: string) => new CrError(`${file}: not a valid kernel-backend image: ${why}`);
  const objects: ImageObject[] = [];
  const details: string[] = [];
  let header: ImageHeader | undefined;
  let tree: TreeTask[] | undefined;
  let chain: KernelImage['chain'];
  let tail: KernelImage['tail'];
  let error: KernelImage['error'];
  let pages = 0;
  let parentPages = 0;
  let shellJob = false;
  let cloneFlags = 0;
  const sockets: ImageSocket[] = [];
  const data = new Map<number, { bytes: number; objects: number }>();
  let shm: { bytes: number; objects: number } | undefined;
  let sum = CHECKSUM_SEED;
  let off = 0;
  while (off + 8 <= size) {
    const h = readAt(fd, 8, off);
    const type = h.readUInt32LE(0);
    const len = h.readUInt32LE(4);
    if (len < 8 || len % 8) throw bad(`object ${objects.length} at offset ${off} has length ${len}`);
    if (off + len > size) throw bad(`truncated in object ${objects.length} (${TYPE_NAMES[type] ?? type})`);
    let meta = len;
    if (type === T.PAGES) {
      if (len < PAGES_FIXED) throw bad(`object ${objects.length}: short PAGES object`);
      meta = Number(readAt(fd, 8, off + 24).readBigUInt64LE(0));
      if (meta < PAGES_FIXED || meta > len || meta % 8) throw bad(`object ${objects.length}: bad PAGES layout`);
    }
    objects.push({ type, name: TYPE_NAMES[type] ?? `unknown(${type})`, offset: off, len });
    if (!full && !ALWAYS.has(type) && type !== T.PAGES) {
      off += len;
      continue;
    }
    const o = readAt(fd, type === T.PAGES && !full ? PAGES_FIXED : meta, off);
    if (shm && type !== T.DATA) {
      details.push(`    ${shm.objects} pages saved (${shm.bytes} bytes)`);
      shm = undefined;
    }
    if (type === T.TAIL && len >= 32) {
      const want = o.readBigUInt64LE(24);
      tail = { nrObjects: Number(o.readBigUInt64LE(16)), checksum: hex(want), checksumOk: full ? sum === want : undefined };
      off += len;
      break;
    }
    if (full) sum = checksum(sum, o);
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
      // the engine takes the first: a task list from another would be a stranger's pids
      if (tree) throw bad(`object ${objects.length - 1}: a second TREE object`);
      const nr = o.readUInt32LE(8);
      if (!nr || len !== 16 + nr * 24) throw bad(`bad TREE object (${nr} tasks in ${len} bytes)`);
      tree = [];
      for (let i = 0; i < nr; i++) {
        const p = 16 + i * 24;
        tree.push({ pid: o.readInt32LE(p), tgid: o.readInt32LE(p + 4), ppid: o.readInt32LE(p + 8), pgid: o.readInt32LE(p + 12), sid: o.readInt32LE(p + 16) });
      }
      const why = treeFault(tree);
      if (why) throw bad(`TREE: ${why}`);
    } else if (type === T.CHAIN && len >= 32) {
      const parentId = o.readBigUInt64LE(16);
      chain = {
        id: hex(o.readBigUInt64LE(8)),
        parentId: parentId ? hex(parentId) : undefined,
        parentPath: o.readUInt32LE(28) ? cstr(o, 32, len) : undefined,
        tracking: o.readUInt32LE(24) === 1,
      };
      details.push(`chain: image ${chain.id}${chain.parentPath ? `, unchanged pages in ${chain.parentPath} (${chain.parentId})` : ''}${chain.tracking ? ', tracks the pages written from here on' : ''}`);
    } else if (type === T.PAGES) {
      const nrPages = Number(o.readBigUInt64LE(16));
      pages += nrPages;
      if (full) {
        const nrRuns = o.readUInt32LE(12);
        let inParent = 0;
        for (let i = 0, p = PAGES_FIXED; i < nrRuns && p + 16 <= o.length; i++, p += 16) if (o.readUInt32LE(p + 12) & 1) inParent += o.readUInt32LE(p + 8);
        parentPages += inParent;
        details.push(`pages of pid ${o.readInt32LE(8)}: ${nrRuns} runs, ${nrPages} pages here (data at offset ${off + meta})${inParent ? `, ${inParent} unchanged since the parent` : ''}`);
      }
    } else if (type === T.ERROR && len >= 16) {
      error = { errno: o.readInt32LE(8), message: cstr(o, 16, len) };
    } else if (type === T.ZOMBIE && len >= 16) {
      const task = tree?.find((t) => t.pid === o.readInt32LE(8));
      if (task) task.zombie = o.readUInt32LE(12);
      details.push(`zombie pid ${o.readInt32LE(8)}, wait status 0x${o.readUInt32LE(12).toString(16)}${len >= 32 ? ` (${cstr(o, 16, 32)})` : ''}`);
    } else if (type === T.DATA && shm && len >= 24) {
      // a SysV segment's contents follow it
      shm.bytes += o.readUInt32LE(12);
      shm.objects += 1;
    } else if (type === T.TTY && len >= 16) {
      // a terminal that is not a pty of the tree is its shell's
      shellJob ||= o.readUInt32LE(12) !== 1;
      if (full) describeObject(type, o, len, details, data);
    } else if (type === T.INET && len >= INET_HDR) {
      const s = inetSocket(o, len);
      sockets.push(s.socket);
      if (full) details.push(...s.lines);
    } else if (full) {
      describeObject(type, o, len, details, data);
    }
    if (type === T.SHM && full && len >= 48) shm = { bytes: 0, objects: 0 };
    cloneFlags |= NS_CLONE_FLAGS[type] ?? 0;
    off += len;
  }
  for (const [objref, d] of data) details.push(`data of #${objref}: ${d.bytes} bytes in ${d.objects} objects`);
  if (!header) throw bad('no header');
  if (!tree) throw bad('no task tree');
  if (!tail && !error) throw bad('no trailer (truncated)');
  return { header, tree, cloneFlags, shellJob, chain, objects, tail, error, details, pages, parentPages, sockets };
}

/**
 * What is wrong with a task list, as the engine's restore_tree() sees it:
 * every pid positive and once, the root without a parent, every process's
 * parent before it, every thread right after its leader and like it.
 */
function treeFault(tree: TreeTask[]): string | undefined {
  const seen = new Map<number, TreeTask>();
  for (const [i, t] of tree.entries()) {
    if (t.pid <= 0 || t.tgid <= 0) return `bad pid ${t.pid}`;
    if (seen.has(t.pid)) return `pid ${t.pid} twice`;
    if (t.tgid !== t.pid) {
      const leader = seen.get(t.tgid);
      if (!i || tree[i - 1]!.tgid !== t.tgid || !leader) return `thread ${t.pid} is not with its thread group ${t.tgid}`;
      if (leader.ppid !== t.ppid || leader.pgid !== t.pgid || leader.sid !== t.sid) return `thread ${t.pid} differs from its leader ${t.tgid}`;
    } else if (!i ? t.ppid !== 0 : seen.get(t.ppid)?.tgid !== t.ppid) {
      return i ? `pid ${t.pid} has no parent before it` : 'the root has a parent';
    }
    seen.set(t.pid, t);
  }
  return undefined;
}

/** The human lines of one of the engine's objects, for `cr show`; DATA objects are counted in @data. */
function describeObject(type: number, o: Buffer, len: number, details: string[], data: Map<number, { bytes: number; objects: number }>): void {
  if (type === T.TASK && len >= 72) {
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
  } else if (type === T.DROP && len >= 16) {
    let n = 0;
    for (let i = 0, p = 16; i < o.readUInt32LE(8) && p + 16 <= len; i++, p += 16) n += Number((o.readBigUInt64LE(p + 8) - o.readBigUInt64LE(p)) / 4096n);
    details.push(`  ${n} pages of the parent's copy dropped`);
  } else if (type === T.FS && len >= 32) {
    details.push(`cwd ${cstr(o, 32, len)}${o.readUInt32LE(16) ? ` (deleted, mode ${oct(o.readUInt32LE(20))}, owner ${o.readUInt32LE(24)}:${o.readUInt32LE(28)})` : ''} umask ${o.readUInt32LE(8).toString(8).padStart(4, '0')}`);
  } else if (type === T.FILE && len >= 64) {
    const kind = FILE_KINDS[o.readUInt32LE(12)] ?? '?';
    const obj = o.readInt32LE(36);
    const path = cstr(o, 64, len);
    const where = obj ? `${path} of #${obj}` : path;
    const owner = o.readInt32LE(40) ? ` owner ${OWNER_TYPES[o.readUInt32LE(44)] ?? '?'} ${o.readInt32LE(40)} (uid ${o.readUInt32LE(48)})` : '';
    const sig = o.readUInt32LE(56) ? ` F_SETSIG ${o.readUInt32LE(56)}` : '';
    details.push(`file #${o.readInt32LE(8)} ${kind} ${where} flags ${oct(o.readUInt32LE(16))}${obj ? '' : ` pos ${o.readBigInt64LE(24)}`}${owner}${sig}`);
  } else if (type === T.PIPE && len >= 24) {
    details.push(`${o.readUInt32LE(20) ? 'fifo pipe' : 'pipe'} #${o.readInt32LE(8)}: ${o.readUInt32LE(12)} bytes in flight, size ${o.readUInt32LE(16)}`);
  } else if (type === T.DATA && len >= 24) {
    const d = data.get(o.readInt32LE(8)) ?? { bytes: 0, objects: 0 };
    d.bytes += o.readUInt32LE(12);
    d.objects += 1;
    data.set(o.readInt32LE(8), d);
  } else if (type === T.SOCKET && len >= 360) {
    const peer = o.readInt32LE(20);
    const state = SOCK_STATES[o.readUInt32LE(16)] ?? '?';
    const to = state === 'pending' ? ` to listener #${o.readInt32LE(24)}` : peer ? ` to #${peer}` : state === 'connected' ? (sockaddr(o, 164) ? ` to ${sockaddr(o, 164)} outside the tree` : ' to a closed peer') : '';
    const addr = sockaddr(o, 44);
    const bound = o.readUInt32LE(48);
    const file = cstr(o, 360, len);
    const name = addr ? ` ${bound === 1 ? 'bound to' : bound === 2 ? 'bound (path gone) as' : 'named'} ${addr}${bound === 1 && file ? ` (${file === addr ? '' : `${file} `}${oct(o.readUInt32LE(284))} ${o.readUInt32LE(288)}:${o.readUInt32LE(292)})` : ''}` : '';
    const sh = o.readUInt32LE(28);
    const flags = SO_FLAGS.filter(([b]) => o.readUInt32LE(296) & b).map(([, n]) => n);
    if (o.readUInt32LE(296) & 0x8) flags.push(`sndbuf ${o.readUInt32LE(300)}`);
    if (o.readUInt32LE(296) & 0x10) flags.push(`rcvbuf ${o.readUInt32LE(304)}`);
    if (o.readBigUInt64LE(328)) flags.push(`rcvtimeo ${o.readBigUInt64LE(328)} us`);
    if (o.readBigUInt64LE(336)) flags.push(`sndtimeo ${o.readBigUInt64LE(336)} us`);
    if (o.readUInt32LE(296) & 0x20) flags.push(`peercred ${o.readInt32LE(344)}/${o.readUInt32LE(348)}/${o.readUInt32LE(352)}`);
    details.push(`socket #${o.readInt32LE(8)} ${SOCK_TYPES[o.readUInt32LE(12)] ?? '?'} ${state}${to}${name}${state === 'listening' ? ` backlog ${o.readUInt32LE(32)}` : ''}, ${o.readUInt32LE(40)} queued${sh ? `, shutdown ${sh & 1 ? 'rd' : ''}${sh & 2 ? 'wr' : ''}` : ''}${o.readInt32LE(36) ? `, error ${o.readInt32LE(36)}` : ''}${flags.length ? `, ${flags.join(', ')}` : ''}`);
  } else if (type === T.DGRAM && len >= 104) {
    const family = o.readUInt32LE(16);
    const from = inetAddr(o, 24, family);
    const to = { family, addr: Buffer.from(o.subarray(56, family === AF.INET6 ? 72 : 60)), port: 0 };
    details.push(`  datagram to #${o.readInt32LE(8)} from ${formatEndpoint(from)} to ${formatEndpoint(to).replace(/:0$/, '')}: ${o.readUInt32LE(12)} bytes`);
  } else if (type === T.SKB && len >= 152) {
    const from = sockaddr(o, 32);
    const creds = o.readUInt32LE(24) === 0xffffffff ? '' : ` (pid ${o.readInt32LE(20)} uid ${o.readUInt32LE(24)} gid ${o.readUInt32LE(28)})`;
    details.push(`  skb to #${o.readInt32LE(8)}: ${o.readUInt32LE(16)} bytes from ${o.readInt32LE(12) ? `#${o.readInt32LE(12)}` : from || 'an unnamed socket'}${creds}`);
  } else if (type === T.EVENTFD && len >= 24) {
    details.push(`eventfd #${o.readInt32LE(8)}: count ${o.readBigUInt64LE(16)}${o.readUInt32LE(12) & 1 ? ', semaphore' : ''}`);
  } else if (type === T.TIMERFD && len >= 56) {
    const v = o.readBigUInt64LE(32);
    details.push(`timerfd #${o.readInt32LE(8)}: clock ${o.readInt32LE(12)}${v ? `, next in ${secs(v)}` : ', disarmed'}${o.readBigUInt64LE(40) ? `, every ${secs(o.readBigUInt64LE(40))}` : ''}, ${o.readBigUInt64LE(24)} expirations unread${o.readUInt32LE(16) ? `, settime flags ${o.readUInt32LE(16)}` : ''}`);
  } else if (type === T.SIGNALFD && len >= 24) {
    details.push(`signalfd #${o.readInt32LE(8)}: mask ${hex(o.readBigUInt64LE(16))}`);
  } else if (type === T.EPOLL && len >= 16) {
    const items: string[] = [];
    for (let i = 0, p = 16; i < o.readUInt32LE(12) && p + 24 <= len; i++, p += 24) {
      items.push(`fd ${o.readInt32LE(p)} (file #${o.readInt32LE(p + 4)}) events ${hex(BigInt(o.readUInt32LE(p + 8)))} data ${hex(o.readBigUInt64LE(p + 16))}`);
    }
    details.push(`epoll #${o.readInt32LE(8)}: ${items.length ? items.join(', ') : 'no items'}`);
  } else if (type === T.INOTIFY && len >= 16) {
    details.push(`inotify #${o.readInt32LE(8)}: ${o.readUInt32LE(12)} watches`);
  } else if (type === T.INOTIFY_WATCH && len >= 24) {
    details.push(`  watch ${o.readInt32LE(8)} ${cstr(o, 24, len)} mask ${hex(BigInt(o.readUInt32LE(12)))}`);
  } else if (type === T.MEMFD && len >= 40) {
    details.push(`memfd #${o.readInt32LE(8)} "${cstr(o, 40, len)}": ${o.readBigUInt64LE(16)} bytes, seals ${hex(BigInt(o.readUInt32LE(12)))}, mode ${oct(o.readUInt32LE(24))}, owner ${o.readUInt32LE(28)}:${o.readUInt32LE(32)}`);
  } else if (type === T.GHOST && len >= 40) {
    details.push(`unlinked file #${o.readInt32LE(8)} ${cstr(o, 40, len)}: ${o.readBigUInt64LE(24)} bytes, mode ${oct(o.readUInt32LE(12))}, owner ${o.readUInt32LE(16)}:${o.readUInt32LE(20)}`);
  } else if (type === T.LOCK && len >= 40) {
    const end = o.readBigInt64LE(32);
    details.push(`lock on file #${o.readInt32LE(8)}: ${LOCK_KINDS[o.readUInt32LE(12)] ?? '?'} ${o.readUInt32LE(16) === 1 ? 'write' : 'read'} ${o.readBigInt64LE(24)}-${end === 0x7fffffffffffffffn ? 'end' : end}`);
  } else if (type === T.TTY && len >= 88) {
    const pty = o.readUInt32LE(12) === 1;
    details.push(`${pty ? `pty #${o.readInt32LE(8)} /dev/pts/${o.readUInt32LE(16)}${o.readUInt32LE(20) ? ' (locked)' : ''}${o.readUInt32LE(24) ? ' (packet mode)' : ''}` : `terminal #${o.readInt32LE(8)}: the shell's, the restarter's stdin takes its place`}, ${o.readUInt16LE(32)}x${o.readUInt16LE(34)}, lflag ${oct(o.readUInt32LE(52))}`);
  } else if (type === T.CTTY && len >= 16) {
    details.push(`controlling terminal #${o.readInt32LE(8)}${o.readUInt32LE(16) ? `, its session's leader, foreground group ${o.readInt32LE(12)}` : ''}`);
  } else if (type === T.FD && len >= 24) {
    const kind = o.readUInt32LE(16) === 2 ? 'inherited from the restarter' : `file #${o.readInt32LE(12)}`;
    details.push(`fd ${o.readInt32LE(8)}: ${kind}${o.readUInt32LE(20) ? ' (cloexec)' : ''}`);
  } else if (type === T.MM && len >= 128) {
    const parent = o.readInt32LE(120) ? `, a fork copy of mm #${o.readInt32LE(120)}` : '';
    details.push(`mm: ${o.readUInt32LE(112)} mappings, brk ${hex(o.readBigUInt64LE(40))}-${hex(o.readBigUInt64LE(48))}, vdso ${hex(o.readBigUInt64LE(96))}${parent}`);
  } else if (type === T.VMA && len >= 56) {
    const kinds = ['?', 'anon private', 'anon shared', 'file private', 'file shared', 'sysv shm'];
    const prot = o.readUInt32LE(44);
    const rwx = `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}`;
    const ref = o.readInt32LE(48);
    const vmFlags = o.readBigUInt64LE(32);
    const advice = VMA_ADVICE.filter(([bit]) => vmFlags & bit).map(([, name]) => ` ${name}`).join('');
    const kind = o.readUInt32LE(40);
    const what = kind === 5 ? ` id ${ref} pgoff ${o.readBigUInt64LE(24)}` : ref ? ` ${kind === 2 ? 'shmem' : 'file'} #${ref} pgoff ${o.readBigUInt64LE(24)}` : '';
    const fromParent = len >= 64 && o.readUInt32LE(56) ? ' (the parent\'s, kept from the fork)' : '';
    details.push(`  vma ${hex(o.readBigUInt64LE(8))}-${hex(o.readBigUInt64LE(16))} ${rwx} ${kinds[kind] ?? '?'}${what}${o.readUInt32LE(52) ? ' growsdown' : ''}${advice}${fromParent}`);
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
  } else if (type === T.PROCESS && len >= PROCESS_SIZE) {
    const flags = o.readUInt32LE(20);
    const policy = o.readUInt32LE(40);
    const exe = o.readUInt32LE(60) ? cstr(o, PROCESS_SIZE, len) : '(none)';
    details.push(`process: exe ${exe}, personality ${hex(BigInt(o.readUInt32LE(8)))}, pdeathsig ${o.readUInt32LE(12)}, dumpable ${o.readUInt32LE(16)}` +
      `${flags & 1 ? ', child subreaper' : ''}${flags & 2 ? ', no_new_privs' : ''}` +
      `${flags & 4 ? `, stopped by signal ${o.readUInt32LE(52)}${o.readUInt32LE(56) ? ' (not waited for)' : ''}` : ''}`);
    details.push(`  sched: ${SCHED_POLICIES[policy] ?? `policy ${policy}`}${flags & 8 ? '|SCHED_RESET_ON_FORK' : ''} priority ${o.readUInt32LE(44)} nice ${o.readInt32LE(48)}` +
      `${policy === 6 ? ` runtime ${o.readBigUInt64LE(64)} deadline ${o.readBigUInt64LE(72)} period ${o.readBigUInt64LE(80)} ns` : ''}, cpus ${cpuList(maskCpus(o.subarray(88, PROCESS_SIZE)))}` +
      `, timer slack ${o.readBigUInt64LE(24)} ns (default ${o.readBigUInt64LE(32)})`);
  } else if (type === T.ITIMERS && len >= 56) {
    details.push(`itimers: real ${timerValue(o, 8)}, virtual ${timerValue(o, 24)}, prof ${timerValue(o, 40)}`);
  } else if (type === T.POSIX_TIMER && len >= 64) {
    const notify = o.readUInt32LE(16);
    const how = ['SIGEV_SIGNAL', 'SIGEV_NONE'][notify & ~4] ?? `notify ${notify}`;
    details.push(`posix timer ${o.readInt32LE(8)}: ${clockName(o.readInt32LE(12))}, ${how}${notify & 4 ? ` to tid ${o.readInt32LE(32)}` : ''}` +
      `${notify & ~4 ? '' : ` signal ${o.readUInt32LE(20)} value ${o.readBigUInt64LE(24)}`}, ${timerValue(o, 40)}, overrun ${o.readBigInt64LE(56)}`);
  } else if (type === T.SECCOMP && len >= 16) {
    const nr = o.readUInt32LE(8);
    if (nr) details.push(`seccomp: ${nr} filter${nr === 1 ? '' : 's'}`);
  } else if (type === T.UTS_NS && len >= 144) {
    details.push(`uts namespace of its own: hostname ${cstr(o, 8, 73)} domainname ${cstr(o, 73, 138)}`);
  } else if (type === T.IPC_NS && len >= 72) {
    const sem = [0, 1, 2, 3].map((i) => o.readUInt32LE(44 + i * 4)).join(' ');
    details.push(`ipc namespace of its own: ${o.readUInt32LE(60)} shm segments, ${o.readUInt32LE(64)} message queues, ${o.readUInt32LE(68)} semaphore sets;` +
      ` shmmax ${o.readBigUInt64LE(8)} shmall ${o.readBigUInt64LE(16)} shmmni ${o.readUInt32LE(24)} msgmax ${o.readUInt32LE(32)} msgmnb ${o.readUInt32LE(36)} msgmni ${o.readUInt32LE(40)} sem ${sem}`);
  } else if (type === T.SHM && len >= 48) {
    details.push(`  shm ${ipcPerm(o, 8)} size ${o.readBigUInt64LE(40)}`);
  } else if (type === T.MSG_QUEUE && len >= 56) {
    details.push(`  msg queue ${ipcPerm(o, 8)} qbytes ${o.readBigUInt64LE(40)}, ${o.readUInt32LE(48)} messages`);
  } else if (type === T.MSG && len >= 24) {
    details.push(`    message type ${o.readBigInt64LE(8)}, ${o.readBigUInt64LE(16)} bytes`);
  } else if (type === T.SEM && len >= 48) {
    const n = o.readUInt32LE(40);
    const values = Array.from({ length: Math.min(n, (len - 48) / 2) }, (_, i) => o.readUInt16LE(48 + i * 2));
    details.push(`  sem set ${ipcPerm(o, 8)} values ${values.join(' ')}`);
  } else if (type === T.SEM_UNDO && len >= 16) {
    const n = o.readUInt32LE(12);
    const adj = Array.from({ length: Math.min(n, (len - 16) / 2) }, (_, i) => o.readInt16LE(16 + i * 2));
    details.push(`sem undo: set ${o.readInt32LE(8)} adjustments ${adj.join(' ')}`);
  }
}
