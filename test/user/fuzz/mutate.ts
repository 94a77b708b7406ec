/**
 * A structure-aware mutator for user-backend image directories: it decodes
 * every image file with its protobuf schema (backends/user/images), and an
 * open file's payload with its type's message, then changes one thing —
 * a number of any field (counts, lengths, addresses, fds, ids, pids,
 * flags) to a boundary value, a string or byte field, an element of a
 * repeated field (dropped, doubled, moved), a whole file (missing,
 * another task's, emptied), the page data (truncated, grown, changed with
 * its checksum fixed), or raw bytes and headers — and writes it back with
 * a valid header, so that the damage reaches restore's checks, not only
 * the checksum. Every choice comes from the case's random source: the same
 * seed and case number give the same mutation.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import protobuf from 'protobufjs';
import { SCHEMA_JSON } from '../../../backends/user/codec.js';
import { encodeImage, type ImageKind, MESSAGE_OF } from '../../../backends/user/image.js';

let schema: protobuf.Root | undefined;
/** The image schema as protobufjs reflection, to walk every field. */
const imageSchema = () => (schema ??= protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(SCHEMA_JSON, 'utf8'))));
const messageType = (name: string) => imageSchema().lookupType(`crlab.user.${name}`);

/** A deterministic random source (xorshift32). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const below = (r: Rand, n: number) => Math.floor(r() * n);

type Obj = Record<string, unknown>;

/** One image file, decoded. */
interface Decoded {
  file: string;
  kind: ImageKind;
  type: protobuf.Type;
  value: Obj;
}

/** A place in a decoded message that can be changed: the field `key` of `holder`, of protobuf `field`. */
interface Site {
  where: string;
  holder: Obj | unknown[];
  key: string | number;
  field: protobuf.Field;
}

const LONG = new Set(['uint64', 'int64', 'sint64', 'fixed64', 'sfixed64']);
const INT = new Set(['uint32', 'int32', 'sint32', 'fixed32', 'sfixed32', ...LONG]);
const UNSIGNED = new Set(['uint32', 'fixed32', 'uint64', 'fixed64']);

const TO_OBJECT = { longs: String, enums: Number, defaults: true, arrays: true } as const;

/** The message an open file's payload holds: its type's (reg: RegFile, unix: UnixSocketFile, …). */
function payloadType(fileType: unknown): protobuf.Type | undefined {
  if (typeof fileType !== 'string' || !fileType) return undefined;
  const all = imageSchema().lookup('crlab.user') as protobuf.Namespace;
  return all.nestedArray.find((t): t is protobuf.Type => t instanceof protobuf.Type && /File$/.test(t.name) &&
    t.name.toLowerCase().startsWith(fileType.toLowerCase()));
}

/** Every changeable place of `value` (of `type`), nested payloads decoded in place. */
function sites(type: protobuf.Type, value: Obj, where: string, out: Site[], payloads: (() => void)[]): void {
  for (const field of type.fieldsArray) {
    field.resolve();
    const v = value[field.name];
    const at = `${where}.${field.name}`;
    out.push({ where: at, holder: value, key: field.name, field });
    if (!Array.isArray(v)) {
      visit(field, v, at, out, payloads, value);
      continue;
    }
    v.forEach((x, i) => {
      // An element that is a message is changed through its fields.
      if (!(field.resolvedType instanceof protobuf.Type)) out.push({ where: `${at}[${i}]`, holder: v, key: i, field });
      visit(field, x, `${at}[${i}]`, out, payloads, value);
    });
  }
}

function visit(field: protobuf.Field, v: unknown, at: string, out: Site[], payloads: (() => void)[], parent: Obj): void {
  if (field.resolvedType instanceof protobuf.Type && v && typeof v === 'object') {
    sites(field.resolvedType, v as Obj, at, out, payloads);
    return;
  }
  // An open file's payload: decoded with its type's message, re-encoded once mutated.
  const inner = field.name === 'payload' && field.type === 'bytes' ? payloadType(parent.type) : undefined;
  if (!inner || !(v instanceof Uint8Array) || !v.length) return;
  let decoded: Obj;
  try {
    decoded = inner.toObject(inner.decode(v), TO_OBJECT) as Obj;
  } catch {
    return;
  }
  const before = out.length;
  sites(inner, decoded, `${at}<${inner.name}>`, out, payloads);
  if (out.length > before) payloads.push(() => (parent.payload = inner.encode(inner.fromObject(decoded)).finish()));
}

const B64 = (1n << 64n) - 1n;

