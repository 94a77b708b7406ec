/**
 * Unix sockets of every type: stream, datagram and seqpacket; unnamed,
 * bound to a path or to an abstract name, listening with connections not
 * yet accepted, connected (socketpair, or connect and accept), shut down,
 * with whatever is queued for them to read — datagram boundaries, the
 * writers' credentials and descriptors in flight (SCM_RIGHTS) — and their
 * options.
 *
 * Dump asks sock_diag for every unix socket of the namespace (peers,
 * names, socket files, accept queues: the UNIX_DIAG "icons"), and reads
 * each queue from a duplicate in cr, with SO_PASSCRED on so that each
 * writer's bytes come apart: with MSG_PEEK stepping with SO_PEEK_OFF, so
 * the task loses nothing, or, for a datagram or seqpacket socket paired
 * with one the tree holds, taken out and written back at once through
 * that peer (readQueue says why). A descriptor in flight arrives in cr
 * and is saved as one more open file of the task's image.
 *
 * Restore makes each socket the way it was made, in the task that first
 * needs it (others take it with pidfd_getfd): socketpair for unnamed
 * pairs; for a connection with a name, connect to the listener (the
 * image's own, or a short-lived one on the same name) and accept, so both
 * ends read back the names they had. The queues are written back through
 * the peer (or a socket bound to the datagram's sender name) from cr.
 * Once every task is built, connections still in an accept queue are
 * made again in order, datagram sockets are connected by name, and the
 * options and shutdowns are set last, so none of them gets in the way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { close, fcntl, SysError } from '../../../userspace/sys/libc.js';
import { findUnixSocket, listUnixSockets, type UnixDiag } from '../../../userspace/net/diag.js';
import { socketFds } from '../../../userspace/proc/parse.js';
import {
  AF, bind, connect, decodeUcred, encodeUcred, getsockopt, MSG, recvmsg, SCM, sendmsg, setsockopt, shutdown, SOCK, sockName, socket, SOL, SUN_PATH_BYTES, unixAddress,
  type Cmsg,
} from '../../../userspace/net/socket.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { dupHigh, liftFd, rememberLeftovers, takeFromTask, tracerDup, type DumpFiles, type FdProbe, type FdType, type OpenFileImage, type RestoreFiles } from './fdtype.js';
import type { DumpShared, DumpTask, RestoreShared, RestoreTask } from './module.js';
import { applyOptions, describeOptions, imageSockets, saveOptions, SO, socketKind, withDup, type SocketOptions } from './sockets.js';

interface UnixAddress {
  name: Buffer;
  path: string;
  file_present: boolean;
  mode: number;
  uid: number;
  gid: number;
  listener: bigint;
}

interface UnixMessage {
  data: Buffer;
  fds: number[];
  pid: number;
  uid: number;
  gid: number;
  from: Buffer;
}

const ROLES = ['unconnected', 'listening', 'paired', 'pending', 'orphaned', 'connected'] as const;
type Role = (typeof ROLES)[number];

interface UnixSocketFile {
  ino: bigint;
  type: number;
  role: Role;
  addr: UnixAddress;
  peer_ino: bigint;
  peer_addr: UnixAddress;
  accepted: boolean;
  backlog: number;
  pending: bigint[];
  shutdown: number;
  queue: UnixMessage[];
  opts: SocketOptions;
}

const TYPE_NAMES: Record<number, string> = { [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'dgram', [SOCK.SEQPACKET]: 'seqpacket' };
const TCP_LISTEN = 10;
const SHUTDOWN_MASK = 3;
const RCV_SHUTDOWN = 1;
/** Room for a message's ancillary data: SCM_MAX_FD descriptors and credentials. */
const CONTROL_SIZE = 4096;
const F_GETFL = 3;
const F_SETFL = 4;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<UnixSocketFile>('UnixSocketFile', file.payload, where);
const noAddress = (): UnixAddress => ({ name: Buffer.alloc(0), path: '', file_present: false, mode: 0, uid: 0, gid: 0, listener: 0n });
const isPath = (name: Buffer) => name.length > 0 && name[0] !== 0;
/** A name as people read it: the path, or "@name" for an abstract one. */
const shown = (name: Buffer) => (!name.length ? 'no name' : isPath(name) ? name.toString() : `@${name.subarray(1).toString()}`);
/** sun_path of a path name ends at its NUL; an abstract name is all its bytes. */
const nameOf = (d: { name: Buffer }) => (isPath(d.name) ? d.name.subarray(0, d.name.indexOf(0) < 0 ? d.name.length : d.name.indexOf(0)) : d.name);

// ---------------------------------------------------------------- dump

interface DumpState {
  diag: Map<number, UnixDiag>;
  /** Socket inodes the image holds (imageSockets), in flight ones added as their queues are saved. */
  held: Set<number>;
  /** Descriptors in flight that cr received, open until the dump ends so that later descriptors of those files are known. */
  received: number[];
}

