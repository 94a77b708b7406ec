/**
 * UDP sockets, IPv4 and IPv6: bound or not, connected or not, with their
 * options and the datagrams queued for them. The queue is read at dump
 * time from a duplicate in cr, with each datagram's sender and
 * (IP_PKTINFO) the local address it was sent to: taken out for real, since
 * no peek shows an empty datagram that was peeked at before, and put back
 * at once the way a restore puts it. Restore binds the socket, sends each
 * datagram again from its sender's address with a raw packet cr builds
 * (userspace/net/packet.ts), in order, each once the one before is there;
 * peeks again at the empty ones that had been peeked at; and only then
 * connects it, since a connected socket would take nothing from anyone
 * else. A datagram put back has a new arrival time and came in on
 * loopback.
 */
import { CrError } from '../../../userspace/errors.js';
import { sendRawUdp } from '../../../userspace/net/packet.js';
import {
  AF, bind, connect, getsockopt, getsockoptBytes, inetAddress, ioctlInt, IPPROTO, MSG, peerName, POLL, pollNow, recvmsg, setsockopt, shutdown, SHUT, SIOC, SOCK, sockName, SOL,
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
  peeked: boolean;
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
/** struct sock's memory counters SO_MEMINFO gives: the first is what its receive queue holds. */
const SK_MEMINFO_VARS = 9;

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

/**
 * The datagrams queued for the socket (a duplicate in cr), in order: read
 * for real, or peeked at (left in place) stepping with SO_PEEK_OFF, which
 * passes over an empty datagram once it has been peeked at.
 */
function readQueue(fd: number, s: UdpSocketFile, peek: boolean, refuse: (what: string) => Error): UdpDatagram[] {
  const pktinfo: [number, number][] = s.family === AF.INET6 ? [[SOL.IPV6, IPV6_RECVPKTINFO], [SOL.IP, IP_PKTINFO]] : [[SOL.IP, IP_PKTINFO]];
  const saved = pktinfo.map(([level, name]) => getsockopt(fd, level, name));
  pktinfo.forEach(([level, name]) => setsockopt(fd, level, name, 1));
  setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, peek ? 0 : -1);
  try {
    const buf = Buffer.alloc(MAX_DATAGRAM);
    const queue: UdpDatagram[] = [];
    for (;;) {
      let got;
      try {
        got = recvmsg(fd, buf, (peek ? MSG.PEEK : 0) | MSG.DONTWAIT, 256);
      } catch (err) {
        if ((err as SysError).code === 'EAGAIN') break;
        // A queued ICMP error (IP_RECVERR) is read once, then gone: say so rather than lose it.
        if ((err as SysError).code === 'ECONNREFUSED' || (err as SysError).code === 'EHOSTUNREACH') throw refuse(`with an error pending (${(err as SysError).code})`);
        throw err;
      }
      const from = addressFrom(s.family, got.name);
      const to = destination(s.family, got.control, s.local);
      queue.push({ data: Buffer.from(buf.subarray(0, got.len)), from, to, family: unmapped(s.family, from).family, peeked: false });
      if (got.flags & MSG.TRUNC) throw refuse(`with a datagram over ${buf.length} bytes queued`);
    }
    return queue;
  } finally {
    setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, s.opts.peek_off);
    pktinfo.forEach(([level, name], i) => setsockopt(fd, level, name, saved[i]));
  }
}

/**
 * Which of the datagrams read for real (`all`) had been peeked at, from
 * those a pass of peeks saw (`seen`): the empty ones that pass missed. A
 * peek at an offset takes the first empty datagram there not yet peeked
 * at, so in each run of empty ones the peeked ones come first.
 */
function markPeeked(all: UdpDatagram[], seen: UdpDatagram[], where: string): void {
  let j = 0;
  for (let i = 0; i < all.length;) {
    if (all[i].data.length) {
      // Datagrams that came after the pass of peeks are all at the end.
      if (j < seen.length && !seen[j].data.equals(all[i].data)) throw new CrError(`${where}: the udp socket's queue changed while it was read`);
      i++;
      j++;
      continue;
    }
    let end = i;
    while (end < all.length && !all[end].data.length) end++;
    let visible = 0;
    for (; j < seen.length && !seen[j].data.length; j++) visible++;
    for (; i < end; i++) all[i].peeked = i < end - visible;
  }
}

const rmemAlloc = (fd: number) => getsockoptBytes(fd, SOL.SOCKET, SO.MEMINFO, 4 * SK_MEMINFO_VARS).readUInt32LE(0);

