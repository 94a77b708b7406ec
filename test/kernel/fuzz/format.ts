/**
 * The kernel backend's image format as the fuzzer sees it: every object
 * type with the layout of its fixed part, read from the C headers
 * themselves (kmod/ckpt_image.h, and include/uapi/linux/checkpoint.h as
 * kernel-patches/ creates it), so that a new object type is fuzzed field
 * by field as soon as its struct lands.  Also the few helpers tests use to
 * edit a real image: find an object, rewrite a field, fix the trailer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../../userspace/paths.js';

/** What a field means, guessed from its name: it decides which values are tried. */
export type FieldKind = 'framing' | 'count' | 'length' | 'id' | 'address' | 'flags' | 'reserved' | 'constant' | 'value' | 'text';

export interface Field {
  /** `name`, `name[3]` for array elements, `outer.inner` for nested structs. */
  name: string;
  offset: number;
  /** 1, 2, 4 or 8 bytes; a char array is one `text` field of its length. */
  size: number;
  signed: boolean;
  kind: FieldKind;
}

export interface ObjectType {
  type: number;
  /** CKPT_HDR_ without the prefix. */
  name: string;
  /** Size of the fixed part (struct ckpt_hdr_<name>), 8 if there is no struct. */
  size: number;
  fields: Field[];
}

interface CType {
  size: number;
  align: number;
  fields: Field[];
}

const PRIMITIVES: Record<string, { size: number; signed: boolean }> = {
  __u8: { size: 1, signed: false }, __s8: { size: 1, signed: true }, char: { size: 1, signed: true },
  __u16: { size: 2, signed: false }, __s16: { size: 2, signed: true },
  __u32: { size: 4, signed: false }, __s32: { size: 4, signed: true },
  __u64: { size: 8, signed: false }, __s64: { size: 8, signed: true }, __aligned_u64: { size: 8, signed: false },
};

function kindOf(name: string): FieldKind {
  const n = name.replace(/\[\d+\]/g, '').split('.').pop()!;
  if (/^h\.(type|len)$/.test(name)) return 'framing';
  if (/^(pad|reserved)/.test(n)) return 'reserved';
  if (/^(magic|version|arch)$/.test(n)) return 'constant';
  if (/^(nr|nr_.*|n.*s|count|num_.*)$/.test(n)) return 'count';
  if (/(_len|len|size)$/.test(n)) return 'length';
  if (/^(objref|pipe|id|pid|tgid|ppid|pgid|sid|fd)$/.test(n)) return 'id';
  if (/(start|end|brk|addr|^ip$|^sp$|base|vdso|vvar|rseq$|handler|restorer|stack|auxv)/.test(n)) return 'address';
  if (/(flags|kind|note|mode|prot|mask|type|cloexec|growsdown|securebits|^cap_|shared|blocked|rdev|signal)/.test(n)) return 'flags';
  return 'value';
}

/** Numbers from #define lines and the enum of object types, for array sizes and type numbers. */
function constants(src: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of src.matchAll(/^#define\s+(\w+)\s+\(?\s*(0x[0-9a-fA-F]+|\d+)\s*\)?\s*$/gm)) out.set(m[1]!, Number(m[2]));
  for (const e of src.matchAll(/enum\s+\w+\s*\{([^}]*)\}/g)) {
    let next = 0;
    for (const item of e[1]!.split(',')) {
      const m = /^\s*(\w+)\s*(?:=\s*(\w+))?\s*$/.exec(item);
      if (!m) continue;
      next = m[2] !== undefined ? (out.get(m[2]) ?? Number(m[2])) : next;
      out.set(m[1]!, next++);
    }
  }
  return out;
}

