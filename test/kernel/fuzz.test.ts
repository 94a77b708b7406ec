/**
 * restart(2) reads untrusted input.  Feed it a few hundred damaged copies
 * of a good image: truncated, with bytes flipped, with header fields set
 * to boundary values.  As written to disk, every one must be refused with
 * an error (the trailer's checksum alone catches most); with the checksum
 * recomputed, so that the damage reaches the engine's parsers, each must
 * either be refused or restart something, and in no case may the kernel
 * log show a BUG, an Oops or a WARNING.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { helperPath } from '../../backends/kernel/sys.js';
import { sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, skipReason, startTo } from './env.js';

const t = skipReason ? test.skip : test;
const ROUNDS = 300;

/** Deterministic PRNG, so a failure can be reproduced. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

interface Obj {
  type: number;
  off: number;
  len: number;
}

function objects(img: Buffer): Obj[] {
  const out: Obj[] = [];
  for (let off = 0; off + 8 <= img.length;) {
    const len = img.readUInt32LE(off + 4);
    out.push({ type: img.readUInt32LE(off), off, len });
    if (len < 8) break;
    off += len;
  }
  return out;
}

function fixChecksum(img: Buffer): void {
  const objs = objects(img);
  const tail = objs.find((o) => o.type === 127 && o.off + 32 <= img.length);
  if (!tail) return;
  let sum = 0xcbf29ce484222325n;
  const mask = (1n << 64n) - 1n;
  for (let off = 0; off + 8 <= tail.off; off += 8) sum = ((sum ^ img.readBigUInt64LE(off)) * 0x100000001b3n) & mask;
  img.writeBigUInt64LE(sum, tail.off + 24);
}

const BOUNDARY = [0, 1, 7, 8, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffff8, 4096, 65536];

function mutate(good: Buffer, rand: () => number): { img: Buffer; fixed: boolean; what: string } {
  const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
  const objs = objects(good).filter((o) => o.type !== 11); // leave page data alone
  const o = pick(objs);
  const kind = Math.floor(rand() * 4);
  if (kind === 0) {
    const at = Math.floor(rand() * good.length);
    return { img: Buffer.from(good.subarray(0, at)), fixed: false, what: `truncated at ${at}` };
  }
  const img = Buffer.from(good);
  let what: string;
  if (kind === 1) {
    const at = o.off + Math.floor(rand() * o.len);
    img[at] ^= 1 << Math.floor(rand() * 8);
    what = `bit flip at ${at} (object type ${o.type})`;
  } else if (kind === 2) {
    const at = o.off + 4 * Math.floor(rand() * (o.len / 4));
    const v = pick(BOUNDARY);
    img.writeUInt32LE(v >>> 0, at);
    what = `u32 ${v} at ${at} (object type ${o.type})`;
  } else {
    const at = o.off + 8 * Math.floor(rand() * (o.len / 8));
    img.writeBigUInt64LE(pick([0n, 1n, (1n << 47n), (1n << 64n) - 1n, (1n << 63n), 0x7ffffffff000n]), at);
    what = `u64 boundary at ${at} (object type ${o.type})`;
  }
  const fixed = rand() < 0.5;
  if (fixed) fixChecksum(img);
  return { img, fixed, what };
}

async function tryRestart(file: string, log: string): Promise<'error' | 'ran'> {
  const h = execa(helperPath(), ['-k', file, log, '0:0:0:0'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], reject: false, buffer: false });
  let status = '';
  h.stdio[3]!.on('data', (c: Buffer) => {
    status += c.toString();
  });
  const ready = /^ready (\d+)/m;
  for (let i = 0; i < 500 && !status.includes('\n') && h.exitCode === null; i++) await sleep(5);
  const m = ready.exec(status);
  if (m) {
    try {
      process.kill(Number(m[1]), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  h.kill('SIGKILL');
  await h;
  return m ? 'ran' : 'error';
}

t(`restart refuses ${ROUNDS} damaged images without a kernel complaint`, async () => {
  const dir = tempDir('kfz');
  const images = tempDir('kfzimg');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('memsum'), [dir, '1000', '20'], out);
  while (!fs.readFileSync(out, 'utf8').includes('iter 3 ')) await sleep(10);
  await kernelBackend.dump({ pid: child.pid, dir: images });
  await child.done;
  const good = fs.readFileSync(path.join(images, 'kernel.img'));
  const before = dmesgTrouble().length;

  const rand = rng(20261125);
  const scratch = path.join(images, 'fuzz.img');
  const log = path.join(images, 'fuzz.log');
  let refused = 0;
  let ranFixed = 0;
  const wrong: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const m = mutate(good, rand);
    fs.writeFileSync(scratch, m.img);
    const r = await tryRestart(scratch, log);
    if (r === 'error') refused++;
    else if (m.fixed) ranFixed++;
    else wrong.push(`round ${i}: ${m.what} was accepted`);
  }
  console.log(`  ${ROUNDS} damaged images: ${refused} refused, ${ranFixed} with a fixed-up checksum restarted (metadata the engine does not check, e.g. register values)`);
  assert.equal(wrong, []);
  assert.equal(dmesgTrouble().slice(before), []);
  const lines = fs.readFileSync(log, 'utf8').split('\n').filter((l) => /error/.test(l));
  assert.ok(lines.length >= refused - 1, 'each refusal is explained in the log');
});

test.run();
