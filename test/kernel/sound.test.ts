/**
 * The engine against a hostile caller and a hostile image: restart applies
 * the checks of the system calls it stands for (in a user namespace whose
 * root may not call setgroups, no image can drop a group or set undefined
 * securebits), takes the mm layout and auxv from an image only as
 * prctl(PR_SET_MM_MAP) would, brings back what confines a task (seccomp
 * filters, no_new_privs) and refuses by name at checkpoint what it would
 * not bring back (other namespaces, a chroot, sealed mappings, a page it
 * cannot read).  Each test program checks its own state after restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { ensureEngine } from '../../backends/kernel/sys.js';
import { CrError } from '../../userspace/errors.js';
import { packageRoot } from '../../userspace/paths.js';
import { alive, sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, selfCheck, skipReason, startTo } from './env.js';
import { editField, fieldOf, findObject, fixTrailer, readField, replaceObject } from './fuzz/format.js';

const t = skipReason ? test.skip : test;

async function waitFor(file: string, text: string, ms = 30000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text)) return;
    await sleep(10);
  }
  throw new Error(`${file} never showed ${JSON.stringify(text)}`);
}

/** /proc/PID/status lines that say what confines a task. */
function confinement(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => /^(NoNewPrivs|Seccomp|Seccomp_filters):/.test(l));
}

interface Checkpointed {
  out: string;
  images: string;
  pid: number;
  before: string[];
}

/** Start `confine MODE`, wait until it is ready, checkpoint it (killing it). */
async function checkpointConfine(mode: string): Promise<Checkpointed> {
  const out = path.join(tempDir('ksnd'), 'out.txt');
  const child = startTo(kprogram('confine'), [mode], out);
  await waitFor(out, 'ready');
  const before = confinement(child.pid);
  const images = tempDir('ksndimg');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(await child.done, 'SIGKILL');
  return { out, images, pid: child.pid, before };
}

/** Restart, compare the confinement lines, tell it to check itself, wait. */
async function restartAndCheck(c: Checkpointed): Promise<{ after: string[]; code: number | null; out: string }> {
  const r = await kernelBackend.restore({ dir: c.images });
  const after = confinement(r.pids[0]!);
  process.kill(r.pids[0]!, 'SIGUSR1');
  const status = await r.wait();
  return { after, code: status.code, out: fs.readFileSync(c.out, 'utf8') };
}

/** Write @img as the image of a new directory. */
function imageDir(img: Buffer): string {
  const dir = tempDir('ksndedit');
  fs.writeFileSync(path.join(dir, 'kernel.img'), img);
  return dir;
}

const restoreError = async (dir: string): Promise<string> => {
  const err = await kernelBackend.restore({ dir }).catch((e: unknown) => e);
  assert.instance(err, CrError, 'the restart was refused');
  return (err as Error).message;
};

t('the engine is loaded for what follows', () => {
  assert.is(ensureEngine(), undefined);
});

t('a task under two seccomp filters and no_new_privs comes back under the same', async () => {
  const c = await checkpointConfine('seccomp');
  assert.equal(c.before, ['NoNewPrivs:\t1', 'Seccomp:\t2', 'Seccomp_filters:\t2']);
  const show = (await kernelBackend.describe(c.images)).lines.join('\n');
  assert.match(show, /seccomp: 2 filters/);
  assert.match(show, /process: .*no_new_privs/);
  const { after, code, out } = await restartAndCheck(c);
  assert.equal(after, c.before);
  assert.not.match(out, /FAIL/, out);
  assert.is(code, 0, out);
  assert.equal(dmesgTrouble(), []);
});

t('no_new_privs alone comes back, and no filter with it', async () => {
  const c = await checkpointConfine('nnp');
  assert.equal(c.before, ['NoNewPrivs:\t1', 'Seccomp:\t0', 'Seccomp_filters:\t0']);
  const { after, code, out } = await restartAndCheck(c);
  assert.equal(after, c.before);
  assert.is(code, 0, out);
});

