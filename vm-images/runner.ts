/**
 * Run one command in a throw-away QEMU guest whose root is the host's root
 * (read-only 9p), like `vng -r -- CMD`: the command's stdout and stderr come
 * back on their own virtio-serial ports, its exit status on another, and
 * the kernel log on a fourth, so kernel messages never mix with its output.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { chooseAccel, demoteKvm, PROBE_SEC, PROBE_WORD, qemuPath, QEMU_NAME, type Accel, type ProbeOutcome } from './accel.js';
import { cacheRoot, VmError } from './common.js';
import { commandArchive, ensureInitramfs } from './initramfs.js';
import { ensureKernel, type Flavour, type Kernel } from './kernel.js';
import type { Progress } from './progress.js';

export const QEMU = QEMU_NAME;

export interface RunOptions {
  /** The command and its arguments, run with PATH lookup. */
  argv: string[];
  /** Directory to run in (the same path exists in the guest); default process.cwd(). */
  cwd?: string;
  /** Hard limit for boot + command, in seconds; default 600. */
  timeoutSec?: number;
  /** Kill the VM if the guest has not started (sent its first heartbeat) within this; default 120 s. */
  bootLimitSec?: number;
  /** Kill the VM if the running guest sends no heartbeat for this long; default 60 s. */
  stallLimitSec?: number;
  /** Kill the VM if the command writes nothing to stdout or stderr for this long; default: no limit. */
  quietLimitSec?: number;
  /** Extra environment for the command (on top of PATH, HOME=/tmp, LANG, CI...). */
  env?: Record<string, string>;
  /** Guest memory; default 2048 MiB. */
  memMiB?: number;
  /** Guest CPUs; default 2. */
  cpus?: number;
  /** Called with each chunk of the command's stdout / stderr as it arrives. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** One-line notices (why KVM is not used); default: stderr. */
  log?: (line: string) => void;
  /** Aborting kills the VM; runInVm then rejects. */
  signal?: AbortSignal;
  /** A kernel from ensureKernel(); default: ensure the current one of `flavour`. */
  kernel?: Kernel;
  /** Which kernel when `kernel` is not given: `normal` (default) or `debug` (KASAN, UBSAN, lockdep...). */
  flavour?: Flavour;
  /** Build progress, if the kernel must be built first. */
  progress?: Progress;
}

export interface RunResult {
  /** The command's exit status (128+N if killed by signal N); 124 on timeout. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The guest's whole kernel log, read after the command ended (what streamed live, on timeout). */
  dmesg: string;
  timedOut: boolean;
  /** Wall time from starting QEMU until it ended. */
  wallMs: number;
  /** The accelerator the guest ran under. */
  accel: Accel;
  /** Why TCG was chosen, when it was (the one line also given to `log`). */
  accelReason?: string;
}

const DEFAULTS = { timeoutSec: 600, bootLimitSec: 120, stallLimitSec: 60, memMiB: 2048, cpus: 2 };
/** How much longer a debug kernel (KASAN, UBSAN, lockdep) takes to boot and to answer under TCG: its boot and stall limits grow by this. */
const DEBUG_SLOWDOWN = 5;
/** Exit status reported for a timed-out run, as timeout(1) does. */
export const TIMEOUT_EXIT = 124;
/** Guest fds 3..8 of QEMU: the virtio-serial ports, in this order (init.sh opens them by name). */
const PORTS = ['cr.stdout', 'cr.stderr', 'cr.dmesg', 'cr.status', 'cr.heartbeat', 'cr.kmsg'] as const;

/** Kernel log lines that mean the guest kernel hit a bug: oopses, BUGs, WARNs, panics. */
const TROUBLE = /\b(BUG:|WARNING:|Oops|Call Trace:|general protection fault|Kernel panic|kernel BUG|UBSAN:|INFO: task .* blocked|detected stalls?)/;

/** A fault of a user-mode program ("traps: prog[42] general protection fault ip:… in prog…"): its trouble, not the kernel's. */
const USER_FAULT = /\btraps: \S+\[\d+\] /;

/** The lines of a guest's dmesg that report kernel trouble; [] when it is clean. */
export const dmesgTrouble = (dmesg: string): string[] => dmesg.split('\n').filter((line) => TROUBLE.test(line) && !USER_FAULT.test(line));

