/**
 * The user-backend fuzzer: dump a few test programs that between them hold
 * every kind of state the backend saves (the seeds), then restore mutated
 * copies of their images (mutate.ts), a case per mutation, in a sandbox,
 * and sort the outcomes: refused with a one-line error, restored as the
 * image says, or misbehaved (an internal error of cr, an error of several
 * lines, a restore that hung or crashed the process, a task left behind,
 * a restored tree not as the image has it).
 *
 * The restores run as root from damaged images, so they run in a sandbox
 * (worker.ts): their own pid namespace (a signal or kill(-1) reaches no
 * task outside, orphans are reaped by test/programs/sandbox), mount
 * namespace (every file system read-only and without devices, but the
 * fuzzer's directory, a /dev of null, zero, full, random, urandom, tty
 * and its own ptys, /proc/sys read-only but for what its own IPC, UTS and
 * network namespaces hold), and UTS, IPC and network namespaces. A worker that dies or hangs is counted against its case and
 * replaced by a new one for the rest.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { execa } from 'execa';
import { packageRoot } from '../../../userspace/paths.js';
import { cr, programBin, start, tempDir, waitLines, writeInput } from '../../lib/harness.js';
import { watchdog } from '../../lib/watchdog.js';

export interface Outcome {
  kind: 'refused' | 'restored' | 'misbehaved';
  why?: string;
}

export interface WorkerConfig {
  root: string;
  seed: number;
  seeds: { name: string; images: string }[];
  /** Every this many cases go through the `cr restore` command (0: none). */
  cliEvery: number;
  caseTimeoutMs: number;
}

export interface FuzzTotals {
  cases: number;
  refused: number;
  restored: number;
  misbehaved: { n: number; what: string; why: string }[];
  seconds: number;
  /** The seeds dumped, by name. */
  seeds: string[];
}

interface SeedProgram {
  name: string;
  args: (dir: string) => string[];
  /** Lines of output once it is mid-run. */
  lines: number;
  input?: boolean;
}

/** Between them: threads, trees, zombies, every kind of memory and descriptor, sockets, signals, timers, locks, scheduling, namespaces, pid namespaces, SysV IPC, copy-on-write. */
const SEED_PROGRAMS: SeedProgram[] = [
  { name: 'tree', args: () => ['1000000'], lines: 5 },
  { name: 'memstress', args: (d) => [d, '1000000'], lines: 15, input: true },
  { name: 'fdshare', args: (d) => [d, '1000000'], lines: 8, input: true },
  { name: 'epollmoved', args: () => ['1000000'], lines: 30 },
  { name: 'unixpair', args: () => ['1000000'], lines: 3 },
  { name: 'sigpending', args: () => ['1000000'], lines: 3 },
  { name: 'ptimers', args: () => ['1000000'], lines: 2 },
  { name: 'ghosts', args: (d) => [d, '1000000'], lines: 5 },
  { name: 'fdflags', args: (d) => [d, '1000000'], lines: 30 },
  { name: 'removed', args: (d) => [d, '1000000'], lines: 5 },
  { name: 'locks', args: (d) => [d, '1000000'], lines: 3 },
  { name: 'container', args: () => ['1000000'], lines: 10 },
  { name: 'timerfd', args: () => ['1000000'], lines: 2 },
  { name: 'caps', args: () => ['1000000', '1000'], lines: 5 },
  { name: 'tcpsk', args: () => ['1000000'], lines: 6 },
  { name: 'udpsk', args: () => ['1000000'], lines: 3 },
  { name: 'sched', args: () => ['1000000'], lines: 4 },
  { name: 'threadsigs', args: () => ['1000000'], lines: 3 },
  { name: 'zombies', args: () => ['1000000'], lines: 3 },
  { name: 'pidns', args: () => ['1000000'], lines: 3 },
  { name: 'cow', args: () => ['32', '1000000'], lines: 3 },
  { name: 'mapshapes', args: (d) => [d, '1000000'], lines: 2 },
];

const CASE_TIMEOUT_MS = 60000;
const worker = path.join(packageRoot, 'dist', 'test', 'user', 'fuzz', 'worker.js');

/** Mounts of the sandbox, run by `sh -c` in the new namespaces: SETUP ROOT CMD... */
const SANDBOX_SETUP = `set -e
root=$1; shift
mount --bind "$root" "$root"
awk '{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  case "$m" in "$root"|/proc|/proc/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro,nodev "$m" 2>/dev/null || true ;; esac
done
mount -t tmpfs -o mode=755 cr-fuzz-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs tmpfs /dev/shm
ro() { mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"; }
for d in /proc/sys/*; do
  case "\${d##*/}" in kernel|net) ;; *) ro "$d" ;; esac
done
# The IPC and UTS limits and the last pid are the namespace's own (and a different file in each): those stay writable.
for f in /proc/sys/kernel/*; do
  case "\${f##*/}" in shmmax|shmall|shmmni|shm_rmid_forced|msgmax|msgmnb|msgmni|sem|shm_next_id|msg_next_id|sem_next_id|auto_msgmni|hostname|domainname|ns_last_pid) ;; *) ro "$f" ;; esac
done
if [ -e /proc/sysrq-trigger ]; then mount --bind /dev/null /proc/sysrq-trigger; fi
ip link set lo up 2>/dev/null || true
exec "$@"`;

