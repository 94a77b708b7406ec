/**
 * The guest kernel: pinned Debian source + kernel-patches/series + config
 * fragments on tinyconfig, built reproducibly and cached by the hash of those
 * inputs, plus the out-of-tree kmod/ built against the cached tree.  Two
 * flavours: `normal` (vm-images/kernel.config) and `debug` (the same plus
 * vm-images/kernel-debug.config: KASAN, UBSAN, lockdep, ...), each its own
 * cache entry and its own build of kmod/.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheRoot, repoRoot, vmImagesDir, VmError } from './common.js';
import { createProgress, type Progress } from './progress.js';

/**
 * Bump whenever the way the kernel is built changes (steps, make targets,
 * environment) so old cache entries stop matching.
 */
export const KERNEL_RECIPE_VERSION = 1;

interface Pins {
  package: string;
  version: string;
  tarball: string;
  topDir: string;
  buildTimestamp: string;
  buildUser: string;
  buildHost: string;
  buildVersion: string;
}

/** Which kernel: the normal one, or the same with the debugging options of kernel-debug.config. */
export type Flavour = 'normal' | 'debug';

/** The config fragments of each flavour, merged onto tinyconfig in this order. */
const FRAGMENTS: Record<Flavour, string[]> = {
  normal: ['kernel.config'],
  debug: ['kernel.config', 'kernel-debug.config'],
};

interface Fragment {
  name: string;
  text: string;
}

interface Patch {
  name: string;
  path: string;
  sha256: string;
}

/** Everything a kernel build depends on; its hash names the cache entry. */
export interface KernelInputs {
  flavour: Flavour;
  pins: Pins;
  fragments: Fragment[];
  patches: Patch[];
  hash: string;
}

export interface Kernel {
  /** Path of the bootable image. */
  bzImage: string;
  /** The configured and built source tree, for `make -C buildDir M=... modules`. */
  buildDir: string;
  /** sha256 of the inputs: names the cache entry. */
  hash: string;
  flavour: Flavour;
}

export interface Manifest {
  inputHash: string;
  flavour: Flavour;
  package: string;
  version: string;
  recipe: number;
  fragmentSha256: string;
  fragments: { name: string; sha256: string }[];
  patches: { name: string; sha256: string }[];
  bzImageSha256: string;
  bzImageBytes: number;
  makeSteps: number;
  startedAt: string;
  finishedAt: string;
  buildSeconds: number;
}

export interface EnsureKernelOptions {
  progress?: Progress;
  /** Default `normal`. */
  flavour?: Flavour;
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

export const kernelCacheDir = (): string => join(cacheRoot(), 'kernel');

/** Read the pins, the flavour's fragments and the patch series, and hash them. */
export function readKernelInputs(flavour: Flavour = 'normal'): KernelInputs {
  const pins = JSON.parse(readFileSync(join(vmImagesDir, 'kernel.json'), 'utf8')) as Pins;
  const fragments = FRAGMENTS[flavour].map((name) => ({ name, text: readFileSync(join(vmImagesDir, name), 'utf8') }));
  const patches = readSeries();
  const common = { recipe: KERNEL_RECIPE_VERSION, pins };
  const series = patches.map((p) => [p.name, p.sha256]);
  // The normal flavour hashes what it always has, so its cache entries stay valid.
  const hash = sha256(
    JSON.stringify(
      flavour === 'normal'
        ? { ...common, fragment: sha256(fragments[0]!.text), patches: series }
        : { ...common, flavour, fragments: fragments.map((f) => [f.name, sha256(f.text)]), patches: series },
    ),
  );
  return { flavour, pins, fragments, patches, hash };
}

/** kernel-patches/series: one patch file name a line, `#` comments; absent means no patches. */
function readSeries(): Patch[] {
  const dir = join(repoRoot, 'kernel-patches');
  const series = join(dir, 'series');
  if (!existsSync(series)) return [];
  return readFileSync(series, 'utf8')
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '')
    .map((name) => {
      const path = join(dir, name);
      if (!existsSync(path)) throw new VmError(`kernel-patches/series lists ${name}, which does not exist`);
      return { name, path, sha256: sha256(readFileSync(path)) };
    });
}