/** Guest paths that are tmpfs, hiding the host's; init.sh shows the host root at HOST_VIEW. */
const TMPFS_DIRS = ['/tmp', '/var/tmp', '/run'];
const HOST_VIEW = '/run/cr-lab/host';

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The shell script the guest runs chrooted into the host root: environment, cwd, exec. */
export function commandScript(argv: string[], cwd: string, env: Record<string, string>): string {
  if (argv.length === 0) throw new VmError('no command given');
  const lines = ['# written by cr-lab vm-images/runner.ts'];
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VmError(`bad environment variable name: ${k}`);
    lines.push(`export ${k}=${quote(v)}`);
  }
  // A directory under a tmpfs of the guest (a clone in /tmp) comes from the host's view.
  if (TMPFS_DIRS.some((d) => cwd === d || cwd.startsWith(`${d}/`))) {
    lines.push(`mkdir -p ${quote(cwd)} && mount --bind ${quote(`${HOST_VIEW}${cwd}`)} ${quote(cwd)} || exit 125`);
  }
  lines.push(`cd ${quote(cwd)} || exit 125`, `exec ${argv.map(quote).join(' ')}`, '');
  return lines.join('\n');
}

/** The command's environment: a clean, predictable base, a few pass-throughs, then the caller's. */
export function guestEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/tmp',
    USER: 'root',
    LOGNAME: 'root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    CR_LAB_IN_VM: '1',
  };
  for (const k of ['CI', 'NO_COLOR', 'FORCE_COLOR', 'NODE_OPTIONS']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** The QEMU command line (without the program name) for a kernel and an initrd. */
export function qemuArgs(o: { bzImage: string; initrd: string; accel: Accel; memMiB: number; cpus: number; flavour?: Flavour }): string[] {
  // The debug kernel's soft-lockup limit is 60 s, not 20: under TCG on a busy host its KASAN-checked
  // unpacking of the initramfs alone took 22-26 s (a restart that spins still trips it, well within
  // the fuzzer's 120 s a case).
  const watchdog = o.flavour === 'debug' ? ' watchdog_thresh=30' : '';
  const args = [
    '-name', 'cr-lab',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-accel', o.accel, ...(o.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(o.memMiB), '-smp', String(o.cpus),
    '-kernel', o.bzImage, '-initrd', o.initrd,
    // quiet: only errors reach the console; the full log comes back on cr.dmesg.
    '-append', `console=ttyS0 quiet panic=-1 rdinit=/init${watchdog}`,
    '-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-serial-pci,id=ports',
  ];
  PORTS.forEach((name, i) => {
    // QEMU's fd 3+i is a socket the runner reads (Node's child pipes are socketpairs).
    args.push('-chardev', `socket,id=p${i},fd=${3 + i}`, '-device', `virtserialport,bus=ports.0,chardev=p${i},name=${name}`);
  });
  return args;
}

/** Collect a stream, passing chunks on; resolves with everything at its end. */
function collect(stream: Readable | null | undefined, onChunk?: (chunk: Buffer) => void): Promise<Buffer> {
  if (!stream) return Promise.resolve(Buffer.alloc(0));
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      onChunk?.(chunk);
    });
    stream.on('error', reject);
    stream.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

function checkQemu(): void {
  if (!qemuPath()) throw new VmError(`${QEMU} is missing: apt-get install --no-install-recommends qemu-system-x86`);
}

const lastLines = (text: string, n = 30): string => text.trimEnd().split('\n').slice(-n).join('\n');

interface Boot {
  kernel: Kernel;
  initrd: string;
  accel: Accel;
  o: typeof DEFAULTS & RunOptions & { cwd: string };
}

/** How one boot ended when the watchdog or QEMU ended it before the command reported its status. */
class BootFailure extends VmError {
  constructor(
    readonly why: string,
    readonly logs: string,
    /** The last lines QEMU and the guest printed. */
    readonly tail: string,
    /** Whether the guest had started (sent a heartbeat). */
    readonly started: boolean,
  ) {
    super(`${why} before the command reported an exit status (logs in ${logs})${tail ? `\nlast output:\n${tail}` : ''}`);
  }
}