const dumps = new WeakMap<DumpShared, DumpState>();

function dumpState(task: DumpTask): DumpState {
  let st = dumps.get(task.shared);
  if (!st) {
    const state: DumpState = { diag: listUnixSockets(), held: imageSockets(task), received: [] };
    task.shared.done.push(() => state.received.forEach(close));
    dumps.set(task.shared, state);
    st = state;
  }
  return st;
}

const diagOf = (st: DumpState, ino: number) => st.diag.get(ino) ?? findUnixSocket(ino);

/** The kernel's dev_t (MAJOR << 20 | MINOR), as sock_diag gives it, in stat(2)'s encoding. */
const statDev = (kdev: number) => BigInt(((kdev & 0xff) | ((kdev >>> 20) << 8) | ((kdev & 0xfff00) << 12)) >>> 0);

/** A socket's name and, for a path, its socket file; the image's listener on that name, if any. */
function addressOf(st: DumpState, task: DumpTask, d: UnixDiag, refuse: (what: string) => Error): UnixAddress {
  const a = noAddress();
  a.name = Buffer.from(nameOf(d));
  if (!a.name.length) return a;
  const listener = [...st.diag.values()].find((l) => l.state === TCP_LISTEN && st.held.has(l.ino) && nameOf(l).equals(a.name) &&
    (!isPath(a.name) || l.vfs?.ino === d.vfs?.ino));
  a.listener = BigInt(listener?.ino ?? 0);
  if (!isPath(a.name)) return a;
  const name = a.name.toString();
  a.path = path.isAbsolute(name) ? name : path.join(fs.readlinkSync(`/proc/${task.pid}/cwd`), name);
  let stat: fs.BigIntStats | undefined;
  try {
    stat = fs.lstatSync(a.path, { bigint: true });
  } catch {
    /* unlinked */
  }
  a.file_present = !!(stat?.isSocket() && d.vfs && stat.ino === BigInt(d.vfs.ino) && stat.dev === statDev(d.vfs.dev));
  if (a.file_present) {
    a.mode = Number(stat!.mode & 0o7777n);
    a.uid = Number(stat!.uid);
    a.gid = Number(stat!.gid);
  } else if (!path.isAbsolute(name)) {
    throw refuse(`bound to the relative name ${name}, which is not in its working directory`);
  }
  return a;
}

/**
 * Of a connected pair with a name, the end that was accepted (it carries the
 * listener's name): the only named one, else the one whose name something
 * listens on, else the younger (accept makes its socket after the client's).
 */
function accepted(st: DumpState, me: UnixDiag, other: UnixDiag): boolean {
  if (!me.name.length || !other.name.length) return me.name.length > 0;
  const listened = (x: UnixDiag) => [...st.diag.values()].some((l) => l.state === TCP_LISTEN && nameOf(l).equals(nameOf(x)));
  if (listened(me) !== listened(other)) return listened(me);
  return me.ino > other.ino;
}

/** A message of a queue as read, and the descriptors in flight with it as they arrived in cr. */
interface Taken {
  m: UnixMessage;
  rights: number[];
}

/**
 * Everything queued for the socket (a duplicate in cr), left in place or
 * (`take`) taken out; descriptors in flight are saved as open files. With
 * a peek offset each MSG_PEEK moves on past what it returned: the whole
 * queue, record by record; SO_PASSCRED keeps writers apart. But such a
 * peek passes over an empty message once it has been peeked at, as a task
 * that asks for the size of the next message (MSG_PEEK | MSG_TRUNC)
 * leaves the one at the head: the head is peeked at first without an
 * offset, which shows it whatever it is (and marks it, if empty, so that
 * the pass does not take it twice). An empty message further on that was
 * peeked at with an offset (by the task, or by an earlier dump that left
 * it running) only shows when the queue is taken out (putBack).
 */
