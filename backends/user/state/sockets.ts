/**
 * What every socket shares, whatever its family: finding out what a
 * socket is, a duplicate of it in cr (pidfd_getfd) to ask and set things
 * from outside the task, and the SOL_SOCKET options. The families have a
 * module each (sockets-unix, sockets-tcp, sockets-udp); sockets of any
 * other family or protocol are claimed here, only to be refused by name.
 */
import { CrError } from '../../../userspace/errors.js';
import { socketInodes } from '../../../userspace/proc/parse.js';
import { NR } from '../../../userspace/sys/constants.js';
import { close, rawSyscall, type SysError } from '../../../userspace/sys/libc.js';
import { AF, getsockopt, getsockoptBytes, IPPROTO, setsockopt, SOCK, SOL } from '../../../userspace/net/socket.js';
import { tracerDup, type FdProbe, type FdType } from './fdtype.js';
import type { DumpShared, DumpTask } from './module.js';

/** Run `fn` on a duplicate in cr of the task's descriptor, closed after. */
export function withDup<T>(pid: number, fd: number, fn: (dup: number) => T): T {
  const dup = tracerDup(pid, fd);
  try {
    return fn(dup);
  } finally {
    close(dup);
  }
}

const held = new WeakMap<DumpShared, Set<number>>();

/**
 * Inodes of the sockets the image holds: those in the descriptor tables of
 * the tree's tasks (read once per dump, all tasks being stopped), to which
 * the unix sockets add those found in flight in a queue.
 */
export function imageSockets(task: DumpTask): Set<number> {
  let set = held.get(task.shared);
  if (!set) {
    set = new Set(task.shared.tree.flatMap(socketInodes));
    held.set(task.shared, set);
  }
  return set;
}

export interface SocketKind {
  family: number;
  type: number;
  protocol: number;
}

const kinds = new WeakMap<FdProbe, SocketKind | null>();

/** Family, type and protocol of the socket behind a descriptor; null when it is no socket. */
export function socketKind(f: FdProbe): SocketKind | null {
  if (!kinds.has(f)) {
    kinds.set(f, f.stat.isSocket() ? withDup(f.pid, f.fd, (dup) => ({
      family: getsockopt(dup, SOL.SOCKET, SO.DOMAIN), type: getsockopt(dup, SOL.SOCKET, SO.TYPE), protocol: getsockopt(dup, SOL.SOCKET, SO.PROTOCOL),
    })) : null);
  }
  return kinds.get(f)!;
}

export const SO = {
  DEBUG: 1, REUSEADDR: 2, TYPE: 3, ERROR: 4, DONTROUTE: 5, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, OOBINLINE: 10,
  PRIORITY: 12, LINGER: 13, REUSEPORT: 15, PASSCRED: 16, RCVLOWAT: 18, RCVTIMEO: 20, SNDTIMEO: 21, BINDTODEVICE: 25,
  GET_FILTER: 26, ACCEPTCONN: 30, SNDBUFFORCE: 32, RCVBUFFORCE: 33, PASSSEC: 34, MARK: 36, TIMESTAMP: 29, TIMESTAMPNS: 35,
  TIMESTAMPING: 37, PROTOCOL: 38, DOMAIN: 39, RXQ_OVFL: 40, PEEK_OFF: 42, BUSY_POLL: 46, MEMINFO: 55,
} as const;

export interface SocketOptions {
  reuseaddr: boolean;
  reuseport: boolean;
  keepalive: boolean;
  broadcast: boolean;
  dontroute: boolean;
  oobinline: boolean;
  priority: number;
  rcvlowat: number;
  passcred: boolean;
  passsec: boolean;
  timestamp: boolean;
  timestampns: boolean;
  timestamping: number;
  mark: number;
  rxq_ovfl: boolean;
  peek_off: number;
  busy_poll: number;
  sndbuf: number;
  rcvbuf: number;
  linger: boolean;
  linger_sec: number;
  rcvtimeo_us: bigint;
  sndtimeo_us: bigint;
  bindtodevice: string;
}

type IntOption = { [K in keyof SocketOptions]: SocketOptions[K] extends number | boolean ? K : never }[keyof SocketOptions];

