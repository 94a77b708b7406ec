/**
 * What the comparison runs: scaled workloads for the timing tables and
 * plots, and one small probe per kind of state for the feature matrix.
 * All of them are the same program, compare/workloads/bin/wl, with
 * different modules switched on (see wl.c).
 */

export interface Workload {
  name: string;
  /** What the size means, for tables and plot axes. */
  unit: string;
  /** wl's module arguments for a size. */
  args(size: number): string[];
  sizes: number[];
  quickSizes: number[];
  about: string;
  /** Seconds a step of one run (start, dump, restore, finish) may take per unit of size, under TCG, on top of a base. */
  secPerUnit: number;
  /**
   * Backend variants (Variant, below) a full run measures besides the
   * plain backends, each as a library call: the ways of dumping and
   * restoring that exist for this workload's kind of state.
   */
  variants?: string[];
}

/**
 * A backend as measured: its registry name and, after `+`, how it is run.
 * `cow`: the dump lets the tasks run before their pages are written
 * (--cow); `map`: restore maps memory from the image (--map-pages);
 * `lazy`: restore brings pages in on first touch (--lazy-pages); `pre`:
 * a pre-dump, then the workload rewrites DIRTY_PERCENT of its memory, then
 * the measured dump saves only that (--prev-images-dir).
 */
export interface Variant {
  base: string;
  cow: boolean;
  map: boolean;
  lazy: boolean;
  pre: boolean;
}

/** Whether a backend name is a variant of another (kernel+cow), not a plain backend. */
export const isVariant = (name: string): boolean => variantOf(name).base !== name;

export function variantOf(name: string): Variant {
  const [base, ...opts] = name.split('+');
  return { base, cow: opts.includes('cow'), map: opts.includes('map'), lazy: opts.includes('lazy'), pre: opts.includes('pre') };
}

/** How much of its memory the workload rewrites between a `+pre` variant's pre-dump and its dump. */
export const DIRTY_PERCENT = 5;

export const workloads: Workload[] = [
  {
    name: 'mem',
    unit: 'MiB',
    args: (n) => [`mem=${n}`],
    sizes: [64, 256, 1024],
    quickSizes: [8, 32],
    about: 'one process, N MiB of private anonymous memory filled with a known pattern',
    secPerUnit: 0.5,
    variants: ['kernel+cow', 'kernel+map', 'kernel+pre', 'user+pre', 'user+lazy', 'criu+pre'],
  },
  {
    name: 'tree',
    unit: 'processes',
    args: (n) => [`tree=${n}`],
    sizes: [1, 4, 16, 64],
    quickSizes: [2, 8],
    about: 'N processes in a binary tree, each checking its pid, parent and a pattern',
    secPerUnit: 3,
  },
  {
    name: 'threads',
    unit: 'threads',
    args: (n) => [`threads=${n}`],
    sizes: [1, 8, 64],
    quickSizes: [4],
    about: 'one process with N extra threads, each checking its tid, TLS and stack',
    secPerUnit: 1,
  },
  {
    name: 'files',
    unit: 'fds',
    args: (n) => [`files=${n}`],
    sizes: [16, 128, 512],
    quickSizes: [32],
    about: 'about N descriptors: N/2 regular files (content, offset, flags), N/4 pipes with data in flight',
    secPerUnit: 0.2,
  },
  {
    name: 'mix',
    unit: 'processes',
    args: (n) => [`tree=${n}`, 'mem=4', 'threads=2', 'files=16', 'eventfd=5', 'socketpair=100'],
    sizes: [3],
    quickSizes: [3],
    about: 'N processes, each with 4 MiB, 2 threads, 16 descriptors, an eventfd and a socket pair',
    secPerUnit: 5,
  },
];

export interface Feature {
  name: string;
  group: string;
  args: string[];
  /** Dump with tcpEstablished (CRIU's --tcp-established), which CRIU asks for any established TCP connection. */
  tcpEstablished?: boolean;
}

