/**
 * What else a process is: its working directory, name, umask, personality,
 * resource limits and credentials. Credentials are set last and by the task
 * itself, so the kernel lets it take only ids and capabilities its restorer
 * could give it; and it takes the image's, so a task that ran with fewer
 * rights than its restorer does not come back with the restorer's.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procStatus } from '../../../userspace/proc/parse.js';
import { NR, PR, RLIMIT_NAMES, SECBIT_KEEP_CAPS, SIG } from '../../../userspace/sys/constants.js';
import { kill, prlimit } from '../../../userspace/sys/libc.js';
import { readImage } from '../image.js';
import { checkGhost, chdirGhost, DELETED, describeGhost, dumpGhost, type Ghost } from './ghosts.js';
import { defineState, type RestoreTask } from './module.js';

interface Rlimit {
  resource: number;
  cur: bigint;
  max: bigint;
}
/** struct rlimit64: the soft limit, then the hard one. */
const RLIMIT_SIZE = 16;

export interface ProcessImage {
  cwd: string;
  /** Set when the working directory was removed. */
  cwd_ghost?: Ghost;
  rlimits: Rlimit[];
  creds: Creds;
  comm: string;
  umask: number;
  personality: number;
  pdeathsig: number;
  /** prctl state: PR_SET_TIMERSLACK (0: the default), PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER. */
  timer_slack_ns: bigint;
  dumpable: number;
  child_subreaper: boolean;
  /** From the inventory, not this image: the task was stopped by a signal. */
  stopped: boolean;
}

interface Creds {
  uids: number[];
  gids: number[];
  groups: number[];
  cap_inheritable: bigint;
  cap_permitted: bigint;
  cap_effective: bigint;
  cap_bounding: bigint;
  cap_ambient: bigint;
  securebits: number;
  no_new_privs: boolean;
}

const ids = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean).map(Number);
const capSet = (v: string | undefined) => BigInt(`0x${v ?? '0'}`);
const capList = (set: bigint) => [...Array(64).keys()].filter((c) => (set >> BigInt(c)) & 1n);

/** The lines of /proc/PID/status that hold a task's credentials. */
const CRED_KEYS = ['Uid', 'Gid', 'Groups', 'CapPrm', 'CapEff', 'CapInh', 'CapBnd', 'CapAmb'] as const;

/** The credentials and capability state of a stopped task, from its status and its securebits (asked of the task). */
function dumpCreds(status: Map<string, string>, securebits: number): Creds {
  return {
    uids: ids(status.get('Uid')),
    gids: ids(status.get('Gid')),
    groups: ids(status.get('Groups')),
    cap_inheritable: capSet(status.get('CapInh')),
    cap_permitted: capSet(status.get('CapPrm')),
    cap_effective: capSet(status.get('CapEff')),
    cap_bounding: capSet(status.get('CapBnd')),
    cap_ambient: capSet(status.get('CapAmb')),
    securebits,
    no_new_privs: status.get('NoNewPrivs') === '1',
  };
}

/**
 * In the task, in the order the kernel allows: the bounding set and
 * securebits while it still has its restorer's CAP_SETPCAP, then the ids
 * with KEEP_CAPS so setresuid leaves the permitted set alone, then the
 * capability sets, ambient capabilities, the task's own KEEP_CAPS and
 * no_new_privs. Each step fails (and restore stops) where the restorer
 * lacks the right: restore never grants more than the caller has. The
 * calls go in two batches (the securebits the task has decide the second);
 * a call after a refused one is made all the same, and checked by the
 * kernel as any other, but the task never runs: the restore fails.
 * `before` goes into the first batch; the second is returned, for the
 * caller to add to and make.
 */
