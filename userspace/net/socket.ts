/**
 * cr's own socket calls, through koffi: what the dumper and the restorer do
 * on duplicates of a task's sockets (pidfd_getfd), from outside the task.
 * Addresses and control messages are plain bytes, built and read here.
 * Every wrapper throws a SysError carrying errno.
 */
import { NR } from '../sys/constants.js';
import { check, ffi, libcFunction, once, rawSyscall, SysError } from '../sys/libc.js';

const iovec = once(() => ffi().struct('net_iovec', { base: 'void *', len: 'size_t' }));
const msghdr = once(() => ffi().struct('net_msghdr', {
  name: 'void *', namelen: 'uint32', iov: ffi().pointer(iovec()), iovlen: 'size_t', control: 'void *', controllen: 'size_t', flags: 'int',
}));
const recvmsgRaw = libcFunction((c, k) => c.func('recvmsg', 'long', ['int', k.inout(k.pointer(msghdr())), 'int']));
const sendmsgRaw = libcFunction((c, k) => c.func('sendmsg', 'long', ['int', k.pointer(msghdr()), 'int']));

export const AF = { UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const SOL = { IP: 0, SOCKET: 1, TCP: 6, UDP: 17, IPV6: 41, RAW: 255 } as const;
export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, RAW: 255, ICMPV6: 58 } as const;
/** The size of sockaddr_un's sun_path. */
export const SUN_PATH_BYTES = 108;
export const MSG = { OOB: 1, PEEK: 2, CTRUNC: 8, TRUNC: 0x20, DONTWAIT: 0x40, NOSIGNAL: 0x4000, CMSG_CLOEXEC: 0x40000000 } as const;
export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;
/** Control message types at SOL_SOCKET. */
export const SCM = { RIGHTS: 1, CREDENTIALS: 2 } as const;
export const SIOC = { INQ: 0x541b, OUTQ: 0x5411, OUTQNSD: 0x894b } as const;

/** A raw system call whose SysError names it. */
function call(name: string, nr: number, ...args: (number | Buffer)[]): number {
  try {
    return rawSyscall(nr, ...args);
  } catch (err) {
    throw err instanceof SysError ? new SysError(name, err.errno) : err;
  }
}

export function socket(family: number, type: number, protocol = 0): number {
  return call('socket', NR.socket, family, type | SOCK.CLOEXEC, protocol);
}

export function bind(fd: number, addr: Buffer): void {
  call('bind', NR.bind, fd, addr, addr.length);
}

export function connect(fd: number, addr: Buffer): void {
  call('connect', NR.connect, fd, addr, addr.length);
}

export function listen(fd: number, backlog: number): void {
  call('listen', NR.listen, fd, backlog);
}

export function accept(fd: number, flags = 0): number {
  return call('accept4', NR.accept4, fd, 0, 0, flags | SOCK.CLOEXEC);
}

export function shutdown(fd: number, how: number): void {
  call('shutdown', NR.shutdown, fd, how);
}

const SOCKADDR_MAX = 128;
function addressOf(name: string, nr: number, fd: number): Buffer {
  const buf = Buffer.alloc(SOCKADDR_MAX);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length, 0);
  call(name, nr, fd, buf, len);
  return buf.subarray(0, Math.min(len.readUInt32LE(0), buf.length));
}

/** getsockname(2), the address as the kernel wrote it. */
export const sockName = (fd: number) => addressOf('getsockname', NR.getsockname, fd);
/** getpeername(2); throws ENOTCONN when there is no peer. */
export const peerName = (fd: number) => addressOf('getpeername', NR.getpeername, fd);

/** An int-valued socket option. */
export function getsockopt(fd: number, level: number, name: number): number {
  return getsockoptBytes(fd, level, name, 4).readInt32LE(0);
}

/** A socket option of up to `size` bytes, as long as the kernel made it. */
export function getsockoptBytes(fd: number, level: number, name: number, size: number): Buffer {
  const val = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  call(`getsockopt(${level}, ${name})`, NR.getsockopt, fd, level, name, val, len);
  return val.subarray(0, len.readUInt32LE(0));
}

export function setsockopt(fd: number, level: number, name: number, value: number | Buffer): void {
  let val = value as Buffer;
  if (typeof value === 'number') {
    val = Buffer.alloc(4);
    // The same 32 bits whether the option is an int or (SO_MARK) an unsigned one.
    val.writeInt32LE(value | 0, 0);
  }
  call(`setsockopt(${level}, ${name})`, NR.setsockopt, fd, level, name, val, val.length);
}

export const POLL = { IN: 1, ERR: 8 } as const;

/** poll(2) of one descriptor, without waiting: which of `events` (and POLLERR, POLLHUP) it has. */
export function pollNow(fd: number, events: number): number {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  call('poll', NR.poll, pfd, 1, 0);
  return pfd.readInt16LE(6);
}

/** An ioctl that fills in an int (SIOCINQ and friends). */
export function ioctlInt(fd: number, request: number): number {
  const val = Buffer.alloc(4);
  call(`ioctl(0x${request.toString(16)})`, NR.ioctl, fd, request, val);
  return val.readInt32LE(0);
}

export interface Received {
  len: number;
  flags: number;
  /** The sender's address (recvfrom); empty when it has none. */
  name: Buffer;
  control: Cmsg[];
}

