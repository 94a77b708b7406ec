/**
 * The kernel engine's page paths: copy-on-write checkpoints (the tasks run
 * and rewrite their memory while it is written out), pre-dumps and
 * incremental dumps (a chain of images), restore by mapping the image,
 * and a task restored by mapping checkpointed again.  Each program checks
 * its own memory after the restore; nothing here is timed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { alive, cr, sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, skipReason, startTo } from './env.js';

const t = skipReason ? test.skip : test;
if (skipReason) console.log(`kernel page tests skipped: ${skipReason}`);

/** Every program a test started: one a failed test leaves behind must not keep the suite alive. */
const started = new Set<number>();
function startProgram(program: string, args: string[], out: string): ReturnType<typeof startTo> {
  const child = startTo(program, args, out);
  started.add(child.pid);
  return child;
}
test.after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

async function waitFor(file: string, re: RegExp, ms = 60000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (fs.existsSync(file) && re.test(fs.readFileSync(file, 'utf8'))) return;
    await sleep(10);
  }
  throw new Error(`${file} never showed ${re}: ${fs.existsSync(file) ? fs.readFileSync(file, 'utf8').slice(-300) : 'no file'}`);
}

const lastGen = (out: string): number => Number([...fs.readFileSync(out, 'utf8').matchAll(/gen (\d+) ok/g)].at(-1)?.[1] ?? 0);
/** Two more generations done since now (or the program's end). */
const twoMore = (out: string): RegExp => new RegExp(`gen ${lastGen(out) + 2} ok|BAD`);

/** Restore `images`, let kmemwrite run two more generations and end, and check what it says. */
async function restoreAndCheck(images: string, out: string, opts: { mapPages?: boolean } = {}): Promise<void> {
  const r = await kernelBackend.restore({ dir: images, mapPages: opts.mapPages });
  await waitFor(out, twoMore(out));
  if (alive(r.pids[0])) process.kill(r.pids[0], 'SIGUSR1');
  assertEndedWell(out, await r.wait());
}

/** kmemwrite, told to end (SIGUSR1), found its memory right and ended well. */
function assertEndedWell(out: string, status: unknown): void {
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /BAD/, text.slice(-400));
  assert.match(text, /done\n$/);
  assert.equal(status, { code: 0, signal: null });
}

t('copy-on-write: a program rewriting its memory during the write-out comes back as it was at the snapshot', async () => {
  for (const leaveRunning of [true, false]) {
    const dir = tempDir('kcow');
    const images = tempDir('kcowimg');
    const out = path.join(dir, 'out.txt');
    const child = startProgram(kprogram('kmemwrite'), ['64', '0'], out);
    await waitFor(out, /gen 2 ok/);
    const d = await kernelBackend.dump({ pid: child.pid, dir: images, cow: true, leaveRunning });
    const log = fs.readFileSync(path.join(images, 'kernel.log'), 'utf8');
    assert.match(log, /frozen for \d+ us, done in \d+ us/);
    // the walk before the freeze was either all the snapshot or the part of it the program had not rewritten
    assert.match(log, /the pages shared before the freeze are unchanged|\d+ of its pages were as shared before the freeze/);
    assert.ok((d.stats.pagesWritten ?? 0) >= 64 * 256, `${d.stats.pagesWritten} pages saved`);
    if (leaveRunning) {
      // the original ran on through the write-out, undisturbed
      await waitFor(out, twoMore(out));
      assert.not.match(fs.readFileSync(out, 'utf8'), /BAD/);
      process.kill(child.pid, 'SIGKILL');
    }
    assert.is(await child.done, 'SIGKILL');
    await restoreAndCheck(images, out);
  }
  assert.equal(dmesgTrouble(), []);
});

/** kmemwrite in step mode, its output appended to @out: a restored copy adds its lines after the original's. */
function startStepping(mib: number, out: string): { pid: number; done: Promise<number | string | null> } {
  const fd = fs.openSync(out, 'a');
  const child = spawn(kprogram('kmemwrite'), [String(mib), '0', '100', 'step'], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  started.add(child.pid!);
  return { pid: child.pid!, done: new Promise((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code))) };
}

const okLines = (out: string): number => [...fs.readFileSync(out, 'utf8').matchAll(/gen \d+ ok/g)].length;

