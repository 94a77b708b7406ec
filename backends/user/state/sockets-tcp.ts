/**
 * TCP sockets, IPv4 and IPv6: unconnected (bound or not), listening, and
 * established connections, saved and rebuilt with the kernel's TCP repair
 * mode as CRIU's soccr does.
 *
 * A connection goes into repair mode at dump time (from a duplicate in
 * cr), before the tasks die, so closing it sends neither FIN nor RST; its
 * sequence numbers, both queues (the send queue from the first byte not
 * acknowledged), the options the handshake agreed on and the windows are
 * read there. A connection to a peer outside the tree is saved only with
 * --tcp-established: its packets are then dropped by a network lock
 * (userspace/net/netlock.ts) from before it is read until the restore, so
 * the peer never meets a closed port; without the flag it is refused. A
 * connection whose peer is in the tree (found through inet_diag) is held
 * by a lock of its own only while the dump reads it: both ends stop and
 * start together, but the kernel goes on sending for them meanwhile.
 *
 * Restore creates the socket in the task, and from cr: repair mode on,
 * options, bind (repair mode may reuse any port), the sequence numbers,
 * connect (which in repair mode only sets the peer), the options and
 * windows, the receive queue. Once every task is built, the lock goes,
 * repair mode ends (the kernel sends a window probe, and the peer answers
 * with where it is) and the saved send queue is sent again: the peer drops
 * the bytes it already had.
 */
import { CrError } from '../../../userspace/errors.js';
import type { InetDiag } from '../../../userspace/net/diag.js';
import { NetworkLock } from '../../../userspace/net/netlock.js';
import { sendRawTcp, TCP_FLAGS } from '../../../userspace/net/packet.js';
import {
  AF, bind, connect, getsockopt, getsockoptBytes, inetAddress, ioctlInt, IPPROTO, listen, MSG, peerName, recvmsg, sendmsg, setsockopt, shutdown, SHUT,
  SIOC, SOCK, sockName, SOL,
} from '../../../userspace/net/socket.js';
import { close, type SysError } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { tracerDup, type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';
import type { DumpShared, DumpTask, RestoreShared } from './module.js';
import {
  addressFrom, applyLevelOptions, asEndpoint, checkFamily, inetFamily, inetDiagOf, inetDiags, inetSocketIn, nameOptions, optionValue, saveLevelOptions, shownAddress, unmapped,
  type InetAddress, type LevelOption,
} from './sockets-inet.js';
import { applyOptions, describeOptions, imageSockets, saveOptions, SO, withDup, type SocketOptions } from './sockets.js';

interface TcpSocketFile {
  family: number;
  state: 'unconnected' | 'listening' | 'established';
  local: InetAddress;
  peer: InetAddress;
  backlog: number;
  shutdown: number;
  opts: SocketOptions;
  options: LevelOption[];
  congestion: string;
  write_seq: number;
  send_queue: Buffer;
  unsent: number;
  rcv_nxt: number;
  recv_queue: Buffer;
  mss_clamp: number;
  sack: boolean;
  wscale: boolean;
  snd_wscale: number;
  rcv_wscale: number;
  timestamps: boolean;
  timestamp: number;
  snd_wl1: number;
  snd_wnd: number;
  max_window: number;
  rcv_wnd: number;
  rcv_wup: number;
  peer_in_image: boolean;
  lock: string;
  fin_sent: boolean;
  fin_received: boolean;
  tcp_state: string;
}

const TCP = {
  NODELAY: 1, MAXSEG: 2, CORK: 3, KEEPIDLE: 4, KEEPINTVL: 5, KEEPCNT: 6, SYNCNT: 7, LINGER2: 8, DEFER_ACCEPT: 9, WINDOW_CLAMP: 10,
  INFO: 11, CONGESTION: 13, THIN_LINEAR_TIMEOUTS: 16, USER_TIMEOUT: 18, REPAIR: 19, REPAIR_QUEUE: 20, QUEUE_SEQ: 21, REPAIR_OPTIONS: 22,
  FASTOPEN: 23, TIMESTAMP: 24, NOTSENT_LOWAT: 25, REPAIR_WINDOW: 29, ULP: 31,
} as const;
/** The TCP options saved with every socket; the others only apply before a connection exists. */
const CONNECTED_OPTIONS = { NODELAY: 1, CORK: 3, KEEPIDLE: 4, KEEPINTVL: 5, KEEPCNT: 6, SYNCNT: 7, LINGER2: 8, THIN_LINEAR_TIMEOUTS: 16, USER_TIMEOUT: 18, NOTSENT_LOWAT: 25 };
const UNCONNECTED_OPTIONS = { ...CONNECTED_OPTIONS, MAXSEG: 2, DEFER_ACCEPT: 9, WINDOW_CLAMP: 10, FASTOPEN: 23 };
nameOptions(SOL.TCP, UNCONNECTED_OPTIONS, 'TCP_');

const REPAIR = { OFF: 0, ON: 1 };
const QUEUE = { NONE: 0, RECV: 1, SEND: 2 };
const TCPOPT = { MSS: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 };
const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4 };
const STATE = { ESTABLISHED: 1, SYN_SENT: 2, FIN_WAIT1: 4, FIN_WAIT2: 5, CLOSE: 7, CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11 };
/** States where this end's FIN is in the sequence space, and where the peer's is. */
const FIN_SENT = new Set([STATE.FIN_WAIT1, STATE.FIN_WAIT2, STATE.CLOSING, STATE.LAST_ACK]);
const FIN_RECEIVED = new Set([STATE.CLOSE_WAIT, STATE.CLOSING, STATE.LAST_ACK]);
const FIN_WAIT_MS = 2000;
const STATE_NAMES = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING'];
const RCV_SHUTDOWN = 1;
const SEND_SHUTDOWN = 2;
const MAX_TCP_WINDOW = 32767;

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<TcpSocketFile>('TcpSocketFile', file.payload, where);
const u32 = (v: number) => v >>> 0;

