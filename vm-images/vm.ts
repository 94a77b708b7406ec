/**
 * `npm run vm -- [options] CMD ARGS...`: run CMD in a throw-away VM whose root
 * is the host's root (read-only), from the current directory, like `vng -r -- CMD`.
 * Exits with CMD's exit status (124 on timeout).
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { runMain } from './common.js';
import { ensureInitramfs } from './initramfs.js';
import { buildKmod, ensureKernel, kernelCacheDir, readKernelInputs } from './kernel.js';
import { commandScript, guestEnv, qemuArgs, QEMU, runInVm, TIMEOUT_EXIT } from './runner.js';

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
};

const envPair = (value: string, previous: Record<string, string>): Record<string, string> => {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected K=V');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
};

const shellWord = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

interface CliOptions {
  mem: number;
  cpus: number;
  timeout: number;
  stall: number;
  env: Record<string, string>;
  dmesg: boolean;
  showCmd: boolean;
  debugKernel: boolean;
}

async function main(): Promise<number> {
  const program = new Command('vm')
    .description('run a command in a VM booted on the cr-lab kernel, with the host root mounted read-only')
    .usage('[options] -- CMD [ARGS...]')
    .option('--mem <MiB>', 'guest memory in MiB', positiveInt, 2048)
    .option('--cpus <n>', 'guest CPUs', positiveInt, 2)
    .option('--timeout <sec>', 'kill the VM after this many seconds (exit 124)', positiveInt, 600)
    .option('--stall <sec>', 'kill the VM when the running guest sends no heartbeat for this long', positiveInt, 60)
    .option('--env <K=V>', 'set a variable for the command (repeatable)', envPair, {})
    .option('--dmesg', "print the guest's kernel log to stderr after the command", false)
    .option('--show-cmd', 'print the QEMU command line and exit, without booting', false)
    .option('--debug-kernel', 'boot the debug flavour of the kernel (KASAN, UBSAN, lockdep, ...), with kmod/ built for it', false)
    .argument('<cmd...>', 'command to run inside')
    .passThroughOptions()
    .showHelpAfterError();
  program.parse();
  const opts = program.opts<CliOptions>();
  const argv = program.args;
  const flavour = opts.debugKernel ? 'debug' : 'normal';

  if (opts.showCmd) {
    // A dry run: no build, no boot. fds 3-6 are the runner's port sockets.
    const kernel = { bzImage: join(kernelCacheDir(), readKernelInputs(flavour).hash, 'bzImage') };
    const base = await ensureInitramfs();
    const args = qemuArgs({ bzImage: kernel.bzImage, initrd: `${base}+command.cpio.gz`, accel: 'tcg', memMiB: opts.mem, cpus: opts.cpus, flavour });
    process.stdout.write([QEMU, ...args].map(shellWord).join(' ') + '\n');
    process.stdout.write('# -accel: tcg here; a run uses kvm (with -cpu host) once a probe guest has answered under it\n');
    process.stdout.write('# /cr-lab/cmd in the appended archive:\n');
    process.stdout.write(commandScript(argv, process.cwd(), guestEnv(opts.env)).replace(/^/gm, '#   ').trimEnd() + '\n');
    return 0;
  }

  const aborter = new AbortController();
  let signalled: keyof typeof SIGNAL_NUMBERS | undefined;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      signalled = sig;
      aborter.abort();
    });
  }
  try {
    // The engine module the kernel backend loads inside must match the kernel booted.
    const kernel = await ensureKernel({ flavour });
    await buildKmod(kernel).catch((err: Error) =>
      process.stderr.write(`vm: kmod/ did not build for this kernel, so the kernel backend has no engine: ${err.message.split('\n')[0]}\n`),
    );
    const result = await runInVm({
      argv,
      kernel,
      timeoutSec: opts.timeout,
      stallLimitSec: opts.stall,
      env: opts.env,
      memMiB: opts.mem,
      cpus: opts.cpus,
      signal: aborter.signal,
      onStdout: (chunk) => process.stdout.write(chunk),
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    if (opts.dmesg) process.stderr.write(result.dmesg);
    if (result.timedOut) process.stderr.write(`vm: timed out after ${opts.timeout} s; the VM was killed\n`);
    return result.timedOut ? TIMEOUT_EXIT : result.exitCode;
  } catch (err) {
    // Exit like a shell does for a signal: 128 + its number.
    if (signalled) return 128 + SIGNAL_NUMBERS[signalled];
    throw err;
  }
}

runMain(main);