/** recvmsg(2) into `buf`, with room for `controlSize` bytes of ancillary data. */
export function recvmsg(fd: number, buf: Buffer, flags: number, controlSize = 0): Received {
  const name = Buffer.alloc(SOCKADDR_MAX);
  const control = controlSize ? Buffer.alloc(controlSize) : null;
  const msg = { name, namelen: name.length, iov: { base: buf, len: buf.length }, iovlen: 1, control, controllen: controlSize, flags: 0 };
  const len = check(`recvmsg(${fd})`, recvmsgRaw(fd, msg, flags));
  return { len, flags: msg.flags, name: name.subarray(0, Math.min(msg.namelen, name.length)), control: control ? decodeCmsgs(control.subarray(0, msg.controllen)) : [] };
}

/** sendmsg(2) of one buffer, to `name` if given, with ancillary data. */
export function sendmsg(fd: number, data: Buffer, flags: number, opts: { name?: Buffer; control?: Cmsg[] } = {}): number {
  const control = opts.control?.length ? encodeCmsgs(opts.control) : null;
  const msg = {
    name: opts.name ?? null, namelen: opts.name?.length ?? 0, iov: { base: data, len: data.length }, iovlen: 1,
    control, controllen: control?.length ?? 0, flags: 0,
  };
  return check(`sendmsg(${fd})`, sendmsgRaw(fd, msg, flags));
}

export interface Cmsg {
  level: number;
  type: number;
  data: Buffer;
}

const CMSG_HDR = 16;
const align8 = (n: number) => (n + 7) & ~7;

export function encodeCmsgs(list: Cmsg[]): Buffer {
  const out = Buffer.alloc(list.reduce((n, c) => n + align8(CMSG_HDR + c.data.length), 0));
  let at = 0;
  for (const c of list) {
    out.writeBigUInt64LE(BigInt(CMSG_HDR + c.data.length), at);
    out.writeInt32LE(c.level, at + 8);
    out.writeInt32LE(c.type, at + 12);
    c.data.copy(out, at + CMSG_HDR);
    at += align8(CMSG_HDR + c.data.length);
  }
  return out;
}

export function decodeCmsgs(buf: Buffer): Cmsg[] {
  const list: Cmsg[] = [];
  for (let at = 0; at + CMSG_HDR <= buf.length; ) {
    const len = Number(buf.readBigUInt64LE(at));
    if (len < CMSG_HDR || at + len > buf.length) break;
    list.push({ level: buf.readInt32LE(at + 8), type: buf.readInt32LE(at + 12), data: Buffer.from(buf.subarray(at + CMSG_HDR, at + len)) });
    at += align8(len);
  }
  return list;
}

/** struct ucred, as SCM_CREDENTIALS carries it. */
export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}

export function encodeUcred(c: Ucred): Buffer {
  const b = Buffer.alloc(12);
  b.writeInt32LE(c.pid, 0);
  b.writeUInt32LE(c.uid, 4);
  b.writeUInt32LE(c.gid, 8);
  return b;
}

export const decodeUcred = (b: Buffer): Ucred => ({ pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) });

/**
 * A sockaddr_un for `name`: sun_path bytes as sock_diag reports them (a
 * leading NUL for an abstract name), or none for an unnamed socket. A path
 * ends with a NUL where sun_path has room for one (a path of all its 108
 * bytes has none, as bind(2) allows).
 */
export function unixAddress(name: Buffer): Buffer {
  const path = name.length && name[0] !== 0 && name.length < SUN_PATH_BYTES ? Buffer.concat([name, Buffer.from([0])]) : name;
  const b = Buffer.alloc(2 + path.length);
  b.writeUInt16LE(AF.UNIX, 0);
  path.copy(b, 2);
  return b;
}

/** An IPv4 or IPv6 endpoint; `addr` is 4 or 16 bytes in network order. */
export interface InetEndpoint {
  family: number;
  addr: Buffer;
  port: number;
  /** IPv6 only. */
  flowinfo?: number;
  scope?: number;
}

export function inetAddress(e: InetEndpoint): Buffer {
  const v6 = e.family === AF.INET6;
  const b = Buffer.alloc(v6 ? 28 : 16);
  b.writeUInt16LE(e.family, 0);
  b.writeUInt16BE(e.port, 2);
  if (v6) {
    b.writeUInt32BE(e.flowinfo ?? 0, 4);
    e.addr.copy(b, 8);
    b.writeUInt32LE(e.scope ?? 0, 24);
  } else {
    e.addr.copy(b, 4);
  }
  return b;
}

export function parseInetAddress(b: Buffer): InetEndpoint {
  const family = b.readUInt16LE(0);
  if (family === AF.INET6) return { family, port: b.readUInt16BE(2), flowinfo: b.readUInt32BE(4), addr: Buffer.from(b.subarray(8, 24)), scope: b.readUInt32LE(24) };
  if (family === AF.INET) return { family, port: b.readUInt16BE(2), addr: Buffer.from(b.subarray(4, 8)) };
  return { family, port: 0, addr: Buffer.alloc(0) };
}

/** "127.0.0.1:80", "[::1]:80". */
export function formatEndpoint(e: { family: number; addr: Buffer; port: number }): string {
  if (e.family !== AF.INET6) return `${[...e.addr].join('.')}:${e.port}`;
  const words = [...Array(8).keys()].map((i) => e.addr.readUInt16BE(i * 2).toString(16));
  const text = words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
  return `[${text}]:${e.port}`;
}