// ---------------------------------------------------------------- dump

interface Repaired {
  fd: number;
  reuseaddr: boolean;
}

interface DumpState {
  /** TCP sockets of the namespace by their four-tuple, to find a connection's peer. */
  byTuple: Map<string, InetDiag>;
  lock?: NetworkLock;
  /**
   * The connections between two tasks of the tree, held still while the dump
   * reads them: repair mode stops neither end from sending (data, its
   * retransmissions, ACKs), so one end read before the other could take
   * bytes or acknowledgements the first one's image never saw.
   */
  still?: NetworkLock;
  /** Inodes of the connections in `still` (either end's holds both ways). */
  stillHeld: Set<number>;
  /** Duplicates in cr of the connections put in repair mode. */
  repaired: Repaired[];
}

const dumps = new WeakMap<DumpShared, DumpState>();

const tupleKey = (family: number, src: Buffer, sport: number, dst: Buffer, dport: number) => {
  const a = unmapped(family, { addr: src, port: 0, flowinfo: 0, scope: 0 });
  const b = unmapped(family, { addr: dst, port: 0, flowinfo: 0, scope: 0 });
  return `${a.addr.toString('hex')}:${sport}-${b.addr.toString('hex')}:${dport}`;
};

function dumpState(task: DumpTask): DumpState {
  let st = dumps.get(task.shared);
  if (!st) {
    const tcp = [...inetDiags(task).values()].filter((d) => d.protocol === IPPROTO.TCP);
    const state: DumpState = { byTuple: new Map(tcp.map((d) => [tupleKey(d.family, d.src, d.sport, d.dst, d.dport), d])), stillHeld: new Set(), repaired: [] };
    // Killed, the connections die in repair mode, silently; let go, they leave it and carry on.
    task.shared.done.push((killed) => {
      // Let go first, so that the window probes of leaving repair mode get through.
      if (!killed) state.still?.release();
      for (const r of state.repaired) {
        if (!killed) {
          setsockopt(r.fd, SOL.TCP, TCP.REPAIR, REPAIR.OFF);
          setsockopt(r.fd, SOL.SOCKET, SO.REUSEADDR, r.reuseaddr ? 1 : 0);
        }
        close(r.fd);
      }
      if (!killed) state.lock?.release();
      if (killed) state.still?.release();
    });
    dumps.set(task.shared, state);
    st = state;
  }
  return st;
}