t('a filter the restarter could not install is refused: no no_new_privs and no CAP_SYS_ADMIN', async () => {
  // the task and its restarter have the same few capabilities, CAP_SYS_ADMIN not among them
  const caps = ['--bounding-set=-all,+checkpoint_restore,+setuid,+setgid,+setpcap,+kill', '--'];
  const out = path.join(tempDir('ksndsc'), 'out.txt');
  const child = startTo('setpriv', [...caps, kprogram('confine'), 'seccomp'], out);
  await waitFor(out, 'ready');
  const images = tempDir('ksndscimg');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  await child.done;
  // the same task, had it been filtered without no_new_privs (by a CAP_SYS_ADMIN it no longer has)
  const img = fs.readFileSync(path.join(images, 'kernel.img'));
  const proc = findObject(img, 'PROCESS')!;
  const flags = readField(img, proc, fieldOf(proc.type, 'flags'));
  const dir = imageDir(editField(img, 'PROCESS', 'flags', flags & ~2n));	// CKPT_PROC_NO_NEW_PRIVS
  const r = await execa('setpriv', [...caps, 'node', path.join(packageRoot, 'dist', 'userspace', 'cli', 'cr.js'), 'restore', '-D', dir], { reject: false, all: true });
  assert.is.not(r.exitCode, 0, r.all);
  assert.match(r.all ?? '', /seccomp filter 0: installing it needs no_new_privs or CAP_SYS_ADMIN/, r.all);
  assert.equal(dmesgTrouble(), []);
});

t('an image with 52 non-zero auxv words leaves /proc/PID/auxv ending with its AT_NULL pair', async () => {
  const c = await checkpointConfine('auxv');
  const fill = (words: number): Buffer => {
    let img: Buffer = editField(fs.readFileSync(path.join(c.images, 'kernel.img')), 'MM', 'nr_auxv', BigInt(words));
    for (let i = 0; i < words; i++) img = editField(img, 'MM', `saved_auxv[${i}]`, BigInt(0x1000 + i));
    return img;
  };
  // more words than this kernel's saved_auxv (52 with IA32 emulation, 50 without): refused, as PR_SET_MM_MAP does
  const err = await kernelBackend.restore({ dir: imageDir(fill(52)) }).then(() => undefined, (e: Error) => e.message);
  const keeps = err ? Number(/this kernel keeps (\d+)/.exec(err)?.[1]) : 52;
  assert.ok(keeps >= 46 && keeps <= 52, err);
  // all the words it keeps, none of them AT_NULL: it ends with the AT_NULL pair all the same
  fs.writeFileSync(path.join(c.images, 'kernel.img'), fill(keeps));
  const r = await kernelBackend.restore({ dir: c.images });
  const auxv = fs.readFileSync(`/proc/${r.pids[0]}/auxv`);
  assert.ok(auxv.length <= keeps * 8 && auxv.length % 16 === 0, `${auxv.length} bytes`);
  assert.is(auxv.readBigUInt64LE(auxv.length - 16), 0n);
  assert.is(auxv.readBigUInt64LE(auxv.length - 8), 0n);
  assert.is(auxv.readBigUInt64LE(0), 0x1000n, 'the image\'s words before it');
  process.kill(r.pids[0]!, 'SIGUSR1');
  const status = await r.wait();
  const out = fs.readFileSync(c.out, 'utf8');
  assert.not.match(out, /FAIL/, out);
  assert.is(status.code, 0, out);
});

