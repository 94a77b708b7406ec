/**
 * The user backend's page paths: pre-dumps and the dumps that build on
 * them (a chain of images, soft-dirty or userfaultfd tracking), lazy
 * restore (cr-pages serving faults while the task runs), and the refusal,
 * by the driver, of a way of restoring memory a backend lacks.  Each
 * program checks its own memory after the restore; nothing here is timed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { packageRoot } from '../../userspace/paths.js';
import { writeTracking } from '../../userspace/proc/pagemap.js';
import { alive, cr, sleep, start, tempDir, undisturbed, waitLines, withoutPid, writeInput } from '../lib/harness.js';
import { test } from '../lib/modes.js';

/** kmemwrite (test/kernel/programs): rewrites its memory generation by generation, checking each page first. */
const kmemwrite = path.join(packageRoot, 'test', 'kernel', 'programs', 'bin', 'kmemwrite');

/** Pre-dumps need a kernel that tracks written pages: soft-dirty bits (the VM's), or asynchronous userfaultfd write protection (Linux 6.7+). */
const tracking = writeTracking();
const tt = tracking ? test : test.skip;
if (!tracking) console.log('pre-dump chains skipped: this kernel cannot track the pages a task writes (they run in the comparison, in the VM)');

async function waitFor(file: string, re: RegExp, ms = 60000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (re.test(fs.readFileSync(file, 'utf8'))) return;
    await sleep(10);
  }
  throw new Error(`${file} never showed ${re}: ${fs.readFileSync(file, 'utf8').slice(-300)}`);
}

const lastGen = (out: string): number => Number([...fs.readFileSync(out, 'utf8').matchAll(/gen (\d+) ok/g)].at(-1)?.[1] ?? 0);
const twoMore = (out: string): RegExp => new RegExp(`gen ${lastGen(out) + 2} ok|BAD`);