/**
 * Queue `queue` on the socket (a duplicate in cr) again: each datagram sent
 * from its sender with a raw packet, in order, each waited for (looped-back
 * packets are delivered from a softirq; the socket's memory grows as one
 * is queued, and nobody reads it meanwhile), with room made for them all;
 * then the empty ones that had been peeked at are peeked at again, and the
 * socket's peek offset set to `peekOff`.
 */
function feed(fd: number, s: UdpSocketFile, queue: UdpDatagram[], peekOff: number, where: string): void {
  const rcvbuf = getsockopt(fd, SOL.SOCKET, SO.RCVBUF);
  // What a datagram takes can be twice its size (a kmalloc'ed buffer rounds up).
  const room = queue.reduce((n, d) => n + 2 * d.data.length + 2048, 0);
  if (room > rcvbuf) setsockopt(fd, SOL.SOCKET, SO.RCVBUFFORCE, room >> 1);
  const tick = new Int32Array(new SharedArrayBuffer(4));
  try {
    queue.forEach((d, i) => {
      const from = unmapped(s.family, d.from);
      // A datagram to the wildcard address came to some local one: loopback's will do.
      const to = isWildcard(d.to) ? { family: from.family, addr: from.family === AF.INET6 ? Buffer.from([...Array(15).fill(0), 1]) : Buffer.from([127, 0, 0, 1]) } : unmapped(s.family, d.to);
      const before = rmemAlloc(fd);
      sendRawUdp(from.family, from.addr, d.from.port, to.addr, s.local.port, d.data);
      for (const deadline = Date.now() + ARRIVAL_WAIT_MS; rmemAlloc(fd) === before; Atomics.wait(tick, 0, 0, 1)) {
        if (Date.now() > deadline) throw new CrError(`${where}: datagram ${i + 1} of the ${queue.length} queued did not come back`);
      }
    });
  } finally {
    if (room > rcvbuf) setsockopt(fd, SOL.SOCKET, SO.RCVBUFFORCE, rcvbuf >> 1);
  }
  const buf = Buffer.alloc(1);
  let off = 0;
  for (const d of queue) {
    if (d.peeked) {
      setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, off);
      if (recvmsg(fd, buf, MSG.PEEK | MSG.DONTWAIT).len) throw new CrError(`${where}: an empty datagram to peek at again is not where it was queued`);
    }
    off += d.data.length;
  }
  setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, peekOff);
}

/**
 * The socket's queue, taken out and put back. Only reading it shows an
 * empty datagram that was peeked at (see readQueue); a pass of peeks
 * first tells which were. What is taken out goes back whatever happens
 * after, so the task runs on with the queue it had.
 */
function dumpQueue(fd: number, s: UdpSocketFile, where: string, refuse: (what: string) => Error): UdpDatagram[] {
  const connected = s.connected ? `connected to ${shownAddress(s.family, s.peer)} ` : '';
  // A pending error (an ICMP one, or IP_RECVERR's queue) is taken by the first read, then gone: poll shows it, and leaves it.
  if (pollNow(fd, POLL.IN) & POLL.ERR) throw refuse(`${connected}with an error pending (an ICMP error not read yet)`);
  const seen = readQueue(fd, s, true, refuse);
  // A datagram from another than the peer (queued before connect) could not be sent back to a connected socket.
  const foreign = (d: UdpDatagram) => !d.from.addr.equals(s.peer.addr) || d.from.port !== s.peer.port;
  if (s.connected && seen.some(foreign)) throw refuse(`${connected}with datagrams from others queued (from before it connected)`);
  const all: UdpDatagram[] = [];
  try {
    all.push(...readQueue(fd, s, false, refuse));
    markPeeked(all, seen, where);
  } finally {
    feed(fd, s, all, s.opts.peek_off, `${where}: putting its queue back`);
  }
  return all;
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
  s.queue = dumpQueue(dup, s, where, refuse);
  return s;
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
  feed(dup, s, s.queue, s.opts.peek_off, where);
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
    // Only an empty datagram is marked by a peek, and in a run of them the first ones are (markPeeked).
    if (s.queue.some((d, i) => d.peeked && (d.data.length || (i > 0 && !s.queue[i - 1].data.length && !s.queue[i - 1].peeked)))) {
      throw new CrError(`${where}: corrupted image (a datagram peeked at that no peek could have marked)`);
    }
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
    const peeked = s.queue.filter((d) => d.peeked).length;
    const seen = peeked ? ` (${peeked} empty ${peeked === 1 ? 'one' : 'ones'} peeked at)` : '';
    return `${kind} socket ${at}${peer}, ${s.queue.length} datagrams queued${seen}; ${describeOptions(s.opts)}`;
  },
};