function readQueue(st: DumpState, files: DumpFiles, fd: number, s: UnixSocketFile, take: boolean, refuse: (what: string) => Error): Taken[] {
  const stream = s.type === SOCK.STREAM;
  const buf = Buffer.alloc(Math.max(s.opts.rcvbuf, s.opts.sndbuf, 1 << 16) * 2);
  /** The next message (at the socket's peek offset, when peeking), or null at the end of the queue. */
  const next = (): Taken | null => {
    let got;
    try {
      got = recvmsg(fd, buf, (take ? 0 : MSG.PEEK) | MSG.DONTWAIT | MSG.CMSG_CLOEXEC, CONTROL_SIZE);
    } catch (err) {
      if ((err as SysError).code === 'EAGAIN') return null;
      throw err;
    }
    const rights: number[] = [];
    const m: UnixMessage = { data: Buffer.from(buf.subarray(0, got.len)), fds: [], pid: 0, uid: 0, gid: 0, from: Buffer.alloc(0) };
    for (const c of got.control) {
      if (c.level === SOL.SOCKET && c.type === SCM.RIGHTS) for (let i = 0; i + 4 <= c.data.length; i += 4) rights.push(c.data.readInt32LE(i));
      if (c.level === SOL.SOCKET && c.type === SCM.CREDENTIALS) Object.assign(m, decodeUcred(c.data));
    }
    st.received.push(...rights);
    // (Taken, none is: putBack makes room for the longest its writer can send.)
    if (got.flags & MSG.CTRUNC) throw refuse('with more descriptors in flight in one message than cr can take');
    if (got.flags & MSG.TRUNC) throw refuse(`with a message over ${buf.length} bytes queued`);
    // An end of file (stream), or the end of a seqpacket or datagram queue whose writer is gone.
    if (!got.len && !rights.length && (stream || s.shutdown & RCV_SHUTDOWN)) return null;
    for (const f of rights) {
      const stat = fs.fstatSync(f);
      if (stat.isSocket()) st.held.add(stat.ino);
      m.fds.push(files.inFlight(f));
    }
    if (got.name.length > 2) m.from = Buffer.from(nameOf({ name: got.name.subarray(2) }));
    return { m, rights };
  };
  setsockopt(fd, SOL.SOCKET, SO.PASSCRED, 1);
  try {
    const queue: Taken[] = [];
    if (!stream && !take) {
      setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, -1);
      // Its size first: a message with bytes comes in the pass, with its descriptors.
      let empty = false;
      try {
        empty = recvmsg(fd, buf.subarray(0, 1), MSG.PEEK | MSG.DONTWAIT).len === 0;
      } catch (err) {
        if ((err as SysError).code !== 'EAGAIN') throw err;
      }
      const head = empty ? next() : null;
      if (head) queue.push(head);
    }
    setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, take ? -1 : 0);
    for (let m = next(); m; m = next()) queue.push(m);
    return queue;
  } finally {
    setsockopt(fd, SOL.SOCKET, SO.PEEK_OFF, s.opts.peek_off);
    setsockopt(fd, SOL.SOCKET, SO.PASSCRED, s.opts.passcred ? 1 : 0);
  }
}

/** A descriptor of socket `ino` in a task of the tree, or undefined. */
function holderOf(task: DumpTask, ino: number): { pid: number; fd: number } | undefined {
  for (const pid of task.shared.tree) {
    const hit = socketFds(pid).find((s) => s.ino === ino);
    if (hit) return { pid, fd: hit.fd };
  }
  return undefined;
}

/**
 * Send `data` (all or the first part of message `m`) as its writer did:
 * with its credentials and the descriptors `rights` in flight; a writer
 * that no longer exists cannot be named, so then as `reader`, the task
 * that reads it. Returns the bytes sent.
 */
function sendAs(fd: number, data: Buffer, m: UnixMessage, rights: number[], reader: number, to?: Buffer): number {
  const control = (pid: number): Cmsg[] => [
    { level: SOL.SOCKET, type: SCM.CREDENTIALS, data: encodeUcred({ pid, uid: m.uid, gid: m.gid }) },
    ...(rights.length ? [{ level: SOL.SOCKET, type: SCM.RIGHTS, data: Buffer.from(new Int32Array(rights).buffer) }] : []),
  ];
  const flags = MSG.DONTWAIT | MSG.NOSIGNAL;
  try {
    return sendmsg(fd, data, flags, { name: to, control: control(m.pid || reader) });
  } catch (err) {
    if ((err as SysError).code !== 'ESRCH') throw err;
    return sendmsg(fd, data, flags, { name: to, control: control(reader) });
  }
}

/**
 * The queue of a datagram or seqpacket socket paired with one the tree
 * holds, taken out and written back at once through that peer, in order,
 * with each writer's credentials and the same descriptors in flight: the
 * task runs on with the messages it had, whatever happens to the dump
 * after (those it had peeked at are no longer marked so).
 */
function putBack(st: DumpState, files: DumpFiles, task: DumpTask, fd: number, peer: { pid: number; fd: number }, s: UnixSocketFile, where: string, refuse: (what: string) => Error): UnixMessage[] {
  const sender = tracerDup(peer.pid, peer.fd);
  const taken: Taken[] = [];
  try {
    // No message is longer than its writer's send buffer.
    taken.push(...readQueue(st, files, fd, { ...s, opts: { ...s.opts, sndbuf: Math.max(s.opts.sndbuf, getsockopt(sender, SOL.SOCKET, SO.SNDBUF)) } }, true, refuse));
  } finally {
    try {
      for (const [i, { m, rights }] of taken.entries()) {
        try {
          sendAs(sender, m.data, m, rights, task.pid);
        } catch (err) {
          throw new CrError(`${where}: putting its queue back: message ${i + 1} of ${taken.length}: ${(err as SysError).code ?? err}`);
        }
      }
    } finally {
      close(sender);
    }
  }
  return taken.map((t) => t.m);
}