/** Dump each seed program mid-run (killing it); the ones that cannot be dumped here are left out, saying why. */
async function makeSeeds(root: string, log: (l: string) => void): Promise<WorkerConfig['seeds']> {
  const seeds: WorkerConfig['seeds'] = [];
  for (const p of SEED_PROGRAMS) {
    const work = path.join(root, 'seeds', p.name);
    const images = path.join(work, 'img');
    fs.mkdirSync(images, { recursive: true });
    if (p.input) writeInput(work);
    const run = start(p.name, p.args(work), path.join(work, 'out.txt'));
    let why = '';
    try {
      await waitLines(run.out, p.lines);
      // Some states are refused while they last (unread events): try a few times. The command,
      // not the library: a tracer in this process would reap our own child before Node sees it end.
      for (let tries = 0; tries < 5; tries++) {
        const d = await cr(['dump', '-t', String(run.pid), '-D', images]);
        why = d.exitCode ? d.stderr.trim() : '';
        if (!why) {
          seeds.push({ name: p.name, images });
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      why = (err as Error).message;
    }
    if (why) {
      log(`seed ${p.name} left out: ${why}`);
      run.child.kill('SIGKILL');
    }
    await run.exited;
  }
  return seeds;
}

/**
 * Run `count` cases from `first` (seed `seed`: the same numbers give the
 * same mutations), telling `onCase` each outcome as it comes.
 */
export async function fuzzUser(o: { count: number; seed: number; first?: number; cliEvery?: number; log?: (l: string) => void;
  onCase?: (n: number, what: string, outcome: Outcome) => void; }): Promise<FuzzTotals> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const root = tempDir('fuzz');
  const totals: FuzzTotals = { cases: 0, refused: 0, restored: 0, misbehaved: [], seconds: 0, seeds: [] };
  try {
    const seeds = await makeSeeds(root, log);
    totals.seeds = seeds.map((s) => s.name);
    if (!seeds.length) throw new Error('no seed program could be dumped');
    const config: WorkerConfig = { root, seed: o.seed, seeds, cliEvery: o.cliEvery ?? 25, caseTimeoutMs: CASE_TIMEOUT_MS };
    const configFile = path.join(root, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(config));
    const first = o.first ?? 0;
    const tally = (n: number, what: string, outcome: Outcome) => {
      totals.cases++;
      if (outcome.kind === 'misbehaved') totals.misbehaved.push({ n, what, why: outcome.why ?? '' });
      else totals[outcome.kind]++;
      o.onCase?.(n, what, outcome);
    };
    for (let next = first; next < first + o.count;) {
      const left = first + o.count - next;
      const w = execa('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', '--mount', '--uts', '--ipc', '--net', '--propagation', 'private',
        'sh', '-c', SANDBOX_SETUP, 'sh', root, programBin('sandbox'), process.execPath, worker, configFile, String(next), String(left), ...(next === first ? ['check'] : [])],
      { reject: false, stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true } });
      let started = { n: -1, what: '' };
      const dog = watchdog(CASE_TIMEOUT_MS + 30000, () => w.kill('SIGKILL'));
      for await (const line of readline.createInterface({ input: w.stdout! })) {
        const m = /^@fuzz (.*)$/.exec(line);
        if (!m) continue;
        dog.arm();
        const msg = JSON.parse(m[1]) as { start?: number; case?: number; seed?: string; what?: string } & Outcome;
        if (msg.start !== undefined) started = { n: msg.start, what: msg.what ?? '' };
        // A seed that does not restore as it is: a fault of the backend, not of a mutation.
        if (msg.seed !== undefined && msg.kind !== 'restored') totals.misbehaved.push({ n: -1, what: `seed ${msg.seed}, not mutated`, why: `${msg.kind}: ${msg.why}` });
        if (msg.case !== undefined) {
          tally(msg.case, msg.what ?? '', { kind: msg.kind, why: msg.why });
          next = msg.case + 1;
        }
      }
      dog.stop();
      const r = await w;
      if (next >= first + o.count) break;
      if (started.n < next) throw new Error(`the fuzzer's sandbox did not start (${r.signal ?? `exit ${r.exitCode}`}): ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
      // It died or hung in case `started`: that counts against the case, and a new worker takes the rest.
      tally(started.n, started.what, { kind: 'misbehaved', why: dog.fired ? `no answer for ${(CASE_TIMEOUT_MS + 30000) / 1000} s` : `the process died (${r.signal ?? `exit ${r.exitCode}`}): ${String(r.stderr).trim().split('\n').slice(-2).join(' | ')}` });
      next = started.n + 1;
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  totals.seconds = (performance.now() - t0) / 1000;
  return totals;
}