/** One probe per kind of state; each is a run of wl with that module alone. */
export const features: Feature[] = [
  { group: 'memory', name: 'private anonymous memory', args: ['mem=1'] },
  { group: 'memory', name: 'shared anonymous memory', args: ['shanon=256'] },
  { group: 'memory', name: 'private file mapping (COW pages)', args: ['fmap-priv=64'] },
  { group: 'memory', name: 'shared file mapping', args: ['fmap-shared=64'] },
  { group: 'memory', name: 'brk heap', args: ['brk=256'] },
  { group: 'memory', name: 'memfd: contents, seals, shared mapping', args: ['memfd=64'] },
  { group: 'memory', name: 'SysV shared memory segment', args: ['sysvshm=64'] },
  { group: 'memory', name: 'copy-on-write pages still shared with a forked child', args: ['cow=256'] },
  { group: 'tasks', name: 'process tree (3 processes)', args: ['tree=3'] },
  { group: 'tasks', name: 'threads (2 extra)', args: ['threads=2'] },
  { group: 'tasks', name: 'zombie child with its exit status', args: ['zombie=7'] },
  { group: 'tasks', name: 'fd table shared by two processes (CLONE_FILES)', args: ['fdtable=1'] },
  { group: 'files', name: 'regular files: content, offset, flags', args: ['regfile=4'] },
  { group: 'files', name: 'unlinked open file', args: ['unlinked=16'] },
  { group: 'files', name: 'pipes with data in flight', args: ['pipe=2'] },
  { group: 'files', name: 'FIFO with data in flight', args: ['fifo=100'] },
  { group: 'files', name: 'unix socket pair with queued data', args: ['socketpair=300'] },
  { group: 'files', name: 'eventfd counter', args: ['eventfd=77'] },
  { group: 'files', name: 'file locks: POSIX, OFD, flock (probed from another process)', args: ['locks=1'] },
  { group: 'files', name: 'pty pair: termios, window size, packet mode', args: ['pty=1'] },
  { group: 'files', name: 'epoll set (one item through a closed descriptor)', args: ['epoll=3'] },
  { group: 'files', name: 'timerfd with an interval', args: ['timerfd=5'] },
  { group: 'files', name: 'signalfd', args: ['signalfd=1'] },
  { group: 'files', name: 'inotify watch', args: ['inotify=1'] },
  { group: 'sockets', name: 'TCP listening socket', args: ['tcp-listen=4'] },
  { group: 'sockets', name: 'TCP established connection with queued data', args: ['tcp-established=4096'], tcpEstablished: true },
  { group: 'sockets', name: 'UDP socket with queued datagrams', args: ['udp=8'] },
  { group: 'sockets', name: 'unix listening socket with connections not accepted yet', args: ['unix-listen=2'] },
  { group: 'signals', name: 'signal handler, flags and mask', args: ['sigaction=1'] },
  { group: 'signals', name: 'pending queued real-time signal', args: ['sigpending=1'] },
  { group: 'signals', name: 'interval timer (ITIMER_REAL)', args: ['itimer=1'] },
  { group: 'signals', name: 'POSIX timer', args: ['ptimer=1'] },
  { group: 'process', name: 'working directory', args: ['cwd=1'] },
  { group: 'process', name: 'resource limits', args: ['rlimit=1'] },
  { group: 'process', name: 'umask', args: ['umask=1'] },
  { group: 'process', name: 'capabilities (effective, permitted, bounding)', args: ['caps=1'] },
  { group: 'process', name: 'scheduling policy, nice, personality, timer slack', args: ['sched=5'] },
  { group: 'process', name: 'prctl: name, pdeathsig, dumpable, subreaper, no_new_privs, /proc/self/exe', args: ['prctl=1'] },
  { group: 'memory', name: 'madvise flags (DONTFORK, DONTDUMP, WIPEONFORK)', args: ['madvise=64'] },
];

export const workloadByName = (name: string) => workloads.find((w) => w.name === name);

/** The base limit of one step of a run, before the size adds to it. */
const STEP_BASE_SEC = 120;

/**
 * How long one step of a case may take (start, dump, restore or finish),
 * growing with the case's size: a 1 GiB dump under TCG must not hit the
 * limit a 8 MiB one has, and a stuck small case must not wait as long.
 */
export function stepLimitSec(c: { workload: string; size: number | null }): number {
  return STEP_BASE_SEC + (workloadByName(c.workload)?.secPerUnit ?? 0) * (c.size ?? 0);
}

/** The largest mem size in a list of cases, in MiB (0 without mem cases). */
export const largestMem = (cases: { workload: string; size: number | null }[]): number =>
  Math.max(0, ...cases.filter((c) => c.workload === 'mem').map((c) => c.size ?? 0));
