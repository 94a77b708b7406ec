/**
 * The network lock (CRIU's --network-lock nftables): while a tree is
 * dumped and until it is restored, the packets of its TCP connections are
 * dropped in both directions, so the peer's segments never reach a closed
 * socket (which would answer with a RST) and its retransmissions find the
 * restored one. One nftables table per lock, named in the image, with one
 * set of connections per address family; packets cr itself marks (raw
 * segments it sends to rebuild a connection) pass.
 */
import { execa, execaSync } from 'execa';
import { CrError } from '../errors.js';
import { AF } from './socket.js';

/** One direction of a TCP connection: addresses 4 or 16 bytes in network order. */
export interface LockedConnection {
  family: number;
  src: Buffer;
  sport: number;
  dst: Buffer;
  dport: number;
}

/** The SO_MARK of packets cr sends on purpose while the lock holds. */
export const LOCK_PASS_MARK = 0xc0ffee;

function nft(script: string, what: string): void {
  let r;
  try {
    r = execaSync('nft', ['-f', '-'], { input: script, reject: false });
  } catch (err) {
    throw new CrError(`cannot ${what}: nft is not available (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; install nftables)`);
  }
  if (r.exitCode !== 0) throw new CrError(`cannot ${what}: nft: ${String(r.stderr).trim().split('\n')[0]}`);
}

const addrText = (family: number, a: Buffer) =>
  family === AF.INET6 ? [...Array(8).keys()].map((i) => a.readUInt16BE(i * 2).toString(16)).join(':') : [...a].join('.');

/** A v4-mapped IPv6 address (::ffff:a.b.c.d) travels as IPv4. */
function asSeenOnTheWire(c: LockedConnection): LockedConnection {
  const mapped = c.family === AF.INET6 && c.src.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]));
  return mapped ? { ...c, family: AF.INET, src: c.src.subarray(12), dst: c.dst.subarray(12) } : c;
}

/** `nft --version`, or null when nft cannot run here. */
export async function nftVersion(): Promise<string | null> {
  try {
    const r = await execa('nft', ['--version'], { reject: false });
    return r.exitCode === 0 ? String(r.stdout).trim() : null;
  } catch {
    return null;
  }
}

export class NetworkLock {
  readonly table: string;

  private constructor(table: string) {
    this.table = table;
  }

  /** Create an empty lock (a table that drops nothing yet), named for this cr and this moment. */
  static take(name = `crlab_lock_${process.pid}_${Date.now().toString(36)}`): NetworkLock {
    const t = `inet ${name}`;
    const rules = ['input', 'output'].flatMap((chain) => [
      `add chain ${t} ${chain} { type filter hook ${chain} priority -300; policy accept; }`,
      `add rule ${t} ${chain} meta mark ${LOCK_PASS_MARK} accept`,
      `add rule ${t} ${chain} ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop`,
      `add rule ${t} ${chain} ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop`,
    ]);
    nft([
      `add table ${t}`,
      `add set ${t} conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }`,
      `add set ${t} conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }`,
      ...rules, '',
    ].join('\n'), 'lock the network');
    return new NetworkLock(name);
  }

  /** Drop the packets of a connection, both ways. */
  add(conn: LockedConnection): void {
    const c = asSeenOnTheWire(conn);
    const set = c.family === AF.INET6 ? 'conns6' : 'conns4';
    const way = (a: Buffer, ap: number, b: Buffer, bp: number) => `${addrText(c.family, a)} . ${ap} . ${addrText(c.family, b)} . ${bp}`;
    nft(`add element inet ${this.table} ${set} { ${way(c.src, c.sport, c.dst, c.dport)}, ${way(c.dst, c.dport, c.src, c.sport)} }\n`, 'lock the network');
  }

  release(): void {
    NetworkLock.release(this.table);
  }

  /** Let the packets of a lock go again; a lock already gone is fine. */
  static release(name: string): void {
    // "destroy" would not fail on a missing table, but nftables 1.0.6 does not know it.
    nft(`add table inet ${name}\ndelete table inet ${name}\n`, 'unlock the network');
  }
}
