/**
 * The fuzzer's loop, inside the cr-lab VM: make seed images by
 * checkpointing real programs (a tree with a zombie, pipes and a FIFO,
 * memory of every kind with files, signals and limits, seccomp filters),
 * then restart mutated copies of them one after the other, as `cr restore`
 * does (cr-mktree -k), and sort each outcome:
 *
 *  - refused: restart failed with an error, and no task of the tree is
 *    left running;
 *  - restarted: every task of the tree restarted (the mutation changed
 *    something the engine takes as it is: a register, a byte of memory);
 *    the tree is then killed;
 *  - misbehaved: cr-mktree crashed or hung, a task of a refused tree is
 *    still running (half-restored), an image with a broken checksum was
 *    accepted, or the kernel log shows a BUG, WARNING, KASAN, UBSAN or
 *    lockdep report.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { kernelBackend } from '../../../backends/kernel/index.js';
import { readImage, type TreeTask } from '../../../backends/kernel/image.js';
import { helperPath, NR_RESTART } from '../../../backends/kernel/sys.js';
import { dmesgTrouble } from '../../../vm-images/runner.js';
import { sleep, tempDir } from '../../lib/harness.js';
import { kprogram, startTo } from '../env.js';
import { mutate, targets, type Seed } from './mutate.js';

export interface Outcome {
  kind: 'refused' | 'restarted' | 'misbehaved';
  why?: string;
}

export interface Totals {
  cases: number;
  refused: number;
  restarted: number;
  misbehaved: { n: number; seed: string; what: string; why: string }[];
  seconds: number;
}

async function waitFor(file: string, text: string, ms = 60000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text)) return;
    await sleep(10);
  }
  throw new Error(`${file} never showed ${JSON.stringify(text)}`);
}

/** A program that runs long enough to be checkpointed, and when it is ready. */
interface SeedProgram {
  /** Its first word names the seed: each seed's its own (an image is compared with, and falls back to the tree of, its seed's). */
  name: string;
  /** Start it in @dir; resolves with its pid once it is worth checkpointing. */
  start(dir: string): Promise<number>;
}

/** A seed that runs @argv (given its directory) with its output in out.txt, ready once that shows @ready. */
const readySeed = (name: string, argv: (dir: string) => string[], ready = 'ready'): SeedProgram => ({
  name,
  async start(dir) {
    const [program, ...args] = argv(dir);
    const out = path.join(dir, 'out.txt');
    const c = startTo(program!, args, out);
    await waitFor(out, ready);
    return c.pid;
  },
});

const SEED_PROGRAMS: SeedProgram[] = [
  readySeed('memsum (memory of every kind, files, TLS, FPU)', (dir) => [kprogram('memsum'), dir, '100000', '20'], 'iter 3 '),
  {
    name: 'ktree (three processes, a zombie, a shared file)',
    async start(dir) {
      const c = startTo(kprogram('ktree'), [dir, '100000', '20'], path.join(dir, 'stdout'));
      await waitFor(path.join(dir, 'p2.txt'), 'iter 3 ');
      return c.pid;
    },
  },
  readySeed('kpipes (pipes and a FIFO with bytes in flight)', (dir) => [kprogram('kpipes'), '100000', '20', dir], 'iter 3:'),
  readySeed('procstate (pending signals, rlimits, capabilities)', () => [kprogram('procstate'), 'state']),
  readySeed('kfiles (sockets, a listener, eventfd, timerfd, signalfd, epoll, inotify, memfd, an unlinked file, locks, a pty)', (dir) => [kprogram('kfiles'), 'mix', dir]),
  readySeed('kinet-tcp (TCP connections between two processes with bytes queued both ways, over IPv4 and IPv6)', () => [kprogram('kinet'), 'established']),
  readySeed('kinet-udp (UDP sockets with datagrams queued, a connected one)', () => [kprogram('kinet'), 'udp']),
  // kipc's own ready line, not a child's: all its objects exist
  readySeed('kipc (its own UTS and IPC namespaces: SysV segments, queues, semaphores, SEM_UNDO; POSIX timers)', () => ['unshare', '-iu', kprogram('kipc')], '\nready\n'),
  readySeed('kthreads (threads: tids, TLS, masks, altstacks, rseq, robust lists)', () => [kprogram('kthreads'), 'threads']),
  readySeed('confine (no_new_privs, two seccomp filters)', () => [kprogram('confine'), 'seccomp']),
];

