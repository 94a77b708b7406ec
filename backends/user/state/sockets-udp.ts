/**
 * UDP sockets, IPv4 and IPv6: bound or not, connected or not, with their
 * options and the datagrams queued for them. The queue is read at dump
 * time with MSG_PEEK from a duplicate in cr, stepping with SO_PEEK_OFF,
 * with each datagram's sender and (IP_PKTINFO) the local address it was
 * sent to. Restore binds the socket, sends each datagram again from its
 * sender's address with a raw packet cr builds (userspace/net/packet.ts),
 * waits until the socket has them all, and only then connects it, since a
 * connected socket would take nothing from anyone else.
 */
import { CrError } from '../../../userspace/errors.js';
import { sendRawUdp } from '../../../userspace/net/packet.js';
import {
  AF, bind, connect, getsockopt, inetAddress, ioctlInt, IPPROTO, MSG, peerName, recvmsg, setsockopt, shutdown, SHUT, SIOC, SOCK, sockName, SOL,
  type Cmsg,
} from '../../../userspace/net/socket.js';
import type { SysError } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';
import type { DumpTask } from './module.js';
import {
  addressFrom, applyLevelOptions, asEndpoint, checkFamily, inetFamily, inetDiagOf, inetSocketIn, isWildcard, MULTICAST_OPTIONS, nameOptions, saveLevelOptions, shownAddress, unmapped,
  type InetAddress, type LevelOption,
} from './sockets-inet.js';
import { applyOptions, describeOptions, saveOptions, SO, withDup, type SocketOptions } from './sockets.js';

interface UdpDatagram {
  data: Buffer;
  from: InetAddress;
  to: InetAddress;
  family: number;
}

interface UdpSocketFile {
  family: number;
  local: InetAddress;
  connected: boolean;
  peer: InetAddress;
  shutdown: number;
  opts: SocketOptions;
  options: LevelOption[];
  queue: UdpDatagram[];
}

const UDP = { CORK: 1, NO_CHECK6_TX: 101, NO_CHECK6_RX: 102, SEGMENT: 103, GRO: 104 };
nameOptions(SOL.UDP, UDP, 'UDP_');
const IP_PKTINFO = 8;
const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
const MAX_DATAGRAM = 65536;
const ARRIVAL_WAIT_MS = 2000;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<UdpSocketFile>('UdpSocketFile', file.payload, where);

/** Where a datagram was sent to, from its IP_PKTINFO or IPV6_PKTINFO. */
function destination(family: number, control: Cmsg[], local: InetAddress): InetAddress {
  for (const c of control) {
    // struct in_pktinfo: ifindex, spec_dst, addr (the header's destination); struct in6_pktinfo: addr, ifindex.
    if (c.level === SOL.IP && c.type === IP_PKTINFO) {
      const addr = family === AF.INET6 ? Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), c.data.subarray(8, 12)]) : c.data.subarray(8, 12);
      return { ...local, addr: Buffer.from(addr) };
    }
    if (c.level === SOL.IPV6 && c.type === IPV6_PKTINFO) return { ...local, addr: Buffer.from(c.data.subarray(0, 16)) };
  }
  return local;
}

/** The datagrams queued for the socket (a duplicate in cr), left in place. */
function peekQueue(fd: number, s: UdpSocketFile, refuse: (what: string) => Error): UdpDatagram[] {
  const pktinfo: [number, number][] = s.family === AF.INET6 ? [[SOL.IPV6, IPV6_RECVPKTINFO], [SOL.IP, IP_PKTINFO]] : [[SOL.IP, IP_PKTINFO]];
  const saved = pktinfo.map(([level, name]) => getsockopt(fd, level, name));
  pktinfo.forEach(([level, name]) => setsockopt(fd, level, name, 1));
  setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, 0);
  try {
    const buf = Buffer.alloc(MAX_DATAGRAM);
    const queue: UdpDatagram[] = [];
    for (;;) {
      let got;
      try {
        got = recvmsg(fd, buf, MSG.PEEK | MSG.DONTWAIT, 256);
      } catch (err) {
        if ((err as SysError).code === 'EAGAIN') break;
        // A queued ICMP error (IP_RECVERR) is read once, then gone: say so rather than lose it.
        if ((err as SysError).code === 'ECONNREFUSED' || (err as SysError).code === 'EHOSTUNREACH') throw refuse(`with an error pending (${(err as SysError).code})`);
        throw err;
      }
      if (got.flags & MSG.TRUNC) throw refuse(`with a datagram over ${buf.length} bytes queued`);
      const from = addressFrom(s.family, got.name);
      const to = destination(s.family, got.control, s.local);
      queue.push({ data: Buffer.from(buf.subarray(0, got.len)), from, to, family: unmapped(s.family, from).family });
    }
    return queue;
  } finally {
    setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, s.opts.peek_off);
    pktinfo.forEach(([level, name], i) => setsockopt(fd, level, name, saved[i]));
  }
}

