/**
 * Copy-on-write sharing between a parent and its forked children survives
 * dump and restore: the tree's memory does not grow, a page a child has not
 * written is still its parent's very page, and a write still separates them;
 * also when the restore is lazy.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { cr, sleep, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { test } from '../lib/modes.js';

const childrenOf = (pid: number) => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
/** Proportional set size of the tree, in kB: shared pages count once across it. */
const treePss = (pid: number) => [pid, ...childrenOf(pid)].reduce((kb, p) => kb + Number(/^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))![1]), 0);

/** Dump the cow tree and restore it (with `flags`): every check it makes of its pages holds, and it takes no more memory. */
async function keepsSharing(flags: string[]): Promise<void> {
  const ref = await undisturbed('cow', ['32', '250'], tempDir('cowref'));
  const images = tempDir('cowimg');
  const run = start('cow', ['32', '250'], path.join(tempDir('cow'), 'out.txt'));
  await waitLines(run.out, 3);
  const before = treePss(run.pid);
  assert.ok(before < 40 * 1024, `32 MiB shared by four processes is counted once (${before} kB)`);

  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  const show = (await cr(['show', images])).stdout;
  assert.match(show, /\d+ pages saved, 8[12]\d\d shared with the parent, 1 dropped/, 'a child saves only what differs');
  const pages = fs.readdirSync(images).filter((f) => f.startsWith('pages-')).reduce((n, f) => n + fs.statSync(path.join(images, f)).size, 0);
  assert.ok(pages < 34 << 20, `the shared pages are saved once (${pages} bytes of pages)`);

  const r = await cr(['restore', '-D', images, '--detach', ...flags]);
  assert.is(r.exitCode, 0, r.all);
  const after = treePss(run.pid);
  assert.ok(after < before + 4096, `the restored tree takes what it took (${after} kB, was ${before} kB)`);
  while (!fs.readFileSync(run.out, 'utf8').includes('\npid ')) await sleep(50);
  const got = withoutPid(fs.readFileSync(run.out, 'utf8'));
  assert.is(got.body, withoutPid(ref).body, 'every child saw its parent\'s pages at every step, and its own after a write');
  assert.match(got.body, /child 2: .* not shared at 0 steps, shared after its write 0\n/);
  assert.is(got.pid, run.pid);
}

test('a forked tree keeps its copy-on-write sharing: same memory, same physical pages, separated by a write', () => keepsSharing([]));

// The pages children inherit go in before they are forked; the parent's own mappings come lazily.
test('restored lazily, a forked tree keeps its copy-on-write sharing', () => keepsSharing(['--lazy-pages']));

test.run();