/** Restore a stepping kmemwrite, have it check and rewrite its memory twice, end it, and check what it says. */
async function restoreStepping(images: string, out: string): Promise<void> {
  const r = await kernelBackend.restore({ dir: images });
  for (let i = 0; i < 2; i++) {
    const n = okLines(out);
    process.kill(r.pids[0], 'SIGUSR2');
    const until = Date.now() + 60000;
    while (okLines(out) === n && !/BAD/.test(fs.readFileSync(out, 'utf8'))) {
      if (Date.now() > until) throw new Error(`no generation after SIGUSR2: ${fs.readFileSync(out, 'utf8').slice(-300)}`);
      await sleep(10);
    }
  }
  process.kill(r.pids[0], 'SIGUSR1');
  assertEndedWell(out, await r.wait());
}

t('copy-on-write of a program at rest: its pages are shared before the freeze, and a write racing with the checkpoint is not in the image', async () => {
  const dir = tempDir('kearly');
  const out = path.join(dir, 'out.txt');
  const child = startStepping(16, out);
  await waitFor(out, /gen 1 ok/);
  // at rest in sigsuspend(2): nothing changes its memory between the early walk and the freeze
  const rest = tempDir('kearlyimg');
  await kernelBackend.dump({ pid: child.pid, dir: rest, cow: true, leaveRunning: true });
  assert.match(fs.readFileSync(path.join(rest, 'kernel.log'), 'utf8'), /the pages shared before the freeze are unchanged/);
  // a generation (a rewrite, a page touched for the first time, a region mapped afresh in place)
  // started at some moment of the next checkpoint: before, between the two walks, or during the write-out
  const raced = tempDir('kearlyimg2');
  const racer = execa('sh', ['-c', `sleep 0.02; kill -USR2 ${child.pid}`]);
  await kernelBackend.dump({ pid: child.pid, dir: raced, cow: true, leaveRunning: true });
  await racer;
  await waitFor(out, /gen 2 ok/);
  process.kill(child.pid, 'SIGKILL');
  assert.is(await child.done, 'SIGKILL');
  await restoreStepping(rest, out);
  await restoreStepping(raced, out);
  assert.equal(dmesgTrouble(), []);
});

t('pre-dump twice, then dump: the chain of images restores the program, and cr show tells the chain', async () => {
  const refDir = tempDir('kiref');
  const ref = await execa(kprogram('memsum'), [refDir, '45', '50']);
  const dir = tempDir('kirun');
  const out = path.join(dir, 'out.txt');
  const [pre1, pre2, final] = [tempDir('kipre1'), tempDir('kipre2'), tempDir('kidump')];
  const child = startProgram(kprogram('memsum'), [dir, '45', '50'], out);
  await waitFor(out, /iter 5 /);
  const p1 = await kernelBackend.preDump!({ pid: child.pid, dir: pre1 });
  assert.ok(alive(child.pid), 'a pre-dump leaves the task running');
  await waitFor(out, /iter 12 /);
  await kernelBackend.preDump!({ pid: child.pid, dir: pre2, prevImagesDir: pre1 });
  await waitFor(out, /iter 20 /);
  const d = await kernelBackend.dump({ pid: child.pid, dir: final, prevImagesDir: pre2 });
  assert.is(await child.done, 'SIGKILL');
  assert.ok((d.stats.pagesWritten ?? 0) < (p1.stats.pagesWritten ?? 0),
    `the dump saved ${d.stats.pagesWritten} pages, the first pre-dump ${p1.stats.pagesWritten}`);

  const show = await cr(['show', final]);
  assert.is(show.exitCode, 0, show.all);
  assert.match(show.stdout, new RegExp(`unchanged pages in ${path.join(fs.realpathSync(pre2), 'kernel.img')}`));
  assert.match(show.stdout, /more unchanged in the parent/);
  assert.match(show.stdout, /checksum 0x[0-9a-f]+ ok/);
  const show2 = await cr(['show', pre2]);
  assert.match(show2.stdout, new RegExp(`unchanged pages in ${path.join(fs.realpathSync(pre1), 'kernel.img')}.*tracks the pages written`));

  const r = await kernelBackend.restore({ dir: final });
  assert.equal(await r.wait(), { code: 0, signal: null });
  assert.is(fs.readFileSync(out, 'utf8'), ref.stdout + '\n');
  assert.equal(dmesgTrouble(), []);
});