function dumpUdp(task: DumpTask, f: FdProbe, family: number, dup: number): UdpSocketFile {
  const where = f.pid === task.pid ? `pid ${f.pid} fd ${f.fd}` : `pid ${task.pid}: a socket in flight`;
  const kind = family === AF.INET6 ? 'udp6 socket' : 'udp socket';
  const refuse = (what: string) => new CrError(`${where}: ${kind} ${what} is not supported`);
  let peer: Buffer | null = null;
  try {
    peer = peerName(dup);
  } catch (err) {
    if ((err as SysError).code !== 'ENOTCONN') throw err;
  }
  const s: UdpSocketFile = {
    family, local: addressFrom(family, sockName(dup)), connected: !!peer, peer: addressFrom(family, peer), shutdown: inetDiagOf(task, Number(f.stat.ino))?.shutdown ?? 0,
    opts: saveOptions(dup, where), options: saveLevelOptions(dup, family, [...Object.values(UDP).map((n): [number, number] => [SOL.UDP, n]), ...MULTICAST_OPTIONS]),
    queue: [],
  };
  if (ioctlInt(dup, SIOC.OUTQ)) throw refuse(`on ${shownAddress(family, s.local)} with a datagram being written (UDP_CORK)`);
  s.queue = peekQueue(dup, s, refuse);
  return s;
}

/** Wait (briefly) until the socket's queue holds `count` datagrams: looped-back packets are delivered from a softirq. */
function awaitQueue(fd: number, count: number, where: string): void {
  const deadline = Date.now() + ARRIVAL_WAIT_MS;
  const buf = Buffer.alloc(MAX_DATAGRAM);
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, 0);
    let n = 0;
    try {
      for (; n < count; n++) recvmsg(fd, buf, MSG.PEEK | MSG.DONTWAIT);
    } catch (err) {
      if ((err as SysError).code !== 'EAGAIN') throw err;
    }
    if (n === count) return;
    if (Date.now() > deadline) throw new CrError(`${where}: ${count - n} of its ${count} datagrams did not come back`);
    Atomics.wait(tick, 0, 0, 5);
  }
}

function rebuild(dup: number, s: UdpSocketFile, where: string): void {
  applyLevelOptions(dup, s.options);
  applyOptions(dup, s.opts, ['peek_off']);
  if (s.local.port) {
    try {
      bind(dup, inetAddress(asEndpoint(s.family, s.local)));
    } catch (err) {
      throw new CrError(`${where}: cannot bind ${shownAddress(s.family, s.local)} again: ${(err as SysError).code}`);
    }
  }
  for (const d of s.queue) {
    const from = unmapped(s.family, d.from);
    // A datagram to the wildcard address came to some local one: loopback's will do.
    const to = isWildcard(d.to) ? { family: from.family, addr: from.family === AF.INET6 ? Buffer.from([...Array(15).fill(0), 1]) : Buffer.from([127, 0, 0, 1]) } : unmapped(s.family, d.to);
    sendRawUdp(from.family, from.addr, d.from.port, to.addr, s.local.port, d.data);
  }
  if (s.queue.length) awaitQueue(dup, s.queue.length, where);
  setsockopt(dup, SOL.SOCKET, SO.PEEK_OFF, s.opts.peek_off);
  if (s.connected) connect(dup, inetAddress(asEndpoint(s.family, s.peer)));
  if (s.shutdown) shutdown(dup, s.shutdown === 3 ? SHUT.RDWR : s.shutdown === 1 ? SHUT.RD : SHUT.WR);
}

export const udpSockets: FdType = {
  type: 'udp',

  claims(f) {
    return inetFamily(f, SOCK.DGRAM, IPPROTO.UDP) !== null;
  },

  dump(task, f) {
    const family = inetFamily(f, SOCK.DGRAM, IPPROTO.UDP)!;
    return withDup(f.pid, f.fd, (dup) => encodeMessage('UdpSocketFile', dumpUdp(task, f, family, dup)));
  },

  check(file, where) {
    const s = payloadOf(file, where);
    checkFamily(s.family, 'udp', where, [s.local, s.peer, ...s.queue.flatMap((d) => [d.from, d.to])]);
    if (!s.opts) throw new CrError(`${where}: corrupted image (udp socket without its options)`);
    if (s.queue.length && !s.local.port) throw new CrError(`${where}: corrupted image (datagrams queued for an unbound socket)`);
    // What the UDP header's 16-bit length can carry.
    if (s.queue.some((d) => d.data.length > 0xffff - 8)) throw new CrError(`${where}: corrupted image (a datagram over ${0xffff - 8} bytes)`);
    // Datagrams are sent again to where the socket is bound, and nowhere else.
    if (!isWildcard(s.local) && s.queue.some((d) => !d.to.addr.equals(s.local.addr))) throw new CrError(`${where}: corrupted image (a datagram for another address)`);
  },

  open(task, file) {
    const where = `pid ${task.pid} file ${file.id}`;
    const s = payloadOf(file, where);
    const fd = inetSocketIn(task, s.family, SOCK.DGRAM, IPPROTO.UDP);
    withDup(task.pid, fd, (dup) => rebuild(dup, s, where));
    return fd;
  },

  describe(file) {
    const s = payloadOf(file, `file ${file.id}`);
    const kind = s.family === AF.INET6 ? 'udp6' : 'udp';
    const at = s.local.port ? `bound to ${shownAddress(s.family, s.local)}` : 'unbound';
    const peer = s.connected ? `, connected to ${shownAddress(s.family, s.peer)}` : '';
    return `${kind} socket ${at}${peer}, ${s.queue.length} datagrams queued; ${describeOptions(s.opts)}`;
  },
};
