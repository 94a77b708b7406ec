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
 * The driver knows backends only through the Backend interface. The
 * command line is one table (`commands`): Node's parseArgs reads it, the
 * help is printed from it. A parser library that builds its command
 * objects on every start cost ~45 ms of each command in the VM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backendNames, backends, loadBackend, refuseMemoryModes } from '../../backends/index.js';
import type { Backend, BackendName, DumpResult } from '../../backends/types.js';
import { CrError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { timed } from './timings.js';

/** The backend named (an own name of the table: not `constructor`), its code loaded. */
async function pickBackend(name: string): Promise<Backend> {
  if (!Object.hasOwn(backends, name)) throw new CrError(`unknown backend '${name}' (available: ${backendNames().join(', ')})`);
  return loadBackend(name as BackendName);
}

/** The backend named, or the one that recognizes the image directory (only its code is loaded). */
async function backendFor(dir: string, name?: string): Promise<Backend> {
  if (name) return pickBackend(name);
  if (!fs.existsSync(dir)) throw new CrError(`image directory ${dir} does not exist`);
  for (const b of Object.values(backends)) if (await b.recognizes(dir)) return loadBackend(b.name);
  throw new CrError(`${dir} holds no image that any backend recognizes`);
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

/** An option of a command: a switch, or one taking a value when `value` names it. */
interface Flag {
  short?: string;
  /** The value's name in the help (`<dir>`); a flag without one is a switch. */
  value?: string;
  help: string;
  required?: true;
  default?: string;
  /** The value is a pid: a positive integer. */
  pid?: true;
}

/** What a command's flags parse to: a pid as a number, a value as a string, a switch as true. */
type Values<F extends Record<string, Flag>> = {
  [K in keyof F]: F[K] extends { pid: true } ? Req<F[K], number> : F[K] extends { value: string } ? Req<F[K], string> : boolean | undefined;
};
type Req<F, T> = F extends { required: true } ? T : F extends { default: string } ? T : T | undefined;

interface Command<F extends Record<string, Flag>> {
  help: string;
  /** The one positional argument the command takes, if any (required). */
  argument?: { name: string; help: string; pid?: true };
  flags: F;
  run(v: Values<F>, arg: string): Promise<void>;
}

/** A command of the table as the parser sees it. */
type AnyCommand = Omit<Command<Record<string, Flag>>, 'run'> & { run(v: Record<string, string | boolean | number | undefined>, arg: string): Promise<void> };

/** A command of the table, its flags' types checked against its run(). */
const command = <const F extends Record<string, Flag>>(c: Command<F>) => c as unknown as AnyCommand;

const backend = { short: 'b', value: '<name>', help: 'backend: user, kernel or criu' } as const;
const tree = { short: 't', value: '<pid>', pid: true, required: true, help: 'root of the process tree' } as const;
const freezeCgroup = { value: '<dir>', help: 'a cgroup holding the tree: frozen while the tasks are collected' } as const;
const verbose = { short: 'v', help: 'log each step to stderr' } as const;
const logTo = (on?: boolean) => (on ? (line: string) => stderr(`cr: ${line}\n`) : undefined);

const reportDump = (r: DumpResult, dir: string, what: string) => {
  const s = r.stats;
  stderr(`cr: ${what} ${r.pids.join(' ')} into ${dir}: ${(s.imageBytes / 1048576).toFixed(1)} MiB in ${s.totalMs.toFixed(0)} ms` +
    (s.frozenMs !== undefined ? ` (frozen ${s.frozenMs.toFixed(0)} ms)` : '') + '\n');
};

const commands: Record<string, AnyCommand> = {
  dump: command({
    help: 'checkpoint a process and its descendants into an image directory',
    flags: {
      backend: { ...backend, default: 'user' },
      tree,
      'images-dir': { short: 'D', value: '<dir>', required: true, help: 'where to write the image' },
      'leave-running': { short: 'R', help: 'keep the tasks running after the dump (default: kill them)' },
      cow: { help: 'copy-on-write: let the tasks run again before their memory is written (kernel backend; the default with --leave-running)' },
      'no-cow': { help: 'keep the tasks frozen until their memory is written' },
      'prev-images-dir': { value: '<dir>', help: 'a pre-dump of the same tasks: save only the pages written since' },
      'freeze-cgroup': freezeCgroup,
      'shell-job': { short: 'j', help: 'the tree is a job of an interactive shell: its terminal and session leader are outside it' },
      'tcp-established': { help: 'save TCP connections to peers outside the tree too (their packets are held back until the restore)' },
      verbose,
    },
    async run(o) {
      if (o.cow && o['no-cow']) throw new CrError('--cow and --no-cow exclude each other');
      const b = await pickBackend(o.backend);
      const r = await timed(() => b.dump({
        pid: o.tree, dir: o['images-dir'], leaveRunning: o['leave-running'], freezeCgroup: o['freeze-cgroup'], shellJob: o['shell-job'],
        tcpEstablished: o['tcp-established'], cow: o['no-cow'] ? false : o.cow, prevImagesDir: o['prev-images-dir'], log: logTo(o.verbose),
      }));
      reportDump(r, o['images-dir'], 'dumped');
    },
  }),

  'pre-dump': command({
    help: "save a tree's memory while it keeps running; a later dump --prev-images-dir saves only what changed",
    flags: {
      backend: { ...backend, default: 'user' },
      tree,
      'images-dir': { short: 'D', value: '<dir>', required: true, help: 'where to write the pre-dump' },
      'prev-images-dir': { value: '<dir>', help: 'an earlier pre-dump: save only the pages written since' },
      'freeze-cgroup': freezeCgroup,
      verbose,
    },
    async run(o) {
      const b = await pickBackend(o.backend);
      if (!b.preDump) throw new CrError(`the ${b.name} backend has no pre-dump`);
      const r = await timed(() => b.preDump!({
        pid: o.tree, dir: o['images-dir'], prevImagesDir: o['prev-images-dir'], freezeCgroup: o['freeze-cgroup'], log: logTo(o.verbose),
      }));
      reportDump(r, o['images-dir'], 'pre-dumped');
    },
  }),

  restore: command({
    help: 'restart the process tree saved in an image directory',
    flags: {
      backend,
      'images-dir': { short: 'D', value: '<dir>', required: true, help: 'the image to restore' },
      detach: { short: 'd', help: 'return once the tree runs instead of waiting for its root task' },
      pidns: { help: 'restore into a new pid namespace' },
      frozen: { help: 'leave the restored tree frozen until `cr thaw ROOT` (kernel backend)' },
      'shell-job': { short: 'j', help: 'restore a shell job on the terminal cr restore runs on' },
      'map-pages': { help: 'map private memory copy-on-write from the image instead of copying it (kernel backend; the image must then stay unchanged)' },
      'lazy-pages': { help: 'restore private memory on demand: each page on first touch, the rest while the tree runs (userfaultfd; user backend)' },
      verbose,
    },
    async run(o) {
      const b = await backendFor(o['images-dir'], o.backend);
      if (o.frozen && !b.thaw) throw new CrError(`the ${b.name} backend cannot leave a restored tree frozen`);
      const opts = {
        dir: o['images-dir'], detach: o.detach, pidns: o.pidns, frozen: o.frozen, shellJob: o['shell-job'], mapPages: o['map-pages'],
        lazyPages: o['lazy-pages'], log: logTo(o.verbose),
      };
      refuseMemoryModes(b, opts);
      const r = await timed(() => b.restore(opts));
      if (o.frozen) stderr(`cr: restored ${r.pids.join(' ')} frozen: cr thaw --backend=${b.name} ${r.pids[0]} lets it run\n`);
      if (o.detach) {
        stdout(`${r.pids[0]}\n`);
        return;
      }
      const st = await timed(() => r.wait());
      process.exitCode = st.signal ? 128 + (os.constants.signals[st.signal] ?? 0) : (st.code ?? 1);
    },
  }),

  thaw: command({
    help: 'let a tree that `cr restore --frozen` left frozen run',
    argument: { name: '<pid>', help: 'the root of the restored tree', pid: true },
    flags: { backend: { ...backend, default: 'kernel' } },
    async run(o, pid) {
      const b = await pickBackend(o.backend);
      if (!b.thaw) throw new CrError(`the ${b.name} backend does not restore trees frozen`);
      await timed(() => b.thaw!(Number(pid)));
    },
  }),

  show: command({
    help: 'print an image readably',
    argument: { name: '<dir>', help: 'image directory' },
    flags: { backend, json: { help: 'print the image as JSON' } },
    async run(o, dir) {
      const b = await backendFor(dir, o.backend);
      const d = await timed(() => b.describe(dir));
      const json = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v);
      stdout(o.json ? `${JSON.stringify(d.data, json, 2)}\n` : `${d.lines.join('\n')}\n`);
    },
  }),

  check: command({
    help: 'report which kernel interfaces this machine offers and which a backend needs',
    flags: { backend: { ...backend, default: 'user' } },
    async run(o) {
      const b = await pickBackend(o.backend);
      const items = await timed(() => b.check());
      for (const i of items) stdout(`${i.ok ? 'ok  ' : i.required ? 'FAIL' : 'warn'}  ${i.name}: ${i.detail}\n`);
      const failed = items.filter((i) => !i.ok && i.required);
      stdout(failed.length ? `${b.name} backend cannot run here (${failed.map((i) => i.name).join(', ')})\n` : `${b.name} backend: looks good\n`);
      if (failed.length) process.exitCode = 1;
    },
  }),
};

const help: Flag = { short: 'h', help: 'print this help' };

/** How a flag is written in help and errors: `-t, --tree <pid>`. */
const spelling = (name: string, f: Flag) => `${f.short ? `-${f.short}, ` : ''}--${name}${f.value ? ` ${f.value}` : ''}`;

/** Two aligned columns. */
const columns = (rows: [string, string][]) => {
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join('\n');
};

function usage(name?: string): string {
  if (!name) {
    return [
      'Usage: cr <command> [options]', '',
      'checkpoint/restart laboratory: one driver for in-kernel and userspace c/r', '',
      'Commands:',
      columns([...Object.entries(commands).map(([n, c]): [string, string] => [`${n}${c.argument ? ` ${c.argument.name}` : ''}`, c.help]),
        ['help [command]', 'print the help of a command']]), '',
      'Options:', columns([['-V, --version', 'print the version'], [spelling('help', help), help.help]]), '',
    ].join('\n');
  }
  const c = commands[name];
  return [
    `Usage: cr ${name}${c.argument ? ` ${c.argument.name}` : ''} [options]`, '', c.help, '',
    ...(c.argument ? ['Arguments:', columns([[c.argument.name, c.argument.help]]), ''] : []),
    'Options:',
    columns([...Object.entries(c.flags), ['help', help] as const].map(([n, f]): [string, string] =>
      [spelling(n, f), `${f.help}${f.required ? ' (required)' : ''}${f.default ? ` (default: ${f.default})` : ''}`])), '',
  ].join('\n');
}

const isPid = (v: string) => /^\d+$/.test(v) && Number(v) > 0;

/** Parse `cr NAME ARGS…` by the command's table entry and run it. */
async function runCommand(name: string, args: string[]): Promise<void> {
  const c = commands[name];
  const flags: Record<string, Flag> = { ...c.flags, help };
  let parsed;
  try {
    parsed = parseArgs({
      args, strict: true, allowPositionals: true,
      options: Object.fromEntries(Object.entries(flags).map(([n, f]) => [n, { type: f.value ? 'string' : 'boolean', ...(f.short && { short: f.short }) }])),
    });
  } catch (err) {
    // Node's first sentence ("Unknown option '--x'. To specify…"), the flag spelt as in the help.
    const text = (err as Error).message.split(/\.( |$)/)[0].replace(/^\w/, (ch) => ch.toLowerCase())
      .replace(/'(?:-\w, )?--([\w-]+)(?: <value>)?'/, (whole, n: string) => (flags[n] ? `'${spelling(n, flags[n])}'` : whole));
    throw new CrError(`${name}: ${text} (see cr ${name} --help)`);
  }
  const values: Record<string, string | boolean | number | undefined> = parsed.values;
  if (values.help) {
    stdout(usage(name));
    return;
  }
  for (const [n, f] of Object.entries(c.flags)) {
    const v = values[n] ?? f.default;
    if (v === undefined && f.required) throw new CrError(`${name}: required option '${spelling(n, f)}' not given`);
    if (f.pid && typeof v === 'string') {
      if (!isPid(v)) throw new CrError(`${name}: option '${spelling(n, f)}': '${v}' is not a pid (a positive integer)`);
      values[n] = Number(v);
    } else {
      values[n] = v;
    }
  }
  const [arg, ...extra] = parsed.positionals;
  if (c.argument && arg === undefined) throw new CrError(`${name}: missing argument ${c.argument.name}`);
  if (c.argument?.pid && !isPid(arg)) throw new CrError(`${name}: '${arg}' is not a pid (a positive integer)`);
  const unexpected = c.argument ? extra : parsed.positionals;
  if (unexpected.length) throw new CrError(`${name}: unexpected argument '${unexpected[0]}' (see cr ${name} --help)`);
  await c.run(values, arg);
}

/** A command of the table: its own names only (`constructor` is in every object). */
const isCommand = (name: string) => Object.hasOwn(commands, name);
const unknownCommand = (name: string) => new CrError(`unknown command '${name}' (commands: ${Object.keys(commands).join(', ')}; see cr --help)`);

async function main(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === '-V' || first === '--version') {
    // Read only here: every other command would pay for it.
    stdout(`${(JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version}\n`);
  } else if (first === '-h' || first === '--help' || (first === 'help' && !rest.length)) {
    stdout(usage());
  } else if (first === 'help') {
    if (!isCommand(rest[0])) throw unknownCommand(rest[0]);
    stdout(usage(rest[0]));
  } else if (first === undefined) {
    stderr(usage());
    process.exitCode = 1;
  } else if (isCommand(first)) {
    await runCommand(first, rest);
  } else {
    throw unknownCommand(first);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
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