/** Keep a killed VM's output and kernel log where the error message says. */
async function keepLogs(parts: Record<string, Buffer>): Promise<string> {
  const dir = join(cacheRoot(), 'vm-logs', `${new Date().toISOString().replace(/[:.]/g, '')}-${process.pid}`);
  await mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(parts)) await writeFile(join(dir, name), data);
  return dir;
}

/**
 * One boot of the guest. A watchdog kills it when the guest does not
 * start (no first heartbeat) in bootLimitSec, stops sending heartbeats for
 * stallLimitSec, or (with quietLimitSec) its command prints nothing that
 * long: a hung guest costs a bounded time, never a whole suite's limit.
 */
async function boot({ kernel, initrd, accel, o }: Boot): Promise<RunResult> {
  const args = qemuArgs({ bzImage: kernel.bzImage, initrd, accel, memMiB: o.memMiB, cpus: o.cpus, flavour: kernel.flavour });
  const started = Date.now();
  const qemu = execa(QEMU, args, {
    stdio: ['ignore', 'pipe', 'pipe', ...PORTS.map(() => 'pipe' as const)],
    buffer: false,
    reject: false,
  });
  let timedOut = false;
  let stalled: string | undefined;
  let beats = 0;
  let lastBeat = started;
  let lastOutput = started;
  const stop = (why: string): void => {
    stalled ??= why;
    qemu.kill('SIGKILL');
  };
  const hardLimit = setTimeout(() => {
    timedOut = true;
    qemu.kill('SIGKILL');
  }, o.timeoutSec * 1000);
  const watchdog = setInterval(() => {
    const now = Date.now();
    if (!beats && now - started > o.bootLimitSec * 1000) stop(`the guest did not start within ${o.bootLimitSec} s`);
    else if (beats && now - lastBeat > o.stallLimitSec * 1000) stop(`the guest stopped answering (no heartbeat for ${o.stallLimitSec} s)`);
    else if (o.quietLimitSec && now - lastOutput > o.quietLimitSec * 1000) stop(`the command printed nothing for ${o.quietLimitSec} s`);
  }, 250);
  const onAbort = (): void => {
    qemu.kill('SIGKILL');
  };
  o.signal?.addEventListener('abort', onAbort);
  const output = (pass?: (chunk: Buffer) => void) => (chunk: Buffer) => {
    lastOutput = Date.now();
    pass?.(chunk);
  };
  // execa's types stop at five stdio entries; fds 3..8 are the port sockets.
  const ports = (qemu.stdio as readonly unknown[]).slice(3) as Readable[];
  try {
    const [console, qemuErr, stdout, stderr, dmesg, status, , kmsg] = await Promise.all([
      collect(qemu.stdout),
      collect(qemu.stderr),
      collect(ports[0], output(o.onStdout)),
      collect(ports[1], output(o.onStderr)),
      collect(ports[2]),
      collect(ports[3]),
      collect(ports[4], () => {
        beats++;
        lastBeat = Date.now();
      }),
      collect(ports[5]),
    ]);
    const end = await qemu;
    const wallMs = Date.now() - started;
    const result = { stdout: stdout.toString(), stderr: stderr.toString(), dmesg: dmesg.toString() || kmsg.toString(), wallMs, accel };
    if (o.signal?.aborted) throw new VmError('interrupted; the VM was killed');
    if (timedOut) return { ...result, exitCode: TIMEOUT_EXIT, timedOut: true };
    const m = /^exit (\d+)$/m.exec(status.toString());
    if (m && !stalled) return { ...result, exitCode: Number(m[1]), timedOut: false };
    const why = stalled ?? (end.failed && end.exitCode !== 0 ? `QEMU failed (exit ${end.exitCode ?? end.signal})` : 'the VM stopped');
    const logs = await keepLogs({ stdout, stderr, console: Buffer.concat([qemuErr, console]), kmsg });
    const tail = lastLines(`${qemuErr.toString()}${console.toString()}${stalled ? kmsg.toString() : ''}`);
    throw new BootFailure(why, logs, tail, beats > 0);
  } finally {
    clearTimeout(hardLimit);
    clearInterval(watchdog);
    o.signal?.removeEventListener('abort', onAbort);
    qemu.kill('SIGKILL');
  }
}

