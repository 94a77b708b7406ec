/**
 * Open files: regular files and directories (reopened by path at their
 * offset, with their flags), character devices such as /dev/null, and stdio
 * on a terminal, pipe or socket, which the restored task takes over from
 * `cr restore` itself.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { procFdinfo } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { readImage } from '../image.js';
import { defineState } from './module.js';

type FdKind = 'REG' | 'CHR' | 'INHERIT';

interface Fd {
  fd: number;
  kind: FdKind;
  path: string;
  flags: number;
  cloexec: boolean;
  pos: bigint;
  size: bigint;
  mode: number;
}

export interface FilesImage {
  fds: Fd[];
}

/** Character devices that carry no state, so reopening them by name is exact. */
const STATELESS_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);
const SEEK_SET = 0;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
/** Flags that only make sense when a file is created, never on a reopen. */
const CREATE_FLAGS = O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY;

function describeFd(pid: number, fd: number): Fd {
  const link = `/proc/${pid}/fd/${fd}`;
  let target: string;
  let st: fs.BigIntStats;
  try {
    target = fs.readlinkSync(link);
    st = fs.statSync(link, { bigint: true });
  } catch (err) {
    throw new CrError(`pid ${pid} fd ${fd}: cannot inspect (${(err as NodeJS.ErrnoException).code})`);
  }
  const info = procFdinfo(pid, fd);
  const rawFlags = parseInt(info.get('flags') ?? '0', 8);
  const base = {
    fd, path: target, flags: rawFlags & ~O.CLOEXEC, cloexec: (rawFlags & O.CLOEXEC) !== 0,
    pos: BigInt(info.get('pos') ?? '0'), size: 0n, mode: Number(st.mode & 0o7777n),
  };
  const where = `pid ${pid} fd ${fd}`;
  if (st.isFile() || st.isDirectory()) {
    if (!target.startsWith('/') || target.endsWith(' (deleted)')) throw new CrError(`${where}: ${target} is not a file that can be reopened`);
    return { ...base, kind: 'REG', size: st.size };
  }
  if (st.isCharacterDevice() && STATELESS_DEVICES.has(target)) return { ...base, kind: 'CHR' };
  // stdio on a terminal, pipe or socket belongs to whoever runs the program.
  if (fd <= 2 && (st.isCharacterDevice() || st.isFIFO() || st.isSocket())) return { ...base, kind: 'INHERIT', path: '' };
  const what = target.startsWith('socket:') ? 'socket' : target.startsWith('pipe:') ? 'pipe' : target.startsWith('anon_inode:') ? target.slice(11) : target;
  throw new CrError(`${where}: ${what} is not supported`);
}

export const files = defineState<FilesImage>({
  name: 'files',

  dump(task) {
    const fds = fs.readdirSync(`/proc/${task.pid}/fd`).map(Number).sort((a, b) => a - b);
    task.images.write('files', task.pid, { fds: fds.map((fd) => describeFd(task.pid, fd)) });
  },

  load(dir, pid) {
    const img = readImage<FilesImage>(dir, 'files', pid);
    for (const f of img.fds) {
      if (f.kind === 'INHERIT') continue;
      if (!fs.existsSync(f.path)) throw new CrError(`pid ${pid} fd ${f.fd}: ${f.path} no longer exists`);
    }
    return img;
  },

  restore(task, img) {
    const { tracee, inj } = task;
    const wanted = new Set(img.fds.map((f) => f.fd));
    // The placeholder holds cr-mktree's descriptors: keep only stdio the image inherits.
    tracee.syscallOk('close_range', NR.close_range, 3, 0xffffffff, 0);
    for (let fd = 0; fd <= 2; fd++) {
      const f = img.fds.find((x) => x.fd === fd);
      if (!wanted.has(fd) || (f && f.kind !== 'INHERIT')) tracee.syscall(NR.close, fd);
    }
    for (const f of img.fds) {
      if (f.kind === 'INHERIT') {
        if (f.cloexec) tracee.syscallOk('fcntl', NR.fcntl, f.fd, F_SETFD, FD_CLOEXEC);
        continue;
      }
      inj.reset();
      const flags = (f.flags & ~CREATE_FLAGS) | (f.cloexec ? O.CLOEXEC : 0);
      const tmp = Number(tracee.syscallOk(`open ${f.path}`, NR.open, inj.putString(f.path), flags, 0));
      if (tmp !== f.fd) {
        tracee.syscallOk(`dup3 to fd ${f.fd}`, NR.dup3, tmp, f.fd, f.cloexec ? O.CLOEXEC : 0);
        tracee.syscall(NR.close, tmp);
      }
      if (f.kind === 'REG' && f.pos) tracee.syscallOk(`lseek ${f.path}`, NR.lseek, f.fd, f.pos, SEEK_SET);
    }
  },

  describe(img) {
    return img.fds.map((f) => {
      const flags = `flags 0${f.flags.toString(8)}${f.cloexec ? ' cloexec' : ''}`;
      return f.kind === 'INHERIT' ? `  fd ${f.fd}: inherited from cr restore` : `  fd ${f.fd}: ${f.kind} ${f.path} pos ${f.pos} ${flags}`;
    });
  },
});
