/**
 * Which accelerator a VM runs under. KVM is used only once a probe has
 * proved it: the real kernel and initramfs booted under KVM ran a real
 * command that answered through the same ports a real run uses, within
 * PROBE_SEC. Some hosts offer a /dev/kvm on which QEMU aborts, or on which
 * a guest boots to a panic but a real guest never answers; only such a
 * probe tells them apart. The verdict is kept per machine, QEMU binary,
 * kernel and initramfs, so the probe costs one boot per cache key.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { release } from 'node:os';
import { cacheRoot } from './common.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  /** Why TCG was chosen, as the one line printed (undefined when KVM runs). */
  reason?: string;
}

/** Seconds a probe guest has to boot and answer under KVM. */
export const PROBE_SEC = 10;
export const QEMU_NAME = 'qemu-system-x86_64';
export const PROBE_WORD = 'cr-lab-kvm-probe';

/** The QEMU binary the runner will start: the first on PATH. */
export function qemuPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir || '.', QEMU_NAME);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** What a verdict depends on: this CPU and host kernel, this QEMU, this guest kernel and initramfs. */
function verdictKey(qemu: string, kernelHash: string, initrd: string): string {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0]!
    .split('\n').filter((l) => /^(vendor_id|cpu family|model|model name|stepping|microcode|flags)\s*:/.test(l)).join('\n');
  const q = statSync(qemu);
  return createHash('sha256')
    .update(JSON.stringify({ cpu, host: release(), qemu, qemuSize: q.size, qemuMtime: q.mtimeMs, kernelHash, initrd }))
    .digest('hex');
}

const verdictFile = (key: string): string => join(cacheRoot(), 'accel', `${key}.json`);

async function remember(key: string, choice: AccelChoice): Promise<void> {
  const file = verdictFile(key);
  await mkdir(join(cacheRoot(), 'accel'), { recursive: true });
  await writeFile(`${file}.${process.pid}`, `${JSON.stringify({ ...choice, probedAt: new Date().toISOString() })}\n`);
  await rename(`${file}.${process.pid}`, file);
}

async function recall(key: string): Promise<AccelChoice | undefined> {
  try {
    const v = JSON.parse(await readFile(verdictFile(key), 'utf8')) as AccelChoice;
    return v.accel === 'kvm' || v.accel === 'tcg' ? { accel: v.accel, reason: v.reason } : undefined;
  } catch {
    return undefined;
  }
}

/** What a probe run saw: how it ended, and its output. */
export interface ProbeOutcome {
  /** The guest answered: exit status 0 and PROBE_WORD on stdout. */
  answered: boolean;
  /** Otherwise: why not, in a few words ("did not answer in 10 s", "QEMU failed: …"). */
  why?: string;
}

export interface AccelOptions {
  kernelHash: string;
  initrd: string;
  /** Boot the probe guest under KVM (runner.ts provides it, with its own ports and watchdog). */
  probe: () => Promise<ProbeOutcome>;
}

let chosen: Promise<AccelChoice> | undefined;

/**
 * The accelerator for this process's VMs, probed or recalled once.
 * CR_LAB_ACCEL=kvm|tcg forces one (for experiments; nothing needs it).
 */
export function chooseAccel(o: AccelOptions): Promise<AccelChoice> {
  const forced = process.env.CR_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return Promise.resolve({ accel: forced, reason: forced === 'tcg' ? 'KVM: not used (CR_LAB_ACCEL=tcg); using TCG' : undefined });
  chosen ??= (async (): Promise<AccelChoice> => {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch (err) {
      return { accel: 'tcg', reason: `KVM: no usable /dev/kvm (${(err as NodeJS.ErrnoException).code}); using TCG` };
    }
    const qemu = qemuPath();
    if (!qemu) return { accel: 'tcg' }; // the runner reports the missing QEMU itself
    const key = verdictKey(qemu, o.kernelHash, o.initrd);
    const known = await recall(key);
    if (known) return known;
    const outcome = await o.probe();
    const choice: AccelChoice = outcome.answered ? { accel: 'kvm' } : { accel: 'tcg', reason: `KVM: /dev/kvm present but ${outcome.why}; using TCG` };
    await remember(key, choice);
    return choice;
  })();
  return chosen;
}

/** A KVM guest that stopped answering in a real run: remember TCG for this machine from now on. */
export async function demoteKvm(o: Omit<AccelOptions, 'probe'>, why: string): Promise<AccelChoice> {
  const choice: AccelChoice = { accel: 'tcg', reason: `KVM: ${why}; using TCG from now on` };
  const qemu = qemuPath();
  if (qemu) await remember(verdictKey(qemu, o.kernelHash, o.initrd), choice);
  chosen = Promise.resolve(choice);
  return choice;
}