function restoreCreds(task: RestoreTask, c: Creds, before: Call[]): Call[] {
  const { inj } = task;
  const current = procStatus(task.pid, ['CapBnd', 'Groups']);
  const first: Call[] = [
    ...before,
    ...capList(capSet(current.get('CapBnd')) & ~c.cap_bounding).map((cap): Call => ({ call: [NR.prctl, PR.CAPBSET_DROP, cap, 0, 0, 0], denied: `its bounding set (capability ${cap})` })),
    { call: [NR.prctl, PR.GET_SECUREBITS, 0, 0, 0, 0], what: 'prctl(PR_GET_SECUREBITS)' },
  ];
  const currentBits = Number(runCalls(task, first).at(-1));
  const bits = c.securebits | SECBIT_KEEP_CAPS;

  // Groups and gids first: after setresuid the task may no longer change them.
  const [ruid, euid, suid] = c.uids;
  const [rgid, egid, sgid] = c.gids;
  const groups = Buffer.alloc(4 * c.groups.length);
  c.groups.forEach((g, i) => groups.writeUInt32LE(g, i * 4));
  // An unprivileged restorer may not call setgroups at all, even to keep its own groups.
  const sameGroups = ids(current.get('Groups')).join() === c.groups.join();
  // capset(2): a v3 header, then two {effective, permitted, inheritable} words each for caps 0-31 and 32-63
  const data = Buffer.alloc(8 + 24);
  data.writeUInt32LE(0x20080522, 0);
  [c.cap_effective, c.cap_permitted, c.cap_inheritable].forEach((set, i) => {
    data.writeUInt32LE(Number(set & 0xffffffffn), 8 + i * 4);
    data.writeUInt32LE(Number(set >> 32n), 8 + 12 + i * 4);
  });
  const hdr = inj.put(data);
  return [
    ...(bits !== currentBits ? [{ call: [NR.prctl, PR.SET_SECUREBITS, bits, 0, 0, 0], denied: `securebits 0x${c.securebits.toString(16)}` }] : []),
    ...(sameGroups ? [] : [{ call: [NR.setgroups, c.groups.length, groups.length ? inj.put(groups) : 0], denied: 'its groups' }]),
    { call: [NR.setresgid, rgid, egid, sgid], denied: `gids ${rgid}/${egid}/${sgid}` },
    { call: [NR.setresuid, ruid, euid, suid], denied: `uids ${ruid}/${euid}/${suid}` },
    { call: [NR.capset, hdr, hdr + 8], denied: `capabilities (permitted 0x${c.cap_permitted.toString(16)}, inheritable 0x${c.cap_inheritable.toString(16)})` },
    ...capList(c.cap_ambient).map((cap): Call => ({ call: [NR.prctl, PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap, 0, 0], denied: `ambient capability ${cap}` })),
    ...(c.securebits & SECBIT_KEEP_CAPS ? [] : [{ call: [NR.prctl, PR.SET_KEEPCAPS, 0, 0, 0, 0], what: 'prctl(PR_SET_KEEPCAPS)' }]),
    ...(c.no_new_privs ? [{ call: [NR.prctl, PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0], what: 'prctl(PR_SET_NO_NEW_PRIVS)' }] : []),
  ];
}

/** An injected call of a batch, and how its failure is told: a failed call, or a right restore does not have. */
type Call = { call: (number | bigint)[]; what?: string; denied?: string };

/** One round trip for `calls`; the first that failed throws, as its own message says. */
function runCalls(task: RestoreTask, calls: Call[]): bigint[] {
  return task.inj.batchOk(calls.map((c) => c.call), (i) => calls[i].what ?? 'restore process state', task.tracee, (i) => {
    const { denied } = calls[i];
    return denied ? new CrError(`pid ${task.pid}: not allowed to restore ${denied} (restore never grants more than the caller has)`) : undefined;
  });
}

/** What only the task can say of itself (its own limits need no privilege, where prlimit(2) on another user's task does). */
interface ProcessAnswers {
  rlimits: Rlimit[];
  pdeathsig: number;
  childSubreaper: boolean;
  timerSlack: bigint;
  dumpable: number;
  securebits: number;
  personality: number;
}

