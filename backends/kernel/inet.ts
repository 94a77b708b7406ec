/**
 * The kernel backend's part in TCP connections to peers outside the tree
 * (--tcp-established). The engine (kmod/inet.c) saves such a connection
 * only with CHECKPOINT_TCP_ESTABLISHED, and only cr can hold its packets
 * back: with the network lock the user backend uses too
 * (userspace/net/netlock.ts), taken before checkpoint(2) freezes the tree,
 * so that nothing reaches a connection after the engine has read it, and
 * released once restart(2) has rebuilt them all. The lock's name is kept
 * next to the image, in DIR/kernel.netlock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { listInetSockets } from '../../userspace/net/diag.js';
import { NetworkLock, type LockedConnection } from '../../userspace/net/netlock.js';
import { AF, IPPROTO } from '../../userspace/net/socket.js';
import { processTree, socketInodes } from '../../userspace/proc/parse.js';
import type { ImageSocket } from './image.js';

const NETLOCK_NAME = 'kernel.netlock';
const TCP_ESTABLISHED = 1;
const V4MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

export const netlockPath = (dir: string): string => path.join(dir, NETLOCK_NAME);

/** A connection's four-tuple as it travels: a v4-mapped IPv6 address as IPv4. */
function tupleKey(c: LockedConnection): string {
  const wire = (a: Buffer) => (a.length === 16 && a.subarray(0, 12).equals(V4MAPPED) ? a.subarray(12) : a);
  return `${wire(c.src).toString('hex')}:${c.sport}-${wire(c.dst).toString('hex')}:${c.dport}`;
}

const reversed = (c: LockedConnection): LockedConnection => ({ family: c.family, src: c.dst, sport: c.dport, dst: c.src, dport: c.sport });

/** The established TCP connections of the tree at `root` whose other end is not in it (sock_diag). */
function outsideConnections(root: number): LockedConnection[] {
  const inodes = new Set(processTree(root).flatMap(socketInodes));
  const tcp = [AF.INET, AF.INET6].flatMap((f) => listInetSockets(f, IPPROTO.TCP));
  const byTuple = new Map(tcp.map((d) => [tupleKey(d), d.ino]));
  return tcp
    .filter((d) => d.state === TCP_ESTABLISHED && inodes.has(d.ino) && !inodes.has(byTuple.get(tupleKey(reversed(d))) ?? 0))
    .map((d) => ({ family: d.family, src: d.src, sport: d.sport, dst: d.dst, dport: d.dport }));
}

/** The network lock of one dump: the tree's connections to the outside, held from before checkpoint(2). */
export class HeldConnections {
  private lock: NetworkLock | undefined;
  private readonly held = new Set<string>();

  /** Hold the packets of the tree's connections to peers outside it. */
  static take(root: number): HeldConnections {
    const h = new HeldConnections();
    for (const c of outsideConnections(root)) h.add(c);
    return h;
  }

  private add(c: LockedConnection): void {
    this.lock ??= NetworkLock.take();
    this.lock.add(c);
    this.held.add(tupleKey(c));
  }

  /**
   * The engine saved `sockets`: a connection to the outside that was made
   * after the lock was taken (as the dump began) is held from now on, and
   * said so. The lock's name goes next to the image.
   */
  keep(dir: string, sockets: ImageSocket[], log: (line: string) => void): void {
    for (const s of sockets.filter((x) => x.outside)) {
      const c = { family: s.family, src: s.local.addr, sport: s.local.port, dst: s.remote.addr, dport: s.remote.port };
      if (this.held.has(tupleKey(c))) continue;
      this.add(c);
      log(`warning: the ${s.name} was made as the dump began: its packets are held back only from now on`);
    }
    if (this.lock) fs.writeFileSync(netlockPath(dir), `${this.lock.table}\n`);
  }

  /** The dump failed, or left the tasks running: their connections go on. */
  release(): void {
    this.lock?.release();
  }
}

/** The network lock an image's connections are held by, if any. */
export function imageNetlock(dir: string): string | undefined {
  try {
    return fs.readFileSync(netlockPath(dir), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Every task of the image is rebuilt: let its connections' packets through again. */
export function releaseNetlock(dir: string, log: (line: string) => void): void {
  const name = imageNetlock(dir);
  if (!name) return;
  NetworkLock.release(name);
  log(`released network lock ${name}`);
}
