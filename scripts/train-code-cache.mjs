#!/usr/bin/env node
// Train the `cr` command's V8 code caches (after scripts/bundle.mjs and the
// native helpers are built): dump a small workload with the user backend
// and restore it, each a `cr` command run with CR_WRITE_CODE_CACHE=command,
// which writes FILE.dump.cache and FILE.restore.cache next to each bundle
// the command loaded (userspace/cli/launch.ts): the bytecode of every
// function a dump or a restore runs, not only the bundles' top levels
// (FILE.cache, which every other command uses). A fresh `cr` otherwise compiles
// each of those functions on its first call — while the tasks are frozen:
// in the VM a user-backend `cr dump` of 8 MiB was frozen 610 ms with the
// top-level caches and 490 ms with trained ones (medians of 9, same boot),
// and a `cr restore`'s backend call took 1224 against 912 ms.
//
// Only the user backend can run here (the kernel backend needs the patched
// kernel, CRIU runs in the VM only); where it cannot (no ptrace rights, no
// CHECKPOINT_RESTORE), the caches stay as bundle.mjs wrote them: they are
// caches, a command runs the same with either.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cr = path.join(root, 'dist', 'cr', 'cr.js');
const wl = path.join(root, 'compare', 'workloads', 'bin', 'wl');
// Some of every common kind of state, in a tree of two (fork, a child's memory from its parent's).
const workload = ['tree=2', 'mem=1', 'threads=1', 'files=8', 'eventfd=1', 'socketpair=16', 'sigaction=1', 'sigpending=1', 'itimer=1'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const alive = (pid) => fs.existsSync(`/proc/${pid}`);
const run = (args) => execFileSync(process.execPath, [cr, ...args], { env: { ...process.env, CR_WRITE_CODE_CACHE: 'command' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-train-'));
const out = path.join(scratch, 'out');
let group;
try {
  const fd = fs.openSync(out, 'w');
  // --detach: wl's own child runs the tree in a session of its own, whose id is its pid.
  await new Promise((resolve, reject) => spawn(wl, ['--detach', scratch, ...workload], { stdio: ['ignore', fd, 'ignore'] }).on('exit', resolve).on('error', reject));
  fs.closeSync(fd);
  for (let i = 0; i < 200 && !/^READY /m.test(fs.readFileSync(out, 'utf8')); i++) await sleep(25);
  const ready = /^READY (\d+)/m.exec(fs.readFileSync(out, 'utf8'));
  if (!ready) throw new Error('the workload did not start');
  group = Number(ready[1]);
  const images = path.join(scratch, 'img');
  run(['dump', '-t', String(group), '-D', images]);
  // The killed tree's zombies go to init; their pids must be free again for the restore.
  for (let i = 0; i < 200 && alive(group); i++) await sleep(25);
  run(['restore', '-D', images, '--detach']);
} catch (err) {
  const why = String(err.stderr || err.message).trim().split('\n')[0];
  process.stderr.write(`train-code-cache: cr dump and cr restore have no trained code caches (${why})\n`);
} finally {
  if (group !== undefined) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      /* not restored */
    }
  }
  fs.rmSync(scratch, { recursive: true, force: true });
}