function dumpSocket(task: DumpTask, f: FdProbe, files: DumpFiles, dup: number): UnixSocketFile {
  const st = dumpState(task);
  const where = f.pid === task.pid ? `pid ${f.pid} fd ${f.fd}` : `pid ${task.pid}: a socket in flight`;
  const ino = Number(f.stat.ino);
  const d = diagOf(st, ino);
  if (!d) throw new CrError(`${where}: sock_diag does not know unix socket:[${ino}]`);
  const kind = `unix ${TYPE_NAMES[d.type] ?? `type ${d.type}`} socket`;
  const refuse = (what: string) => new CrError(`${where}: ${kind} ${what} is not supported`);
  if (!TYPE_NAMES[d.type]) throw refuse('');
  const opts = saveOptions(dup, where);
  const s: UnixSocketFile = {
    ino: BigInt(ino), type: d.type, role: 'unconnected', addr: addressOf(st, task, d, refuse), peer_ino: 0n, peer_addr: noAddress(),
    accepted: false, backlog: 0, pending: [], shutdown: d.shutdown, queue: [], opts,
  };
  const name = shown(s.addr.name);
  if (d.state === TCP_LISTEN) {
    s.role = 'listening';
    s.backlog = d.wqueue;
    for (const c of d.icons) {
      if (!c || !st.held.has(c)) throw refuse(`listening on ${name} with a connection from outside the image not yet accepted`);
      if (diagOf(st, c)?.wqueue) throw refuse(`listening on ${name} with a connection not yet accepted that already sent data`);
    }
    s.pending = d.icons.map(BigInt);
    return s;
  }
  if (d.peer) {
    const p = diagOf(st, d.peer);
    if (!p) throw refuse('connected to a socket that vanished');
    const pname = shown(nameOf(p));
    s.peer_ino = BigInt(d.peer);
    s.peer_addr = addressOf(st, task, p, (what) => refuse(`connected to a socket ${what}`));
    if (!st.held.has(d.peer)) {
      if (d.type !== SOCK.DGRAM) throw refuse(p.name.length ? `connected to ${pname}, a socket outside the image` : 'connected to an unnamed socket outside the image');
      if (!p.name.length) throw refuse('connected to an unnamed socket outside the image');
      s.role = 'connected';
    } else if (d.type === SOCK.DGRAM) {
      // Datagram sockets connected to each other, one of them unnamed, are a
      // socketpair; the rest connect by name (after their queues are written back).
      s.role = p.peer === ino && (!d.name.length || !p.name.length) ? 'paired' : 'connected';
      if (s.role === 'connected' && !p.name.length) throw refuse('connected to an unnamed socket that is not its pair');
    } else {
      s.role = 'paired';
      s.accepted = accepted(st, d, p);
    }
  } else if (d.peer === 0) {
    // A peer without an inode: a connection waiting in an accept queue, or one whose peer was closed.
    const listener = [...st.diag.values()].find((l) => l.state === TCP_LISTEN && l.icons.includes(ino));
    if (listener) {
      if (!st.held.has(listener.ino)) throw refuse(`connected to ${shown(nameOf(listener))}, not yet accepted by a listener outside the image`);
      if (d.wqueue) throw refuse(`connected to ${shown(nameOf(listener))}, not yet accepted, with data sent`);
      s.role = 'pending';
      s.peer_ino = BigInt(listener.ino);
      s.peer_addr = addressOf(st, task, listener, refuse);
    } else if (d.type === SOCK.DGRAM || d.shutdown === SHUTDOWN_MASK) {
      s.role = 'orphaned';
    } else {
      throw refuse(`bound to ${name}, connected to a socket that is gone`);
    }
  }
  // Only reading a datagram or seqpacket queue shows every empty message, and only its writer can write one
  // back: the peer of a seqpacket connection, or of a datagram pair that nobody else can name.
  const peerOnly = s.type === SOCK.SEQPACKET || (s.type === SOCK.DGRAM && !s.addr.name.length);
  const peer = peerOnly && s.role === 'paired' && !(s.shutdown & RCV_SHUTDOWN) ? holderOf(task, Number(s.peer_ino)) : undefined;
  s.queue = peer ? putBack(st, files, task, dup, peer, s, where, refuse) : readQueue(st, files, dup, s, false, refuse).map((t) => t.m);
  return s;
}

// ---------------------------------------------------------------- restore

interface Place {
  pid: number;
  fd: number;
}

