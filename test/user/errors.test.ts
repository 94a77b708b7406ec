/**
 * Bad input gets a one-line error, a non-zero exit and changes nothing:
 * no half-restored task, no disturbed target, no partial image.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import * as assert from 'uvu/assert';
import { backends } from '../../backends/index.js';
import { encodeImage, imageFile, readImage } from '../../backends/user/image.js';
import type { Inventory } from '../../backends/user/inventory.js';
import { alive, cr, type CrRun, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { test } from '../lib/modes.js';

function oneLineError(r: CrRun, pattern: RegExp): void {
  assert.is.not(r.exitCode, 0, 'fails');
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line of error, got:\n${r.stderr}`);
  assert.match(lines[0], /^cr: /);
  assert.match(lines[0], pattern);
}

/** A pid that is free now. */
function freePid(): number {
  for (let pid = 30000; ; pid--) if (!alive(pid)) return pid;
}

/** A dumped (and killed) bigmem, for the image-corruption tests. */
async function dumpedImage(): Promise<{ images: string; pid: number }> {
  const dir = tempDir('bad');
  const images = tempDir('badimg');
  const run = start('bigmem', ['8', '500'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 3);
  const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await run.exited;
  return { images, pid: run.pid };
}

function copyImage(src: string): string {
  const dst = tempDir('mut');
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  return dst;
}

test('dump of a pid that does not exist', async () => {
  const pid = freePid();
  oneLineError(await cr(['dump', '-t', String(pid), '-D', tempDir('nx')]), new RegExp(`pid ${pid} does not exist`));
});

test('dump with a pid that is not a number', async () => {
  oneLineError(await cr(['dump', '-t', 'abc', '-D', tempDir('nx')]), /pid/);
});

test('the command line: a bad flag, a missing value or argument, an unknown command get one line naming it', async () => {
  const dir = tempDir('cli');
  oneLineError(await cr(['dump', '-t', '1', '-D', dir, '--no-such-flag']), /^cr: dump: unknown option '--no-such-flag'/);
  oneLineError(await cr(['dump', '-t', '1', '-D', dir, '--backend']), /^cr: dump: option '-b, --backend <name>' argument missing/);
  oneLineError(await cr(['dump', '-D', dir]), /^cr: dump: required option '-t, --tree <pid>' not given$/);
  oneLineError(await cr(['dump', '-t', '1', '-D', dir, '--leave-running=yes']), /'-R, --leave-running' does not take an argument/);
  oneLineError(await cr(['dump', '-t', '1', '-D', dir, '--cow', '--no-cow']), /--cow and --no-cow exclude each other/);
  oneLineError(await cr(['dump', '-t', '1', '-D', dir, 'extra']), /^cr: dump: unexpected argument 'extra'/);
  oneLineError(await cr(['show']), /^cr: show: missing argument <dir>$/);
  oneLineError(await cr(['thaw', '-3']), /^cr: thaw: /);
  oneLineError(await cr(['undump']), /^cr: unknown command 'undump' \(commands: dump, pre-dump, restore, thaw, show, check; /);
  oneLineError(await cr(['dump', '-b', 'nobackend', '-t', '1', '-D', dir]), /unknown backend 'nobackend' \(available: user, criu, kernel\)/);
  // Names every JavaScript object has are no commands or backends either.
  oneLineError(await cr(['constructor']), /^cr: unknown command 'constructor' /);
  oneLineError(await cr(['help', 'toString']), /^cr: unknown command 'toString' /);
  oneLineError(await cr(['dump', '-b', 'constructor', '-t', '1', '-D', dir]), /unknown backend 'constructor'/);
  oneLineError(await cr(['restore', '-b', '__proto__', '-D', dir]), /unknown backend '__proto__'/);
  assert.equal(fs.readdirSync(dir), [], 'nothing written');
  const none = await cr([]);
  assert.is(none.exitCode, 1);
  assert.match(none.stderr, /^Usage: cr <command> \[options\]/);
  const help = await cr(['dump', '--help']);
  assert.is(help.exitCode, 0, help.all);
  assert.match(help.stdout, /^ {2}-t, --tree <pid> +root of the process tree \(required\)$/m);
  assert.match(help.stdout, /^ {2}-b, --backend <name> +backend: user, kernel or criu \(default: user\)$/m);
  assert.equal((await cr(['help', 'dump'])).stdout, help.stdout);
  assert.match((await cr(['--help'])).stdout, /^ {2}thaw <pid> +let a tree/m);
  assert.match((await cr(['-V'])).stdout, /^\d+\.\d+\.\d+$/);
});

test('restore from a missing directory', async () => {
  oneLineError(await cr(['restore', '-D', '/nonexistent/cr-image']), /does not exist/);
  oneLineError(await cr(['show', '/nonexistent/cr-image']), /does not exist/);
});

test('truncated or corrupted images are refused before any task is created', async () => {
  const { images, pid } = await dumpedImage();
  const mutations: [string, (dir: string) => void, RegExp][] = [
    ['truncated mm image', (d) => fs.truncateSync(path.join(d, `mm-${pid}.img`), 40), /truncated/],
    ['corrupted cpu image', (d) => flipByte(path.join(d, `cpu-${pid}.img`), 100), /corrupted/],
    ['truncated pages', (d) => fs.truncateSync(path.join(d, `pages-${pid}.img`), 4096 * 10), /truncated|corrupted/],
    // page data carries no checksum (README: Image format); its size is checked
    ['pages file grown', (d) => fs.appendFileSync(path.join(d, `pages-${pid}.img`), Buffer.alloc(4096)), /truncated or corrupted/],
    ['bad magic', (d) => flipByte(path.join(d, 'inventory.img'), 0), /bad magic|no image/],
    ['missing files image', (d) => fs.rmSync(path.join(d, `files-${pid}.img`)), /cannot read/],
    ['empty inventory', (d) => fs.writeFileSync(path.join(d, 'inventory.img'), ''), /truncated|no image/],
  ];
  for (const [what, mutate, pattern] of mutations) {
    const dir = copyImage(images);
    mutate(dir);
    const r = await cr(['restore', '-D', dir]);
    oneLineError(r, pattern);
    assert.not.ok(alive(pid), `${what}: no task was left behind`);
  }
  // The untouched image still restores.
  const r = await cr(['restore', '-D', images, '--detach']);
  assert.is(r.exitCode, 0, r.all);
  assert.is(Number(r.stdout.trim()), pid);
  process.kill(pid, 'SIGKILL');
});

test('a restore that fails in a forked task\'s first calls leaves none of the tree, not even a zombie the restorer traces', async () => {
  const dir = tempDir('pgfail');
  const images = tempDir('pgfailimg');
  const run = start('tree', ['1000000'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 5);
  assert.is((await cr(['dump', '-t', String(run.pid), '-D', images])).exitCode, 0);
  await run.exited.catch(() => undefined);
  // A task put in the group of one that leads none: setpgid says EPERM in the batch right after its fork.
  const inv = readImage<Inventory>(images, 'inventory');
  const noLeader = inv.tasks.find((t) => t.pgid !== t.pid && !t.zombie)!;
  const victim = inv.tasks.find((t, i) => i > inv.tasks.indexOf(noLeader) && !t.zombie && t.sid !== t.pid && t.pgid !== t.pid && t.ppid !== noLeader.pid)
    ?? inv.tasks.find((t, i) => i > inv.tasks.indexOf(noLeader) && !t.zombie && t.sid !== t.pid && t.pgid !== t.pid)!;
  victim.pgid = noLeader.pid;
  const bad = copyImage(images);
  fs.writeFileSync(imageFile(bad, 'inventory'), encodeImage('inventory', inv));
  // In this process, the restorer and so the tracer: the cr command's exit would hide a zombie left traced.
  const err = await backends.user.restore({ dir: bad }).then(() => undefined, (e: Error) => e);
  assert.ok(err, 'the restore fails');
  assert.match(err!.message, new RegExp(`setpgid ${noLeader.pid}: EPERM`));
  assert.not.ok(err!.message.includes('\n'), 'in one line');
  // Orphaned zombies are init's to reap, which takes it a moment; one we still traced would stay.
  for (const deadline = Date.now() + 5000; inv.tasks.some((t) => alive(t.pid)) && Date.now() < deadline;) await sleep(20);
  for (const t of inv.tasks) assert.not.ok(alive(t.pid), `pid ${t.pid} is gone, reaped too`);
  // The image as dumped restores: every pid is free again.
  const r = await cr(['restore', '-D', images, '--detach']);
  assert.is(r.exitCode, 0, r.all);
  for (const t of inv.tasks) {
    try {
      process.kill(t.pid, 'SIGKILL');
    } catch {
      /* a zombie's parent went first */
    }
  }
});

function flipByte(file: string, at: number): void {
  const b = fs.readFileSync(file);
  b[at] ^= 0xff;
  fs.writeFileSync(file, b);
}

test('restore refuses a pid that is in use and leaves its owner alone', async () => {
  const dir = tempDir('busy');
  const images = tempDir('busyimg');
  const run = start('bigmem', ['8', '300'], path.join(dir, 'out.txt'));
  await waitLines(run.out, 3);
  assert.is((await cr(['dump', '-t', String(run.pid), '-D', images, '-R'])).exitCode, 0);
  oneLineError(await cr(['restore', '-D', images]), new RegExp(`pid ${run.pid} is in use`));
  assert.ok(alive(run.pid));
  run.child.kill('SIGKILL');
  await run.exited;
});

test('a dump that fails half-way (image disk full) leaves the task running as before', async () => {
  const ref = await undisturbed('bigmem', ['64', '150'], tempDir('fullref'));
  const mnt = tempDir('full');
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  try {
    const dir = tempDir('fullrun');
    const run = start('bigmem', ['64', '150'], path.join(dir, 'out.txt'));
    await waitLines(run.out, 3);
    oneLineError(await cr(['dump', '-t', String(run.pid), '-D', mnt]), /ENOSPC/);
    assert.ok(alive(run.pid), 'still running');
    assert.equal(fs.readdirSync(mnt), [], 'the partial image was removed');
    assert.is(await run.exited, 0);
    assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, withoutPid(ref).body, 'and computes exactly as if undisturbed');
  } finally {
    await execa('umount', [mnt]);
  }
});

test('checkpoint needs ptrace rights over the task', async () => {
  const run = start('bigmem', ['8', '300'], path.join(tempDir('perm'), 'out.txt'));
  await waitLines(run.out, 3);
  oneLineError(await cr(['dump', '-t', String(run.pid), '-D', tempDir('permimg')], { uid: 65534 }), /not permitted to trace/);
  assert.ok(alive(run.pid));
  run.child.kill('SIGKILL');
  await run.exited;
});

test('an unsupported object is refused at dump time, naming it, and the task goes on', async () => {
  // Node hands a child's extra stdio 'pipe' over as a socket at fd 3.
  const child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  await new Promise((r) => child.once('spawn', r));
  oneLineError(await cr(['dump', '-t', String(child.pid), '-D', tempDir('unsup')]),
    new RegExp(`pid ${child.pid} fd 3: unix stream socket connected to an unnamed socket outside the image is not supported`));
  assert.ok(alive(child.pid!));
  child.kill('SIGKILL');
});

test('processes sharing an fs_struct without being threads are refused, and go on', async () => {
  for (const [mode, what] of [['fs', 'one cwd and umask \\(fs_struct\\) \\(clone CLONE_FS']]) {
    const run = start('sharedtable', [mode], path.join(tempDir('shtab'), 'out.txt'));
    await waitLines(run.out, 1);
    const kid = Number(fs.readFileSync(run.out, 'utf8').split(' ')[2]);
    oneLineError(await cr(['dump', '-t', String(run.pid), '-D', tempDir('shtabimg')]), new RegExp(`pids ${run.pid} and ${kid} share ${what}`));
    assert.ok(alive(run.pid) && alive(kid), `${mode}: both processes run on`);
    run.child.kill('SIGKILL');
    await run.exited;
  }
});

test('a seccomp filter, a message queue, a thread with its own uid are refused by name, and the task goes on', async () => {
  for (const [mode, why] of [['seccomp', 'a seccomp filter'], ['mqueue', 'fd 3: POSIX message queue'], ['threadcreds', 'credentials \\(Uid\\) differ']]) {
    const run = start('refuse', [mode], path.join(tempDir('refuse'), 'out.txt'));
    await waitLines(run.out, 1);
    oneLineError(await cr(['dump', '-t', String(run.pid), '-D', tempDir('refuseimg')]), new RegExp(why));
    assert.ok(alive(run.pid), `${mode}: the task runs on`);
    run.child.kill('SIGKILL');
    await run.exited;
  }
});

test('cr check reports what the user backend needs', async () => {
  const r = await cr(['check', '--backend=user']);
  assert.is(r.exitCode, 0, r.all);
  assert.match(r.stdout, /clone3 set_tid/);
  assert.match(r.stdout, /looks good/);
});

test.run();