/** A new value for a number: a boundary, a neighbour, a bit flipped, another number of the image. */
function number(r: Rand, type: string, old: unknown, others: bigint[]): bigint {
  const o = BigInt(typeof old === 'string' || typeof old === 'number' ? old : 0);
  const bits = LONG.has(type) ? 64 : 32;
  const max = (1n << BigInt(UNSIGNED.has(type) ? bits : bits - 1)) - 1n;
  const min = UNSIGNED.has(type) ? 0n : -max - 1n;
  const candidates = [0n, 1n, -1n, max, min, max - 1n, o + 1n, o - 1n, o * 2n, o / 2n, o ^ (1n << BigInt(below(r, bits))),
    o + 4096n, o - 4096n, o + 1n << 20n, 4096n, 65535n, 1n << 31n, 1n << 32n, 1048576n];
  if (others.length) candidates.push(pick(r, others), pick(r, others) + 1n);
  let v = pick(r, candidates);
  if (v > max) v = UNSIGNED.has(type) ? v & (bits === 64 ? B64 : 0xffffffffn) : max;
  if (v < min) v = UNSIGNED.has(type) ? (v & (bits === 64 ? B64 : 0xffffffffn)) : min;
  return v;
}

function text(r: Rand, old: string, strings: string[]): string {
  return pick(r, [
    () => '',
    () => old.slice(0, below(r, old.length + 1)),
    () => `${old}/../x`,
    () => `${old}\0tail`,
    () => 'x'.repeat(4097),
    () => (strings.length ? pick(r, strings) : old),
    () => old.replace(/\d/g, '9'),
  ])();
}

function bytes(r: Rand, old: Uint8Array): Buffer {
  const b = Buffer.from(old);
  return pick(r, [
    () => Buffer.alloc(0),
    () => b.subarray(0, below(r, b.length + 1)),
    () => Buffer.concat([b, Buffer.alloc(1 + below(r, 64), 0xa5)]),
    () => {
      if (b.length) b[below(r, b.length)] ^= 1 << below(r, 8);
      return b;
    },
    () => Buffer.alloc(1 << 20, 7),
  ])();
}

/** Numbers and strings found in the image: pids, ids, fds and paths to swap in. */
function gather(value: unknown, nums: bigint[], strs: string[]): void {
  if (Array.isArray(value)) for (const x of value) gather(x, nums, strs);
  else if (typeof value === 'string') {
    if (/^-?\d+$/.test(value)) nums.push(BigInt(value));
    else if (value) strs.push(value);
  } else if (typeof value === 'number') nums.push(BigInt(Math.trunc(value)));
  else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) for (const x of Object.values(value)) gather(x, nums, strs);
}