/** The int-valued options, each with its SO_* number; booleans are 0 or 1. */
const INT_OPTIONS: [IntOption, number][] = [
  ['reuseaddr', SO.REUSEADDR], ['reuseport', SO.REUSEPORT], ['keepalive', SO.KEEPALIVE], ['broadcast', SO.BROADCAST],
  ['dontroute', SO.DONTROUTE], ['oobinline', SO.OOBINLINE], ['priority', SO.PRIORITY], ['rcvlowat', SO.RCVLOWAT],
  ['passcred', SO.PASSCRED], ['passsec', SO.PASSSEC], ['timestamp', SO.TIMESTAMP], ['timestampns', SO.TIMESTAMPNS],
  ['timestamping', SO.TIMESTAMPING], ['mark', SO.MARK], ['rxq_ovfl', SO.RXQ_OVFL], ['peek_off', SO.PEEK_OFF],
  ['busy_poll', SO.BUSY_POLL], ['sndbuf', SO.SNDBUF], ['rcvbuf', SO.RCVBUF],
];
/** Options only some families know: their absence (ENOPROTOOPT, EOPNOTSUPP) is their default. */
const OPTIONAL = new Set<IntOption>(['peek_off', 'busy_poll', 'passsec', 'passcred']);

function timeoutUs(fd: number, name: number): bigint {
  const tv = getsockoptBytes(fd, SOL.SOCKET, name, 16);
  return tv.readBigInt64LE(0) * 1_000_000n + tv.readBigInt64LE(8);
}

/** The SOL_SOCKET options of a socket (a duplicate in cr); refuses what it cannot save. */
export function saveOptions(fd: number, where: string): SocketOptions {
  const o = {} as Record<string, unknown>;
  for (const [key, name] of INT_OPTIONS) {
    let v = 0;
    try {
      v = getsockopt(fd, SOL.SOCKET, name);
    } catch (err) {
      if (!OPTIONAL.has(key)) throw err;
      v = key === 'peek_off' ? -1 : 0;
    }
    o[key] = typeof DEFAULTS[key] === 'boolean' ? v !== 0 : v;
  }
  const linger = getsockoptBytes(fd, SOL.SOCKET, SO.LINGER, 8);
  o.linger = linger.readInt32LE(0) !== 0;
  o.linger_sec = linger.readInt32LE(4);
  o.rcvtimeo_us = timeoutUs(fd, SO.RCVTIMEO);
  o.sndtimeo_us = timeoutUs(fd, SO.SNDTIMEO);
  o.bindtodevice = getsockoptBytes(fd, SOL.SOCKET, SO.BINDTODEVICE, 16).toString().replace(/\0.*$/s, '');
  // A filter program (classic or eBPF, which cannot be read back at all) would be lost: refuse it.
  let filter: number;
  try {
    filter = filterLength(fd);
  } catch (err) {
    if ((err as SysError).code !== 'EACCES') throw err;
    filter = 1;
  }
  if (filter) throw new CrError(`${where}: socket with a BPF filter attached is not supported`);
  return o as unknown as SocketOptions;
}

/** SO_GET_FILTER with no room answers with the filter's length in instructions (0 without one). */
function filterLength(fd: number): number {
  const len = Buffer.alloc(4);
  rawSyscall(NR.getsockopt, fd, SOL.SOCKET, SO.GET_FILTER, 0, len);
  return len.readUInt32LE(0);
}

const DEFAULTS: Record<IntOption, number | boolean> = {
  reuseaddr: false, reuseport: false, keepalive: false, broadcast: false, dontroute: false, oobinline: false, priority: 0,
  rcvlowat: 1, passcred: false, passsec: false, timestamp: false, timestampns: false, timestamping: 0, mark: 0, rxq_ovfl: false,
  peek_off: -1, busy_poll: 0, sndbuf: 0, rcvbuf: 0, linger: false, linger_sec: 0,
};

/**
 * Give a socket (a duplicate in cr) the saved options, each only where it
 * differs from what the new socket has: buffer sizes the kernel sized by
 * itself stay its own to tune. `skip` is set later by the caller.
 */
