/**
 * Unix socket pairs. sock_diag (NETLINK_SOCK_DIAG) tells an end's peer,
 * name, state and shutdown; both ends must be in the image and unnamed,
 * which is what socketpair(2) makes. What is queued for an end is read at
 * dump time with MSG_PEEK from a duplicate in cr (pidfd_getfd), stepping
 * with SO_PEEK_OFF, so the task loses nothing. Restore creates the pair in
 * the task of the first end it meets, keeps both ends there until every
 * task is built (others take theirs with pidfd_getfd), and writes each
 * end's queue through its peer.
 * Sockets of other families are claimed here too, only to be refused by name.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procStatus } from '../../../userspace/proc/parse.js';
import { NR } from '../../../userspace/sys/constants.js';
import { close, getsockopt, rawSyscall, recvmsg, send, setsockopt, SysError } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { dupHigh, liftFd, rememberLeftovers, setStatusFlags, takeFromTask, tracerDup, type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';
import type { RestoreShared, RestoreTask } from './module.js';

interface UnixSocketFile {
  ino: bigint;
  peer_ino: bigint;
  type: number;
  queue: Buffer[];
  peek_off: number;
}

interface Diag {
  type: number;
  state: number;
  /** sun_path, "@…" for an abstract name; "" when unnamed. */
  name: string;
  peer: number;
  shutdown: number;
}

const AF_UNIX = 1;
const AF_NETLINK = 16;
const FAMILY_NAMES: Record<number, string> = { 2: 'inet', 10: 'inet6', 16: 'netlink', 17: 'packet', 40: 'vsock' };
const TYPE_NAMES: Record<number, string> = { 1: 'stream', 2: 'dgram', 5: 'seqpacket' };
const SOCK_STREAM = 1;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_DOMAIN = 39;
const SO_PEEK_OFF = 42;
const MSG_PEEK = 2;
const MSG_CTRUNC = 8;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const TCP_LISTEN = 10;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const UDIAG_SHOW_NAME = 1;
const UDIAG_SHOW_PEER = 4;
const UNIX_DIAG_NAME = 0;
const UNIX_DIAG_PEER = 2;
const UNIX_DIAG_SHUTDOWN = 6;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<UnixSocketFile>('UnixSocketFile', file.payload, where);
const refuse = (f: FdProbe, what: string) => new CrError(`pid ${f.pid} fd ${f.fd}: socket is not supported (${what})`);

/** What sock_diag says about the unix socket with this inode; null if there is none (another family). */
function unixDiag(ino: number): Diag | null {
  const nl = rawSyscall(NR.socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  try {
    // nlmsghdr, then unix_diag_req: family, protocol, pad, states, ino, show, cookie (none: ~0).
    const req = Buffer.alloc(40);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST, 6);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20);
    req.writeUInt32LE(ino, 24);
    req.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER, 28);
    req.writeUInt32LE(0xffffffff, 32);
    req.writeUInt32LE(0xffffffff, 36);
    fs.writeSync(nl, req);
    const resp = Buffer.alloc(8192);
    const len = fs.readSync(nl, resp);
    if (resp.readUInt16LE(4) === NLMSG_ERROR) {
      const errno = -resp.readInt32LE(16);
      if (errno === 2) return null; // ENOENT: not a unix socket
      throw new SysError(`sock_diag of socket:[${ino}]`, errno);
    }
    const diag: Diag = { type: resp.readUInt8(17), state: resp.readUInt8(18), name: '', peer: 0, shutdown: 0 };
    // struct unix_diag_msg is 16 bytes; its attributes follow, each 4-aligned.
    for (let at = 32; at + 4 <= Math.min(len, resp.readUInt32LE(0)); at += (resp.readUInt16LE(at) + 3) & ~3) {
      const attrLen = resp.readUInt16LE(at);
      const body = resp.subarray(at + 4, at + attrLen);
      const type = resp.readUInt16LE(at + 2);
      if (type === UNIX_DIAG_NAME) diag.name = body[0] === 0 ? `@${body.subarray(1).toString()}` : body.toString().replace(/\0.*$/s, '');
      if (type === UNIX_DIAG_PEER) diag.peer = body.readUInt32LE(0);
      if (type === UNIX_DIAG_SHUTDOWN) diag.shutdown = body.readUInt8(0);
    }
    return diag;
  } finally {
    close(nl);
  }
}

