/**
 * Packets cr writes itself, through a raw socket with the IP header
 * included: a datagram "from" a sender that is not there any more, so
 * that a restored socket finds it in its queue with the source it had; a
 * FIN "from" a TCP peer, to bring a restored connection to the half-closed
 * state it was in (as CRIU's soccr does). Sent to a local address, a
 * packet loops back through the stack like any other; the network lock
 * lets it through by its mark.
 */
import { close } from '../sys/libc.js';
import { LOCK_PASS_MARK } from './netlock.js';
import { AF, inetAddress, IPPROTO, sendmsg, setsockopt, SOCK, socket, SOL } from './socket.js';

const IPV6_HDRINCL = 36;
const SO_MARK = 36;

/** The ones' complement sum of 16-bit words (RFC 1071), folded. */
function sum16(...parts: Buffer[]): number {
  let sum = 0;
  for (const b of parts) {
    for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
    if (b.length & 1) sum += b[b.length - 1] << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Send a transport segment (its checksum field at `csumAt` left zero) from
 * `src` to `dst`, addresses of the family (4 or 16 bytes), in an IP packet.
 */
function sendSegment(family: number, protocol: number, src: Buffer, dst: Buffer, segment: Buffer, csumAt: number): void {
  const v6 = family === AF.INET6;
  const pseudo = Buffer.alloc(v6 ? 40 : 12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, v6 ? 16 : 4);
  if (v6) {
    pseudo.writeUInt32BE(segment.length, 32);
    pseudo[39] = protocol;
  } else {
    pseudo[9] = protocol;
    pseudo.writeUInt16BE(segment.length, 10);
  }
  segment.writeUInt16BE((~sum16(pseudo, segment) & 0xffff) || 0xffff, csumAt);
  const ip = Buffer.alloc(v6 ? 40 : 20);
  if (v6) {
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(segment.length, 4);
    ip[6] = protocol;
    ip[7] = 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  } else {
    // Total length, id and header checksum are the kernel's to fill in.
    ip[0] = 0x45;
    ip[8] = 64;
    ip[9] = protocol;
    src.copy(ip, 12);
    dst.copy(ip, 16);
  }
  const raw = socket(family, SOCK.RAW, IPPROTO.RAW);
  try {
    if (v6) setsockopt(raw, SOL.IPV6, IPV6_HDRINCL, 1);
    setsockopt(raw, SOL.SOCKET, SO_MARK, LOCK_PASS_MARK);
    sendmsg(raw, Buffer.concat([ip, segment]), 0, { name: inetAddress({ family, addr: dst, port: 0 }) });
  } finally {
    close(raw);
  }
}

/** One UDP datagram from src:sport to dst:dport. */
export function sendRawUdp(family: number, src: Buffer, sport: number, dst: Buffer, dport: number, payload: Buffer): void {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  sendSegment(family, IPPROTO.UDP, src, dst, udp, 6);
}

export const TCP_FLAGS = { FIN: 1, ACK: 0x10 } as const;

/** One TCP segment without data or options from src:sport to dst:dport. */
export function sendRawTcp(family: number, src: Buffer, sport: number, dst: Buffer, dport: number, seg: { seq: number; ack: number; flags: number; window: number }): void {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp.writeUInt32BE(seg.seq >>> 0, 4);
  tcp.writeUInt32BE(seg.ack >>> 0, 8);
  tcp[12] = 5 << 4; // data offset: 5 words, no options
  tcp[13] = seg.flags;
  tcp.writeUInt16BE(Math.min(seg.window, 0xffff), 14);
  sendSegment(family, IPPROTO.TCP, src, dst, tcp, 16);
}
