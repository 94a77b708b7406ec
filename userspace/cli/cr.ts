#!/usr/bin/env node
/**
 * cr: one command line for every checkpoint/restart backend.
 *
 *   cr dump --backend=user -t PID -D DIR [--leave-running] [--shell-job] [--tcp-established] [--cow] [--prev-images-dir DIR0]
 *   cr pre-dump --backend=user -t PID -D DIR [--prev-images-dir DIR0]
 *   cr restore [--backend=user] -D DIR [--detach] [--frozen] [--shell-job] [--map-pages | --lazy-pages]
 *   cr thaw [--backend=kernel] PID
 *   cr show DIR [--json]
 *   cr check [--backend=user]
 *
 * The driver knows backends only through the Backend interface.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backendNames, backends, loadBackend } from '../../backends/index.js';
import type { Backend, BackendName, DumpResult } from '../../backends/types.js';
import { CrError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { timed } from './timings.js';

/** The backend named, its code loaded. */
async function pickBackend(name: string): Promise<Backend> {
  if (!backends[name]) throw new CrError(`unknown backend '${name}' (available: ${backendNames().join(', ')})`);
  return loadBackend(name as BackendName);
}

/** The backend named, or the one that recognizes the image directory (only its code is loaded). */
async function backendFor(dir: string, name?: string): Promise<Backend> {
  if (name) return pickBackend(name);
  if (!fs.existsSync(dir)) throw new CrError(`image directory ${dir} does not exist`);
  for (const b of Object.values(backends)) if (await b.recognizes(dir)) return loadBackend(b.name);
  throw new CrError(`${dir} holds no image that any backend recognizes`);
}

function parsePid(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new InvalidArgumentError('a pid is a positive integer');
  return Number(v);
}

/** Whether write() handed output to a stream, which must drain before exit. */
let streamed = false;

/**
 * Write to stdout (1) or stderr (2) directly: Node's process.stdout and
 * process.stderr are made on first use, and for a pipe that loads the net
 * module (tens of ms of a command in the VM, where compare/ and the tests
 * read `cr` through pipes). A descriptor that someone left non-blocking
 * (EAGAIN) gets the rest through the stream.
 */
function write(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let done = 0;
  try {
    while (done < buf.length) done += fs.writeSync(fd, buf, done);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') return; // the reader is gone (`cr show DIR | head`): nobody to tell
    if (code !== 'EAGAIN') throw err;
    streamed = true;
    (fd === 1 ? process.stdout : process.stderr).write(buf.subarray(done));
  }
}
const stdout = (text: string) => write(1, text);
const stderr = (text: string) => write(2, text);

const logTo = (verbose?: boolean) => (verbose ? (line: string) => stderr(`cr: ${line}\n`) : undefined);
const backendOption = () => new Option('-b, --backend <name>', 'backend: user, kernel or criu');

const { version } = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };

const program = new Command('cr')
  .description('checkpoint/restart laboratory: one driver for in-kernel and userspace c/r')
  .version(version)
  .configureOutput({ writeOut: stdout, writeErr: stderr, outputError: (str, out) => out(`cr: ${str.replace(/^error: /, '')}`) });

const reportDump = (r: DumpResult, dir: string, what: string) => {
  const s = r.stats;
  stderr(`cr: ${what} ${r.pids.join(' ')} into ${dir}: ${(s.imageBytes / 1048576).toFixed(1)} MiB in ${s.totalMs.toFixed(0)} ms` +
    (s.frozenMs !== undefined ? ` (frozen ${s.frozenMs.toFixed(0)} ms)` : '') + '\n');
};

program
  .command('dump')
  .description('checkpoint a process and its descendants into an image directory')
  .addOption(backendOption().default('user'))
  .requiredOption('-t, --tree <pid>', 'root of the process tree to checkpoint', parsePid)
  .requiredOption('-D, --images-dir <dir>', 'where to write the image')
  .option('-R, --leave-running', 'keep the tasks running after the dump (default: kill them)')
  .option('--cow', 'copy-on-write: let the tasks run again before their memory is written (kernel backend; the default with --leave-running)')
  .option('--no-cow', 'keep the tasks frozen until their memory is written')
  .option('--prev-images-dir <dir>', 'a pre-dump of the same tasks: save only the pages written since')
  .option('--freeze-cgroup <dir>', 'a cgroup holding the tree: frozen while the tasks are collected')
  .option('-j, --shell-job', 'the tree is a job of an interactive shell: its terminal and session leader are outside it')
  .option('--tcp-established', 'save TCP connections to peers outside the tree too (their packets are held back until the restore)')
  .option('-v, --verbose', 'log each step to stderr')
  .action(async (o) => {
    const b = await pickBackend(o.backend);
    const r = await timed(() => b.dump({
      pid: o.tree, dir: o.imagesDir, leaveRunning: o.leaveRunning, freezeCgroup: o.freezeCgroup, shellJob: o.shellJob, tcpEstablished: o.tcpEstablished,
      cow: o.cow, prevImagesDir: o.prevImagesDir, log: logTo(o.verbose),
    }));
    reportDump(r, o.imagesDir, 'dumped');
  });