interface RestoreState {
  /** Where each socket is, by inode: open in that task (a leftover) until every task is built. */
  made: Map<bigint, Place>;
  /** The other end of an orphaned stream socket, until its queue is written. */
  phantoms: Map<bigint, Place>;
  /** Each socket's image, by inode, in the order they were opened. */
  images: Map<bigint, UnixSocketFile>;
  /** Sockets bound to a name so far, by the name in hex. */
  names: Map<string, bigint>;
  tasks: Map<number, RestoreTask>;
}

const restores = new WeakMap<RestoreShared, RestoreState>();

function restoreState(task: RestoreTask): RestoreState {
  let st = restores.get(task.shared);
  if (!st) {
    const state: RestoreState = { made: new Map(), phantoms: new Map(), images: new Map(), names: new Map(), tasks: new Map() };
    task.shared.built.push(() => finishAll(state));
    restores.set(task.shared, state);
    st = state;
  }
  st.tasks.set(task.pid, task);
  return st;
}

/** A system call injected into the task, its buffer arguments copied into the scratch area. */
function inject(task: RestoreTask, what: string, nr: number, ...args: (number | Buffer)[]): number {
  task.inj.reset();
  const values = args.map((a) => (Buffer.isBuffer(a) ? task.inj.put(a) : a));
  return Number(task.tracee.syscallOk(what, nr, ...values));
}

const newSocket = (task: RestoreTask, type: number) => liftFd(task, inject(task, `socket(AF_UNIX, ${TYPE_NAMES[type]})`, NR.socket, AF.UNIX, type | SOCK.CLOEXEC, 0));

/** A path sun_path holds; a socket file further away (bound by a relative name) is reached through its directory. */
const fits = (file: string) => Buffer.byteLength(file) <= SUN_PATH_BYTES;
const AT_FDCWD = -100;

/**
 * Call `fn` with the address by which cr reaches a name: an abstract name
 * or a path that fits sun_path as it is, a longer path through a
 * descriptor of its directory (/proc/self/fd/N/file).
 */
function fromCr<T>(a: Pick<UnixAddress, 'name' | 'path'>, fn: (addr: Buffer) => T): T {
  if (!isPath(a.name) || fits(a.path)) return fn(unixAddress(isPath(a.name) ? Buffer.from(a.path) : a.name));
  const dir = fs.openSync(path.dirname(a.path), O.PATH | O.DIRECTORY | O.CLOEXEC);
  try {
    return fn(unixAddress(Buffer.from(`/proc/self/fd/${dir}/${path.basename(a.path)}`)));
  } finally {
    fs.closeSync(dir);
  }
}

/**
 * Call `fn` with the address by which the task reaches a name: as fromCr,
 * but a longer path from within its directory, the task's working
 * directory changed for the call and then given back.
 */
function fromTask<T>(task: RestoreTask, a: UnixAddress, fn: (addr: Buffer) => T): T {
  if (!isPath(a.name) || fits(a.path)) return fn(unixAddress(isPath(a.name) ? Buffer.from(a.path) : a.name));
  const cwd = inject(task, 'open the working directory', NR.openat, AT_FDCWD, Buffer.from('.\0'), O.PATH | O.DIRECTORY | O.CLOEXEC);
  try {
    inject(task, `chdir ${path.dirname(a.path)}`, NR.chdir, Buffer.from(`${path.dirname(a.path)}\0`));
    try {
      return fn(unixAddress(Buffer.from(path.basename(a.path))));
    } finally {
      inject(task, 'fchdir back', NR.fchdir, cwd);
    }
  } finally {
    task.tracee.syscall(NR.close, cwd);
  }
}

/** Remove a socket file that no socket is bound to any more; anything else at the path is in the way. */
function clearStale(file: string, where: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new CrError(`${where}: cannot bind the socket to ${file}: another file is there`);
  const probe = socket(AF.UNIX, SOCK.DGRAM);
  try {
    fromCr({ name: Buffer.from(file), path: file }, (addr) => connect(probe, addr));
  } catch (err) {
    if ((err as SysError).code === 'ECONNREFUSED') {
      fs.unlinkSync(file);
      return;
    }
    if ((err as SysError).code !== 'EPROTOTYPE') throw err;
  } finally {
    close(probe);
  }
  throw new CrError(`${where}: cannot bind the socket to ${file}: a socket bound to it is alive`);
}

