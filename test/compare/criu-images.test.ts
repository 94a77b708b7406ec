/**
 * The CRIU backend's own image reader, on images built here with the same
 * schemas (magics, u32-length-prefixed protobuf entries), so it runs on the
 * host where CRIU itself cannot.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { criuBackend, criuError, dumpArgv, needsShellJob, restoreArgv } from '../../backends/criu/index.js';
import { isCriuImage } from '../../backends/criu/identity.js';
import { describeImage, MAGIC, readStats } from '../../backends/criu/images.js';
import { packageRoot } from '../../userspace/paths.js';

const protos = ['inventory', 'pstree', 'core', 'mm', 'pagemap', 'stats'].map((f) => path.join(packageRoot, 'backends', 'criu', 'images', `${f}.proto`));
const root = new protobuf.Root().loadSync(protos, { keepCase: true });

function image(magics: number[], entries: [string, Record<string, unknown>][]): Buffer {
  const parts: Buffer[] = magics.map((m) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(m >>> 0);
    return b;
  });
  for (const [type, obj] of entries) {
    const T = root.lookupType(type);
    const body = Buffer.from(T.encode(T.fromObject(obj)).finish());
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length);
    parts.push(len, body);
  }
  return Buffer.concat(parts);
}

let dir = '';
test.before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-criu-img-'));
  const w = (f: string, b: Buffer) => fs.writeFileSync(path.join(dir, f), b);
  w('inventory.img', image([MAGIC.INVENTORY], [['inventory_entry', { img_version: 2, dump_uptime: 12_500_000 }]]));
  w('pstree.img', image([MAGIC.IMG_COMMON, MAGIC.PSTREE], [
    ['pstree_entry', { pid: 100, ppid: 1, pgid: 100, sid: 100, threads: [100, 103] }],
    ['pstree_entry', { pid: 101, ppid: 100, pgid: 100, sid: 100, threads: [101] }],
  ]));
  w('core-100.img', image([MAGIC.IMG_COMMON, MAGIC.CORE], [['core_entry', { mtype: 1, tc: { task_state: 1, exit_code: 0, personality: 0, flags: 0, blk_sigset: 1024, comm: 'wl' } }]]));
  w('mm-100.img', image([MAGIC.IMG_COMMON, MAGIC.MM], [['mm_entry', {
    mm_start_code: 0, mm_end_code: 0, mm_start_data: 0, mm_end_data: 0, mm_start_stack: 0, mm_start_brk: 0x1000, mm_brk: 0x3000, exe_file_id: 1,
    vmas: [{ start: 0x400000, end: 0x500000, pgoff: 0, shmid: 0, prot: 3, flags: 0x22, status: 1, fd: -1 }],
  }]]));
  w('pagemap-100.img', image([MAGIC.IMG_COMMON, MAGIC.PAGEMAP], [['pagemap_head', { pages_id: 1 }], ['pagemap_entry', { vaddr: 0x400000, nr_pages: 16 }], ['pagemap_entry', { vaddr: 0x420000, nr_pages: 4 }]]));
  w('stats-dump', image([MAGIC.IMG_SERVICE, MAGIC.STATS], [['stats_entry', { dump: {
    freezing_time: 1500, frozen_time: 250000, memdump_time: 100000, memwrite_time: 90000, pages_scanned: 300, pages_skipped_parent: 0, pages_written: 20, pages_lazy: 0 } }]]));
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('recognizes a CRIU image by inventory.img and its magic', async () => {
  assert.ok(isCriuImage(dir));
  assert.ok(await criuBackend.recognizes(dir));
  assert.not.ok(await criuBackend.recognizes(os.tmpdir()));
});

test('reads CRIU statistics', async () => {
  const s = await readStats(dir, 'dump');
  assert.is(s!.frozen_time, 250000);
  assert.is(s!.pages_written, 20);
  assert.is(await readStats(dir, 'restore'), undefined);
});

test('describes tree, tasks, memory and statistics', async () => {
  const d = await criuBackend.describe(dir);
  const text = d.lines.join('\n');
  assert.match(text, /format version 2, dumped 12\.5 s after boot/);
  assert.match(text, /process tree \(2 processes\)/);
  assert.match(text, /^ {2}100 wl \[alive\] ppid 1 pgid 100 sid 100, threads 100 103; 1 VMAs, 1\.0 MiB mapped, 20 pages/m);
  assert.match(text, /^ {4}101 \?/m);
  assert.match(text, /frozen 250\.0 ms/);
  const data = d.data as { tasks: { pid: number; brk?: { start: number; end: number } }[] };
  assert.equal(data.tasks[0].brk, { start: 0x1000, end: 0x3000 });
});

test('a wrong magic or a truncated entry is a CrError, not a crash', async () => {
  const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-criu-bad-'));
  fs.copyFileSync(path.join(dir, 'inventory.img'), path.join(bad, 'inventory.img'));
  const p = fs.readFileSync(path.join(dir, 'pstree.img'));
  fs.writeFileSync(path.join(bad, 'pstree.img'), p.subarray(0, p.length - 3));
  await describeImage(bad).then(() => assert.unreachable(), (e: Error) => {
    assert.is(e.name, 'CrError');
    assert.match(e.message, /pstree\.img: entry of \d+ bytes at byte \d+ runs past the end/);
  });
  const c = Buffer.from(p);
  c.writeUInt32LE(0x12345678, 4);
  fs.writeFileSync(path.join(bad, 'pstree.img'), c);
  await describeImage(bad).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /magic 0x12345678 is not the expected 0x50273030/));
  fs.rmSync(bad, { recursive: true, force: true });
});

test('flags: --shell-job only when the session or group is outside the tree; sibling restore unless detached', () => {
  assert.not.ok(needsShellJob(10, { pgrp: 10, session: 10, ttyNr: 0 }));
  assert.ok(needsShellJob(10, { pgrp: 10, session: 5, ttyNr: 0 }));
  assert.ok(needsShellJob(10, { pgrp: 10, session: 10, ttyNr: 34816 }));
  const a = restoreArgv({ dir: '/d' }, '/d/pid', false);
  assert.ok(a.includes('--restore-sibling') && a.includes('--restore-detached'));
  assert.not.ok(restoreArgv({ dir: '/d', detach: true }, '/d/pid', false).includes('--restore-sibling'));
  assert.ok(a.includes('--file-locks') && dumpArgv({ pid: 10, dir: '/d' }, false).includes('--file-locks'), 'locks are dumped, as by the other backends');
});

test('criu error lines: the cause, not the generic helper exit', () => {
  const log = '(00.001) Error (criu/util.c:642): exited, status=1\n(00.002) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n';
  assert.is(criuError(log), 'vdso: Unexpected rt vDSO area bounds');
  assert.is(criuError('nothing here'), undefined);
});

test.run();