/** The connection's queue `queue` (TCP_REPAIR_QUEUE), left in place: its sequence number and its `len` bytes. */
function readQueue(fd: number, queue: number, len: number, what: string): { seq: number; data: Buffer } {
  setsockopt(fd, SOL.TCP, TCP.REPAIR_QUEUE, queue);
  const seq = u32(getsockopt(fd, SOL.TCP, TCP.QUEUE_SEQ));
  let data = Buffer.alloc(0);
  if (len) {
    // One byte more than announced, to be sure there is no more.
    const buf = Buffer.alloc(len + 1);
    const got = recvmsg(fd, buf, MSG.PEEK | MSG.DONTWAIT);
    if (got.len !== len) throw new CrError(`${what}: its ${queue === QUEUE.SEND ? 'send' : 'receive'} queue holds ${got.len} bytes, not ${len}`);
    data = Buffer.from(buf.subarray(0, len));
  }
  return { seq, data };
}

/** Whether urgent data (MSG_OOB) waits to be read: it has no place in the image. */
function urgentPending(fd: number): boolean {
  try {
    recvmsg(fd, Buffer.alloc(1), MSG.OOB | MSG.PEEK | MSG.DONTWAIT);
    return true;
  } catch (err) {
    return (err as SysError).code !== 'EINVAL';
  }
}