/** Bind a socket of the task to its name, with its socket file as it was (or unlinked, if it was). */
function bindName(task: RestoreTask, fd: number, a: UnixAddress, where: string): void {
  if (!isPath(a.name)) {
    inject(task, `bind ${shown(a.name)}`, NR.bind, fd, unixAddress(a.name), 2 + a.name.length);
    return;
  }
  const created: string[] = [];
  for (let dir = path.dirname(a.path); !fs.existsSync(dir); dir = path.dirname(dir)) created.unshift(dir);
  for (const dir of created) fs.mkdirSync(dir);
  clearStale(a.path, where);
  const name = a.name.toString();
  // A relative name is bound from the directory it was bound in (the task's cwd is set later).
  if (!path.isAbsolute(name)) inject(task, 'chdir', NR.chdir, Buffer.from(`${a.path.slice(0, a.path.length - name.length)}\0`));
  const addr = unixAddress(a.name);
  inject(task, `bind ${a.path}`, NR.bind, fd, addr, addr.length);
  if (a.file_present) {
    fs.lchownSync(a.path, a.uid, a.gid);
    fs.chmodSync(a.path, a.mode);
  } else {
    fs.unlinkSync(a.path);
    for (const dir of created.reverse()) fs.rmdirSync(dir);
  }
}

/** Take a socket made in some task into this one (the same open file), lifted. */
function takeHere(task: RestoreTask, at: Place): number {
  return at.pid === task.pid ? dupHigh(task, at.fd) : liftFd(task, takeFromTask(task, at.pid, at.fd));
}

/**
 * A connected pair with a name, made the way it was: the client connects
 * to a listener on the accepted end's name — the image's own listener if it
 * is already there, else one made for the occasion — and the listener
 * accepts. Returns [client, accepted].
 */
function connectThroughName(task: RestoreTask, st: RestoreState, type: number, client: UnixAddress, server: UnixAddress, where: string): [number, number] {
  const cfd = newSocket(task, type);
  if (client.name.length) bindName(task, cfd, client, where);
  const real = server.listener ? st.made.get(server.listener) : undefined;
  let lfd: number;
  if (real) {
    lfd = takeHere(task, real);
  } else {
    lfd = newSocket(task, type);
    bindName(task, lfd, { ...server, file_present: true }, where);
    inject(task, 'listen', NR.listen, lfd, 1);
  }
  fromTask(task, server, (addr) => inject(task, `connect ${shown(server.name)}`, NR.connect, cfd, addr, addr.length));
  const sfd = liftFd(task, inject(task, 'accept4', NR.accept4, lfd, 0, 0, SOCK.CLOEXEC));
  task.tracee.syscall(NR.close, lfd);
  // A listener made for the occasion leaves the socket file as the image had it.
  if (!real && isPath(server.name)) {
    if (server.file_present) {
      fs.lchownSync(server.path, server.uid, server.gid);
      fs.chmodSync(server.path, server.mode);
    } else {
      fs.unlinkSync(server.path);
    }
  }
  return [cfd, sfd];
}

/** Make a socket (and, for a pair, its peer) in this task, each a leftover until every task is built. */
function create(task: RestoreTask, st: RestoreState, s: UnixSocketFile, where: string): void {
  const keep = (ino: bigint, fd: number, into = st.made) => {
    rememberLeftovers(task, [fd]);
    into.set(ino, { pid: task.pid, fd });
  };
  const bound = (ino: bigint, fd: number, a: UnixAddress) => {
    if (!a.name.length) return;
    bindName(task, fd, a, where);
    st.names.set(a.name.toString('hex'), ino);
  };
  const pair = (): [number, number] => {
    task.inj.reset();
    const sv = task.inj.alloc(8);
    task.tracee.syscallOk(`socketpair(AF_UNIX, ${TYPE_NAMES[s.type]})`, NR.socketpair, AF.UNIX, s.type | SOCK.CLOEXEC, 0, sv);
    const b = task.tracee.readMem(sv, 8);
    return [liftFd(task, b.readInt32LE(0)), liftFd(task, b.readInt32LE(4))];
  };
  const named = s.addr.name.length > 0 || s.peer_addr.name.length > 0;
  if (s.role === 'paired' && (s.type === SOCK.DGRAM || !named)) {
    const [mine, peer] = pair();
    bound(s.ino, mine, s.addr);
    bound(s.peer_ino, peer, s.peer_addr);
    keep(s.ino, mine);
    keep(s.peer_ino, peer);
  } else if (s.role === 'paired') {
    const [client, server] = s.accepted ? [s.peer_addr, s.addr] : [s.addr, s.peer_addr];
    const [cfd, sfd] = connectThroughName(task, st, s.type, client, server, where);
    if (client.name.length) st.names.set(client.name.toString('hex'), s.accepted ? s.peer_ino : s.ino);
    keep(s.accepted ? s.peer_ino : s.ino, cfd);
    keep(s.accepted ? s.ino : s.peer_ino, sfd);
  } else if (s.role === 'orphaned' && (s.type !== SOCK.DGRAM || !s.addr.name.length)) {
    // Made with a peer that is closed once the queue is written through it.
    const [phantom, mine] = s.addr.name.length ? connectThroughName(task, st, s.type, noAddress(), s.addr, where) : pair().reverse();
    keep(s.ino, mine);
    keep(s.ino, phantom, st.phantoms);
  } else {
    const fd = newSocket(task, s.type);
    bound(s.ino, fd, s.addr);
    if (s.role === 'listening') inject(task, 'listen', NR.listen, fd, s.backlog);
    keep(s.ino, fd);
  }
}

