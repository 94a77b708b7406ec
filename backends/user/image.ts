/**
 * The user backend's image directory.
 *
 * Each kind of state is one protobuf message in its own file
 * (`KIND-PID.img`, schema in images/KIND.proto) behind a 16-byte header:
 * magic "CRLB", format version, payload length, CRC-32 of the payload.
 * Memory pages are raw in `pages-PID.img`, their runs listed in the mm image
 * (no checksum of their own: restore reads them straight into the task).
 * `inventory.img` is written last, so a directory without it is no image.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CrError } from '../../userspace/errors.js';
import { injectFault } from '../../userspace/fault.js';
import { decode, encode } from './codec.js';
import { MAGIC } from './identity.js';

export const FORMAT_VERSION = 1;
const HEADER_SIZE = 16;
const KINDS = ['inventory', 'cpu', 'mm', 'files', 'signals', 'process', 'namespaces', 'ipc'] as const;
export type ImageKind = (typeof KINDS)[number];

/** The message each kind of image file holds (a fuzzer walks them: test/user/fuzz). */
export const MESSAGE_OF: Record<ImageKind, string> = {
  inventory: 'Inventory', cpu: 'Cpu', mm: 'Mm', files: 'Files', signals: 'Signals', process: 'Process', namespaces: 'Namespaces', ipc: 'Ipc',
};

/** CRC-32 (IEEE, zlib's) lookup table. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/**
 * zlib's crc32, without node:zlib: loading it (and node:stream under it)
 * cost a short-lived cr more than checking every image of a dump.
 */
function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function imageFile(dir: string, kind: ImageKind | 'pages', pid?: number): string {
  return path.join(dir, pid === undefined ? `${kind}.img` : `${kind}-${pid}.img`);
}

export function encodeImage(kind: ImageKind, data: object): Buffer {
  const payload = encodeMessage(MESSAGE_OF[kind], data);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(FORMAT_VERSION, 4);
  header.writeUInt32LE(payload.length, 8);
  header.writeUInt32LE(crc32(payload), 12);
  return Buffer.concat([header, payload]);
}

/** Encode a message that travels inside another (a file type's payload). */
export function encodeMessage(name: string, data: object): Buffer {
  return encode(name, data);
}

/** Decode a nested message; `where` names it in the error of a corrupted image. */
export function decodeMessage<T>(name: string, bytes: Buffer, where: string): T {
  try {
    return decode<T>(name, bytes);
  } catch (err) {
    throw new CrError(`${where}: corrupted image (${(err as Error).message})`);
  }
}

export function decodeImage<T>(kind: ImageKind, file: string, bytes: Buffer): T {
  const name = path.basename(file);
  if (bytes.length < HEADER_SIZE) throw new CrError(`${name}: truncated image (${bytes.length} bytes)`);
  if (bytes.readUInt32LE(0) !== MAGIC) throw new CrError(`${name}: not a cr-lab user image (bad magic)`);
  const version = bytes.readUInt32LE(4);
  if (version !== FORMAT_VERSION) throw new CrError(`${name}: image format ${version} is not supported (this cr reads format ${FORMAT_VERSION})`);
  const len = bytes.readUInt32LE(8);
  if (bytes.length !== HEADER_SIZE + len) throw new CrError(`${name}: truncated image (${bytes.length - HEADER_SIZE} of ${len} payload bytes)`);
  const payload = bytes.subarray(HEADER_SIZE);
  if (crc32(payload) !== bytes.readUInt32LE(12)) throw new CrError(`${name}: corrupted image (checksum mismatch)`);
  return decodeMessage<T>(MESSAGE_OF[kind], payload, name);
}

/** Writes images into a directory and remembers them, so a failed dump can take them back. */
export class ImageWriter {
  readonly dir: string;
  private readonly written: string[] = [];
  constructor(dir: string) {
    this.dir = dir;
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new CrError(`cannot create image directory ${dir}: ${(err as NodeJS.ErrnoException).code}`);
    }
    // A leftover inventory would make a half-written new image look complete.
    fs.rmSync(imageFile(dir, 'inventory'), { force: true });
  }

  write(kind: ImageKind, pid: number | undefined, data: object): void {
    const file = imageFile(this.dir, kind, pid);
    this.written.push(file);
    fs.writeFileSync(file, encodeImage(kind, data));
    injectFault('dump-objects', this.written.length);
  }

  /** Open a raw data file (pages) for streaming writes. */
  openRaw(kind: 'pages', pid: number): number {
    const file = imageFile(this.dir, kind, pid);
    this.written.push(file);
    return fs.openSync(file, 'w');
  }

  /** A symlink in the image directory (DIR/parent: the pre-dump it builds on). */
  link(name: string, target: string): void {
    const file = path.join(this.dir, name);
    fs.rmSync(file, { force: true });
    fs.symlinkSync(target, file);
    this.written.push(file);
  }

  /** Remove everything this writer wrote. */
  discard(): void {
    for (const file of this.written) fs.rmSync(file, { force: true });
  }

  bytes(): number {
    return this.written.reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0);
  }
}

export function readImage<T>(dir: string, kind: ImageKind, pid?: number): T {
  const file = imageFile(dir, kind, pid);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new CrError(`${file}: cannot read image (${(err as NodeJS.ErrnoException).code})`);
  }
  return decodeImage<T>(kind, file, bytes);
}