/** Checkpoint each seed program (killing it) into an image; its files stay where it left them. */
export async function makeSeeds(log: (line: string) => void = () => {}): Promise<Seed[]> {
  const seeds: Seed[] = [];
  for (const p of SEED_PROGRAMS) {
    const dir = tempDir('fuzzseed');
    const images = tempDir('fuzzseedimg');
    const pid = await p.start(dir);
    await kernelBackend.dump({ pid, dir: images });
    const img = fs.readFileSync(path.join(images, 'kernel.img'));
    seeds.push({ name: p.name.split(' ')[0]!, img });
    log(`seed ${p.name}: ${img.length} bytes`);
  }
  return seeds;
}

/** The kernel log since the last call, from /dev/kmsg (records, not waiting). */
class KernelLog {
  private fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  private buf = Buffer.alloc(8192);
  constructor() {
    this.read();
  }
  read(): string[] {
    const lines: string[] = [];
    for (;;) {
      try {
        const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
        if (n <= 0) break;
        lines.push(this.buf.toString('utf8', 0, n).replace(/^[^;]*;/, '').trimEnd());
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') break;
        if (code === 'EPIPE') continue;	// records were overwritten meanwhile
        throw err;
      }
    }
    return lines;
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

const CASE_LIMIT_MS = 120000;
/** How long a tree whose restart logged an error may take to end on its own. */
const ERROR_GRACE_MS = 1500;
/** Our own process group, which the seeds (and so the trees restarted from them) may share. */
const OWN_GROUP = Number(fs.readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ')[2]);

/**
 * A task of @tree that runs the checkpointed program although its restart
 * failed: it has the image's name (a placeholder is still cr-mktree) and
 * sleeps in another system call than restart(2).
 */
function halfRestored(tree: TreeTask[]): number[] {
  return tree.filter((t) => {
    try {
      const stat = fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8');
      const comm = /\((.*)\) (\S)/.exec(stat);
      const call = fs.readFileSync(`/proc/${t.pid}/syscall`, 'utf8').split(' ')[0];
      return comm && comm[1] !== 'cr-mktree' && comm[2] === 'S' && /^\d+$/.test(call ?? '') && call !== String(NR_RESTART);
    } catch {
      return false;
    }
  }).map((t) => t.pid);
}

/** Whether process group @pgid has a member (signal 0 checks without sending). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const errorIn = (file: string): boolean => {
  try {
    return /error/.test(fs.readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
};

/**
 * Restart @file as `cr restore` would, with @tree, and sort the outcome.
 * Once the engine has logged an error, the tree gets a moment to end on
 * its own; then it is killed (a task that joins its group after the
 * others failed waits out the group's timeout, which is not the fuzzer's
 * business).
 */
export async function tryImage(file: string, logFile: string, tree: TreeTask[], cloneFlags = 0): Promise<Outcome> {
  // a pid or group of the list that exists already is not the tree's (the list may be garbage)
  const strangers = new Set([...tree.map((t) => t.pid), ...tree.map((t) => -t.pgid)].filter((p) => p === 0 || p === -1 || p === -OWN_GROUP || (p > 0 ? fs.existsSync(`/proc/${p}`) : groupExists(-p))));
  const args = tree.map((t) => `${t.pid}:${t.ppid}:${t.pgid}:${t.sid}${t.zombie === undefined ? '' : `:z${t.zombie}`}`);
  // a root that had UTS/IPC namespaces of its own is made in fresh ones, as cr restore does
  const ns = cloneFlags ? ['-n', cloneFlags.toString(16)] : [];
  const h = execa(helperPath(), ['-k', file, logFile, ...ns, ...args], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], reject: false, buffer: false });
  let status = '';
  h.stdio[3]!.on('data', (c: Buffer) => {
    status += c.toString();
  });
  const live = tree.filter((t) => t.zombie === undefined).length;
  const until = Date.now() + CASE_LIMIT_MS;
  const ready = () => (status.match(/^ready /gm) ?? []).length;
  let failedAt = 0;
  for (let i = 0; Date.now() < until && h.exitCode === null && !/^error /m.test(status) && ready() < tree.length; i++) {
    if (!failedAt && i % 20 === 19 && errorIn(logFile)) failedAt = Date.now();
    if (failedAt && Date.now() - failedAt > ERROR_GRACE_MS) break;
    await sleep(2);
  }
  let outcome: Outcome;
  if (ready() >= tree.length) {
    outcome = { kind: 'restarted' };
  } else if (/^error /m.test(status) || failedAt) {
    outcome = { kind: 'refused' };
  } else if (h.exitCode === null) {
    outcome = { kind: 'misbehaved', why: `restart neither finished nor failed within ${CASE_LIMIT_MS / 1000} s` };
  } else {
    const r = await h;
    outcome = r.signal && r.signal !== 'SIGKILL'
      ? { kind: 'misbehaved', why: `cr-mktree died of ${r.signal}` }
      : { kind: 'refused' };
  }
  if (outcome.kind === 'refused' && live) {
    const running = halfRestored(tree.filter((t) => !strangers.has(t.pid)));
    if (running.length) outcome = { kind: 'misbehaved', why: `half-restored tree: pid ${running.join(', ')} runs although the restart failed` };
  }
  // the tree, and whatever a restarted task of it may have forked since, in its groups
  for (const pid of new Set([...tree.map((t) => t.pid), ...tree.map((t) => -t.pgid)])) {
    try {
      if (!strangers.has(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      /* not there */
    }
  }
  h.kill('SIGKILL');
  await h;
  // the next case needs the same pids free: reaped, not only dead
  for (let i = 0; i < 500 && tree.some((t) => !strangers.has(t.pid) && fs.existsSync(`/proc/${t.pid}`)); i++) await sleep(10);
  return outcome;
}

/** Which cases: @count of them numbered from @first, mutated as @runSeed says. */
export interface Cases {
  first: number;
  count: number;
  runSeed: number;
}

/** Run the mutated images @cases of @seeds; @onCase sees each outcome. */
export async function fuzz(seeds: Seed[], { first, count, runSeed }: Cases,
  onCase: (n: number, o: Outcome, what: string) => void = () => {}): Promise<Totals> {
  const t0 = Date.now();
  const all = targets(seeds);
  const dir = tempDir('fuzz');
  const file = path.join(dir, 'case.img');
  const logFile = path.join(dir, 'case.log');
  const kmsg = new KernelLog();
  const totals: Totals = { cases: 0, refused: 0, restarted: 0, misbehaved: [], seconds: 0 };
  try {
    for (let n = first; n < first + count; n++) {
      const c0 = Date.now();
      const m = mutate(seeds, all, n, runSeed);
      fs.writeFileSync(file, m.img);
      fs.writeFileSync(logFile, '');
      let image: { tree: TreeTask[]; cloneFlags: number };
      try {
        image = readImage(file);
        if (image.tree.length > 64) throw new Error('too large a tree to create');
      } catch {
        // what userspace cannot read, the kernel must refuse as well: try it with the seed's tree
        image = readImage(seedFile(seeds, m.seed, dir));
      }
      const { tree, cloneFlags } = image;
      let o = await tryImage(file, logFile, tree, cloneFlags);
      const changed = !m.img.equals(seeds.find((s) => s.name === m.seed)!.img);
      if (o.kind === 'restarted' && !m.fixed && changed) o = { kind: 'misbehaved', why: 'an image whose checksum no longer matches was restarted' };
      const trouble = dmesgTrouble(kmsg.read().join('\n'));
      if (trouble.length) o = { kind: 'misbehaved', why: `kernel log: ${trouble.slice(0, 3).join(' | ')}` };
      totals.cases++;
      if (o.kind === 'misbehaved') totals.misbehaved.push({ n, seed: m.seed, what: m.what, why: o.why! });
      else totals[o.kind]++;
      onCase(n, o, `${m.seed}: ${m.what}${m.fixed ? '' : ' (trailer left stale)'} [${Date.now() - c0} ms]`);
    }
  } finally {
    kmsg.close();
    totals.seconds = (Date.now() - t0) / 1000;
  }
  return totals;
}

/** A seed's image on disk (readImage reads files), written once per run. */
function seedFile(seeds: Seed[], name: string, dir: string): string {
  const file = path.join(dir, `seed-${name}.img`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, seeds.find((s) => s.name === name)!.img);
  return file;
}

/**
 * A long run creates hundreds of thousands of tasks: raise pid_max, so that
 * pids do not wrap and a seed's pids stay free (the VM is thrown away after).
 */
export function raisePidMax(): void {
  try {
    fs.writeFileSync('/proc/sys/kernel/pid_max', '4194304');
  } catch {
    /* not root, or not allowed: runs stay short then */
  }
}