function dumpTcp(task: DumpTask, f: FdProbe, family: number, dup: number): TcpSocketFile {
  const where = f.pid === task.pid ? `pid ${f.pid} fd ${f.fd}` : `pid ${task.pid}: a socket in flight`;
  const info = getsockoptBytes(dup, SOL.TCP, TCP.INFO, 104);
  const state = info[0];
  const local = addressFrom(family, sockName(dup));
  const kind = family === AF.INET6 ? 'tcp6 socket' : 'tcp socket';
  const refuse = (what: string) => new CrError(`${where}: ${kind} ${what} is not supported`);
  const ulp = getsockoptBytes(dup, SOL.TCP, TCP.ULP, 16).toString().replace(/\0.*$/s, '');
  if (ulp) throw refuse(`with the ${ulp} upper layer protocol`);
  const st = dumpState(task);
  const s: TcpSocketFile = {
    family, state: 'unconnected', local, peer: addressFrom(family, null), backlog: 0, shutdown: inetDiagOf(task, Number(f.stat.ino))?.shutdown ?? 0,
    opts: saveOptions(dup, where), options: [], congestion: getsockoptBytes(dup, SOL.TCP, TCP.CONGESTION, 16).toString().replace(/\0.*$/s, ''),
    write_seq: 0, send_queue: Buffer.alloc(0), unsent: 0, rcv_nxt: 0, recv_queue: Buffer.alloc(0), mss_clamp: 0, sack: false, wscale: false,
    snd_wscale: 0, rcv_wscale: 0, timestamps: false, timestamp: 0, snd_wl1: 0, snd_wnd: 0, max_window: 0, rcv_wnd: 0, rcv_wup: 0,
    peer_in_image: false, lock: '', fin_sent: false, fin_received: false, tcp_state: STATE_NAMES[state] ?? String(state),
  };
  const tcpOptions = (names: Record<string, number>) => Object.values(names).map((n): [number, number] => [SOL.TCP, n]);
  const at = shownAddress(family, local);
  if (state === STATE.CLOSE) {
    // A socket whose connection ended keeps only its shutdown: it reads end of file, writes fail.
    if (ioctlInt(dup, SIOC.INQ)) throw refuse(`whose connection ended with bytes not read yet`);
    s.options = saveLevelOptions(dup, family, tcpOptions(UNCONNECTED_OPTIONS));
    if (s.shutdown) s.local = addressFrom(family, null);
    return s;
  }
  if (state === STATE.LISTEN) {
    // tcp_info of a listener: tcpi_unacked is its accept queue, tcpi_sacked its backlog.
    const queued = info.readUInt32LE(24);
    if (queued) throw refuse(`listening on ${at} with ${queued} connection${queued > 1 ? 's' : ''} not accepted yet`);
    s.state = 'listening';
    s.backlog = info.readUInt32LE(28);
    s.options = saveLevelOptions(dup, family, tcpOptions(UNCONNECTED_OPTIONS));
    return s;
  }
  if (state !== STATE.ESTABLISHED && !FIN_SENT.has(state) && !FIN_RECEIVED.has(state)) throw refuse(`in state ${STATE_NAMES[state] ?? state} (${at})`);
  s.fin_sent = FIN_SENT.has(state);
  s.fin_received = FIN_RECEIVED.has(state);

  s.state = 'established';
  s.peer = addressFrom(family, peerName(dup));
  const ends = `${at} -> ${shownAddress(family, s.peer)}`;
  const conn = `connected ${ends}`;
  const peer = st.byTuple.get(tupleKey(family, s.peer.addr, s.peer.port, local.addr, local.port));
  s.peer_in_image = peer !== undefined && imageSockets(task).has(peer.ino);
  if (!s.peer_in_image && !task.shared.tcpEstablished) {
    throw new CrError(`${where}: ${kind.replace('socket', 'connection')} ${ends} to a peer outside the tree is not saved without --tcp-established`);
  }
  if (urgentPending(dup)) throw refuse(`${conn} with urgent data not read yet`);
  s.options = saveLevelOptions(dup, family, tcpOptions(CONNECTED_OPTIONS));
  // Hold the connection's packets back before anything is read, so that nothing changes under us:
  // until the restore for a peer outside the tree, until the end of the dump for one in it.
  const l = unmapped(family, local);
  const p = unmapped(family, s.peer);
  const tuple = { family: l.family, src: l.addr, sport: local.port, dst: p.addr, dport: s.peer.port };
  if (!s.peer_in_image) {
    st.lock ??= NetworkLock.take();
    st.lock.add(tuple);
    s.lock = st.lock.table;
  } else if (!peer || !st.stillHeld.has(peer.ino)) {
    // Named apart from the locks an image keeps: it never outlives the dump.
    st.still ??= NetworkLock.take(`crlab_hold_${process.pid}_${Date.now().toString(36)}`);
    st.still.add(tuple);
    st.stillHeld.add(Number(f.stat.ino));
  }
  const rfd = tracerDup(f.pid, f.fd);
  try {
    setsockopt(rfd, SOL.TCP, TCP.REPAIR, REPAIR.ON);
  } catch (err) {
    close(rfd);
    throw new CrError(`${where}: cannot put the ${kind.replace('socket', 'connection')} ${ends} into repair mode (${(err as SysError).code}; TCP_REPAIR needs CAP_NET_ADMIN)`);
  }
  st.repaired.push({ fd: rfd, reuseaddr: s.opts.reuseaddr });

  const ti = getsockoptBytes(rfd, SOL.TCP, TCP.INFO, 104);
  let outq = ioctlInt(rfd, SIOC.OUTQ);
  s.unsent = ioctlInt(rfd, SIOC.OUTQNSD);
  // A FIN takes a sequence number and no byte: not sent yet, it is the last of what is not.
  if (s.fin_sent && outq) outq--;
  if (s.fin_sent && s.unsent) s.unsent--;
  const inq = ioctlInt(rfd, SIOC.INQ);
  s.sack = (ti[5] & TCPI_OPT.SACK) !== 0;
  s.wscale = (ti[5] & TCPI_OPT.WSCALE) !== 0;
  s.timestamps = (ti[5] & TCPI_OPT.TIMESTAMPS) !== 0;
  s.snd_wscale = ti[6] & 0xf;
  s.rcv_wscale = ti[6] >> 4;
  // In repair mode TCP_MAXSEG reads the MSS the handshake agreed on.
  s.mss_clamp = getsockopt(rfd, SOL.TCP, TCP.MAXSEG);
  if (s.timestamps) s.timestamp = u32(getsockopt(rfd, SOL.TCP, TCP.TIMESTAMP));
  const w = getsockoptBytes(rfd, SOL.TCP, TCP.REPAIR_WINDOW, 20);
  [s.snd_wl1, s.snd_wnd, s.max_window, s.rcv_wnd, s.rcv_wup] = [0, 4, 8, 12, 16].map((o) => w.readUInt32LE(o));
  const rcv = readQueue(rfd, QUEUE.RECV, inq, where);
  const snd = readQueue(rfd, QUEUE.SEND, outq, where);
  setsockopt(rfd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.NONE);
  s.rcv_nxt = s.fin_received ? u32(rcv.seq - 1) : rcv.seq;
  s.recv_queue = rcv.data;
  s.write_seq = s.fin_sent ? u32(snd.seq - 1) : snd.seq;
  s.send_queue = snd.data;
  if (s.fin_received) {
    // The window the peer's FIN left behind.
    s.rcv_wup = u32(s.rcv_wup - 1);
    s.rcv_wnd++;
  }
  return s;
}