t('an incremental dump needs its pre-dump: refused without one, and a missing parent fails the restore cleanly', async () => {
  const dir = tempDir('kinone');
  const out = path.join(dir, 'out.txt');
  const child = startProgram(kprogram('kmemwrite'), ['4', '0'], out);
  await waitFor(out, /ready/);
  const pre = tempDir('kinopre');
  const err = await kernelBackend.dump({ pid: child.pid, dir: tempDir('kinoimg'), prevImagesDir: pre }).catch((e: unknown) => e);
  assert.match(String(err), /holds no kernel-backend image/);
  // a plain image is no pre-dump
  await kernelBackend.dump({ pid: child.pid, dir: pre, leaveRunning: true });
  const err2 = await kernelBackend.dump({ pid: child.pid, dir: tempDir('kinoimg'), prevImagesDir: pre }).catch((e: unknown) => e);
  assert.match(String(err2), /is not a pre-dump/);
  assert.ok(alive(child.pid));

  const p = await cr(['pre-dump', '--backend=kernel', '-t', String(child.pid), '-D', pre]);
  assert.is(p.exitCode, 0, p.all);
  assert.match(p.stderr, /cr: pre-dumped \d+ into/);
  const final = tempDir('kinofinal');
  await kernelBackend.dump({ pid: child.pid, dir: final, prevImagesDir: pre });
  assert.is(await child.done, 'SIGKILL');
  fs.rmSync(pre, { recursive: true });
  const gone = await kernelBackend.restore({ dir: final }).catch((e: unknown) => e);
  assert.match(String(gone), /takes its unchanged pages from .*, which is gone/);
  assert.not.ok(alive(child.pid));
});

t('a pre-dump while the program writes 5% of its memory, then the dump: the chain holds the snapshot', async () => {
  const dir = tempDir('kipw');
  const out = path.join(dir, 'out.txt');
  const pre = tempDir('kipwpre');
  const final = tempDir('kipwdump');
  const child = startProgram(kprogram('kmemwrite'), ['64', '0', '5'], out);
  await waitFor(out, /gen 2 ok/);
  await kernelBackend.preDump!({ pid: child.pid, dir: pre });
  await waitFor(out, twoMore(out));
  const d = await kernelBackend.dump({ pid: child.pid, dir: final, prevImagesDir: pre });
  assert.is(await child.done, 'SIGKILL');
  assert.ok((d.stats.pagesWritten ?? 0) < 64 * 256 / 4, `${d.stats.pagesWritten} pages saved by the dump`);
  await restoreAndCheck(final, out);
  assert.equal(dmesgTrouble(), []);
});

/** Bytes free on the file system that holds `dir`. */
const freeBytes = (dir: string): number => {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
};

t('restore by mapping: memory mapped from the image, written again, checkpointed again and restored', async () => {
  const dir = tempDir('kmap');
  const freeBefore = freeBytes(dir);
  const out = path.join(dir, 'out.txt');
  const images = tempDir('kmapimg');
  const child = startProgram(kprogram('kmemwrite'), ['32', '0'], out);
  await waitFor(out, /gen 2 ok/);
  await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(await child.done, 'SIGKILL');

  const r = await kernelBackend.restore({ dir: images, mapPages: true, detach: true });
  const log = fs.readFileSync(path.join(images, 'kernel.log'), 'utf8');
  const mapped = /(\d+) of them mapped from the image/.exec(log);
  assert.ok(mapped && Number(mapped[1]) >= 32 * 256, log.slice(-400));
  const maps = fs.readFileSync(`/proc/${r.pids[0]}/maps`, 'utf8');
  assert.match(maps, /kernel\.img/);
  await waitFor(out, twoMore(out));

  // memory restored by mapping is anonymous memory to the next checkpoint
  const again = tempDir('kmapimg2');
  await kernelBackend.dump({ pid: r.pids[0], dir: again });
  const show = (await kernelBackend.describe(again)).lines.join('\n');
  assert.not.match(show, /kernel\.img/);
  fs.rmSync(images, { recursive: true });
  await sleep(100);
  await restoreAndCheck(again, out);
  assert.equal(dmesgTrouble(), []);

  // once no task maps them, deleted images give their space back: the engine keeps no reference
  fs.rmSync(again, { recursive: true });
  const slack = 8 << 20;
  for (let i = 0; i < 50 && freeBytes(dir) < freeBefore - slack; i++) await sleep(100);
  assert.ok(freeBytes(dir) >= freeBefore - slack, `${((freeBefore - freeBytes(dir)) / 2 ** 20).toFixed(1)} MiB of the deleted images still taken`);
});

test.run();
