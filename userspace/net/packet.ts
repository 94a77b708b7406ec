/**
 * Packets cr writes itself, through a raw socket with the IP header
 * included: a datagram "from" a sender that is not there any more, so
 * that a restored socket finds it in its queue with the source it had.
 * Sent to a local address, the packet loops back through the stack like
 * any other.
 */
import { close } from '../sys/libc.js';
import { AF, inetAddress, IPPROTO, sendmsg, setsockopt, SOCK, socket, SOL } from './socket.js';

const IPV6_HDRINCL = 36;

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

const checksum = (...parts: Buffer[]) => (~sum16(...parts) & 0xffff) || 0xffff;

/** Send one UDP datagram from src:sport to dst:dport (addresses of the family, 4 or 16 bytes). */
export function sendRawUdp(family: number, src: Buffer, sport: number, dst: Buffer, dport: number, payload: Buffer): void {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  const v6 = family === AF.INET6;
  const pseudo = Buffer.alloc(v6 ? 40 : 12);
  if (v6) {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(udp.length, 32);
    pseudo[39] = IPPROTO.UDP;
  } else {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = IPPROTO.UDP;
    pseudo.writeUInt16BE(udp.length, 10);
  }
  udp.writeUInt16BE(checksum(pseudo, udp), 6);
  const ip = Buffer.alloc(v6 ? 40 : 20);
  if (v6) {
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(udp.length, 4);
    ip[6] = IPPROTO.UDP;
    ip[7] = 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  } else {
    // Total length, id and header checksum are the kernel's to fill in.
    ip[0] = 0x45;
    ip[8] = 64;
    ip[9] = IPPROTO.UDP;
    src.copy(ip, 12);
    dst.copy(ip, 16);
  }
  const raw = socket(family, SOCK.RAW, IPPROTO.RAW);
  try {
    if (v6) setsockopt(raw, SOL.IPV6, IPV6_HDRINCL, 1);
    sendmsg(raw, Buffer.concat([ip, udp]), 0, { name: inetAddress({ family, addr: dst, port: 0 }) });
  } finally {
    close(raw);
  }
}
