/**
 * Protobuf (proto3) encoding and decoding of the image messages, driven by
 * the schema as plain data (images/*.proto compiled to JSON at build time,
 * scripts/image-schema.mjs). No code is generated at run time: protobufjs
 * parses the .proto files and compiles five functions per message the
 * first time each is used, which costs seconds under emulation — all of it
 * inside the first dump's frozen window.
 *
 * Values are plain data: 64-bit integers as bigint (a number or a decimal
 * string is taken too), bytes as Buffer, enums by name (or number);
 * decoding gives every field, unset ones at their default (a message
 * field: null, a repeated one: []).
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../userspace/paths.js';

interface FieldJson {
  type: string;
  id: number;
  rule?: 'repeated';
}
interface TypeJson {
  fields?: Record<string, FieldJson>;
  values?: Record<string, number>;
}

type Scalar = 'double' | 'float' | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32' | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64' | 'bool' | 'string' | 'bytes';

interface Field {
  name: string;
  id: number;
  repeated: boolean;
  /** A scalar type, or the message or enum it names. */
  scalar?: Scalar;
  message?: Message;
  enumValues?: Map<string, number>;
  enumNames?: Map<number, string>;
}

export interface Message {
  name: string;
  fields: Field[];
  byId: Map<number, Field>;
}