const started = new Set<number>();
test.after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** Start kmemwrite with its output in a file, as a shell's > would. */
function startWriter(args: string[], out: string): { pid: number } {
  const fd = fs.openSync(out, 'w');
  const child = spawn(kmemwrite, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  started.add(child.pid!);
  return { pid: child.pid! };
}

/** Restore, let kmemwrite run two more generations and stop, and check what it says about its memory. */
async function restoreAndCheck(images: string, out: string, extra: string[] = []): Promise<void> {
  const r = await cr(['restore', '-D', images, '--detach', ...extra]);
  assert.is(r.exitCode, 0, r.all);
  const pid = Number(r.stdout.trim());
  await waitFor(out, twoMore(out));
  if (alive(pid)) process.kill(pid, 'SIGUSR1');
  await waitFor(out, /done\n$|BAD/);
  const text = fs.readFileSync(out, 'utf8');
  assert.not.match(text, /BAD/, text.slice(-400));
}

tt('pre-dump twice, then dump: the chain restores memstress exactly, and cr show tells it', async () => {
  const refDir = tempDir('pref');
  writeInput(refDir);
  const ref = await undisturbed('memstress', [refDir, '3000'], refDir);
  const dir = tempDir('prun');
  writeInput(dir);
  const [pre1, pre2, final] = [tempDir('ppre1'), tempDir('ppre2'), tempDir('pdump')];
  const run = start('memstress', [dir, '3000'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 10);
  const p1 = await cr(['pre-dump', '-t', String(run.pid), '-D', pre1]);
  assert.is(p1.exitCode, 0, p1.all);
  assert.match(p1.stderr, /cr: pre-dumped \d+ into/);
  assert.ok(alive(run.pid), 'a pre-dump leaves the task running');
  const p2 = await cr(['pre-dump', '-t', String(run.pid), '-D', pre2, '--prev-images-dir', pre1]);
  assert.is(p2.exitCode, 0, p2.all);
  const d = await cr(['dump', '-t', String(run.pid), '-D', final, '--prev-images-dir', pre2]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  assert.ok(fs.statSync(path.join(final, `pages-${run.pid}.img`)).size < fs.statSync(path.join(pre1, `pages-${run.pid}.img`)).size,
    'the dump saved fewer pages than the first pre-dump');

  const show = await cr(['show', final]);
  assert.is(show.exitCode, 0, show.all);
  assert.match(show.stdout, /unchanged since the pre-dump/);
  assert.match(show.stdout, new RegExp(`parent ${fs.realpathSync(pre2)}`));

  const r = await cr(['restore', '-D', final]);
  assert.is(r.exitCode, 0, r.all);
  assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body);
});

tt('a pre-dump while the program rewrites 5% of its memory, then the dump: the chain holds the moment of the dump', async () => {
  const dir = tempDir('pw');
  const out = path.join(dir, 'out.txt');
  const [pre, final] = [tempDir('pwpre'), tempDir('pwdump')];
  const w = startWriter(['32', '0', '5'], out);
  await waitFor(out, /gen 2 ok/);
  const p = await cr(['pre-dump', '-t', String(w.pid), '-D', pre]);
  assert.is(p.exitCode, 0, p.all);
  await waitFor(out, twoMore(out));
  const d = await cr(['dump', '-t', String(w.pid), '-D', final, '--prev-images-dir', pre]);
  assert.is(d.exitCode, 0, d.all);
  assert.ok(fs.statSync(path.join(final, `pages-${w.pid}.img`)).size < (32 << 20) / 4, 'only what was rewritten is saved');
  await restoreAndCheck(final, out);
});

/** The userfaultfds a task holds: [fd, fdinfo flags]. */
function userfaultfds(pid: number): [number, number][] {
  return fs.readdirSync(`/proc/${pid}/fd`).map(Number)
    .filter((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[userfaultfd]')
    .map((fd) => [fd, parseInt(/^flags:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1], 8)]);
}

(tracking === 'uffd-wp' ? test : test.skip)('without soft-dirty bits, a pre-dump leaves one close-on-exec userfaultfd at the top of the table, a pre-dump on top replaces it, the dump closes it', async () => {
  const dir = tempDir('pu');
  const out = path.join(dir, 'out.txt');
  const [pre1, pre2, final] = [tempDir('pupre1'), tempDir('pupre2'), tempDir('pudump')];
  const w = startWriter(['8', '0', '5'], out);
  await waitFor(out, /gen 2 ok/);
  const before = fs.readdirSync(`/proc/${w.pid}/fd`).map(Number);
  assert.equal(userfaultfds(w.pid), []);
  assert.is((await cr(['pre-dump', '-t', String(w.pid), '-D', pre1])).exitCode, 0);
  const [first, ...more] = userfaultfds(w.pid);
  assert.equal(more, [], 'one tracker');
  assert.ok(first![0] > Math.max(...before), 'above every descriptor the task had');
  assert.ok(first![1] & 0o2000000, 'close-on-exec');
  const show = await cr(['show', pre1]);
  assert.match(show.stdout, new RegExp(`a pre-dump: each task tracks the pages it writes with a userfaultfd \\(pid ${w.pid} fd ${first![0]}\\)`));
  assert.is(JSON.parse((await cr(['show', '--json', pre1])).stdout).trackers[0].fd, first![0]);
  assert.is((await cr(['pre-dump', '-t', String(w.pid), '-D', pre2, '--prev-images-dir', pre1])).exitCode, 0);
  assert.is(userfaultfds(w.pid).length, 1, 'replaced, not added to');
  await waitFor(out, twoMore(out));
  const d = await cr(['dump', '-t', String(w.pid), '-D', final, '--prev-images-dir', pre2, '--leave-running']);
  assert.is(d.exitCode, 0, d.all);
  assert.equal(userfaultfds(w.pid), [], 'the dump closed it');
  assert.equal(fs.readdirSync(`/proc/${w.pid}/fd`).map(Number), before);
  assert.ok(fs.statSync(path.join(final, `pages-${w.pid}.img`)).size < (8 << 20) / 2, 'only what was rewritten is saved');
  process.kill(w.pid, 'SIGKILL');
  while (alive(w.pid)) await sleep(10);
  await restoreAndCheck(final, out);
});

(tracking === 'uffd-wp' ? test : test.skip)('a pre-dump that fails writing its last object (CR_FAULT) takes its trackers back: the task runs on with none', async () => {
  const out = path.join(tempDir('pfail'), 'out.txt');
  const w = startWriter(['8', '0', '5'], out);
  await waitFor(out, /gen 2 ok/);
  const ok = tempDir('pfailok');
  assert.is((await cr(['pre-dump', '-t', String(w.pid), '-D', ok])).exitCode, 0);
  // the inventory is the last object written, after the trackers are given: every file the
  // first pre-dump wrote, and this one's link to it
  const objects = fs.readdirSync(ok).length + 1;
  const failing = tempDir('pfailed');
  const r = await cr(['pre-dump', '-t', String(w.pid), '-D', failing, '--prev-images-dir', ok], { env: { CR_FAULT: `dump-objects:${objects}` } });
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.stderr.trim(), /^cr: injected fault dump-objects:\d+ \(CR_FAULT\)$/);
  assert.equal(fs.readdirSync(failing), []);
  assert.equal(userfaultfds(w.pid), []);
  await waitFor(out, twoMore(out));
  process.kill(w.pid, 'SIGKILL');
});

(tracking === 'uffd-wp' ? test : test.skip)('a child forked after the pre-dump holds a copy of the tracker: the dump leaves it out of the image and closes it there too', async () => {
  // sh forks the subshell after the pre-dump; the subshell is sh still (no exec), holding sh's descriptors
  const sh = spawn('sh', ['-c', 'read go; (while :; do sleep 1; done) & wait'], { stdio: ['pipe', 'ignore', 'ignore'] });
  started.add(sh.pid!);
  await sleep(200);
  const pre = tempDir('pfpre');
  assert.is((await cr(['pre-dump', '-t', String(sh.pid), '-D', pre])).exitCode, 0);
  sh.stdin!.write('\n');
  let sub: number | undefined;
  for (const until = Date.now() + 10000; sub === undefined && Date.now() < until; await sleep(20)) {
    sub = fs.readFileSync(`/proc/${sh.pid}/task/${sh.pid}/children`, 'utf8').split(' ').map(Number).find((c) => c && userfaultfds(c).length);
  }
  assert.ok(sub, 'the subshell inherited the tracker');
  const d = await cr(['dump', '-t', String(sh.pid), '-D', tempDir('pfdump'), '--prev-images-dir', pre, '--leave-running']);
  assert.is(d.exitCode, 0, d.all);
  assert.equal([sh.pid!, sub!].map((p) => userfaultfds(p).length), [0, 0]);
  process.kill(sub!, 'SIGKILL');
  sh.kill('SIGKILL');
});

tt('a dump naming no pre-dump, or a pre-dump that is gone, is refused by name; the task runs on', async () => {
  const dir = tempDir('pn');
  const out = path.join(dir, 'out.txt');
  const w = startWriter(['4', '0'], out);
  await waitFor(out, /ready/);
  const plain = tempDir('pnplain');
  const d0 = await cr(['dump', '-t', String(w.pid), '-D', plain, '--leave-running']);
  assert.is(d0.exitCode, 0, d0.all);
  const d1 = await cr(['dump', '-t', String(w.pid), '-D', tempDir('pnx'), '--prev-images-dir', plain]);
  assert.is(d1.exitCode, 1);
  assert.match(d1.stderr, /is not a pre-dump/);
  const cow = await cr(['dump', '-t', String(w.pid), '-D', tempDir('pny'), '--cow']);
  assert.match(cow.stderr, /no copy-on-write dump/);
  assert.ok(alive(w.pid));

  const pre = tempDir('pnpre');
  const final = tempDir('pnfinal');
  assert.is((await cr(['pre-dump', '-t', String(w.pid), '-D', pre])).exitCode, 0);
  assert.is((await cr(['dump', '-t', String(w.pid), '-D', final, '--prev-images-dir', pre])).exitCode, 0);
  fs.rmSync(pre, { recursive: true });
  const r = await cr(['restore', '-D', final]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /parent.* is gone/);
  assert.not.ok(alive(w.pid));
});

test('without a way to track written pages, a pre-dump or a dump on one is refused in one line, and the task runs on', async () => {
  if (tracking) return;
  const dir = tempDir('pns');
  const out = path.join(dir, 'out.txt');
  const w = startWriter(['4', '0'], out);
  await waitFor(out, /ready/);
  for (const args of [['pre-dump', '-t', String(w.pid), '-D', tempDir('pnsa')], ['dump', '-t', String(w.pid), '-D', tempDir('pnsb'), '--prev-images-dir', dir]]) {
    const r = await cr(args);
    assert.is(r.exitCode, 1, r.all);
    assert.match(r.stderr.trim(), /^cr: kernel \S+ cannot track the pages a task writes \(neither CONFIG_MEM_SOFT_DIRTY nor [^\n]*$/);
  }
  assert.ok(alive(w.pid));
  process.kill(w.pid, 'SIGKILL');
});

/** kmemwrite of `mib` MiB, dumped (and so ended) after its second generation: its output and its image. */
async function dumpedWriter(name: string, mib: number): Promise<{ out: string; images: string }> {
  const out = path.join(tempDir(name), 'out.txt');
  const images = tempDir(`${name}img`);
  const w = startWriter([String(mib), '0'], out);
  await waitFor(out, /gen 2 ok/);
  const d = await cr(['dump', '-t', String(w.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  return { out, images };
}

test('lazy restore: the program rewrites its memory generation by generation, finding each page as it was saved', async () => {
  const { out, images } = await dumpedWriter('lz', 64);
  await restoreAndCheck(images, out, ['--lazy-pages']);
});

test('a task restored lazily forks, reads into, moves and drops memory it has not touched yet', async () => {
  const run = start('lazyshapes', ['128'], path.join(tempDir('lzs'), 'out.txt'));
  started.add(run.pid);
  await waitLines(run.out, 1);
  const images = tempDir('lzsimg');
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  const r = await cr(['restore', '-D', images, '--detach', '--lazy-pages']);
  assert.is(r.exitCode, 0, r.all);
  process.kill(Number(r.stdout.trim()), 'SIGUSR1');
  await waitFor(run.out, /done, \d+ bad\n/);
  const text = fs.readFileSync(run.out, 'utf8');
  assert.match(text, /done, 0 bad\n/, text);
  assert.is(text.match(/^ok /gm)?.length, 6, text);
});

test('a way of restoring memory that a backend lacks is refused by name before anything is touched', async () => {
  const { out, images } = await dumpedWriter('mm', 8);
  for (const [flags, refusal] of [
    [['--map-pages'], 'the user backend cannot map memory from the image: restore without --map-pages'],
    [['--backend=kernel', '--lazy-pages'], 'the kernel backend has no lazy restore of pages: restore without --lazy-pages'],
    [['--backend=criu', '--lazy-pages'], 'the criu backend has no lazy restore of pages: restore without --lazy-pages'],
    [['--map-pages', '--lazy-pages'], '--map-pages and --lazy-pages exclude each other'],
  ] as const) {
    const r = await cr(['restore', '-D', images, '--detach', ...flags]);
    assert.is(r.exitCode, 1, r.all);
    assert.is(r.stderr.trim(), `cr: ${refusal}`);
  }
  await restoreAndCheck(images, out);
});

test.run();
