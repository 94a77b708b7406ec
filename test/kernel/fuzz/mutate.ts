/**
 * Mutations of a valid image that know its format: every field of every
 * object type gets values chosen for what the field is (a count, a length,
 * an id, an address, flags, ...), and objects are deleted, duplicated,
 * swapped, retyped, inserted and spliced from other images; a few cases are
 * plain byte damage and truncations.  Most mutated images get a trailer
 * that agrees with them again, so that the damage reaches the engine's
 * parsers rather than stopping at the checksum; the others must be refused
 * by the checksum alone.
 */
import { checkedLen, fixTrailer, objectTypes, objectsOf, readField, writeField, TYPE, type Field, type FieldKind, type ImageObj } from './format.js';

/** Deterministic PRNG (xorshift32), so that a case can be run again from its number. */
export class Rand {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 1;
  }
  next(): number {
    this.x ^= this.x << 13;
    this.x ^= this.x >>> 17;
    this.x ^= this.x << 5;
    return (this.x >>> 0) / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bits(n: number): bigint {
    let v = 0n;
    for (let i = 0; i < n; i += 16) v = (v << 16n) | BigInt(this.int(0x10000));
    return BigInt.asUintN(n, v);
  }
}

/** What one case changes: a field family of an object type, or the structure of the image. */
export type Target =
  | { kind: 'field'; type: number; family: string; fields: Field[] }
  | { kind: 'payload'; type: number }
  | { kind: 'structure'; op: StructureOp }
  | { kind: 'damage'; op: 'bytes' | 'truncate' };

const STRUCTURE_OPS = ['delete', 'duplicate', 'swap', 'move', 'retype', 'insert', 'splice'] as const;
type StructureOp = (typeof STRUCTURE_OPS)[number];

export interface Seed {
  name: string;
  img: Buffer;
}

export interface Mutation {
  img: Buffer;
  /** The trailer was made to agree with the mutated image. */
  fixed: boolean;
  what: string;
}

/** `action[12].handler` and `action[3].handler` are one family, `action[*].handler`. */
const family = (name: string): string => name.replace(/\[\d+\]/g, '[*]');

/**
 * Every target worth a case, for the object types the seeds hold: one per
 * field family of each type's fixed part, one for each type's variable
 * part, the structural operations and the raw damage.
 */
export function targets(seeds: Seed[]): Target[] {
  const present = new Set(seeds.flatMap((s) => objectsOf(s.img).map((o) => o.type)));
  const out: Target[] = [];
  for (const t of [...objectTypes().values()].sort((a, b) => a.type - b.type)) {
    if (!present.has(t.type)) continue;
    const families = new Map<string, Field[]>();
    for (const f of t.fields) families.set(family(f.name), [...(families.get(family(f.name)) ?? []), f]);
    for (const [name, fields] of families) out.push({ kind: 'field', type: t.type, family: name, fields });
    out.push({ kind: 'payload', type: t.type });
  }
  for (const op of STRUCTURE_OPS) out.push({ kind: 'structure', op });
  out.push({ kind: 'damage', op: 'bytes' }, { kind: 'damage', op: 'truncate' });
  return out;
}

const mask = (bits: number): bigint => (1n << BigInt(bits)) - 1n;

/** Values worth trying in a field of @kind that holds @v, @bits wide; @others: values of its kind elsewhere */
function candidates(kind: FieldKind, v: bigint, bits: number, others: bigint[], r: Rand): bigint[] {
  const all = mask(bits);
  const common = [0n, 1n, v ^ 1n, v + 1n, v - 1n, all, 1n << BigInt(bits - 1), r.bits(bits)];
  const other = others.length ? [r.pick(others)] : [];
  switch (kind) {
    case 'count':
      return [...common, v * 2n, 0x7fffffffn, 0xffffffffn, 1n << 20n, BigInt(r.int(70000))];
    case 'length':
      return [...common, v + 8n, v - 8n, v * 2n, 4096n, 65536n, BigInt(r.int(5000))];
    case 'id':
      return [...common, ...other, 0x7fffffffn, -0x80000000n, BigInt(r.int(100))];
    case 'address':
      return [...common, ...other, v + 0x1000n, v - 0x1000n, 0xfffn, 0x10000n - 1n, 0x7ffffffff000n, 0x7fffffffe000n,
        0x800000000000n, 0xffff800000000000n, 0xffffffffff600000n, v & ~0xfffn];
    case 'flags':
      return [...common, v ^ (1n << BigInt(r.int(bits))), v | (1n << BigInt(r.int(bits))), v & ~(1n << BigInt(r.int(bits)))];
    case 'reserved':
      return [1n, all, 1n << BigInt(r.int(bits))];
    case 'constant':
      return [v ^ 1n, 0n, v + 1n, r.bits(bits)];
    case 'framing':
      return [...common, v + 8n, v - 8n, 8n, 16n, v * 2n, ...[...objectTypes().keys()].map(BigInt)];
    default:
      return common;
  }
}

function mutateField(img: Buffer, obj: ImageObj, fields: Field[], r: Rand, objs: ImageObj[]): string {
  const f = r.pick(fields);
  if (f.offset + f.size > obj.len) return `${f.name}: past the end of a short object`;
  if (f.kind === 'text') {
    const at = obj.offset + f.offset;
    const how = r.int(3);
    if (how === 0) img.fill(0x41, at, at + f.size);		// no NUL
    else if (how === 1) img[at] = 0;			// empty
    else img[at + r.int(f.size)] = r.int(256);
    return `${f.name}: text ${['without NUL', 'emptied', 'one byte changed'][how]}`;
  }
  const v = readField(img, obj, f);
  const others = objs.filter((o) => o.type === obj.type && o !== obj && f.offset + f.size <= o.len).map((o) => readField(img, o, f));
  const value = r.pick(candidates(f.kind, v, f.size * 8, others, r));
  writeField(img, obj, f, value);
  return `${f.name} (${f.kind}) ${v} -> ${BigInt.asUintN(f.size * 8, value)}`;
}