const ourTask = (pid: number) => {
  try {
    return procStatus(pid).get('TracerPid') === String(process.pid);
  } catch {
    return false; // gone
  }
};

/** The tasks of the image being dumped: the tree around `pid` that this cr has seized. */
function imageTasks(pid: number): number[] {
  let root = pid;
  for (let up = Number(procStatus(root).get('PPid')); up > 0 && ourTask(up); up = Number(procStatus(up).get('PPid'))) root = up;
  const tasks: number[] = [];
  const visit = (p: number) => {
    tasks.push(p);
    for (const tid of fs.readdirSync(`/proc/${p}/task`)) {
      const children = fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
      children.filter(ourTask).forEach(visit);
    }
  };
  visit(root);
  return tasks;
}

function inImage(pid: number, ino: number): boolean {
  const link = `socket:[${ino}]`;
  return imageTasks(pid).some((p) => fs.readdirSync(`/proc/${p}/fd`).some((fd) => {
    try {
      return fs.readlinkSync(`/proc/${p}/fd/${fd}`) === link;
    } catch {
      return false; // closed meanwhile
    }
  }));
}

/** Everything queued for the socket `fd` (a duplicate in cr), left in place. */
function peekQueue(f: FdProbe, fd: number, stream: boolean): Buffer[] {
  const savedOff = getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF);
  // With a peek offset each MSG_PEEK moves on past what it returned: the whole queue, record by record.
  setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    const buf = Buffer.alloc(Math.max(getsockopt(fd, SOL_SOCKET, SO_RCVBUF), getsockopt(fd, SOL_SOCKET, SO_SNDBUF)));
    const queue: Buffer[] = [];
    for (;;) {
      let got: { len: number; flags: number };
      try {
        got = recvmsg(fd, buf, MSG_PEEK | MSG_DONTWAIT);
      } catch (err) {
        if ((err as SysError).code === 'EAGAIN') break;
        throw err;
      }
      if (got.flags & MSG_CTRUNC) throw refuse(f, 'unix socket with descriptors or credentials in flight');
      if (got.flags & MSG_TRUNC) throw refuse(f, `unix socket with a message over ${buf.length} bytes queued`);
      // An empty record would be peeked again and again.
      if (!got.len && !stream) throw refuse(f, 'unix socket with an empty message queued');
      if (!got.len) break;
      queue.push(Buffer.from(buf.subarray(0, got.len)));
    }
    return stream && queue.length ? [Buffer.concat(queue)] : queue;
  } finally {
    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, savedOff);
  }
}

interface Pair {
  pid: number;
  /** Both ends in the task that created the pair, by inode. */
  ends: Map<bigint, number>;
}

/** Pairs created so far in each restore, keyed by its shared table (so that table needs no field of ours). */
const created = new WeakMap<RestoreShared, Map<bigint, Pair>>();

function createPair(task: RestoreTask, s: UnixSocketFile): Pair {
  const { tracee, inj } = task;
  inj.reset();
  const sv = inj.alloc(8);
  tracee.syscallOk(`socketpair(AF_UNIX, ${TYPE_NAMES[s.type]})`, NR.socketpair, AF_UNIX, s.type | SOCK_CLOEXEC, 0, sv);
  const b = tracee.readMem(sv, 8);
  const ends = [liftFd(task, b.readInt32LE(0)), liftFd(task, b.readInt32LE(4))];
  rememberLeftovers(task, ends);
  return { pid: task.pid, ends: new Map([[s.ino, ends[0]], [s.peer_ino, ends[1]]]) };
}