/** Close a leftover of another task's (or this one's) now, and forget it. */
function closeLeftover(st: RestoreState, shared: RestoreShared, at: Place): void {
  st.tasks.get(at.pid)!.tracee.syscall(NR.close, at.fd);
  const list = shared.leftovers.get(at.pid)!;
  list.splice(list.indexOf(at.fd), 1);
}

/**
 * The socket a message is written back from, as a duplicate in cr: the
 * peer, or for a datagram the socket bound to its sender's name (one made
 * for the occasion when the image's own is not there yet), or any unnamed
 * one; with the address `to` of the socket, where a datagram needs it.
 */
function senderFor(st: RestoreState, s: UnixSocketFile, m: UnixMessage, to: Buffer, where: string): { fd: number; to?: Buffer; after?: () => void } {
  const peer = st.phantoms.get(s.ino) ?? (s.role === 'paired' ? st.made.get(s.peer_ino) : undefined);
  if (peer && (s.type !== SOCK.DGRAM || !m.from.length || m.from.equals(s.peer_addr.name))) return { fd: tracerDup(peer.pid, peer.fd) };
  const known = m.from.length ? st.names.get(m.from.toString('hex')) : undefined;
  if (known !== undefined) {
    const at = st.made.get(known)!;
    return { fd: tracerDup(at.pid, at.fd), to };
  }
  const fd = socket(AF.UNIX, SOCK.DGRAM);
  if (!m.from.length) return { fd, to };
  const file = isPath(m.from) ? m.from.toString() : '';
  try {
    if (file) clearStale(file, where);
    bind(fd, unixAddress(m.from));
  } catch (err) {
    close(fd);
    if (err instanceof CrError) throw err;
    throw new CrError(`${where}: cannot write back a datagram from ${shown(m.from)}: ${(err as SysError).code}`);
  }
  return { fd, to, after: () => file && fs.rmSync(file, { force: true }) };
}

/** Write the socket's queue back, message by message, from cr; then let its phantom peer go. */
function refill(task: RestoreTask, st: RestoreState, s: UnixSocketFile, files: RestoreFiles, where: string): void {
  const total = s.queue.reduce((n, m) => n + m.data.length + 1024, 0);
  const all = (to: Buffer) => s.queue.forEach((m) => refillOne(task, st, s, m, to, total, files, where));
  // Only a datagram is sent to the socket's name (whose directory may be gone).
  if (s.type === SOCK.DGRAM) fromCr(s.addr, all);
  else all(unixAddress(Buffer.alloc(0)));
  const phantom = st.phantoms.get(s.ino);
  if (phantom) {
    closeLeftover(st, task.shared, phantom);
    st.phantoms.delete(s.ino);
  }
}

/** Write one message of the socket's queue back from cr: `total` is what the whole queue takes, `to` the socket's address. */
function refillOne(task: RestoreTask, st: RestoreState, s: UnixSocketFile, m: UnixMessage, to: Buffer, total: number, files: RestoreFiles, where: string): void {
  const sender = senderFor(st, s, m, to, where);
  const rights = m.fds.map((id) => tracerDup(task.pid, files.open(id)));
  try {
    // The sender's own sizes are set once every socket is built; until then it must hold the whole queue.
    setsockopt(sender.fd, SOL.SOCKET, SO.SNDBUFFORCE, total);
    for (let done = 0, first = true; first || done < m.data.length; first = false) {
      const chunk = m.data.subarray(done);
      done += first ? sendAs(sender.fd, chunk, m, rights, task.pid, sender.to) : sendmsg(sender.fd, chunk, MSG.DONTWAIT | MSG.NOSIGNAL, { name: sender.to });
    }
  } catch (err) {
    if ((err as SysError).code === 'EAGAIN') throw new CrError(`${where}: the socket's queue does not take its ${s.queue.length} saved messages back`);
    throw err;
  } finally {
    rights.forEach(close);
    close(sender.fd);
    sender.after?.();
  }
}