/** A word of the part after the fixed struct: array entries, strings, page data. */
function mutatePayload(img: Buffer, obj: ImageObj, r: Rand): string {
  const fixed = objectTypes().get(obj.type)?.size ?? 8;
  // page data is the tasks' memory, which nothing checks: leave it alone
  const end = checkedLen(img, obj);
  if (end <= fixed) return 'payload: none';
  const words = Math.floor((end - fixed) / 4);
  const at = obj.offset + fixed + 4 * r.int(words);
  const v = img.readUInt32LE(at);
  const value = Number(BigInt.asUintN(32, r.pick(candidates('value', BigInt(v), 32, [], r))));
  img.writeUInt32LE(value, at);
  return `payload word at +${at - obj.offset}: ${v} -> ${value}`;
}

function restructure(img: Buffer, op: StructureOp, r: Rand, seeds: Seed[]): { img: Buffer; what: string } {
  const objs = objectsOf(img);
  const parts = objs.map((o) => img.subarray(o.offset, o.offset + o.len));
  const tailAt = objs.findIndex((o) => o.type === TYPE.TAIL);
  const body = tailAt > 0 ? tailAt : objs.length;
  const i = r.int(body);
  const name = (o: ImageObj) => objectTypes().get(o.type)?.name ?? String(o.type);
  let what = `${op} object ${i} (${name(objs[i]!)})`;
  switch (op) {
    case 'delete':
      parts.splice(i, 1);
      break;
    case 'duplicate':
      parts.splice(i, 0, Buffer.from(parts[i]!));
      break;
    case 'swap': {
      const j = Math.min(i + 1, body - 1);
      [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      break;
    }
    case 'move': {
      const [moved] = parts.splice(i, 1);
      const to = r.int(body);
      parts.splice(to, 0, moved!);
      what += ` to ${to}`;
      break;
    }
    case 'retype': {
      const copy = Buffer.from(parts[i]!);
      const to = r.pick([...objectTypes().keys()]);
      copy.writeUInt32LE(to, 0);
      parts[i] = copy;
      what += ` to ${objectTypes().get(to)!.name}`;
      break;
    }
    case 'insert': {
      const t = r.pick([...objectTypes().values()]);
      const len = t.size + 8 * r.int(9);
      const fresh = Buffer.alloc(len);
      for (let k = 8; k < len; k++) fresh[k] = r.int(4) ? 0 : r.int(256);
      fresh.writeUInt32LE(t.type, 0);
      fresh.writeUInt32LE(len, 4);
      parts.splice(i, 0, fresh);
      what = `insert a ${t.name} of ${len} bytes at ${i}`;
      break;
    }
    case 'splice': {
      const from = r.pick(seeds);
      const same = objectsOf(from.img).filter((o) => o.type === objs[i]!.type);
      const o = same.length ? r.pick(same) : undefined;
      if (o) parts[i] = from.img.subarray(o.offset, o.offset + o.len);
      what = `replace object ${i} (${name(objs[i]!)}) with one of ${from.name}'s`;
      break;
    }
  }
  return { img: Buffer.concat(parts), what };
}

/** Case @n: a mutation of one of @seeds aimed at target @n of targets(@seeds). */
export function mutate(seeds: Seed[], all: Target[], n: number, runSeed: number): Mutation & { seed: string } {
  const r = new Rand(runSeed * 1000003 + n);
  const target = all[n % all.length]!;
  const withType = target.kind === 'field' || target.kind === 'payload'
    ? seeds.filter((s) => objectsOf(s.img).some((o) => o.type === target.type))
    : seeds;
  const seed = r.pick(withType);
  let img: Buffer = Buffer.from(seed.img);
  let what: string;
  if (target.kind === 'damage') {
    if (target.op === 'truncate') {
      const at = r.int(img.length);
      return { img: img.subarray(0, at), fixed: false, what: `truncated at ${at} of ${img.length}`, seed: seed.name };
    }
    const k = 1 + r.int(8);
    const pageData = objectsOf(img).map((o) => [o.offset + checkedLen(img, o), o.offset + o.len] as const);
    const inPageData = (at: number) => pageData.some(([from, to]) => at >= from && at < to);
    for (let i = 0; i < k; i++) {
      let at = r.int(img.length);
      while (inPageData(at)) at = r.int(img.length);
      img[at] ^= 1 << r.int(8);
    }
    what = `${k} random bits flipped`;
  } else if (target.kind === 'structure') {
    ({ img, what } = restructure(img, target.op, r, seeds));
  } else {
    const objs = objectsOf(img);
    const obj = r.pick(objs.filter((o) => o.type === target.type));
    const at = `${objectTypes().get(target.type)!.name} #${objs.filter((o) => o.type === target.type).indexOf(obj)}`;
    what = `${at}: ${target.kind === 'field' ? mutateField(img, obj, target.fields, r, objs) : mutatePayload(img, obj, r)}`;
  }
  // one case in ten keeps its old trailer: the checksum alone must refuse it
  const fixed = r.int(10) !== 0 && fixTrailer(img);
  return { img, fixed, what, seed: seed.name };
}