/** Write an end's queue through its peer (from cr, never blocking), and set its peek offset. */
function refill(pair: Pair, s: UnixSocketFile, where: string): void {
  if (s.queue.length) {
    const peer = tracerDup(pair.pid, pair.ends.get(s.peer_ino)!);
    try {
      for (const data of s.queue) {
        // A stream may take its bytes in several writes; a datagram or record always goes whole.
        for (let done = 0; done < data.length; ) done += send(peer, data.subarray(done), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
    } catch (err) {
      if ((err as SysError).code === 'EAGAIN') throw new CrError(`${where}: the socket's queue does not take its ${s.queue.length} saved entries back`);
      throw err;
    } finally {
      close(peer);
    }
  }
  if (s.peek_off >= 0) {
    const own = tracerDup(pair.pid, pair.ends.get(s.ino)!);
    try {
      setsockopt(own, SOL_SOCKET, SO_PEEK_OFF, s.peek_off);
    } finally {
      close(own);
    }
  }
}

export const unixSockets: FdType = {
  type: 'unix',

  claims(f) {
    return f.stat.isSocket();
  },

  dump(_task, f) {
    const ino = Number(f.stat.ino);
    const diag = unixDiag(ino);
    if (!diag) {
      const dup = tracerDup(f.pid, f.fd);
      let family: number;
      try {
        family = getsockopt(dup, SOL_SOCKET, SO_DOMAIN);
      } finally {
        close(dup);
      }
      throw new CrError(`pid ${f.pid} fd ${f.fd}: ${FAMILY_NAMES[family] ?? `address family ${family}`} socket is not supported`);
    }
    const kind = `unix ${TYPE_NAMES[diag.type] ?? `type ${diag.type}`} socket`;
    if (!TYPE_NAMES[diag.type]) throw refuse(f, kind);
    if (diag.state === TCP_LISTEN) throw refuse(f, `${kind} listening on ${diag.name || 'an autobound name'}`);
    if (diag.name) throw refuse(f, `${kind} bound to ${diag.name}`);
    if (!diag.peer) throw refuse(f, `${kind} with no peer`);
    const peer = unixDiag(diag.peer);
    if (peer?.name) throw refuse(f, `${kind} connected to ${peer.name}`);
    if (diag.shutdown) throw refuse(f, `${kind} shut down`);
    if (!inImage(f.pid, diag.peer)) throw refuse(f, `${kind} whose peer is outside the image`);
    const dup = tracerDup(f.pid, f.fd);
    try {
      const peekOff = getsockopt(dup, SOL_SOCKET, SO_PEEK_OFF);
      const queue = peekQueue(f, dup, diag.type === SOCK_STREAM);
      return encodeMessage('UnixSocketFile', { ino: f.stat.ino, peer_ino: BigInt(diag.peer), type: diag.type, queue, peek_off: peekOff });
    } finally {
      close(dup);
    }
  },

  check(file, where) {
    const s = payloadOf(file, where);
    if (!TYPE_NAMES[s.type]) throw new CrError(`${where}: unix socket of unknown type ${s.type}`);
  },

  open(task, file) {
    const where = `pid ${task.pid} file ${file.id}`;
    const s = payloadOf(file, where);
    const pairs = created.get(task.shared) ?? new Map<bigint, Pair>();
    created.set(task.shared, pairs);
    const key = s.ino < s.peer_ino ? s.ino : s.peer_ino;
    const pair = pairs.get(key) ?? createPair(task, s);
    pairs.set(key, pair);
    refill(pair, s, where);
    const end = pair.ends.get(s.ino)!;
    const fd = pair.pid === task.pid ? dupHigh(task, end) : liftFd(task, takeFromTask(task, pair.pid, end));
    setStatusFlags(task, fd, file.flags);
    return fd;
  },

  describe(file) {
    const s = payloadOf(file, `file ${file.id}`);
    const queued = s.type === SOCK_STREAM ? `${s.queue[0]?.length ?? 0} bytes` : `${s.queue.length} messages`;
    return `unix ${TYPE_NAMES[s.type]} socket:[${s.ino}] paired with socket:[${s.peer_ino}], ${queued} queued`;
  },
};