export const processState = defineState<ProcessImage, ProcessAnswers>({
  name: 'process',

  ask({ inj, tracee }) {
    // One block for every answer: one read of the task's memory.
    const limitsSize = RLIMIT_NAMES.length * RLIMIT_SIZE;
    const limits = inj.alloc(limitsSize + 8);
    const sig = limits + limitsSize;
    const subreaper = sig + 4;
    return {
      calls: [
        ...RLIMIT_NAMES.map((name, resource): [string, number[]] => [`prlimit64(${name})`, [NR.prlimit64, 0, resource, 0, limits + resource * RLIMIT_SIZE]]),
        ['prctl(PR_GET_PDEATHSIG)', [NR.prctl, PR.GET_PDEATHSIG, sig, 0, 0, 0]],
        ['prctl(PR_GET_CHILD_SUBREAPER)', [NR.prctl, PR.GET_CHILD_SUBREAPER, subreaper, 0, 0, 0]],
        ['prctl(PR_GET_TIMERSLACK)', [NR.prctl, PR.GET_TIMERSLACK, 0, 0, 0, 0]],
        ['prctl(PR_GET_DUMPABLE)', [NR.prctl, PR.GET_DUMPABLE, 0, 0, 0, 0]],
        ['prctl(PR_GET_SECUREBITS)', [NR.prctl, PR.GET_SECUREBITS, 0, 0, 0, 0]],
        // 0xffffffff changes nothing and returns the current one
        ['personality(0xffffffff)', [NR.personality, 0xffffffff]],
      ],
      answer: (results) => {
        const [, , timerSlack, dumpable, securebits, personality] = results.slice(RLIMIT_NAMES.length);
        const b = tracee.readMem(limits, limitsSize + 8);
        return {
          rlimits: RLIMIT_NAMES.map((_, resource) => ({ resource, cur: b.readBigUInt64LE(resource * RLIMIT_SIZE), max: b.readBigUInt64LE(resource * RLIMIT_SIZE + 8) })),
          pdeathsig: b.readUInt32LE(sig - limits),
          childSubreaper: b.readUInt32LE(subreaper - limits) !== 0,
          timerSlack,
          dumpable: Number(dumpable),
          securebits: Number(securebits),
          personality: Number(personality),
        };
      },
    };
  },

  dump(task, { rlimits, pdeathsig, childSubreaper, timerSlack, dumpable, securebits, personality }) {
    const pid = task.tracee.pid;
    if (fs.readlinkSync(`/proc/${pid}/root`) !== '/') throw new CrError(`pid ${task.pid}: a task in a chroot is not supported`);
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    const source = `/proc/${pid}/cwd`;
    const cwdGhost = cwd.endsWith(DELETED) ? dumpGhost(source, cwd, fs.statSync(source, { bigint: true }), `pid ${task.pid}: working directory`) : undefined;
    const status = procStatus(pid, ['Seccomp', 'Umask', 'NoNewPrivs', ...CRED_KEYS]);
    // Restored without it, a sandboxed task would run free: refuse rather than drop it.
    // (A kernel without CONFIG_SECCOMP has no such line, nor filters.)
    if ((status.get('Seccomp') ?? '0') !== '0') throw new CrError(`pid ${task.pid}: a seccomp filter (or strict mode) is not supported`);
    for (const th of task.threads.slice(1)) {
      const own = procStatus(th.pid, CRED_KEYS);
      for (const key of CRED_KEYS) {
        if (own.get(key) !== status.get(key)) throw new CrError(`pid ${task.pid} thread ${th.pid}: credentials (${key}) differ from the process's: not supported`);
      }
    }
    // what a set-id exec leaves (suid_dumpable 2): prctl(PR_SET_DUMPABLE) sets only 0 or 1
    if (dumpable > 1) throw new CrError(`pid ${task.pid}: dumpable ${dumpable} (after a set-id exec) cannot be set again: not supported`);
    task.images.write('process', task.pid, {
      cwd: cwdGhost?.path ?? cwd,
      cwd_ghost: cwdGhost,
      rlimits,
      creds: dumpCreds(status, securebits),
      // The process's name is its leader's, even an exited one's.
      comm: task.stat.comm,
      umask: parseInt(status.get('Umask') ?? '22', 8),
      personality,
      pdeathsig,
      timer_slack_ns: timerSlack,
      dumpable,
      child_subreaper: childSubreaper,
    });
  },

  load(dir, { pid, stopped }) {
    const img = { ...readImage<ProcessImage>(dir, 'process', pid), stopped };
    if (!img.creds || img.creds.uids.length !== 4 || img.creds.gids.length !== 4) throw new CrError(`process-${pid}.img: corrupted image (credentials)`);
    if (img.rlimits.some((r) => RLIMIT_NAMES[r.resource] === undefined)) throw new CrError(`process-${pid}.img: corrupted image (resource limits)`);
    if (img.cwd_ghost) checkGhost(img.cwd_ghost, `process-${pid}.img`);
    else if (!fs.existsSync(img.cwd)) throw new CrError(`pid ${pid}: its working directory ${img.cwd} no longer exists`);
    return img;
  },

  restore(task, img) {
    const { inj } = task;
    if (img.cwd_ghost) chdirGhost(task, img.cwd_ghost);
    for (const r of img.rlimits) {
      try {
        prlimit(task.pid, r.resource, { cur: r.cur, max: r.max });
      } catch (err) {
        throw new CrError(`pid ${task.pid}: cannot set RLIMIT_${RLIMIT_NAMES[r.resource]} (${(err as Error).message})`);
      }
    }
    // The plain attributes go with the first batch of the credentials; the scratch strings stay put for it.
    inj.reset();
    const plain: Call[] = [
      ...(img.cwd_ghost ? [] : [{ call: [NR.chdir, inj.putString(img.cwd)], what: `chdir ${img.cwd}` }]),
      { call: [NR.prctl, PR.SET_NAME, inj.putString(img.comm.slice(0, 15)), 0, 0, 0], what: 'set name' },
      { call: [NR.umask, img.umask], what: 'umask' },
      { call: [NR.personality, img.personality], what: 'personality' },
      // Also drops the one cr-mktree gave the placeholder.
      { call: [NR.prctl, PR.SET_PDEATHSIG, img.pdeathsig, 0, 0, 0], what: 'prctl(PR_SET_PDEATHSIG)' },
      { call: [NR.prctl, PR.SET_TIMERSLACK, img.timer_slack_ns, 0, 0, 0], what: 'prctl(PR_SET_TIMERSLACK)' },
      { call: [NR.prctl, PR.SET_CHILD_SUBREAPER, img.child_subreaper ? 1 : 0, 0, 0, 0], what: 'prctl(PR_SET_CHILD_SUBREAPER)' },
    ];
    const creds = restoreCreds(task, img.creds, plain);
    // after the credentials, whose change resets it
    if (img.dumpable !== 1) creds.push({ call: [NR.prctl, PR.SET_DUMPABLE, img.dumpable, 0, 0, 0], what: 'prctl(PR_SET_DUMPABLE)' });
    runCalls(task, creds);
  },

  finish(task, img) {
    // Pending when the task is let go, so it stops as it was before it runs.
    if (img.stopped) kill(task.pid, SIG.STOP);
  },

  describe(img) {
    const c = img.creds;
    return [
      `cwd ${img.cwd_ghost ? describeGhost(img.cwd_ghost) : img.cwd}  comm ${img.comm}  uids ${c.uids.join('/')}  gids ${c.gids.join('/')}  umask 0${img.umask.toString(8)}`,
      `caps: effective 0x${c.cap_effective.toString(16)} permitted 0x${c.cap_permitted.toString(16)} bounding 0x${c.cap_bounding.toString(16)}${c.cap_ambient ? ` ambient 0x${c.cap_ambient.toString(16)}` : ''}${c.no_new_privs ? ' no_new_privs' : ''}`,
      `personality 0x${img.personality.toString(16)}  pdeathsig ${img.pdeathsig}  timer slack ${img.timer_slack_ns} ns  dumpable ${img.dumpable}${img.child_subreaper ? '  child subreaper' : ''}`,
    ];
  },
});
