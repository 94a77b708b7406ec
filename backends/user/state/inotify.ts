/**
 * inotify. fdinfo lists each watch with its watch descriptor, mask, and a
 * file handle of the watched inode; cr opens the handle (open_by_handle_at,
 * like CRIU's fsnotify.c) to learn the inode's path. Restore adds the
 * watches again in order of their numbers; the kernel hands out watch
 * numbers one after another, so a number a removed watch left free is
 * skipped by adding and removing a watch until the next number is the one
 * wanted (the IN_IGNORED events that makes are read away again).
 * Unread events cannot be read without taking them: an instance with
 * events waiting is refused.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { readProc } from '../../../userspace/proc/parse.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { close, rawSyscall } from '../../../userspace/sys/libc.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, tracerDup, type FdProbe, type FdType, type OpenFileImage } from './fdtype.js';

interface InotifyWatch {
  wd: number;
  mask: number;
  path: string;
  link: boolean;
}

interface InotifyFile {
  watches: InotifyWatch[];
}

const WATCH_LINE = /^inotify wd:([0-9a-f]+) ino:[0-9a-f]+ sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:[0-9a-f]+ fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]*)/gm;
const IN_DONT_FOLLOW = 0x02000000;
const IN_NONBLOCK = O.NONBLOCK;
const FIONREAD = 0x541b;
/** Watch numbers are skipped one add and remove at a time: keep that bounded. */
const MAX_WD = 1 << 16;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<InotifyFile>('InotifyFile', file.payload, where);

/** A directory of the file system with kernel device number `sdev`, as task `pid` sees its mounts, opened for open_by_handle_at. */
function mountOf(pid: number, sdev: number): number {
  const dev = `${sdev >>> 20}:${sdev & 0xfffff}`;
  const mounts = readProc(pid, 'mountinfo').split('\n').map((l) => l.split(' ')).filter((m) => m[2] === dev);
  // A mount of the whole file system first: a path through it is the inode's full path.
  const m = mounts.find((x) => x[3] === '/') ?? mounts[0];
  if (!m) throw new Error(`no mount of device ${dev}`);
  return fs.openSync(`/proc/${pid}/root${m[4].replace(/\\040/g, ' ')}`, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
}

/** The path of the inode a watch's file handle names. */
function handlePath(f: FdProbe, sdev: number, type: number, handle: Buffer): string {
  const mount = mountOf(f.pid, sdev);
  try {
    const fh = Buffer.alloc(8 + handle.length);
    fh.writeUInt32LE(handle.length, 0);
    fh.writeInt32LE(type, 4);
    handle.copy(fh, 8);
    const fd = rawSyscall(NR.open_by_handle_at, mount, fh, O.PATH);
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } finally {
      close(fd);
    }
  } finally {
    fs.closeSync(mount);
  }
}

export const inotifys: FdType = {
  type: 'inotify',

  claims(f) {
    return f.target === 'anon_inode:inotify';
  },

  dump(_task, f) {
    const where = `pid ${f.pid} fd ${f.fd}`;
    const dup = tracerDup(f.pid, f.fd);
    try {
      const n = Buffer.alloc(4);
      rawSyscall(NR.ioctl, dup, FIONREAD, n);
      if (n.readInt32LE(0)) throw new CrError(`${where}: inotify with ${n.readInt32LE(0)} bytes of unread events is not supported`);
    } finally {
      close(dup);
    }
    const watches = [...f.infoText.matchAll(WATCH_LINE)].map((m): InotifyWatch => {
      const wd = parseInt(m[1], 16);
      if (wd > MAX_WD) throw new CrError(`${where}: inotify watch descriptor ${wd} is above ${MAX_WD}: not supported`);
      if (!parseInt(m[4], 16)) throw new CrError(`${where}: inotify watch ${wd} is on a file system without file handles: not supported`);
      let path: string;
      try {
        path = handlePath(f, parseInt(m[2], 16), parseInt(m[5], 16), Buffer.from(m[6], 'hex'));
      } catch (err) {
        throw new CrError(`${where}: cannot find the file inotify watch ${wd} is on (${(err as Error).message})`);
      }
      if (!path.startsWith('/') || path.endsWith(' (deleted)')) throw new CrError(`${where}: inotify watch ${wd} is on ${path}, which cannot be found again`);
      return { wd, mask: parseInt(m[3], 16), path, link: fs.lstatSync(path).isSymbolicLink() };
    });
    return encodeMessage('InotifyFile', { watches });
  },

  check(file, where) {
    for (const w of payloadOf(file, where).watches) {
      if (!w.wd || w.wd > MAX_WD) throw new CrError(`${where}: corrupted image (inotify watch descriptor ${w.wd})`);
      if (!fs.existsSync(w.path) && !w.link) throw new CrError(`${where}: ${w.path}, which inotify watch ${w.wd} is on, no longer exists`);
    }
  },

  open(task, file) {
    const { tracee, inj } = task;
    const fd = liftFd(task, Number(tracee.syscallOk('inotify_init1', NR.inotify_init1, O.CLOEXEC | IN_NONBLOCK)));
    let skipped = false;
    for (const w of [...payloadOf(file, `pid ${task.pid} file ${file.id}`).watches].sort((a, b) => a.wd - b.wd)) {
      for (;;) {
        inj.reset();
        const wd = Number(tracee.syscallOk(`inotify_add_watch ${w.path}`, NR.inotify_add_watch, fd, inj.putString(w.path), w.mask | (w.link ? IN_DONT_FOLLOW : 0)));
        if (wd === w.wd) break;
        if (wd > w.wd) throw new CrError(`pid ${task.pid}: inotify watch ${w.wd} on ${w.path} came back as ${wd}`);
        tracee.syscallOk('inotify_rm_watch', NR.inotify_rm_watch, fd, wd);
        skipped = true;
      }
    }
    if (skipped) {
      inj.reset();
      const buf = inj.alloc(4096);
      while (tracee.syscall(NR.read, fd, buf, 4096) > 0n);
    }
    return fd;
  },

  describe(file) {
    const watches = payloadOf(file, `file ${file.id}`).watches;
    return `inotify ${watches.map((w) => `wd ${w.wd} ${w.path}${w.link ? ' (the link)' : ''} mask 0x${w.mask.toString(16)}`).join(', ') || 'watching nothing'}`;
  },
};
