/**
 * What else a process is: its working directory, name, umask, personality,
 * resource limits and credentials. Credentials are set last and by the task
 * itself, so the kernel lets it take only ids its restorer could give it.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procStat, procStatus } from '../../../userspace/proc/parse.js';
import { NR, PR, RLIMIT_NAMES, SIG } from '../../../userspace/sys/constants.js';
import { kill, prlimit } from '../../../userspace/sys/libc.js';
import { readImage } from '../image.js';
import { defineState } from './module.js';

interface Rlimit {
  resource: number;
  cur: bigint;
  max: bigint;
}

export interface ProcessImage {
  cwd: string;
  rlimits: Rlimit[];
  creds: { uids: number[]; gids: number[]; groups: number[] };
  comm: string;
  umask: number;
  personality: number;
  pdeathsig: number;
  /** From the inventory, not this image: the task was stopped by a signal. */
  stopped: boolean;
}

const ids = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean).map(Number);

export const processState = defineState<ProcessImage>({
  name: 'process',

  dump(task) {
    const pid = task.pid;
    if (fs.readlinkSync(`/proc/${pid}/root`) !== '/') throw new CrError(`pid ${pid}: a task in a chroot is not supported`);
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    if (cwd.endsWith(' (deleted)')) throw new CrError(`pid ${pid}: its working directory ${cwd} was deleted`);
    const status = procStatus(pid);
    task.inj.reset();
    const sig = task.inj.alloc(4);
    task.tracee.syscallOk('prctl(PR_GET_PDEATHSIG)', NR.prctl, PR.GET_PDEATHSIG, sig, 0, 0, 0);
    task.images.write('process', pid, {
      cwd,
      rlimits: RLIMIT_NAMES.map((_, resource) => ({ resource, ...prlimit(pid, resource) })),
      creds: { uids: ids(status.get('Uid')), gids: ids(status.get('Gid')), groups: ids(status.get('Groups')) },
      comm: procStat(pid).comm,
      umask: parseInt(status.get('Umask') ?? '22', 8),
      personality: parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8'), 16),
      pdeathsig: task.tracee.readMem(sig, 4).readUInt32LE(0),
    });
  },

  load(dir, { pid, stopped }) {
    const img = { ...readImage<ProcessImage>(dir, 'process', pid), stopped };
    if (img.creds.uids.length !== 4 || img.creds.gids.length !== 4) throw new CrError(`process-${pid}.img: corrupted image (credentials)`);
    if (!fs.existsSync(img.cwd)) throw new CrError(`pid ${pid}: its working directory ${img.cwd} no longer exists`);
    return img;
  },

  restore(task, img) {
    const { tracee, inj } = task;
    inj.reset();
    tracee.syscallOk(`chdir ${img.cwd}`, NR.chdir, inj.putString(img.cwd));
    inj.reset();
    tracee.syscallOk('set name', NR.prctl, PR.SET_NAME, inj.putString(img.comm.slice(0, 15)), 0, 0, 0);
    tracee.syscall(NR.umask, img.umask);
    tracee.syscallOk('personality', NR.personality, img.personality);
    // Also drops the one cr-mktree gave the placeholder.
    tracee.syscallOk('prctl(PR_SET_PDEATHSIG)', NR.prctl, PR.SET_PDEATHSIG, img.pdeathsig, 0, 0, 0);
    for (const r of img.rlimits) {
      try {
        prlimit(task.pid, r.resource, { cur: r.cur, max: r.max });
      } catch (err) {
        throw new CrError(`pid ${task.pid}: cannot set RLIMIT_${RLIMIT_NAMES[r.resource]} (${(err as Error).message})`);
      }
    }
    // Groups and gids first: after setresuid the task may no longer change them.
    const [ruid, euid, suid] = img.creds.uids;
    const [rgid, egid, sgid] = img.creds.gids;
    inj.reset();
    const groups = Buffer.alloc(4 * img.creds.groups.length);
    img.creds.groups.forEach((g, i) => groups.writeUInt32LE(g, i * 4));
    const denied = (what: string) => `pid ${task.pid}: not allowed to restore ${what} (restore never grants more than the caller has)`;
    // An unprivileged restorer may not call setgroups at all, even to keep its own groups.
    const current = procStatus(task.pid);
    const sameGroups = ids(current.get('Groups')).join() === img.creds.groups.join();
    if (!sameGroups && tracee.syscall(NR.setgroups, img.creds.groups.length, groups.length ? inj.put(groups) : 0) < 0n) {
      throw new CrError(denied('its groups'));
    }
    if (tracee.syscall(NR.setresgid, rgid, egid, sgid) < 0n) throw new CrError(denied(`gids ${rgid}/${egid}/${sgid}`));
    if (tracee.syscall(NR.setresuid, ruid, euid, suid) < 0n) throw new CrError(denied(`uids ${ruid}/${euid}/${suid}`));
  },

  finish(task, img) {
    // Pending when the task is let go, so it stops as it was before it runs.
    if (img.stopped) kill(task.pid, SIG.STOP);
  },

  describe(img) {
    return [`cwd ${img.cwd}  comm ${img.comm}  uids ${img.creds.uids.join('/')}  gids ${img.creds.gids.join('/')}  umask 0${img.umask.toString(8)}`];
  },
});