export function applyOptions(fd: number, o: SocketOptions, skip: IntOption[] = []): void {
  for (const [key, name] of INT_OPTIONS) {
    if (skip.includes(key)) continue;
    const want = Number(o[key]);
    let have: number;
    try {
      have = getsockopt(fd, SOL.SOCKET, name);
    } catch (err) {
      if (OPTIONAL.has(key) && want === Number(DEFAULTS[key])) continue;
      throw err;
    }
    if (typeof DEFAULTS[key] === 'boolean' ? (have !== 0) === (want !== 0) : have === want) continue;
    // The kernel doubles what it is given for bookkeeping, and getsockopt shows the doubled value.
    if (key === 'sndbuf') setsockopt(fd, SOL.SOCKET, SO.SNDBUFFORCE, want >> 1);
    else if (key === 'rcvbuf') setsockopt(fd, SOL.SOCKET, SO.RCVBUFFORCE, want >> 1);
    else setsockopt(fd, SOL.SOCKET, name, want);
  }
  if (o.linger) {
    const l = Buffer.alloc(8);
    l.writeInt32LE(1, 0);
    l.writeInt32LE(o.linger_sec, 4);
    setsockopt(fd, SOL.SOCKET, SO.LINGER, l);
  }
  for (const [us, name] of [[o.rcvtimeo_us, SO.RCVTIMEO], [o.sndtimeo_us, SO.SNDTIMEO]] as const) {
    if (!us) continue;
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(us / 1_000_000n, 0);
    tv.writeBigInt64LE(us % 1_000_000n, 8);
    setsockopt(fd, SOL.SOCKET, name, tv);
  }
  if (o.bindtodevice) setsockopt(fd, SOL.SOCKET, SO.BINDTODEVICE, Buffer.from(o.bindtodevice));
}

/** The options that differ from a new socket's, readably, for `cr show`. */
export function describeOptions(o: SocketOptions): string {
  const parts: string[] = [];
  for (const [key] of INT_OPTIONS) {
    if (key === 'sndbuf' || key === 'rcvbuf') continue;
    const v = o[key];
    if (v !== DEFAULTS[key]) parts.push(typeof v === 'boolean' ? key : `${key}=${v}`);
  }
  if (o.linger) parts.push(`linger=${o.linger_sec}s`);
  if (o.rcvtimeo_us) parts.push(`rcvtimeo=${o.rcvtimeo_us}us`);
  if (o.sndtimeo_us) parts.push(`sndtimeo=${o.sndtimeo_us}us`);
  if (o.bindtodevice) parts.push(`bindtodevice=${o.bindtodevice}`);
  parts.push(`sndbuf=${o.sndbuf} rcvbuf=${o.rcvbuf}`);
  return parts.join(' ');
}

const FAMILY_NAMES: Record<number, string> = {
  [AF.UNIX]: 'unix', [AF.INET]: 'inet', [AF.INET6]: 'inet6', [AF.NETLINK]: 'netlink', [AF.PACKET]: 'packet', 40: 'vsock', 38: 'alg', 31: 'bluetooth', 44: 'xdp',
};
const NETLINK_NAMES: Record<number, string> = {
  0: 'NETLINK_ROUTE', 4: 'NETLINK_SOCK_DIAG', 9: 'NETLINK_AUDIT', 10: 'NETLINK_FIB_LOOKUP', 12: 'NETLINK_NETFILTER', 15: 'NETLINK_KOBJECT_UEVENT', 16: 'NETLINK_GENERIC',
};

/** What a socket the user backend does not save is, for the refusal. */
function refusedKind(k: SocketKind): string {
  const family = FAMILY_NAMES[k.family] ?? `address family ${k.family}`;
  if (k.family === AF.NETLINK) return `netlink socket (${NETLINK_NAMES[k.protocol] ?? `protocol ${k.protocol}`})`;
  if (k.family === AF.INET || k.family === AF.INET6) {
    if (k.type === SOCK.RAW) return `raw ${family} socket (protocol ${k.protocol})`;
    if (k.protocol === IPPROTO.ICMP || k.protocol === IPPROTO.ICMPV6) return `${family} ICMP (ping) socket`;
    return `${family} socket of protocol ${k.protocol}`;
  }
  return `${family} socket`;
}

/** Sockets no other file type claimed. */
export const otherSockets: FdType = {
  type: 'socket',

  claims(f) {
    return f.stat.isSocket();
  },

  dump(_task, f) {
    const k = socketKind(f);
    throw new CrError(`pid ${f.pid} fd ${f.fd}: ${k ? refusedKind(k) : 'socket'} is not supported`);
  },

  check(_file, where) {
    throw new CrError(`${where}: corrupted image (a socket of no known kind)`);
  },

  open() {
    throw new Error('unreachable: no image holds this kind of socket');
  },

  describe() {
    return 'socket of no known kind';
  },
};