const SCALARS = new Set<string>(['double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64', 'bool', 'string', 'bytes']);
const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;
const WIRE_OF: Record<Scalar, number> = {
  double: WIRE.I64, float: WIRE.I32, int32: WIRE.VARINT, uint32: WIRE.VARINT, sint32: WIRE.VARINT, fixed32: WIRE.I32, sfixed32: WIRE.I32,
  int64: WIRE.VARINT, uint64: WIRE.VARINT, sint64: WIRE.VARINT, fixed64: WIRE.I64, sfixed64: WIRE.I64, bool: WIRE.VARINT, string: WIRE.LEN, bytes: WIRE.LEN,
};
const LONG = new Set<Scalar>(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const PACKAGE = 'crlab.user.';

export const SCHEMA_JSON = path.join(packageRoot, 'dist', 'backends', 'user', 'images.json');

let messages: Map<string, Message> | undefined;

/** The messages of package crlab.user, linked to each other. */
function schema(): Map<string, Message> {
  if (messages) return messages;
  let json: { nested: { crlab: { nested: { user: { nested: Record<string, TypeJson> } } } } };
  try {
    json = JSON.parse(fs.readFileSync(SCHEMA_JSON, 'utf8'));
  } catch (err) {
    throw new Error(`the image schema ${SCHEMA_JSON} is missing or broken (npm run build makes it): ${(err as Error).message}`);
  }
  const all = json.nested.crlab.nested.user.nested;
  const out = new Map<string, Message>();
  for (const [name, t] of Object.entries(all)) if (t.fields) out.set(name, { name, fields: [], byId: new Map() });
  for (const [name, t] of Object.entries(all)) {
    if (!t.fields) continue;
    const msg = out.get(name)!;
    for (const [fname, f] of Object.entries(t.fields)) {
      const field: Field = { name: fname, id: f.id, repeated: f.rule === 'repeated' };
      const ref = f.type.startsWith(PACKAGE) ? f.type.slice(PACKAGE.length) : f.type;
      if (SCALARS.has(f.type)) field.scalar = f.type as Scalar;
      else if (out.has(ref)) field.message = out.get(ref);
      else if (all[ref]?.values) {
        field.enumValues = new Map(Object.entries(all[ref].values!));
        field.enumNames = new Map(Object.entries(all[ref].values!).map(([k, v]) => [v, k]));
      } else throw new Error(`image schema: ${name}.${fname} has unknown type ${f.type}`);
      msg.fields.push(field);
      msg.byId.set(field.id, field);
    }
    msg.fields.sort((a, b) => a.id - b.id);
  }
  messages = out;
  return out;
}

/** Read the schema now, not at the first encode: a dump does it before it stops any task. */
export function loadSchema(): void {
  schema();
}

export function messageOf(name: string): Message {
  const m = schema().get(name);
  if (!m) throw new Error(`no message ${name} in the image schema`);
  return m;
}

/** A growing output buffer. */
class Writer {
  buf = Buffer.allocUnsafe(256);
  len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  varint(v: number): void {
    this.room(10);
    if (v < 0) return this.bigVarint(BigInt.asUintN(64, BigInt(v)));
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  bigVarint(v: bigint): void {
    if (v <= MAX_SAFE) return this.varint(Number(v));
    // as two 32-bit halves: BigInt arithmetic per 7 bits costs more than the rest of a message
    let lo = Number(v & 0xffffffffn);
    let hi = Number(v >> 32n);
    this.room(10);
    while (hi > 0 || lo > 0x7f) {
      this.buf[this.len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.len++] = lo;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.room(n);
    this.len += this.buf.write(s, this.len);
  }

  /**
   * Write a length-delimited part in place: `body` writes it after one
   * byte left for its length, moved on if the length needs more (no
   * buffer of its own for every nested message).
   */
  delimited(body: () => void): void {
    this.room(1);
    const start = ++this.len;
    body();
    const n = this.len - start;
    if (n < 0x80) {
      this.buf[start - 1] = n;
      return;
    }
    let size = 1;
    for (let v = n; v > 0x7f; v = Math.floor(v / 128)) size++;
    this.room(size - 1);
    this.buf.copyWithin(start - 1 + size, start, this.len);
    this.len = start - 1;
    this.varint(n);
    this.len += n;
  }

  fixed(n: number, write: (b: Buffer, at: number) => void): void {
    this.room(n);
    write(this.buf, this.len);
    this.len += n;
  }

  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_MAX = 0xffffffffffffffffn;
const toLong = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number | string));

function isDefault(f: Field, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (f.message) return false;
  if (f.scalar === 'string') return v === '';
  if (f.scalar === 'bytes') return (v as Uint8Array).length === 0;
  if (f.enumValues) return enumNumber(f, v) === 0;
  if (f.scalar && LONG.has(f.scalar)) return toLong(v) === 0n;
  return !v;
}

function enumNumber(f: Field, v: unknown): number {
  if (typeof v === 'number') return v;
  const n = f.enumValues!.get(String(v));
  if (n === undefined) throw new Error(`${String(v)} is no value of the enum of field ${f.name}`);
  return n;
}

/** Write one value of a field that is not a message, without its tag. */
function writeScalar(w: Writer, f: Field, v: unknown): void {
  if (f.enumValues) return w.varint(enumNumber(f, v));
  switch (f.scalar!) {
    case 'int32': return w.varint(Number(v) | 0);
    case 'uint32': return w.varint(Number(v) >>> 0);
    case 'sint32': {
      const n = Number(v) | 0;
      return w.varint(((n << 1) ^ (n >> 31)) >>> 0);
    }
    case 'bool': return w.varint(v ? 1 : 0);
    case 'int64': case 'uint64': return w.bigVarint(typeof v === 'bigint' && v >= 0n && v <= U64_MAX ? v : BigInt.asUintN(64, toLong(v)));
    case 'sint64': {
      const n = BigInt.asIntN(64, toLong(v));
      return w.bigVarint(BigInt.asUintN(64, (n << 1n) ^ (n >> 63n)));
    }
    case 'fixed32': return w.fixed(4, (b, at) => b.writeUInt32LE(Number(v) >>> 0, at));
    case 'sfixed32': return w.fixed(4, (b, at) => b.writeInt32LE(Number(v) | 0, at));
    case 'fixed64': return w.fixed(8, (b, at) => b.writeBigUInt64LE(BigInt.asUintN(64, toLong(v)), at));
    case 'sfixed64': return w.fixed(8, (b, at) => b.writeBigInt64LE(BigInt.asIntN(64, toLong(v)), at));
    case 'double': return w.fixed(8, (b, at) => b.writeDoubleLE(Number(v), at));
    case 'float': return w.fixed(4, (b, at) => b.writeFloatLE(Number(v), at));
    case 'string': return w.string(String(v));
    case 'bytes': return w.bytes(v as Uint8Array);
  }
}

function writeMessage(w: Writer, msg: Message, obj: Record<string, unknown>): void {
  for (const f of msg.fields) {
    const v = obj[f.name];
    if (f.repeated) {
      const list = (v ?? []) as unknown[];
      if (!list.length) continue;
      if (!f.message && f.scalar !== 'string' && f.scalar !== 'bytes') {
        // proto3 packs repeated numbers
        w.varint((f.id << 3) | WIRE.LEN);
        w.delimited(() => {
          for (const x of list) writeScalar(w, f, x);
        });
        continue;
      }
      for (const x of list) writeOne(w, f, x);
    } else if (!isDefault(f, v)) writeOne(w, f, v);
  }
}

function writeOne(w: Writer, f: Field, v: unknown): void {
  if (f.message) {
    w.varint((f.id << 3) | WIRE.LEN);
    w.delimited(() => writeMessage(w, f.message!, (v ?? {}) as Record<string, unknown>));
    return;
  }
  w.varint((f.id << 3) | (f.enumValues ? WIRE.VARINT : WIRE_OF[f.scalar!]));
  writeScalar(w, f, v);
}

export function encode(name: string, obj: object): Buffer {
  const w = new Writer();
  writeMessage(w, messageOf(name), obj as Record<string, unknown>);
  return Buffer.from(w.result());
}

/** Reads the wire format; any overrun or malformed value throws. */
class Reader {
  at: number;
  constructor(readonly buf: Buffer, at: number, readonly end: number) {
    this.at = at;
  }

  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.at >= this.end) throw new Error('truncated varint');
      if (shift > 63n) throw new Error('varint longer than 64 bits');
      const b = this.buf[this.at++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asUintN(64, v);
    }
  }

  /** A varint that fits a double exactly (tags, lengths, 32-bit values); a longer one the slow way. */
  small(): number {
    const start = this.at;
    let v = 0;
    for (let i = 0, mul = 1; i < 7; i++, mul *= 128) {
      if (this.at >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.at++];
      v += (b & 0x7f) * mul;
      if (!(b & 0x80)) return v;
    }
    this.at = start;
    return Number(this.varint());
  }

  take(n: number): Buffer {
    if (n < 0 || this.at + n > this.end) throw new Error(`length ${n} beyond the end of the message`);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  skip(wire: number): void {
    if (wire === WIRE.VARINT) this.varint();
    else if (wire === WIRE.I64) this.take(8);
    else if (wire === WIRE.I32) this.take(4);
    else if (wire === WIRE.LEN) this.take(this.small());
    else throw new Error(`wire type ${wire} is not supported`);
  }
}

function readScalar(r: Reader, f: Field): unknown {
  if (f.enumValues) {
    const n = Number(BigInt.asIntN(32, r.varint()));
    return f.enumNames!.get(n) ?? n;
  }
  switch (f.scalar!) {
    case 'int32': return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32': return Number(BigInt.asUintN(32, r.varint()));
    case 'sint32': {
      const n = Number(BigInt.asUintN(32, r.varint()));
      return (n >>> 1) ^ -(n & 1);
    }
    case 'bool': return r.varint() !== 0n;
    case 'uint64': return r.varint();
    case 'int64': return BigInt.asIntN(64, r.varint());
    case 'sint64': {
      const n = r.varint();
      return (n >> 1n) ^ -(n & 1n);
    }
    case 'fixed32': return r.take(4).readUInt32LE(0);
    case 'sfixed32': return r.take(4).readInt32LE(0);
    case 'fixed64': return r.take(8).readBigUInt64LE(0);
    case 'sfixed64': return r.take(8).readBigInt64LE(0);
    case 'double': return r.take(8).readDoubleLE(0);
    case 'float': return r.take(4).readFloatLE(0);
    case 'string': return r.take(r.small()).toString('utf8');
    case 'bytes': return Buffer.from(r.take(r.small()));
  }
}

function defaultOf(f: Field): unknown {
  if (f.repeated) return [];
  if (f.message) return null;
  if (f.enumNames) return f.enumNames.get(0) ?? 0;
  if (f.scalar === 'string') return '';
  if (f.scalar === 'bytes') return Buffer.alloc(0);
  if (f.scalar === 'bool') return false;
  return LONG.has(f.scalar!) ? 0n : 0;
}

function readMessage(r: Reader, msg: Message): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (const f of msg.fields) obj[f.name] = defaultOf(f);
  while (r.at < r.end) {
    const tag = r.small();
    const wire = tag & 7;
    const f = msg.byId.get(Math.floor(tag / 8));
    if (!f) {
      r.skip(wire);
      continue;
    }
    let v: unknown;
    if (f.message) {
      if (wire !== WIRE.LEN) throw new Error(`field ${msg.name}.${f.name}: wire type ${wire}, not a message`);
      const len = r.small();
      const inner = new Reader(r.buf, r.at, r.at + len);
      r.take(len);
      v = readMessage(inner, f.message);
    } else if (f.repeated && wire === WIRE.LEN && f.scalar !== 'string' && f.scalar !== 'bytes') {
      const len = r.small();
      const inner = new Reader(r.buf, r.at, r.at + len);
      r.take(len);
      const list = obj[f.name] as unknown[];
      while (inner.at < inner.end) list.push(readScalar(inner, f));
      continue;
    } else {
      const want = f.enumValues ? WIRE.VARINT : WIRE_OF[f.scalar!];
      if (wire !== want) throw new Error(`field ${msg.name}.${f.name}: wire type ${wire}, expected ${want}`);
      v = readScalar(r, f);
    }
    if (f.repeated) (obj[f.name] as unknown[]).push(v);
    else obj[f.name] = v;
  }
  return obj;
}

export function decode<T>(name: string, bytes: Buffer): T {
  return readMessage(new Reader(bytes, 0, bytes.length), messageOf(name)) as T;
}