// ---------------------------------------------------------------- restore

interface RestoreState {
  /** Duplicates in cr of the connections being rebuilt, still in repair mode. */
  repairing: { fd: number; s: TcpSocketFile }[];
  locks: Set<string>;
}

const restores = new WeakMap<RestoreShared, RestoreState>();

function restoreState(shared: RestoreShared): RestoreState {
  let st = restores.get(shared);
  if (!st) {
    const state: RestoreState = { repairing: [], locks: new Set() };
    shared.done.push((ok) => finish(state, ok));
    restores.set(shared, state);
    st = state;
  }
  return st;
}

/** Send all of `data` on a connection out of repair mode, growing its send buffer if it must. */
function sendAll(fd: number, data: Buffer): void {
  for (let done = 0, tries = 0; done < data.length; ) {
    try {
      done += sendmsg(fd, data.subarray(done), MSG.DONTWAIT | MSG.NOSIGNAL);
    } catch (err) {
      if ((err as SysError).code !== 'EAGAIN' || ++tries > 8) throw err;
      setsockopt(fd, SOL.SOCKET, SO.SNDBUFFORCE, getsockopt(fd, SOL.SOCKET, SO.SNDBUF) + data.length - done);
    }
  }
}

/**
 * Every task is built: give back the FINs the connections had received
 * (their peers in the tree are there now to take the acknowledgement),
 * release the network lock (so the window probe gets through), let the
 * connections out of repair mode and send their queues again. On a failed
 * restore, the connections die still in repair mode and the lock stays, so
 * that another restore can take them up.
 */
function finish(st: RestoreState, ok: boolean): void {
  try {
    for (const { fd, s } of ok ? st.repairing : []) if (s.fin_received) receiveFin(fd, s);
    if (ok) for (const name of st.locks) NetworkLock.release(name);
    for (const { fd, s } of ok ? st.repairing : []) {
      setsockopt(fd, SOL.TCP, TCP.REPAIR, REPAIR.OFF);
      setsockopt(fd, SOL.SOCKET, SO.REUSEADDR, s.opts.reuseaddr ? 1 : 0);
      sendAll(fd, s.send_queue);
      // The FIN goes after the data again: a peer that had it acknowledges it once more.
      if (s.fin_sent) shutdown(fd, SHUT.WR);
      if (s.shutdown & RCV_SHUTDOWN && !s.fin_received) shutdown(fd, SHUT.RD);
    }
  } finally {
    for (const { fd } of st.repairing) close(fd);
    st.repairing = [];
  }
}

/** TCP_REPAIR_OPTIONS: the options the handshake agreed on. */
function repairOptions(s: TcpSocketFile): Buffer {
  const opts: [number, number][] = [];
  if (s.sack) opts.push([TCPOPT.SACK_PERM, 0]);
  if (s.wscale) opts.push([TCPOPT.WINDOW, s.snd_wscale | (s.rcv_wscale << 16)]);
  if (s.timestamps) opts.push([TCPOPT.TIMESTAMP, 0]);
  opts.push([TCPOPT.MSS, s.mss_clamp]);
  const b = Buffer.alloc(opts.length * 8);
  opts.forEach(([code, val], i) => {
    b.writeUInt32LE(code, i * 8);
    b.writeUInt32LE(val, i * 8 + 4);
  });
  return b;
}

/** Write the receive queue in repair mode, in chunks the kernel can allocate (as soccr does). */
function refillReceiveQueue(fd: number, data: Buffer): void {
  setsockopt(fd, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.RECV);
  let chunk = data.length;
  for (let done = 0; done < data.length; ) {
    try {
      done += sendmsg(fd, data.subarray(done, done + chunk), 0);
    } catch (err) {
      if ((err as SysError).code !== 'ENOMEM' || chunk <= 1024) throw err;
      chunk >>= 1;
    }
  }
}

