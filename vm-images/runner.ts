/**
 * Run one command in a throw-away QEMU guest whose root is the host's root
 * (read-only 9p), like `vng -r -- CMD`: the command's stdout and stderr come
 * back on their own virtio-serial ports, its exit status on another, and
 * the kernel log on a fourth, so kernel messages never mix with its output.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { VmError } from './common.js';
import { commandArchive, ensureInitramfs } from './initramfs.js';
import { ensureKernel, type Kernel } from './kernel.js';
import type { Progress } from './progress.js';

export const QEMU = 'qemu-system-x86_64';

export interface RunOptions {
  /** The command and its arguments, run with PATH lookup. */
  argv: string[];
  /** Directory to run in (the same path exists in the guest); default process.cwd(). */
  cwd?: string;
  /** Hard limit for boot + command, in seconds; default 600. */
  timeoutSec?: number;
  /** Extra environment for the command (on top of PATH, HOME=/tmp, LANG, CI...). */
  env?: Record<string, string>;
  /** Guest memory; default 2048 MiB. */
  memMiB?: number;
  /** Guest CPUs; default 2. */
  cpus?: number;
  /** Called with each chunk of the command's stdout / stderr as it arrives. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Aborting kills the VM; runInVm then rejects. */
  signal?: AbortSignal;
  /** A kernel from ensureKernel(); default: ensure the current one. */
  kernel?: Kernel;
  /** Build progress, if the kernel must be built first. */
  progress?: Progress;
}

export interface RunResult {
  /** The command's exit status (128+N if killed by signal N); 124 on timeout. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The guest's whole kernel log, read after the command ended ('' on timeout). */
  dmesg: string;
  timedOut: boolean;
  /** Wall time from starting QEMU until it ended. */
  wallMs: number;
}

const DEFAULTS = { timeoutSec: 600, memMiB: 2048, cpus: 2 };
/** Exit status reported for a timed-out run, as timeout(1) does. */
export const TIMEOUT_EXIT = 124;
/** Guest fds 3..6 of QEMU: the four virtio-serial ports, in this order. */
const PORTS = ['cr.stdout', 'cr.stderr', 'cr.dmesg', 'cr.status'] as const;

/** Kernel log lines that mean the guest kernel hit a bug: oopses, BUGs, WARNs, panics. */
const TROUBLE = /\b(BUG:|WARNING:|Oops|Call Trace:|general protection fault|Kernel panic|kernel BUG)/;

/** The lines of a guest's dmesg that report kernel trouble; [] when it is clean. */
export const dmesgTrouble = (dmesg: string): string[] => dmesg.split('\n').filter((line) => TROUBLE.test(line));

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

let accelChoice: Promise<'kvm' | 'tcg'> | undefined;

/**
 * KVM only if /dev/kvm is usable and really runs a guest (a quick boot of our
 * kernel to a panic-reboot); some hosts offer a /dev/kvm a stock guest cannot
 * use. CR_LAB_ACCEL=kvm|tcg overrides.
 */
export function chooseAccel(kernel: Kernel): Promise<'kvm' | 'tcg'> {
  const forced = process.env.CR_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return Promise.resolve(forced);
  accelChoice ??= (async () => {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return 'tcg';
    }
    const probe = await execa(
      QEMU,
      ['-accel', 'kvm', '-cpu', 'host', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot',
        '-kernel', kernel.bzImage, '-append', 'panic=-1 rdinit=/nonexistent'],
      { reject: false, timeout: 20_000, stdin: 'ignore' },
    );
    return probe.exitCode === 0 ? 'kvm' : 'tcg';
  })();
  return accelChoice;
}

/** The QEMU command line (without the program name) for a kernel and an initrd. */
export function qemuArgs(o: { bzImage: string; initrd: string; accel: 'kvm' | 'tcg'; memMiB: number; cpus: number }): string[] {
  const args = [
    '-name', 'cr-lab',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-accel', o.accel, ...(o.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(o.memMiB), '-smp', String(o.cpus),
    '-kernel', o.bzImage, '-initrd', o.initrd,
    // quiet: only errors reach the console; the full log comes back on cr.dmesg.
    '-append', 'console=ttyS0 quiet panic=-1 rdinit=/init',
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

let qemuChecked: Promise<void> | undefined;

function checkQemu(): Promise<void> {
  qemuChecked ??= execa('sh', ['-c', `command -v ${QEMU}`], { reject: false }).then((r) => {
    if (r.exitCode !== 0) throw new VmError(`${QEMU} is missing: apt-get install --no-install-recommends qemu-system-x86`);
  });
  return qemuChecked;
}

const lastLines = (text: string, n = 30): string => text.trimEnd().split('\n').slice(-n).join('\n');

/** Boot the kernel, run `argv` in `cwd`, and return its exit status and output. */
export async function runInVm(opts: RunOptions): Promise<RunResult> {
  const o = { ...DEFAULTS, ...opts, cwd: opts.cwd ?? process.cwd() };
  if (!existsSync(o.cwd)) throw new VmError(`no such directory: ${o.cwd}`);
  const script = commandScript(o.argv, o.cwd, guestEnv(o.env));
  await checkQemu();
  const kernel = o.kernel ?? (await ensureKernel({ progress: o.progress }));
  const [accel, base] = await Promise.all([chooseAccel(kernel), ensureInitramfs()]);

  if (o.signal?.aborted) throw new VmError('interrupted before the VM started');

  const tmp = await mkdtemp(join(tmpdir(), 'cr-lab-vm-'));
  try {
    // The kernel unpacks concatenated archives in order: base, then this run's command.
    const initrd = join(tmp, 'initrd.cpio.gz');
    await writeFile(initrd, Buffer.concat([await readFile(base), commandArchive(script)]));
    const args = qemuArgs({ bzImage: kernel.bzImage, initrd, accel, memMiB: o.memMiB, cpus: o.cpus });

    const started = Date.now();
    const qemu = execa(QEMU, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
    }, o.timeoutSec * 1000);
    const onAbort = (): void => {
      qemu.kill('SIGKILL');
    };
    o.signal?.addEventListener('abort', onAbort);
    // execa's types stop at five stdio entries; fds 3..6 are the port sockets.
    const ports = (qemu.stdio as readonly unknown[]).slice(3) as Readable[];
    try {
      const [console, qemuErr, stdout, stderr, dmesg, status] = await Promise.all([
        collect(qemu.stdout),
        collect(qemu.stderr),
        collect(ports[0], o.onStdout),
        collect(ports[1], o.onStderr),
        collect(ports[2]),
        collect(ports[3]),
      ]);
      const end = await qemu;
      const wallMs = Date.now() - started;
      const result = { stdout: stdout.toString(), stderr: stderr.toString(), dmesg: dmesg.toString(), wallMs };
      if (o.signal?.aborted) throw new VmError('interrupted; the VM was killed');
      if (timedOut) return { ...result, exitCode: TIMEOUT_EXIT, timedOut: true };
      const m = /^exit (\d+)$/m.exec(status.toString());
      if (!m) {
        const why = end.failed && end.exitCode !== 0 ? `QEMU failed (exit ${end.exitCode ?? end.signal})` : 'the VM stopped';
        const log = lastLines(`${qemuErr.toString()}${console.toString()}`);
        throw new VmError(`${why} before the command reported an exit status${log ? `; last output:\n${log}` : ''}`);
      }
      return { ...result, exitCode: Number(m[1]), timedOut: false };
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      qemu.kill('SIGKILL');
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
