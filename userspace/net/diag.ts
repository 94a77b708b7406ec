/**
 * sock_diag (NETLINK_SOCK_DIAG): what the kernel says about every socket of
 * this network namespace, found by inode — unix sockets with their names,
 * peers, accept queues and queue lengths (UNIX_DIAG), TCP and UDP sockets
 * with their addresses, states and queues (INET_DIAG). The way CRIU and
 * ss(8) find what /proc does not show.
 */
import fs from 'node:fs';
import { close, SysError } from '../sys/libc.js';
import { AF, IPPROTO, SOCK, socket } from './socket.js';

const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_HDR = 16;

/** Each message's body (after its nlmsghdr) of the answer to one request. */
function request(body: Buffer, dump: boolean): Buffer[] {
  const nl = socket(AF.NETLINK, SOCK.RAW, NETLINK_SOCK_DIAG);
  try {
    const req = Buffer.alloc(NLMSG_HDR + body.length);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0), 6);
    req.writeUInt32LE(1, 8);
    body.copy(req, NLMSG_HDR);
    fs.writeSync(nl, req);
    const out: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const len = fs.readSync(nl, buf);
      for (let at = 0; at + NLMSG_HDR <= len; ) {
        const msgLen = buf.readUInt32LE(at);
        const type = buf.readUInt16LE(at + 4);
        if (msgLen < NLMSG_HDR) return out;
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(at + NLMSG_HDR);
          if (errno === 0 || errno === 2) return out; // ENOENT: no such socket
          throw new SysError('sock_diag', errno);
        }
        out.push(Buffer.from(buf.subarray(at + NLMSG_HDR, at + msgLen)));
        at += (msgLen + 3) & ~3;
      }
      if (!dump) return out;
    }
  } finally {
    close(nl);
  }
}

/** Netlink attributes (type -> payload) from `at` on. */
function attributes(msg: Buffer, at: number): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  while (at + 4 <= msg.length) {
    const len = msg.readUInt16LE(at);
    if (len < 4) break;
    attrs.set(msg.readUInt16LE(at + 2) & 0x3fff, msg.subarray(at + 4, at + len));
    at += (len + 3) & ~3;
  }
  return attrs;
}

export interface UnixDiag {
  ino: number;
  type: number;
  state: number;
  /** sun_path as bound: a leading NUL for an abstract name; empty when unnamed. */
  name: Buffer;
  /** The socket file's inode and device, for a name in the file system. */
  vfs?: { ino: number; dev: number };
  /**
   * The peer's inode: 0 when there is a peer without one (it was closed, or
   * it is the other end of a connection not yet accepted); undefined when
   * there is no peer.
   */
  peer?: number;
  /** A listener's accept queue: the inode of each connecting socket, oldest first. */
  icons: number[];
  /** Bytes (or, for a listener, connections) queued to read; bytes written not yet read by the peer. */
  rqueue: number;
  wqueue: number;
  shutdown: number;
  uid: number;
}

const UDIAG_SHOW = { NAME: 1, VFS: 2, PEER: 4, ICONS: 8, RQLEN: 0x10, UID: 0x40 };
const UNIX_DIAG = { NAME: 0, VFS: 1, PEER: 2, ICONS: 3, RQLEN: 4, SHUTDOWN: 6, UID: 7 };

function parseUnix(msg: Buffer): UnixDiag {
  const a = attributes(msg, 16);
  const vfs = a.get(UNIX_DIAG.VFS);
  const rq = a.get(UNIX_DIAG.RQLEN);
  const icons = a.get(UNIX_DIAG.ICONS) ?? Buffer.alloc(0);
  return {
    ino: msg.readUInt32LE(4), type: msg.readUInt8(1), state: msg.readUInt8(2),
    name: Buffer.from(a.get(UNIX_DIAG.NAME) ?? Buffer.alloc(0)),
    vfs: vfs ? { ino: vfs.readUInt32LE(0), dev: vfs.readUInt32LE(4) } : undefined,
    peer: a.get(UNIX_DIAG.PEER)?.readUInt32LE(0),
    icons: [...Array(icons.length >> 2).keys()].map((i) => icons.readUInt32LE(i * 4)),
    rqueue: rq?.readUInt32LE(0) ?? 0, wqueue: rq?.readUInt32LE(4) ?? 0,
    shutdown: a.get(UNIX_DIAG.SHUTDOWN)?.readUInt8(0) ?? 0,
    uid: a.get(UNIX_DIAG.UID)?.readUInt32LE(0) ?? 0,
  };
}