function parseStructs(src: string, consts: Map<string, number>): Map<string, CType> {
  const structs = new Map<string, CType>();
  for (const m of src.matchAll(/struct\s+(\w+)\s*\{([^}]*)\};/g)) {
    const fields: Field[] = [];
    let offset = 0;
    let align = 1;
    for (const decl of m[2]!.split(';')) {
      const d = /^\s*(struct\s+\w+|\w+)\s+(.+?)\s*$/.exec(decl.replace(/\s+/g, ' '));
      if (!d) continue;
      const typeName = d[1]!;
      const inner = typeName.startsWith('struct') ? structs.get(typeName.split(/\s+/)[1]!) : undefined;
      const prim = PRIMITIVES[typeName];
      if (!inner && !prim) throw new Error(`fuzz format: unknown type ${typeName} in struct ${m[1]}`);
      const size = inner ? inner.size : prim!.size;
      const a = inner ? inner.align : prim!.size;
      for (const declarator of d[2]!.split(',')) {
        const v = /^\s*(\w+)\s*(?:\[\s*(\w+)\s*\])?\s*$/.exec(declarator);
        if (!v) continue;
        const count = v[2] === undefined ? 1 : (consts.get(v[2]) ?? Number(v[2]));
        offset = Math.ceil(offset / a) * a;
        align = Math.max(align, a);
        if (typeName === 'char' || (typeName === '__u8' && count > 1)) {
          fields.push({ name: v[1]!, offset, size: count, signed: false, kind: 'text' });
        } else {
          for (let i = 0; i < count; i++) {
            const base = v[2] === undefined ? v[1]! : `${v[1]}[${i}]`;
            const at = offset + i * size;
            if (inner) for (const f of inner.fields) fields.push({ ...f, name: `${base}.${f.name}`, offset: at + f.offset, kind: f.kind === 'text' ? 'text' : kindOf(`${base}.${f.name}`) });
            else fields.push({ name: base, offset: at, size, signed: prim!.signed, kind: kindOf(base) });
          }
        }
        offset += size * count;
      }
    }
    structs.set(m[1]!, { size: Math.ceil(offset / align) * align, align, fields });
  }
  return structs;
}

/** include/uapi/linux/checkpoint.h as the first patch of kernel-patches/ that creates it writes it. */
function uapiHeader(): string {
  const dir = path.join(packageRoot, 'kernel-patches');
  for (const name of fs.readFileSync(path.join(dir, 'series'), 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean)) {
    const patch = fs.readFileSync(path.join(dir, name), 'utf8');
    const at = patch.indexOf('+++ b/include/uapi/linux/checkpoint.h');
    if (at < 0 || !/--- \/dev\/null\s*$/.test(patch.slice(0, at))) continue;
    const lines: string[] = [];
    for (const line of patch.slice(at).split('\n').slice(2)) {
      if (line.startsWith('diff --git') || line.startsWith('-- ')) break;
      if (line.startsWith('+')) lines.push(line.slice(1));
    }
    return lines.join('\n');
  }
  throw new Error('fuzz format: no patch in kernel-patches/series creates include/uapi/linux/checkpoint.h');
}

const stripComments = (s: string): string => s.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');

let cached: Map<number, ObjectType> | undefined;

/** Every object type the engine knows, by number, each with the fields of its fixed part. */
export function objectTypes(): Map<number, ObjectType> {
  if (cached) return cached;
  const src = stripComments(`${uapiHeader()}\n${fs.readFileSync(path.join(packageRoot, 'kmod', 'ckpt_image.h'), 'utf8')}`);
  const consts = constants(src);
  const structs = parseStructs(src, consts);
  cached = new Map();
  for (const [name, type] of consts) {
    const m = /^CKPT_HDR_(\w+)$/.exec(name);
    if (!m) continue;
    const st = structs.get(`ckpt_hdr_${m[1]!.toLowerCase()}`);
    const fields = st?.fields ?? [
      { name: 'h.type', offset: 0, size: 4, signed: false, kind: 'framing' as const },
      { name: 'h.len', offset: 4, size: 4, signed: false, kind: 'framing' as const },
    ];
    cached.set(type, { type, name: m[1]!, size: st?.size ?? 8, fields });
  }
  return cached;
}

export const TYPE = { HEADER: 1, TREE: 2, TAIL: 127, ERROR: 126 } as const;

export interface ImageObj {
  type: number;
  offset: number;
  len: number;
}

/** The objects of an image, as far as its framing holds. */
export function objectsOf(img: Buffer): ImageObj[] {
  const out: ImageObj[] = [];
  for (let off = 0; off + 8 <= img.length;) {
    const len = img.readUInt32LE(off + 4);
    if (len < 8 || len % 8 || off + len > img.length) break;
    out.push({ type: img.readUInt32LE(off), offset: off, len });
    off += len;
  }
  return out;
}