/** The pinned source package must be installed at exactly the pinned version. */
async function checkSourcePackage(pins: Pins): Promise<void> {
  const want = `apt-get install ${pins.package}=${pins.version}`;
  const r = await execa('dpkg-query', ['-W', '-f=${Version} ${db:Status-Status}', pins.package], { reject: false });
  const [version, status] = r.stdout.split(' ');
  if (r.exitCode !== 0 || status !== 'installed') throw new VmError(`${pins.package} is not installed: ${want}`);
  if (version !== pins.version) {
    throw new VmError(`${pins.package} is ${version}, but vm-images/kernel.json pins ${pins.version}: ${want}`);
  }
  if (!existsSync(pins.tarball)) throw new VmError(`${pins.tarball} is missing; reinstall: ${want}`);
}

/** Host tools the kernel build needs, and the Debian package providing each. */
const BUILD_TOOLS: [string, string][] = [
  ['make', 'make'],
  ['gcc', 'gcc'],
  ['flex', 'flex'],
  ['bison', 'bison'],
  ['bc', 'bc'],
  ['xz', 'xz-utils'],
  ['patch', 'patch'],
  ['perl', 'perl'],
];

async function checkBuildTools(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of BUILD_TOOLS) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) missing.push(pkg);
  }
  // objtool (x86) links against libelf.
  if (!existsSync('/usr/include/libelf.h')) missing.push('libelf-dev');
  if (missing.length > 0) {
    throw new VmError(`missing kernel build tools: apt-get install --no-install-recommends ${missing.join(' ')}`);
  }
}

/** Fixed identity and locale so two builds of the same inputs give the same bytes. */
function buildEnv(pins: Pins): Record<string, string> {
  return {
    KBUILD_BUILD_TIMESTAMP: pins.buildTimestamp,
    KBUILD_BUILD_USER: pins.buildUser,
    KBUILD_BUILD_HOST: pins.buildHost,
    KBUILD_BUILD_VERSION: pins.buildVersion,
    LC_ALL: 'C',
    TZ: 'UTC',
  };
}

/**
 * ccache, when installed, for the compile steps: kernel trees of different
 * patch series (every helper branch, the debug flavour) share most of
 * their objects. ccache hands back the bytes gcc would write, so the build
 * stays reproducible; paths are rewritten relative to the tree so that
 * trees in different directories hit the same entries.
 */
async function ccacheArgs(tree: string): Promise<{ args: string[]; env: Record<string, string> }> {
  const r = await execa('sh', ['-c', 'command -v ccache'], { reject: false });
  if (r.exitCode !== 0) return { args: [], env: {} };
  return {
    args: ['CC=ccache gcc'],
    env: { CCACHE_DIR: join(cacheRoot(), 'ccache'), CCACHE_BASEDIR: tree, CCACHE_NOHASHDIR: '1', CCACHE_MAXSIZE: '5G' },
  };
}

/** Parse `CONFIG_X=v` and `# CONFIG_X is not set` lines (the latter as `n`). */
function parseConfig(text: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (set) options.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset) options.set(unset[1]!, 'n');
  }
  return options;
}

/** Kconfig drops options whose dependencies are missing without a word: name each one (a later fragment wins). */
function verifyConfig(fragments: Fragment[], config: string): void {
  const got = parseConfig(config);
  const wrong = [...parseConfig(fragments.map((f) => f.text).join('\n'))]
    .filter(([name, want]) => (got.get(name) ?? 'n') !== want)
    .map(([name, want]) => `${name}=${want} (got ${got.get(name) ?? 'n'})`);
  if (wrong.length > 0) {
    throw new VmError(`${fragments.map((f) => `vm-images/${f.name}`).join(' + ')} options lost after olddefconfig: ${wrong.join(', ')}`);
  }
}

/** Keep the last lines of a command's output to explain a failure. */
class Tail {
  private lines: string[] = [];
  constructor(private readonly max = 40) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  toString(): string {
    return this.lines.join('\n');
  }
}

/** Run a build step; on failure throw a VmError carrying the step name and its last output lines. */
async function step(
  what: string,
  file: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; onLine?: (line: string) => void },
): Promise<void> {
  const tail = new Tail();
  const proc = execa(file, args, { cwd: opts.cwd, env: opts.env, all: true, buffer: false, reject: false, stdin: 'ignore' });
  for await (const line of proc.iterable({ from: 'all' })) {
    tail.push(line);
    opts.onLine?.(line);
  }
  const r = await proc;
  if (r.exitCode !== 0) throw new VmError(`${what} failed (exit ${r.exitCode ?? r.signal}):\n${tail}`);
}