/** The initrd for one command: the kernel unpacks concatenated archives in order, base first. */
async function writeInitrd(dir: string, base: string, script: string): Promise<string> {
  const initrd = join(dir, 'initrd.cpio.gz');
  await writeFile(initrd, Buffer.concat([await readFile(base), commandArchive(script)]));
  return initrd;
}

/** A real command under KVM, through the real ports, in PROBE_SEC: the only test a broken KVM fails. */
async function probeKvm(kernel: Kernel, base: string, dir: string): Promise<ProbeOutcome> {
  const initrd = await writeInitrd(dir, base, commandScript(['echo', PROBE_WORD], '/', guestEnv()));
  const o = { ...DEFAULTS, argv: [], cwd: '/', timeoutSec: PROBE_SEC, bootLimitSec: PROBE_SEC };
  try {
    const r = await boot({ kernel, initrd, accel: 'kvm', o });
    if (r.timedOut) return { answered: false, why: `a guest did not answer in ${PROBE_SEC} s` };
    if (r.exitCode !== 0 || !r.stdout.includes(PROBE_WORD)) return { answered: false, why: `a guest answered wrongly (exit ${r.exitCode})` };
    return { answered: true };
  } catch (err) {
    if (!(err instanceof BootFailure) || !/^QEMU failed/.test(err.why)) return { answered: false, why: `a guest did not answer in ${PROBE_SEC} s` };
    const first = err.tail.split('\n')[0]!.replace(`${QEMU}: `, '').trim();
    return { answered: false, why: first ? `QEMU could not run a guest under KVM (${first})` : err.why.replace('QEMU failed', 'QEMU failed under KVM') };
  }
}

let announced = false;

/** Boot the kernel, run `argv` in `cwd`, and return its exit status and output. */
export async function runInVm(opts: RunOptions): Promise<RunResult> {
  const o = { ...DEFAULTS, ...opts, cwd: opts.cwd ?? process.cwd() };
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!existsSync(o.cwd)) throw new VmError(`no such directory: ${o.cwd}`);
  if (o.argv.length === 0) throw new VmError('no command given');
  checkQemu();
  const kernel = o.kernel ?? (await ensureKernel({ progress: o.progress, flavour: o.flavour }));
  if (kernel.flavour === 'debug') {
    o.bootLimitSec = opts.bootLimitSec ?? DEFAULTS.bootLimitSec * DEBUG_SLOWDOWN;
    o.stallLimitSec = opts.stallLimitSec ?? DEFAULTS.stallLimitSec * DEBUG_SLOWDOWN;
  }
  // Which kernel runs, for code inside that needs its tree (the selftests) or its flavour.
  const script = commandScript(o.argv, o.cwd, guestEnv({ CR_LAB_KERNEL_BUILD: kernel.buildDir, CR_LAB_KERNEL_FLAVOUR: kernel.flavour, ...o.env }));
  const base = await ensureInitramfs();
  if (o.signal?.aborted) throw new VmError('interrupted before the VM started');

  const tmp = await mkdtemp(join(tmpdir(), 'cr-lab-vm-'));
  try {
    const key = { kernelHash: kernel.hash, initrd: base };
    let choice = await chooseAccel({ ...key, probe: () => probeKvm(kernel, base, tmp) });
    const say = (reason?: string): void => {
      if (reason && !announced) log(reason);
      announced ||= !!reason;
    };
    say(choice.reason);
    const initrd = await writeInitrd(tmp, base, script);
    try {
      return { ...(await boot({ kernel, initrd, accel: choice.accel, o })), accelReason: choice.reason };
    } catch (err) {
      // A KVM guest that never started ran nothing yet: run the command under TCG instead.
      if (!(err instanceof BootFailure) || err.started || choice.accel !== 'kvm') throw err;
      choice = await demoteKvm(key, `a guest did not start within ${o.bootLimitSec} s`);
      announced = false;
      say(choice.reason);
      return { ...(await boot({ kernel, initrd, accel: 'tcg', o })), accelReason: choice.reason };
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