function rebuildConnection(dup: number, s: TcpSocketFile): void {
  setsockopt(dup, SOL.TCP, TCP.REPAIR, REPAIR.ON);
  applyLevelOptions(dup, s.options);
  applyOptions(dup, s.opts, ['reuseaddr']);
  if (s.congestion) setsockopt(dup, SOL.TCP, TCP.CONGESTION, Buffer.from(s.congestion));
  bind(dup, inetAddress(asEndpoint(s.family, s.local)));
  setsockopt(dup, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.RECV);
  setsockopt(dup, SOL.TCP, TCP.QUEUE_SEQ, u32(s.rcv_nxt - s.recv_queue.length) | 0);
  // The whole send queue is sent again after repair mode: it starts as not sent, at the first byte not acknowledged.
  setsockopt(dup, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.SEND);
  setsockopt(dup, SOL.TCP, TCP.QUEUE_SEQ, u32(s.write_seq - s.send_queue.length) | 0);
  // Connecting sizes the segments from the MSS clamp: give it the agreed one
  // then, as a user MSS (which an established connection does not use
  // again; at most MAX_TCP_WINDOW), or the segments stay at 536 bytes.
  setsockopt(dup, SOL.TCP, TCP.MAXSEG, Math.min(s.mss_clamp, MAX_TCP_WINDOW));
  connect(dup, inetAddress(asEndpoint(s.family, s.peer)));
  setsockopt(dup, SOL.TCP, TCP.REPAIR_OPTIONS, repairOptions(s));
  if (s.timestamps) setsockopt(dup, SOL.TCP, TCP.TIMESTAMP, s.timestamp | 0);
  if (s.recv_queue.length) refillReceiveQueue(dup, s.recv_queue);
  const w = Buffer.alloc(20);
  [s.snd_wl1, s.snd_wnd, s.max_window, s.rcv_wnd, s.rcv_wup].forEach((v, i) => w.writeUInt32LE(u32(v), i * 4));
  setsockopt(dup, SOL.TCP, TCP.REPAIR_WINDOW, w);
  setsockopt(dup, SOL.TCP, TCP.REPAIR_QUEUE, QUEUE.NONE);
}

/**
 * The peer's FIN, sent again from its address (a raw packet, let through
 * the network lock) right after the bytes received before it: the
 * connection takes it the way it did, into CLOSE_WAIT.
 */
function receiveFin(dup: number, s: TcpSocketFile): void {
  const from = unmapped(s.family, s.peer);
  const to = unmapped(s.family, s.local);
  sendRawTcp(from.family, from.addr, s.peer.port, to.addr, s.local.port, {
    seq: s.rcv_nxt, ack: s.write_seq - s.send_queue.length, flags: TCP_FLAGS.FIN | TCP_FLAGS.ACK, window: s.snd_wnd >>> (s.wscale ? s.snd_wscale : 0),
  });
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (const deadline = Date.now() + FIN_WAIT_MS; getsockoptBytes(dup, SOL.TCP, TCP.INFO, 8)[0] !== STATE.CLOSE_WAIT; ) {
    if (Date.now() > deadline) throw new CrError('the peer\'s FIN, sent again, did not arrive');
    Atomics.wait(tick, 0, 0, 2);
  }
}

/** Bind (and listen) with SO_REUSEADDR for the while, as the port's TIME_WAIT connections would refuse it otherwise. */
function bindUnconnected(dup: number, s: TcpSocketFile, where: string): void {
  applyLevelOptions(dup, s.options);
  applyOptions(dup, s.opts, ['reuseaddr']);
  if (s.congestion) setsockopt(dup, SOL.TCP, TCP.CONGESTION, Buffer.from(s.congestion));
  setsockopt(dup, SOL.SOCKET, SO.REUSEADDR, 1);
  try {
    if (s.local.port) bind(dup, inetAddress(asEndpoint(s.family, s.local)));
    if (s.state === 'listening') listen(dup, s.backlog);
  } catch (err) {
    throw new CrError(`${where}: cannot ${s.state === 'listening' ? 'listen' : 'bind'} on ${shownAddress(s.family, s.local)} again: ${(err as SysError).code}`);
  }
  setsockopt(dup, SOL.SOCKET, SO.REUSEADDR, s.opts.reuseaddr ? 1 : 0);
  if (s.shutdown) {
    try {
      shutdown(dup, s.shutdown === (RCV_SHUTDOWN | SEND_SHUTDOWN) ? SHUT.RDWR : s.shutdown === RCV_SHUTDOWN ? SHUT.RD : SHUT.WR);
    } catch (err) {
      // An unconnected socket takes the shutdown and says ENOTCONN.
      if ((err as SysError).code !== 'ENOTCONN') throw err;
    }
  }
}

