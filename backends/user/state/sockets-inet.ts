/**
 * What TCP and UDP sockets share: their addresses, their IP and IPv6
 * options (and the int options of their own protocol level), and their
 * creation inside the task being restored.
 */
import { CrError } from '../../../userspace/errors.js';
import { inetSocketsByInode, type InetDiag } from '../../../userspace/net/diag.js';
import { NR } from '../../../userspace/sys/constants.js';
import { AF, formatEndpoint, getsockopt, parseInetAddress, setsockopt, SOCK, SOL, type InetEndpoint } from '../../../userspace/net/socket.js';
import { liftFd, type FdProbe } from './fdtype.js';
import type { DumpShared, DumpTask, RestoreTask } from './module.js';
import { socketKind } from './sockets.js';

/** The family of the IPv4 or IPv6 socket of this type and protocol behind a descriptor; null for any other. */
export function inetFamily(f: FdProbe, type: number, protocol: number): number | null {
  const k = socketKind(f);
  return k && (k.family === AF.INET || k.family === AF.INET6) && k.type === type && k.protocol === protocol ? k.family : null;
}

/** Refuse an image's socket of another family. */
/** An inet socket's family, and its addresses there with ports that fit 16 bits: a damaged image may have neither. */
export function checkFamily(family: number, kind: string, where: string, addresses: (InetAddress | null)[]): void {
  if (family !== AF.INET && family !== AF.INET6) throw new CrError(`${where}: ${kind} socket of unknown family ${family}`);
  if (addresses.some((a) => !a || a.port > 0xffff)) throw new CrError(`${where}: corrupted image (${kind} socket address)`);
}

const diags = new WeakMap<DumpShared, Map<number, InetDiag>>();

/** inet_diag's TCP and UDP sockets of the namespace by inode, read once per dump (the tree is stopped). */
export function inetDiags(task: DumpTask): Map<number, InetDiag> {
  let map = diags.get(task.shared);
  if (!map) {
    map = inetSocketsByInode();
    diags.set(task.shared, map);
  }
  return map;
}

export const inetDiagOf = (task: DumpTask, ino: number) => inetDiags(task).get(ino);

export interface InetAddress {
  addr: Buffer;
  port: number;
  flowinfo: number;
  scope: number;
}

export interface LevelOption {
  level: number;
  name: number;
  value: number;
}

export const asAddress = (e: InetEndpoint): InetAddress => ({ addr: e.addr, port: e.port, flowinfo: e.flowinfo ?? 0, scope: e.scope ?? 0 });
export const asEndpoint = (family: number, a: InetAddress): InetEndpoint => ({ family, ...a });
export const shownAddress = (family: number, a: InetAddress) => formatEndpoint({ family, addr: a.addr, port: a.port });
export const isWildcard = (a: InetAddress) => a.addr.every((b) => b === 0);

/** The address of a socket (getsockname/getpeername bytes), or a wildcard one for none. */
export function addressFrom(family: number, sockaddr: Buffer | null): InetAddress {
  if (!sockaddr || sockaddr.length < 8) return { addr: Buffer.alloc(family === AF.INET6 ? 16 : 4), port: 0, flowinfo: 0, scope: 0 };
  return asAddress(parseInetAddress(sockaddr));
}

/** A v4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it stands for. */
export function unmapped(family: number, a: InetAddress): { family: number; addr: Buffer } {
  const mapped = family === AF.INET6 && a.addr.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]));
  return mapped ? { family: AF.INET, addr: a.addr.subarray(12) } : { family, addr: a.addr };
}

const IP = { TOS: 1, TTL: 2, PKTINFO: 8, MTU_DISCOVER: 10, RECVERR: 11, RECVTTL: 12, RECVTOS: 13, FREEBIND: 15, TRANSPARENT: 19, BIND_ADDRESS_NO_PORT: 24 };
const IPV6 = { UNICAST_HOPS: 16, MTU_DISCOVER: 23, RECVERR: 25, V6ONLY: 26, RECVPKTINFO: 49, TCLASS: 67, TRANSPARENT: 75, FREEBIND: 78 };
/** Options of datagram sockets only. */
export const MULTICAST_OPTIONS: [number, number][] = [[SOL.IP, 33], [SOL.IP, 34], [SOL.IPV6, 18], [SOL.IPV6, 19]];

/** Readable names of the options saved, by level and number. */
export const OPTION_NAMES: Record<number, Record<number, string>> = {
  [SOL.IP]: Object.fromEntries(Object.entries(IP).map(([k, v]) => [v, `IP_${k}`])),
  [SOL.IPV6]: { ...Object.fromEntries(Object.entries(IPV6).map(([k, v]) => [v, `IPV6_${k}`])), 18: 'IPV6_MULTICAST_HOPS', 19: 'IPV6_MULTICAST_LOOP' },
};
OPTION_NAMES[SOL.IP][33] = 'IP_MULTICAST_TTL';
OPTION_NAMES[SOL.IP][34] = 'IP_MULTICAST_LOOP';

/** Add the names of a protocol level's own options (TCP_*, UDP_*). */
export function nameOptions(level: number, names: Record<string, number>, prefix: string): void {
  OPTION_NAMES[level] = Object.fromEntries(Object.entries(names).map(([k, v]) => [v, `${prefix}${k}`]));
}

/** IP options (and IPv6 ones for an IPv6 socket), then the protocol's own `extra` ones. */
function optionList(family: number, extra: [number, number][]): [number, number][] {
  const ip = Object.values(IP).map((n): [number, number] => [SOL.IP, n]);
  const ip6 = family === AF.INET6 ? Object.values(IPV6).map((n): [number, number] => [SOL.IPV6, n]) : [];
  return [...ip, ...ip6, ...extra];
}

/** The int options at the IP, IPv6 and protocol levels; those the kernel does not have for this socket are left out. */
export function saveLevelOptions(fd: number, family: number, extra: [number, number][]): LevelOption[] {
  const out: LevelOption[] = [];
  for (const [level, name] of optionList(family, extra)) {
    try {
      out.push({ level, name, value: getsockopt(fd, level, name) });
    } catch {
      /* not an option of this socket (ENOPROTOOPT, EOPNOTSUPP…) */
    }
  }
  return out;
}

/** Set the saved options where they differ from what the new socket has (kernel defaults stay the kernel's). */
export function applyLevelOptions(fd: number, options: LevelOption[], skip: (o: LevelOption) => boolean = () => false): void {
  for (const o of options) {
    if (skip(o)) continue;
    let have: number;
    try {
      have = getsockopt(fd, o.level, o.name);
    } catch {
      continue; // not an option of this socket here either
    }
    if (have !== o.value) setsockopt(fd, o.level, o.name, o.value);
  }
}

/** The value of a saved option, if it was saved. */
export const optionValue = (options: LevelOption[], level: number, name: number) => options.find((o) => o.level === level && o.name === name)?.value;

/** A new socket of the family, type and protocol inside the task being restored, lifted. */
export function inetSocketIn(task: RestoreTask, family: number, type: number, protocol: number): number {
  return liftFd(task, Number(task.tracee.syscallOk(`socket(${family === AF.INET6 ? 'AF_INET6' : 'AF_INET'})`, NR.socket, family, type | SOCK.CLOEXEC, protocol)));
}