/** Once every task is built: queued connections, datagram connections, then options and shutdowns. */
function finishAll(st: RestoreState): void {
  const at = (ino: bigint) => st.made.get(ino)!;
  for (const s of st.images.values()) {
    const where = `unix socket:[${s.ino}]`;
    if (s.role === 'listening') {
      for (const c of s.pending) {
        const client = at(c);
        const task = st.tasks.get(client.pid)!;
        // The client connects itself, with its own credentials, never blocking.
        withDup(client.pid, client.fd, (dup) => {
          const flags = fcntl(dup, F_GETFL);
          fcntl(dup, F_SETFL, flags | O.NONBLOCK);
          try {
            fromTask(task, s.addr, (addr) => inject(task, `${where}: connect ${shown(s.addr.name)}`, NR.connect, client.fd, addr, addr.length));
          } finally {
            fcntl(dup, F_SETFL, flags);
          }
        });
      }
    }
    if (s.role === 'connected') {
      withDup(at(s.ino).pid, at(s.ino).fd, (dup) => {
        try {
          fromCr(s.peer_addr, (addr) => connect(dup, addr));
        } catch (err) {
          throw new CrError(`${where}: cannot connect to ${shown(s.peer_addr.name)} again: ${(err as SysError).code}`);
        }
      });
    }
    if (s.role === 'orphaned' && !st.phantoms.has(s.ino) && s.type === SOCK.DGRAM && s.addr.name.length) {
      // Connected to a socket that is closed right away, as its peer was.
      const phantom = socket(AF.UNIX, SOCK.DGRAM);
      try {
        bind(phantom, unixAddress(Buffer.alloc(0))); // autobind
        withDup(at(s.ino).pid, at(s.ino).fd, (dup) => connect(dup, sockName(phantom)));
      } finally {
        close(phantom);
      }
    }
  }
  for (const s of st.images.values()) {
    withDup(at(s.ino).pid, at(s.ino).fd, (dup) => {
      applyOptions(dup, s.opts);
      if (s.shutdown) shutdown(dup, s.shutdown === SHUTDOWN_MASK ? 2 : s.shutdown === RCV_SHUTDOWN ? 0 : 1);
    });
  }
}

export const unixSockets: FdType = {
  type: 'unix',

  claims(f) {
    return socketKind(f)?.family === AF.UNIX;
  },

  dump(task, f, files) {
    const dup = tracerDup(f.pid, f.fd);
    try {
      return encodeMessage('UnixSocketFile', dumpSocket(task, f, files, dup));
    } finally {
      close(dup);
    }
  },

  check(file, where) {
    const s = payloadOf(file, where);
    if (!s.addr || !s.peer_addr || !s.opts) throw new CrError(`${where}: corrupted image (unix socket without its addresses or options)`);
    if (!TYPE_NAMES[s.type]) throw new CrError(`${where}: unix socket of unknown type ${s.type}`);
    if (!ROLES.includes(s.role)) throw new CrError(`${where}: unix socket of unknown role '${s.role}'`);
    for (const a of [s.addr, s.peer_addr]) {
      if (isPath(a.name) && !path.isAbsolute(a.path)) throw new CrError(`${where}: corrupted image (socket file ${a.path} is not an absolute path)`);
      // Permission bits only (Node aborts on a mode past 2^31).
      if (a.mode > 0o7777) throw new CrError(`${where}: corrupted image (socket file mode 0${a.mode.toString(8)})`);
    }
  },

  open(task, file, files) {
    const where = `pid ${task.pid} file ${file.id}`;
    const s = payloadOf(file, where);
    const st = restoreState(task);
    st.images.set(s.ino, s);
    if (!st.made.has(s.ino)) create(task, st, s, where);
    const fd = takeHere(task, st.made.get(s.ino)!);
    if (s.queue.length) files.later(() => refill(task, st, s, files, where));
    else if (st.phantoms.has(s.ino)) {
      closeLeftover(st, task.shared, st.phantoms.get(s.ino)!);
      st.phantoms.delete(s.ino);
    }
    return fd;
  },

  describe(file) {
    const s = payloadOf(file, `file ${file.id}`);
    const name = s.addr.name.length ? ` ${isPath(s.addr.name) ? '' : 'abstract '}${shown(s.addr.name)}${isPath(s.addr.name) && !s.addr.file_present ? ' (unlinked)' : ''}` : '';
    const how: Record<Role, string> = {
      unconnected: 'unconnected',
      listening: `listening (backlog ${s.backlog}, ${s.pending.length} not accepted yet)`,
      paired: `${s.accepted ? 'accepted, ' : ''}paired with socket:[${s.peer_ino}]`,
      pending: `connected to ${shown(s.peer_addr.name)}, not accepted yet`,
      orphaned: 'connected to a closed socket',
      connected: `connected to ${shown(s.peer_addr.name)}`,
    };
    const bytes = s.queue.reduce((n, m) => n + m.data.length, 0);
    const fds = s.queue.reduce((n, m) => n + m.fds.length, 0);
    const queued = s.type === SOCK.STREAM ? `${bytes} bytes queued` : `${s.queue.length} messages queued`;
    const shut = s.shutdown ? `, shut down ${['', 'for reading', 'for writing', 'both ways'][s.shutdown]}` : '';
    return `unix ${TYPE_NAMES[s.type]} socket:[${s.ino}]${name} ${how[s.role]}, ${queued}${fds ? ` (${fds} descriptors in flight)` : ''}${shut}; ${describeOptions(s.opts)}`;
  },
};