export const tcpSockets: FdType = {
  type: 'tcp',

  claims(f) {
    return inetFamily(f, SOCK.STREAM, IPPROTO.TCP) !== null;
  },

  dump(task, f) {
    const family = inetFamily(f, SOCK.STREAM, IPPROTO.TCP)!;
    return withDup(f.pid, f.fd, (dup) => encodeMessage('TcpSocketFile', dumpTcp(task, f, family, dup)));
  },

  check(file, where) {
    const s = payloadOf(file, where);
    checkFamily(s.family, 'tcp', where, [s.local, s.peer]);
    if (!s.opts) throw new CrError(`${where}: corrupted image (tcp socket without its options)`);
    if (!['unconnected', 'listening', 'established'].includes(s.state)) throw new CrError(`${where}: tcp socket in unknown state '${s.state}'`);
    const len = s.family === AF.INET6 ? 16 : 4;
    if (s.local.addr.length !== len || s.peer.addr.length !== len) throw new CrError(`${where}: corrupted image (address of ${s.local.addr.length} bytes)`);
    if (s.unsent > s.send_queue.length) throw new CrError(`${where}: corrupted image (more bytes unsent than queued)`);
  },

  open(task, file) {
    const where = `pid ${task.pid} file ${file.id}`;
    const s = payloadOf(file, where);
    const fd = inetSocketIn(task, s.family, SOCK.STREAM, IPPROTO.TCP);
    if (s.state === 'established') {
      const st = restoreState(task.shared);
      const dup = tracerDup(task.pid, fd);
      st.repairing.push({ fd: dup, s });
      if (s.lock) st.locks.add(s.lock);
      try {
        rebuildConnection(dup, s);
      } catch (err) {
        throw new CrError(`${where}: cannot rebuild the connection ${shownAddress(s.family, s.local)} -> ${shownAddress(s.family, s.peer)}: ${(err as Error).message}`);
      }
    } else {
      withDup(task.pid, fd, (dup) => bindUnconnected(dup, s, where));
    }
    return fd;
  },

  describe(file) {
    const s = payloadOf(file, `file ${file.id}`);
    const kind = s.family === AF.INET6 ? 'tcp6' : 'tcp';
    const at = shownAddress(s.family, s.local);
    const tcp = ['NODELAY', 'CORK', 'KEEPIDLE', 'KEEPINTVL', 'KEEPCNT'] as const;
    const extra = tcp.map((k) => [k, optionValue(s.options, SOL.TCP, TCP[k])] as const).filter(([k, v]) => v !== undefined && (k.startsWith('KEEP') ? s.opts.keepalive : v))
      .map(([k, v]) => `${k.toLowerCase()}=${v}`);
    const opts = [describeOptions(s.opts), ...extra, s.congestion && `congestion=${s.congestion}`].filter(Boolean).join(' ');
    if (s.state === 'listening') return `${kind} socket listening on ${at} (backlog ${s.backlog}); ${opts}`;
    if (s.state === 'unconnected') return `${kind} socket ${s.local.port ? `bound to ${at}` : 'unbound'}${s.shutdown ? ', its connection ended' : ''}; ${opts}`;
    const peer = `${shownAddress(s.family, s.peer)}${s.peer_in_image ? ' (in the image)' : ` (outside the tree${s.lock ? `, held by network lock ${s.lock}` : ''})`}`;
    const half = s.fin_sent || s.fin_received ? ` ${s.tcp_state}` : '';
    return `${kind} connection ${at} -> ${peer}${half}: ${s.send_queue.length} bytes to send (${s.unsent} never sent), ${s.recv_queue.length} to read; ${opts}`;
  },
};