function unixRequest(ino: number): Buffer {
  // unix_diag_req: family, protocol, pad, states, ino, show, cookie (none: ~0).
  const b = Buffer.alloc(24);
  b.writeUInt8(AF.UNIX, 0);
  b.writeUInt32LE(0xffffffff, 4);
  b.writeUInt32LE(ino, 8);
  b.writeUInt32LE(Object.values(UDIAG_SHOW).reduce((x, y) => x | y), 12);
  b.writeUInt32LE(0xffffffff, 16);
  b.writeUInt32LE(0xffffffff, 20);
  return b;
}

/** Every unix socket of this network namespace, by inode. */
export function listUnixSockets(): Map<number, UnixDiag> {
  return new Map(request(unixRequest(0), true).map(parseUnix).map((d) => [d.ino, d]));
}

/** One unix socket by inode; null if there is none (or it is of another family). */
export function findUnixSocket(ino: number): UnixDiag | null {
  const [msg] = request(unixRequest(ino), false);
  return msg ? parseUnix(msg) : null;
}

export interface InetDiag {
  family: number;
  protocol: number;
  state: number;
  /** Addresses are 4 or 16 bytes in network order. */
  src: Buffer;
  sport: number;
  dst: Buffer;
  dport: number;
  /** The device it is bound to (SO_BINDTODEVICE), 0 for none. */
  ifindex: number;
  /** For a listener: connections in its accept queue and its backlog; otherwise bytes queued. */
  rqueue: number;
  wqueue: number;
  uid: number;
  ino: number;
  shutdown: number;
}

const INET_DIAG_SHUTDOWN = 8;

function parseInet(msg: Buffer, protocol: number): InetDiag {
  const family = msg.readUInt8(0);
  const len = family === AF.INET6 ? 16 : 4;
  return {
    family, protocol, state: msg.readUInt8(1),
    sport: msg.readUInt16BE(4), dport: msg.readUInt16BE(6),
    src: Buffer.from(msg.subarray(8, 8 + len)), dst: Buffer.from(msg.subarray(24, 24 + len)),
    ifindex: msg.readUInt32LE(40),
    rqueue: msg.readUInt32LE(56), wqueue: msg.readUInt32LE(60), uid: msg.readUInt32LE(64), ino: msg.readUInt32LE(68),
    shutdown: attributes(msg, 72).get(INET_DIAG_SHUTDOWN)?.readUInt8(0) ?? 0,
  };
}

/** Every socket of one family and protocol (IPPROTO_TCP, IPPROTO_UDP) in this network namespace, in any state. */
export function listInetSockets(family: number, protocol: number): InetDiag[] {
  // inet_diag_req_v2: family, protocol, ext, pad, states, then an empty sockid.
  const b = Buffer.alloc(56);
  b.writeUInt8(family, 0);
  b.writeUInt8(protocol, 1);
  b.writeUInt32LE(0xffffffff, 4);
  return request(b, true).map((m) => parseInet(m, protocol));
}

/** TCP and UDP sockets of both families, by inode (time-wait and request sockets have none and are left out). */
export function inetSocketsByInode(): Map<number, InetDiag> {
  const all = [AF.INET, AF.INET6].flatMap((f) => [IPPROTO.TCP, IPPROTO.UDP].flatMap((p) => listInetSockets(f, p)));
  return new Map(all.filter((d) => d.ino).map((d) => [d.ino, d]));
}