/** Kbuild's quiet output: one `  CC      path` line per build step. */
const KBUILD_STEP = /^ {2}[A-Z][A-Z0-9_]* +\S/;
/** Steps of a cold build with vm-images/kernel.config, used until a real build is measured. */
const DEFAULT_MAKE_STEPS = 1700;
const stepsFile = (): string => join(kernelCacheDir(), 'make-steps.json');

function estimatedSteps(): number {
  try {
    return (JSON.parse(readFileSync(stepsFile(), 'utf8')) as { steps: number }).steps;
  } catch {
    return DEFAULT_MAKE_STEPS;
  }
}

/**
 * Build a kernel from scratch into `dest` (which must not exist): extract,
 * patch, configure, verify the config, make. Leaves `dest/linux` (the tree),
 * `dest/bzImage`, `dest/config`, `dest/manifest.json`.
 */
export async function buildKernelInto(dest: string, inputs: KernelInputs, progress: Progress): Promise<Manifest> {
  const { pins } = inputs;
  await checkSourcePackage(pins);
  await checkBuildTools();
  const started = new Date();
  const tree = join(dest, 'linux');
  await mkdir(tree, { recursive: true });

  progress.log(`extracting ${pins.tarball}`);
  await step('extracting the kernel source', 'tar', ['-xf', pins.tarball, '--strip-components=1', '-C', tree], { cwd: dest });

  for (const patch of inputs.patches) {
    progress.log(`applying ${patch.name}`);
    await step(`applying kernel-patches/${patch.name}`, 'patch', ['-p1', '--batch', '--forward', '-i', patch.path], { cwd: tree });
  }

  const env = buildEnv(pins);
  progress.log(`configuring: tinyconfig + ${inputs.fragments.map((f) => `vm-images/${f.name}`).join(' + ')}`);
  const fragments: string[] = [];
  for (const f of inputs.fragments) {
    fragments.push(join(dest, f.name));
    await writeFile(join(dest, f.name), f.text);
  }
  await step('make tinyconfig', 'make', ['tinyconfig'], { cwd: tree, env });
  await step('merge_config.sh', 'scripts/kconfig/merge_config.sh', ['-m', '.config', ...fragments], { cwd: tree, env });
  await step('make olddefconfig', 'make', ['olddefconfig'], { cwd: tree, env });
  const config = await readFile(join(tree, '.config'), 'utf8');
  verifyConfig(inputs.fragments, config);

  // `modules` also writes Module.symvers, which out-of-tree modules link against.
  let steps = 0;
  progress.phase('kernel build', estimatedSteps());
  try {
    const cc = await ccacheArgs(tree);
    if (cc.args.length) progress.log(`compiling through ccache (${cc.env.CCACHE_DIR})`);
    await step('make bzImage modules', 'make', [`-j${availableParallelism()}`, ...cc.args, 'bzImage', 'modules'], {
      cwd: tree,
      env: { ...env, ...cc.env },
      onLine: (line) => {
        if (KBUILD_STEP.test(line)) {
          steps++;
          progress.tick();
        }
      },
    });
  } finally {
    progress.done();
  }

  const image = await readFile(join(tree, 'arch/x86/boot/bzImage'));
  await copyFile(join(tree, 'arch/x86/boot/bzImage'), join(dest, 'bzImage'));
  await writeFile(join(dest, 'config'), config);
  const finished = new Date();
  const manifest: Manifest = {
    inputHash: inputs.hash,
    flavour: inputs.flavour,
    package: pins.package,
    version: pins.version,
    recipe: KERNEL_RECIPE_VERSION,
    fragmentSha256: sha256(inputs.fragments[0]!.text),
    fragments: inputs.fragments.map((f) => ({ name: f.name, sha256: sha256(f.text) })),
    patches: inputs.patches.map((p) => ({ name: p.name, sha256: p.sha256 })),
    bzImageSha256: sha256(image),
    bzImageBytes: image.length,
    makeSteps: steps,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    buildSeconds: Math.round((finished.getTime() - started.getTime()) / 1000),
  };
  await writeFile(join(dest, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await mkdir(kernelCacheDir(), { recursive: true });
  await writeFile(stepsFile(), JSON.stringify({ steps }) + '\n');
  return manifest;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a lock file's builder still runs (a just-created lock may not hold its pid yet). */
async function lockHeld(path: string): Promise<boolean> {
  const [text, info] = await Promise.all([readFile(path, 'utf8').catch(() => ''), stat(path).catch(() => undefined)]);
  if (!info) return false;
  const holder = Number(text);
  if (holder > 0) return pidAlive(holder);
  return Date.now() - info.mtimeMs < 10_000;
}

/**
 * One build at a time per cache entry (the machine has few cores): an
 * O_EXCL lock file holding the builder's pid; a dead builder's lock is taken over.
 */
async function withLock<T>(lockPath: string, progress: Progress, fn: () => Promise<T>): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await lockHeld(lockPath)) {
        if (!announced) progress.log(`waiting for another kernel build (lock ${lockPath})`);
        announced = true;
        await new Promise((r) => setTimeout(r, 2000));
      } else {
        await rm(lockPath, { force: true });
      }
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** Remove build directories and locks left by builders that died (interrupted builds). */
async function removeStale(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const temp = /^\.tmp-[0-9a-f]+-(\d+)$/.exec(name);
    if (temp && !pidAlive(Number(temp[1]))) await rm(join(dir, name), { recursive: true, force: true });
    if (/^[0-9a-f]{64}\.lock$/.test(name) && !(await lockHeld(join(dir, name)))) await rm(join(dir, name), { force: true });
  }
}

/** The cached kernel for the current inputs, building it first if needed. */
export async function ensureKernel(opts: EnsureKernelOptions = {}): Promise<Kernel> {
  const progress = opts.progress ?? createProgress();
  const inputs = readKernelInputs(opts.flavour);
  const root = kernelCacheDir();
  const entry = join(root, inputs.hash);
  const result: Kernel = { bzImage: join(entry, 'bzImage'), buildDir: join(entry, 'linux'), hash: inputs.hash, flavour: inputs.flavour };
  if (existsSync(join(entry, 'manifest.json'))) return result;

  await mkdir(root, { recursive: true });
  return withLock(join(root, `${inputs.hash}.lock`), progress, async () => {
    if (existsSync(join(entry, 'manifest.json'))) return result; // built while we waited
    await removeStale(root);
    // Build beside the entry and rename it into place only when complete.
    const tmp = join(root, `.tmp-${inputs.hash.slice(0, 16)}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    try {
      progress.log(`building the ${inputs.flavour} kernel ${inputs.hash.slice(0, 12)} in ${tmp}`);
      const manifest = await buildKernelInto(tmp, inputs, progress);
      await rename(tmp, entry);
      progress.log(`kernel ready in ${manifest.buildSeconds} s: ${result.bzImage}`);
      return result;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
}

/** Where kmod/ is built for a flavour: in place for the normal kernel, kmod/debug/ for the debug one. */
export const kmodDir = (flavour: Flavour): string => join(repoRoot, 'kmod', ...(flavour === 'normal' ? [] : [flavour]));

/**
 * kmod/debug/: the sources of kmod/ as symbolic links, so that Kbuild (which
 * builds an external module where its sources are) builds them a second time,
 * for the debug kernel, without touching the normal build.
 */
async function linkSources(src: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  const sources = readdirSync(src).filter((name) => /\.[ch]$/.test(name) || name === 'Makefile' || name === 'Kbuild');
  for (const name of readdirSync(dest)) {
    if (/\.[ch]$|^Makefile$|^Kbuild$/.test(name) && !sources.includes(name)) await rm(join(dest, name), { force: true });
  }
  for (const name of sources) if (!existsSync(join(dest, name))) await symlink(join('..', name), join(dest, name));
}

/**
 * Build kmod/ (if it has a Makefile or Kbuild) against the kernel's tree.
 * Kbuild rebuilds only what changed; returns the .ko paths, or [] without kmod/.
 */
export async function buildKmod(kernel: Kernel): Promise<string[]> {
  const src = kmodDir('normal');
  if (!existsSync(join(src, 'Makefile')) && !existsSync(join(src, 'Kbuild'))) return [];
  const dir = kmodDir(kernel.flavour);
  if (dir !== src) await linkSources(src, dir);
  await step(`building ${dir === src ? 'kmod/' : `kmod/ for the ${kernel.flavour} kernel`}`, 'make', [`-j${availableParallelism()}`, '-C', kernel.buildDir, `M=${dir}`, 'modules'], {
    cwd: dir,
  });
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ko'))
    .sort()
    .map((name) => join(dir, name));
}