program
  .command('pre-dump')
  .description("save a tree's memory while it keeps running; a later dump --prev-images-dir saves only what changed")
  .addOption(backendOption().default('user'))
  .requiredOption('-t, --tree <pid>', 'root of the process tree', parsePid)
  .requiredOption('-D, --images-dir <dir>', 'where to write the pre-dump')
  .option('--prev-images-dir <dir>', 'an earlier pre-dump: save only the pages written since')
  .option('--freeze-cgroup <dir>', 'a cgroup holding the tree: frozen while the tasks are collected')
  .option('-v, --verbose', 'log each step to stderr')
  .action(async (o) => {
    const b = await pickBackend(o.backend);
    if (!b.preDump) throw new CrError(`the ${b.name} backend has no pre-dump`);
    const r = await timed(() => b.preDump!({
      pid: o.tree, dir: o.imagesDir, prevImagesDir: o.prevImagesDir, freezeCgroup: o.freezeCgroup, log: logTo(o.verbose),
    }));
    reportDump(r, o.imagesDir, 'pre-dumped');
  });

program
  .command('restore')
  .description('restart the process tree saved in an image directory')
  .addOption(backendOption())
  .requiredOption('-D, --images-dir <dir>', 'the image to restore')
  .option('-d, --detach', 'return once the tree runs instead of waiting for its root task')
  .option('--pidns', 'restore into a new pid namespace')
  .option('--frozen', 'leave the restored tree frozen until `cr thaw ROOT` (kernel backend)')
  .option('-j, --shell-job', 'restore a shell job on the terminal cr restore runs on')
  .option('--map-pages', 'map private memory copy-on-write from the image instead of copying it (kernel backend; the image must then stay unchanged)')
  .option('--lazy-pages', 'restore memory on demand, each page on first touch (user backend, userfaultfd)')
  .option('-v, --verbose', 'log each step to stderr')
  .action(async (o) => {
    if (o.mapPages && o.lazyPages) throw new CrError('--map-pages and --lazy-pages exclude each other');
    const b = await backendFor(o.imagesDir, o.backend);
    if (o.frozen && !b.thaw) throw new CrError(`the ${b.name} backend cannot leave a restored tree frozen`);
    const r = await timed(() => b.restore({
      dir: o.imagesDir, detach: o.detach, pidns: o.pidns, frozen: o.frozen, shellJob: o.shellJob, mapPages: o.mapPages, lazyPages: o.lazyPages, log: logTo(o.verbose),
    }));
    if (o.frozen) stderr(`cr: restored ${r.pids.join(' ')} frozen: cr thaw --backend=${b.name} ${r.pids[0]} lets it run\n`);
    if (o.detach) {
      stdout(`${r.pids[0]}\n`);
      return;
    }
    const st = await timed(() => r.wait());
    process.exitCode = st.signal ? 128 + (os.constants.signals[st.signal] ?? 0) : (st.code ?? 1);
  });

program
  .command('thaw')
  .description('let a tree that `cr restore --frozen` left frozen run')
  .argument('<pid>', 'the root of the restored tree', parsePid)
  .addOption(backendOption().default('kernel'))
  .action(async (pid, o) => {
    const b = await pickBackend(o.backend);
    if (!b.thaw) throw new CrError(`the ${b.name} backend does not restore trees frozen`);
    await timed(() => b.thaw!(pid));
  });

program
  .command('show')
  .description('print an image readably')
  .argument('<dir>', 'image directory')
  .addOption(backendOption())
  .option('--json', 'print the image as JSON')
  .action(async (dir, o) => {
    const b = await backendFor(dir, o.backend);
    const d = await timed(() => b.describe(dir));
    const json = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v);
    stdout(o.json ? `${JSON.stringify(d.data, json, 2)}\n` : `${d.lines.join('\n')}\n`);
  });

program
  .command('check')
  .description("report which kernel interfaces this machine offers and which a backend needs")
  .addOption(backendOption().default('user'))
  .action(async (o) => {
    const b = await pickBackend(o.backend);
    const items = await timed(() => b.check());
    for (const i of items) stdout(`${i.ok ? 'ok  ' : i.required ? 'FAIL' : 'warn'}  ${i.name}: ${i.detail}\n`);
    const failed = items.filter((i) => !i.ok && i.required);
    stdout(failed.length ? `${b.name} backend cannot run here (${failed.map((i) => i.name).join(', ')})\n` : `${b.name} backend: looks good\n`);
    if (failed.length) process.exitCode = 1;
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof CrError) {
    stderr(`cr: ${err.message}\n`);
  } else {
    stderr(`cr: internal error: ${(err as Error).message ?? err}\n`);
    if (process.env.CR_DEBUG) stderr(`${(err as Error).stack}\n`);
  }
  process.exitCode = 1;
}).finally(() => {
  // Every call has returned and the output is written: exit now rather than
  // when the event loop drains, which also tears down Node's environment and
  // V8's heap. A write still queued on a stream (EAGAIN above) must drain.
  if (!streamed) process.exit();
});