t('an mm layout that prctl(PR_SET_MM_MAP) would refuse is refused, naming what is wrong', async () => {
  const c = await checkpointConfine('wait');
  const img = fs.readFileSync(path.join(c.images, 'kernel.img'));
  const mm = findObject(img, 'MM')!;
  const get = (f: string) => readField(img, mm, fieldOf(mm.type, f));
  const cases: [string, bigint, RegExp][] = [
    ['end_code', get('start_code'), /a range ends before it starts/],
    ['brk', get('start_brk') - 4096n, /a range ends before it starts/],
    ['arg_end', 0x800000000000n, /outside the user range/],
    ['start_stack', 0xffff800000000000n, /outside the user range/],
    ['nr_auxv', 65n, /an auxv of 65 words/],
  ];
  for (const [field, value, why] of cases) {
    const err = await restoreError(imageDir(editField(img, 'MM', field, value)));
    assert.match(err, why, `${field}: ${err}`);
  }
  // RLIMIT_DATA (2) smaller than brk and data: check_data_rlimit()
  assert.match(await restoreError(imageDir(editField(img, 'RLIMITS', 'rlim[2].cur', 1n))), /beyond RLIMIT_DATA/);
  assert.equal(dmesgTrouble(), []);
});

t('resource limits from an image pass setrlimit(2)\'s checks', async () => {
  const c = await checkpointConfine('wait');
  const img = fs.readFileSync(path.join(c.images, 'kernel.img'));
  // RLIMIT_NOFILE (7) above fs.nr_open: refused even to root
  const huge = editField(editField(img, 'RLIMITS', 'rlim[7].max', 1n << 40n), 'RLIMITS', 'rlim[7].cur', 1024n);
  assert.match(await restoreError(imageDir(huge)), /RLIMIT_NOFILE: the task's hard limit \d+ is above fs.nr_open/);
  const inverted = editField(img, 'RLIMITS', 'rlim[4].cur', 0xfffffffffffffffen);
  assert.match(await restoreError(imageDir(editField(inverted, 'RLIMITS', 'rlim[4].max', 100n))), /RLIMIT_CORE: soft limit above the hard one/);
});

t('under unshare -Ur (setgroups denied): the image as it is restarts; with no groups, or securebits 0xffffffff, EPERM', async () => {
  const child = path.join(packageRoot, 'dist', 'test', 'kernel', 'userns-restart.js');
  // the caller has a supplementary group, so that "no groups" would drop it
  // sh is the namespace's init: unlike node, it reaps the orphans a refused restart leaves
  const r = await execa('setpriv', ['--groups', '0', '--', 'unshare', '-Urpf', '--mount-proc', 'sh', '-c', 'node "$0"', child], { reject: false, all: true });
  assert.is(r.exitCode, 0, r.all);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as { setgroups: string; groups: string; restart: Record<string, string> };
  assert.is(result.setgroups, 'deny');
  assert.is(result.groups, '0');
  assert.is(result.restart.original, 'ok', r.all);
  assert.match(result.restart['no groups']!, /error -1: the task's supplementary groups differ from the caller's, and setgroups\(2\) is not allowed here/);
  assert.match(result.restart['securebits 0xffffffff']!, /error -1: securebits 0xffffffff: 0xffffff00 are not defined/, result.restart['securebits 0xffffffff']);
  assert.equal(dmesgTrouble(), []);
});

/** Checkpoint a task started by @argv (a confine that waits): the CrError, and it must still run. */
async function refused(argv: string[], why: RegExp): Promise<void> {
  const out = path.join(tempDir('ksndref'), 'out.txt');
  const child = startTo(argv[0]!, argv.slice(1), out);
  await waitFor(out, 'ready');
  const err = await kernelBackend.dump({ pid: child.pid, dir: tempDir('ksndrefimg') }).catch((e: unknown) => e);
  assert.instance(err, CrError, argv.join(' '));
  assert.match((err as Error).message, why);
  assert.ok(alive(child.pid), 'a refused checkpoint leaves the task running');
  process.kill(child.pid, 'SIGKILL');
  await child.done;
}

t('what confines a task and would not come back is refused at checkpoint, by name', async () => {
  const confine = kprogram('confine');
  await refused(['unshare', '-n', confine, 'wait'], /its network namespace is not the checkpointer's: not supported/);
  await refused(['unshare', '-m', confine, 'wait'], /its mount namespace is not the checkpointer's: not supported/);
  await refused(['unshare', '-U', confine, 'wait'], /its user namespace is not the checkpointer's: not supported/);
  await refused([confine, 'mseal'], /mapping [0-9a-f]+-[0-9a-f]+ is sealed \(mseal\): not supported/);
  // a chroot: the program alone in a directory of its own
  const root = tempDir('ksndroot');
  fs.copyFileSync(confine, path.join(root, 'confine'));
  fs.chmodSync(path.join(root, 'confine'), 0o755);
  await refused(['chroot', root, '/confine', 'wait'], /a root directory other than the checkpointer's \(chroot\) is not supported/);
  assert.equal(dmesgTrouble(), []);
});

t('a page the checkpoint cannot read fails the checkpoint, naming it: it never comes back as zeros', async () => {
  const out = path.join(tempDir('ksndhw'), 'out.txt');
  const child = startTo(kprogram('confine'), ['hwpoison'], out);
  await waitFor(out, 'ready');
  const err = await kernelBackend.dump({ pid: child.pid, dir: tempDir('ksndhwimg') }).catch((e: unknown) => e);
  assert.instance(err, CrError);
  assert.match((err as Error).message, /cannot read the page at [0-9a-f]+/);
  assert.ok(alive(child.pid), 'the task runs on');
  process.kill(child.pid, 'SIGKILL');
  await child.done;
  // memory_failure() reports the poisoned page; nothing else may appear
  assert.equal(dmesgTrouble().filter((l) => !/Memory failure|hwpoison/i.test(l)), []);
});

t('a member with a full 1 MiB pipe, FIFOs whose other end is another member\'s or nobody\'s: no refill or reopen blocks a turn', async () => {
  // w's write end comes back before r's read end; l's FIFO has no writer left, o's no reader
  const r = await selfCheck('kfullpipe', [tempDir('kfull')], [
    /pipe #\d+: 1048576 bytes in flight, size 1048576/,
    /fifo pipe #\d+: 3000 bytes in flight/,
    /fifo pipe #\d+: 100 bytes in flight/,
    /fifo pipe #\d+: 200 bytes in flight/,
  ]);
  assert.is(r.out.split('\n').filter((l) => l.startsWith('ok ')).length, 17, r.out);
});

t('a file that became a FIFO since the checkpoint is refused at restart by name, not waited on', async () => {
  const dir = tempDir('kfifoswap');
  const data = path.join(dir, 'data');
  fs.writeFileSync(data, 'held open for reading\n');
  const out = path.join(dir, 'out.txt');
  const child = startTo('sh', ['-c', `exec 7<${data}; exec ${kprogram('confine')} wait`], out);
  await waitFor(out, 'ready');
  const images = tempDir('kfifoswapimg');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(await child.done, 'SIGKILL');
  // opened as the image says (O_RDONLY, blocking), a FIFO without a writer would wait for one
  fs.rmSync(data);
  await execa('mkfifo', [data]);
  assert.match(await restoreError(images), new RegExp(`${data} is no longer the kind of file it was`));
  assert.not.ok(alive(child.pid), 'nothing of the tree runs');
  assert.equal(dmesgTrouble(), []);
});

/** The regsets an FPU object's state is in: FXSAVE, or XSAVE (its payload follows the note and size). */
const NT_PRFPREG = 2;
const NT_X86_XSTATE = 0x202;

/** @img with its FPU payload rewritten by @edit. */
function editFpu(img: Buffer, edit: (payload: Buffer) => void): Buffer {
  const out = Buffer.from(img);
  const fpu = findObject(out, 'FPU')!;
  edit(out.subarray(fpu.offset + 16, fpu.offset + fpu.len));
  fixTrailer(out);
  return out;
}

t('an FPU image gets the regset setters\' checks at restart, and loads into the restarting task cleanly in either layout', async () => {
  const c = await checkpointConfine('wait');
  const img = fs.readFileSync(path.join(c.images, 'kernel.img'));
  const fpu = findObject(img, 'FPU')!;
  const note = img.readUInt32LE(fpu.offset + 8);
  assert.ok(note === NT_X86_XSTATE || note === NT_PRFPREG, `note ${note}`);
  // MXCSR (offset 24 of the FXSAVE area) with a reserved bit
  assert.match(await restoreError(imageDir(editFpu(img, (p) => p.writeUInt32LE((p.readUInt32LE(24) | 0x80000000) >>> 0, 24)))),
    /the FPU state of the image was refused/);
  if (note === NT_X86_XSTATE) {
    // the XSAVE header at 512: an xfeature no task may have, a compacted layout, a reserved word
    for (const [at, value] of [[512, 1n << 62n], [520, 1n << 63n], [528, 1n]] as const) {
      const bad = editFpu(img, (p) => p.writeBigUInt64LE(p.readBigUInt64LE(at) | value, at));
      assert.match(await restoreError(imageDir(bad)), /the FPU state of the image was refused/, `XSAVE word at ${at}`);
    }
    // the same state in the FXSAVE layout (NT_PRFPREG) loads too: x87 and SSE from it, the rest in its initial state
    const fx = Buffer.alloc(8 + 8 + 512);
    fx.writeUInt32LE(fpu.type, 0);
    fx.writeUInt32LE(fx.length, 4);
    fx.writeUInt32LE(NT_PRFPREG, 8);
    fx.writeUInt32LE(512, 12);
    img.copy(fx, 16, fpu.offset + 16, fpu.offset + 16 + 512);
    const r = await restartAndCheck({ ...c, images: imageDir(replaceObject(img, 'FPU', fx)) });
    assert.equal(r.after, c.before);
    assert.is(r.code, 0, r.out);
  }
  const r = await restartAndCheck(c);
  assert.equal(r.after, c.before);
  assert.is(r.code, 0, r.out);
  assert.equal(dmesgTrouble(), []);
});

t('a forked task\'s mapping its parent\'s copy lacks is refused by name, and the refusal waits for the mmap lock (a clean lockdep log)', async () => {
  // the fuzzer's case 1740 (seed 20261201): a from_parent file mapping of kpipes' child made shared
  const dir = tempDir('ksndpipes');
  const out = path.join(dir, 'out.txt');
  const child = startTo(kprogram('kpipes'), ['100000', '20', dir], out);
  await waitFor(out, 'iter 3:');
  const images = tempDir('ksndimg');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  assert.is(await child.done, 'SIGKILL');
  const img = fs.readFileSync(path.join(images, 'kernel.img'));
  let n = 0;
  for (let vma = findObject(img, 'VMA', n); vma; vma = findObject(img, 'VMA', ++n)) {
    const get = (f: string) => readField(img, vma, fieldOf(vma.type, f));
    if (get('from_parent') === 1n && get('kind') === 3n) break;	// CKPT_VMA_FILE
  }
  assert.ok(findObject(img, 'VMA', n), 'the child has a file mapping from its parent');
  const err = await restoreError(imageDir(editField(img, 'VMA', 'kind', 4n, n)));	// CKPT_VMA_SHFILE
  assert.match(err, /VMA [0-9a-f]+ is not in the parent's copy/);
  assert.equal(dmesgTrouble(), []);
});

t('the header of an image with reserved bits is refused', async () => {
  const c = await checkpointConfine('wait');
  const img = fs.readFileSync(path.join(c.images, 'kernel.img'));
  assert.match(await restoreError(imageDir(editField(img, 'HEADER', 'flags', 0x80n))), /image flags 0x80/);
  assert.match(await restoreError(imageDir(editField(img, 'SECCOMP', 'pad', 0x2n))), /bad SECCOMP object/);
});

test.run();