/** Change the value at a site. */
function changeValue(r: Rand, s: Site, nums: bigint[], strs: string[]): string {
  const { field } = s;
  const old = (s.holder as Record<string | number, unknown>)[s.key];
  let v: unknown;
  if (Array.isArray(old)) {
    // The repeated field itself: drop, double, move or clear its elements.
    const a = [...old];
    const i = below(r, Math.max(a.length, 1));
    const how = pick(r, ['drop', 'double', 'swap', 'clear', 'many'] as const);
    if (how === 'drop') a.splice(i, 1);
    if (how === 'double' && a.length) a.splice(i, 0, structuredClone(a[i]));
    if (how === 'swap' && a.length > 1) [a[0], a[a.length - 1]] = [a[a.length - 1], a[0]];
    if (how === 'clear') a.length = 0;
    if (how === 'many' && a.length) for (let k = 0; k < 200; k++) a.push(structuredClone(a[i]));
    v = a;
    (s.holder as Obj)[s.key as string] = v;
    return `${s.where}: ${how} (${old.length} → ${a.length})`;
  }
  if (field.resolvedType instanceof protobuf.Type) v = null; // the whole nested message unset
  else if (field.resolvedType instanceof protobuf.Enum) {
    const values = Object.values(field.resolvedType.values);
    v = pick(r, [...values, Math.max(...values) + 1, 255, -1]);
  } else if (INT.has(field.type)) v = number(r, field.type, old, nums).toString();
  else if (field.type === 'bool') v = !old;
  else if (field.type === 'string') v = text(r, String(old ?? ''), strs);
  else if (field.type === 'bytes') v = bytes(r, (old as Uint8Array) ?? new Uint8Array());
  else if (field.type === 'double' || field.type === 'float') v = pick(r, [0, -1, 1e300, Number.NaN]);
  else return `${s.where}: left alone (${field.type})`;
  if (Array.isArray(s.holder)) s.holder[s.key as number] = v;
  else if (v === null) delete s.holder[s.key as string];
  else s.holder[s.key as string] = v;
  const shown = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…(${v.length})` : v) : v instanceof Uint8Array ? `<${v.length} bytes>` : String(v);
  return `${s.where} = ${shown}`;
}

const KIND_OF = new Map(Object.keys(MESSAGE_OF).map((k) => [k, k as ImageKind]));

/** The protobuf image files of a directory, decoded (files that do not decode are left out). */
function decodeAll(dir: string): Decoded[] {
  return fs.readdirSync(dir).flatMap((file) => {
    const kind = KIND_OF.get(/^([a-z-]+?)(?:-\d+)?\.img$/.exec(file)?.[1] ?? '');
    if (!kind) return [];
    const type = messageType(MESSAGE_OF[kind]);
    try {
      return [{ file, kind, type, value: type.toObject(type.decode(fs.readFileSync(path.join(dir, file)).subarray(16)), TO_OBJECT) as Obj }];
    } catch {
      return [];
    }
  });
}

/** Write a file anew (the case directory's files may be links to the seed's). */
function rewrite(file: string, data: Buffer): void {
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, data);
}

/** Copy `seed` into `dir` (links: mutations replace the files they change). */
export function copyImage(seed: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(seed)) fs.linkSync(path.join(seed, f), path.join(dir, f));
}

function mutateField(r: Rand, dir: string): string {
  const images = decodeAll(dir);
  const all: { img: Decoded; site: Site; payloads: (() => void)[] }[] = [];
  for (const img of images) {
    const s: Site[] = [];
    const payloads: (() => void)[] = [];
    sites(img.type, img.value, img.file, s, payloads);
    for (const site of s) all.push({ img, site, payloads });
  }
  if (!all.length) return 'no field to change';
  const { img, site, payloads } = pick(r, all);
  const nums: bigint[] = [];
  const strs: string[] = [];
  for (const i of images) gather(i.value, nums, strs);
  const what = changeValue(r, site, nums, strs);
  for (const p of payloads) p();
  rewrite(path.join(dir, img.file), encodeImage(img.kind, img.value));
  return what;
}

function mutateFiles(r: Rand, dir: string): string {
  const files = fs.readdirSync(dir);
  const f = pick(r, files);
  const how = pick(r, ['missing', 'another task\'s', 'empty', 'stray'] as const);
  if (how === 'missing') fs.rmSync(path.join(dir, f));
  if (how === 'empty') rewrite(path.join(dir, f), Buffer.alloc(0));
  if (how === 'stray') fs.writeFileSync(path.join(dir, f.replace(/(-\d+)?\.img$/, '-1.img')), fs.readFileSync(path.join(dir, f)));
  if (how === 'another task\'s') {
    const kind = /^([a-z-]+?)(?:-\d+)?\.img$/.exec(f)?.[1];
    const twin = files.filter((g) => g !== f && g.startsWith(`${kind}-`));
    if (!twin.length) return `${f}: has no twin`;
    const g = pick(r, twin);
    rewrite(path.join(dir, f), fs.readFileSync(path.join(dir, g)));
    return `${f}: replaced by ${g}`;
  }
  return `${f}: ${how}`;
}

function mutatePages(r: Rand, dir: string): string {
  const pages = fs.readdirSync(dir).filter((f) => f.startsWith('pages-'));
  if (!pages.length) return 'no page data';
  const f = path.join(dir, pick(r, pages));
  const data = fs.readFileSync(f);
  const how = pick(r, ['truncated', 'page-truncated', 'grown', 'changed'] as const);
  if (how === 'truncated') rewrite(f, data.subarray(0, below(r, data.length)));
  if (how === 'page-truncated') rewrite(f, data.subarray(0, Math.max(0, data.length - 4096 * (1 + below(r, 4)))));
  if (how === 'grown') rewrite(f, Buffer.concat([data, Buffer.alloc(4096 * (1 + below(r, 2)), 0x5a)]));
  if (how === 'changed') {
    // Contents changed, checksum fixed: restore cannot tell, and must put these pages back.
    if (data.length) data[below(r, data.length)] ^= 0xff;
    rewrite(f, data);
    const mm = path.join(dir, path.basename(f).replace(/^pages-/, 'mm-'));
    const img = decodeAll(dir).find((d) => d.file === path.basename(mm));
    if (img) {
      img.value.pages_crc32 = zlib.crc32(data);
      rewrite(mm, encodeImage('mm', img.value));
    }
  }
  return `${path.basename(f)}: ${how}`;
}

function mutateRaw(r: Rand, dir: string): string {
  const files = fs.readdirSync(dir);
  const f = path.join(dir, pick(r, files));
  const data = fs.readFileSync(f);
  if (!data.length) return `${path.basename(f)}: empty already`;
  const at = pick(r, [0, 4, 8, 12, below(r, data.length)].filter((x) => x < data.length));
  data[at] ^= 1 << below(r, 8);
  rewrite(f, data);
  return `${path.basename(f)}: byte ${at} flipped`;
}

/** Mutate the image in `dir` (one to three changes); returns what was done. */
export function mutate(r: Rand, dir: string): string {
  const n = r() < 0.8 ? 1 : 2 + below(r, 2);
  const done: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    done.push(x < 0.75 ? mutateField(r, dir) : x < 0.85 ? mutateFiles(r, dir) : x < 0.95 ? mutatePages(r, dir) : mutateRaw(r, dir));
  }
  return done.join('; ');
}
