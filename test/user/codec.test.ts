/**
 * The image codec (backends/user/codec.ts) against protobufjs, the
 * reference implementation of the same schema: every message of the image
 * schema, filled with values at the edges of each type, encodes to bytes
 * protobufjs decodes to the same values, and protobufjs's bytes decode
 * back to them.
 */
import fs from 'node:fs';
import protobuf from 'protobufjs';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { decode, encode, SCHEMA_JSON } from '../../backends/user/codec.js';

const root = protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(SCHEMA_JSON, 'utf8')));
const user = root.lookup('crlab.user') as protobuf.Namespace;
const types = user.nestedArray.filter((t): t is protobuf.Type => t instanceof protobuf.Type);

const EDGES: Record<string, unknown[]> = {
  uint32: [0, 1, 127, 128, 0xffffffff], int32: [0, -1, 2147483647, -2147483648], sint32: [0, -1, 1, -2147483648, 2147483647],
  uint64: [0n, 1n, 0xffffffffffffffffn, 1n << 53n], int64: [0n, -1n, -(1n << 63n), (1n << 63n) - 1n],
  bool: [false, true], string: ['', 'é/x\u0000y'], bytes: [Buffer.alloc(0), Buffer.from([0, 255, 7])],
};

/** A value of `type` whose fields take the `pick`-th edge value of theirs, nested `depth` deep. */
function sample(type: protobuf.Type, pick: number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    f.resolve();
    const one = (k: number): unknown => {
      if (f.resolvedType instanceof protobuf.Type) return depth ? sample(f.resolvedType, k, depth - 1) : null;
      if (f.resolvedType instanceof protobuf.Enum) {
        const names = Object.keys(f.resolvedType.values);
        return names[k % names.length];
      }
      const edges = EDGES[f.type];
      if (!edges) throw new Error(`no edge values for ${f.type}`);
      return edges[k % edges.length];
    };
    out[f.name] = f.repeated ? [one(pick), one(pick + 1), one(pick + 2)].filter((x) => x !== null) : one(pick);
  }
  return out;
}

/** protobufjs's plain form of a decoded message, in the codec's terms (bigint, Buffer, enum names). */
function plain(type: protobuf.Type, msg: protobuf.Message): unknown {
  const obj = type.toObject(msg, { longs: String, enums: String, defaults: true, arrays: true }) as Record<string, unknown>;
  const conv = (t: protobuf.Type, o: Record<string, unknown>) => {
    for (const f of t.fieldsArray) {
      const one = (x: unknown) => {
        if (/64$/.test(f.type)) return BigInt(x as string);
        if (f.resolvedType instanceof protobuf.Type && x) conv(f.resolvedType, x as Record<string, unknown>);
        if (f.type === 'bytes') return Buffer.from(x as Uint8Array);
        return x;
      };
      const v = o[f.name];
      o[f.name] = Array.isArray(v) ? v.map(one) : one(v);
    }
  };
  conv(type, obj);
  return obj;
}

const forProtobufjs = (v: unknown): unknown =>
  typeof v === 'bigint' ? v.toString() : Array.isArray(v) ? v.map(forProtobufjs)
    : v && typeof v === 'object' && !(v instanceof Uint8Array) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, forProtobufjs(x)])) : v;

test('every image message encodes as protobufjs decodes it, and decodes what protobufjs encodes', () => {
  assert.ok(types.length > 20);
  for (const type of types) {
    for (let pick = 0; pick < 5; pick++) {
      const value = sample(type, pick, 2);
      const ours = encode(type.name, value);
      const theirs = Buffer.from(type.encode(type.fromObject(forProtobufjs(value) as object)).finish());
      const expected = plain(type, type.decode(theirs));
      assert.equal(plain(type, type.decode(ours)), expected, `${type.name} #${pick}: protobufjs reads our bytes`);
      assert.equal(decode(type.name, theirs), expected, `${type.name} #${pick}: we read protobufjs's bytes`);
      assert.equal(decode(type.name, ours), expected, `${type.name} #${pick}: round trip`);
    }
    // nothing set: every field at its default
    assert.equal(decode(type.name, encode(type.name, {})), plain(type, type.decode(type.encode(type.create()).finish())), `${type.name}: defaults`);
  }
});

test('a nested message or packed list longer than a one-byte length reads back whole', () => {
  const check = (name: string, value: Record<string, unknown>) => {
    const type = user.lookupType(name);
    const ours = encode(name, value);
    assert.equal(plain(type, type.decode(ours)), plain(type, type.decode(Buffer.from(type.encode(type.fromObject(forProtobufjs(value) as object)).finish()))), `${name}: protobufjs reads our bytes`);
    assert.equal(decode(name, ours), plain(type, type.decode(ours)), `${name}: round trip`);
  };
  // lengths of one, two and three varint bytes, nested two deep
  for (const n of [100, 127, 128, 300, 20000]) {
    check('Mm', { layout: { auxv: Buffer.alloc(n, 7), exe: 'é'.repeat(n) }, vmas: [{ start: 4096n, end: 8192n, path: 'x'.repeat(n) }] });
    check('Cpu', { sched: { cpus: Array.from({ length: n }, (_, i) => i * 4099) }, nspid: [1, 2, 3] });
  }
});

test('a length past the end or a wrong wire type is refused, not misread', () => {
  assert.throws(() => decode('Mm', Buffer.from([0x0a, 0x7f, 0x01])), /beyond the end/);
  assert.throws(() => decode('Mm', Buffer.from([0x08 | 7, 0])), /wire type/);
});

test.run();