const PAGES = 11;

/**
 * The bytes of @o that the trailer's checksum covers: all but a PAGES
 * object's page data (from its data_off on), which is the tasks' memory.
 */
export function checkedLen(img: Buffer, o: ImageObj): number {
  if (o.type !== PAGES || o.len < 32) return o.len;
  const dataOff = img.readBigUInt64LE(o.offset + 24);
  return dataOff >= 32n && dataOff <= BigInt(o.len) ? Number(dataOff) : o.len;
}

/** The image's checksum of everything before @end, as kmod/image.c computes it. */
export function checksum(img: Buffer, end: number): bigint {
  let sum = 0xcbf29ce484222325n;
  const mask = (1n << 64n) - 1n;
  for (const o of objectsOf(img.subarray(0, end))) {
    for (let off = o.offset; off + 8 <= o.offset + checkedLen(img, o); off += 8) sum = ((sum ^ img.readBigUInt64LE(off)) * 0x100000001b3n) & mask;
  }
  return sum;
}

/** Make the trailer agree with what precedes it (object count, checksum); false if there is none. */
export function fixTrailer(img: Buffer): boolean {
  const objs = objectsOf(img);
  const tail = objs.findIndex((o) => o.type === TYPE.TAIL && o.len === 32);
  if (tail < 0) return false;
  const at = objs[tail]!.offset;
  img.writeBigUInt64LE(BigInt(tail), at + 16);
  img.writeBigUInt64LE(checksum(img, at), at + 24);
  return true;
}

/** The @n-th object of type @name (CKPT_HDR_ without the prefix), or undefined. */
export function findObject(img: Buffer, name: string, n = 0): ImageObj | undefined {
  const t = [...objectTypes().values()].find((o) => o.name === name);
  if (!t) throw new Error(`no object type ${name}`);
  return objectsOf(img).filter((o) => o.type === t.type)[n];
}

/** The field @name of object type @type. */
export function fieldOf(type: number, name: string): Field {
  const f = objectTypes().get(type)?.fields.find((x) => x.name === name);
  if (!f) throw new Error(`object type ${type} has no field ${name}`);
  return f;
}

export function readField(img: Buffer, obj: ImageObj, f: Field): bigint {
  const at = obj.offset + f.offset;
  switch (f.size) {
    case 1: return BigInt(f.signed ? img.readInt8(at) : img.readUInt8(at));
    case 2: return BigInt(f.signed ? img.readInt16LE(at) : img.readUInt16LE(at));
    case 4: return BigInt(f.signed ? img.readInt32LE(at) : img.readUInt32LE(at));
    default: return f.signed ? img.readBigInt64LE(at) : img.readBigUInt64LE(at);
  }
}

/** Write @value into field @f of @obj, truncated to the field's width. */
export function writeField(img: Buffer, obj: ImageObj, f: Field, value: bigint): void {
  const at = obj.offset + f.offset;
  const bits = BigInt(f.size * 8);
  const v = BigInt.asUintN(Number(bits), value);
  switch (f.size) {
    case 1: img.writeUInt8(Number(v), at); break;
    case 2: img.writeUInt16LE(Number(v), at); break;
    case 4: img.writeUInt32LE(Number(v), at); break;
    default: img.writeBigUInt64LE(v, at);
  }
}

/**
 * Rewrite one field of the @n-th object of type @name and fix the trailer:
 * how the tests make an image that differs from a real one in one thing.
 */
export function editField(img: Buffer, name: string, field: string, value: bigint, n = 0): Buffer {
  const out = Buffer.from(img);
  const obj = findObject(out, name, n);
  if (!obj) throw new Error(`the image has no ${name} object ${n}`);
  writeField(out, obj, fieldOf(obj.type, field), value);
  fixTrailer(out);
  return out;
}

/** Replace the @n-th object of type @name by @replacement (a whole object) and fix the trailer. */
export function replaceObject(img: Buffer, name: string, replacement: Buffer, n = 0): Buffer {
  const obj = findObject(img, name, n);
  if (!obj) throw new Error(`the image has no ${name} object ${n}`);
  const out = Buffer.concat([img.subarray(0, obj.offset), replacement, img.subarray(obj.offset + obj.len)]);
  fixTrailer(out);
  return out;
}
