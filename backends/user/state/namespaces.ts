/**
 * Namespaces: a tree whose root was started in its own UTS or IPC
 * namespace (unshare -ui) is restored into fresh namespaces of the same
 * kinds (cr-mktree -n). What a namespace holds belongs to no single task,
 * so it is saved once, with the root; every other task must share the
 * root's. The UTS namespace's names are here, the IPC one's objects in ipc.ts.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { CLONE, NR } from '../../../userspace/sys/constants.js';
import { rawSyscall } from '../../../userspace/sys/libc.js';
import { imageFile, readImage } from '../image.js';
import { defineState, type DumpShared, type DumpTask } from './module.js';

const NS_FLAGS = { uts: CLONE.NEWUTS, ipc: CLONE.NEWIPC } as const;
export type NsKind = keyof typeof NS_FLAGS;
const NS_KINDS = Object.keys(NS_FLAGS) as NsKind[];

/** struct new_utsname: six fields of 65 bytes; nodename is the second, domainname the last. */
const UTS_FIELD = 65;
const UTSNAME_SIZE = 6 * UTS_FIELD;

interface NamespacesImage {
  clone_flags: number;
  hostname: string;
  domainname: string;
}

const nsInode = (pid: number | 'thread-self', kind: NsKind) => fs.statSync(`/proc/${pid}/ns/${kind}`).ino;

/** Whether the task is in a namespace of this kind other than ours. */
export function ownNamespace(pid: number, kind: NsKind): boolean {
  return nsInode(pid, kind) !== nsInode('thread-self', kind);
}

/**
 * Run `fn` with this thread in the task's namespace of `kind`, so that
 * /proc/sys and /proc/sysvipc and the SysV calls are the namespace's; then come back.
 */
export function inNamespace<T>(pid: number, kind: NsKind, fn: () => T): T {
  const own = fs.openSync(`/proc/thread-self/ns/${kind}`, 'r');
  try {
    const theirs = fs.openSync(`/proc/${pid}/ns/${kind}`, 'r');
    try {
      rawSyscall(NR.setns, theirs, NS_FLAGS[kind]);
    } catch (err) {
      throw new CrError(`pid ${pid}: cannot enter its ${kind} namespace (${(err as Error).message})`);
    } finally {
      fs.closeSync(theirs);
    }
    try {
      return fn();
    } finally {
      rawSyscall(NR.setns, own, NS_FLAGS[kind]);
    }
  } finally {
    fs.closeSync(own);
  }
}

/** Each dump's root: the first task it saves, since dump.ts walks the tree from its root. */
const roots = new WeakMap<DumpShared, number>();

/** Whether the task is the root of the tree being dumped, the one that carries namespace state. */
export function isTreeRoot(task: DumpTask): boolean {
  if (!roots.has(task.shared)) roots.set(task.shared, task.pid);
  return roots.get(task.shared) === task.pid;
}

/** The CLONE_NEW* flags the image's root is to be created with (cr-mktree -n). */
export function cloneFlags(dir: string, rootPid: number): number {
  return fs.existsSync(imageFile(dir, 'namespaces', rootPid)) ? readImage<NamespacesImage>(dir, 'namespaces', rootPid).clone_flags : 0;
}

const cString = (b: Buffer) => b.toString('utf8', 0, b.indexOf(0) < 0 ? b.length : b.indexOf(0));

export const namespaces = defineState<NamespacesImage | null>({
  name: 'namespaces',

  dump(task) {
    if (!isTreeRoot(task)) {
      const root = roots.get(task.shared)!;
      for (const kind of NS_KINDS) {
        if (nsInode(task.tracee.pid, kind) !== nsInode(root, kind)) throw new CrError(`pid ${task.pid}: its ${kind} namespace is not its tree root's (pid ${root}): not supported`);
      }
      return;
    }
    const kinds = NS_KINDS.filter((k) => ownNamespace(task.pid, k));
    const img: NamespacesImage = { clone_flags: kinds.reduce((f, k) => f | NS_FLAGS[k], 0), hostname: '', domainname: '' };
    if (kinds.includes('uts')) {
      task.inj.reset();
      const buf = task.inj.alloc(UTSNAME_SIZE);
      task.tracee.syscallOk('uname', NR.uname, buf);
      const uts = task.tracee.readMem(buf, UTSNAME_SIZE);
      img.hostname = cString(uts.subarray(UTS_FIELD, 2 * UTS_FIELD));
      img.domainname = cString(uts.subarray(5 * UTS_FIELD));
    }
    task.images.write('namespaces', task.pid, img);
  },

  load(dir, { pid }) {
    // Only the root's image exists.
    if (!fs.existsSync(imageFile(dir, 'namespaces', pid))) return null;
    const img = readImage<NamespacesImage>(dir, 'namespaces', pid);
    const known = NS_KINDS.reduce((f, k) => f | NS_FLAGS[k], 0);
    if (img.clone_flags & ~known || Buffer.byteLength(img.hostname) >= UTS_FIELD || Buffer.byteLength(img.domainname) >= UTS_FIELD) {
      throw new CrError(`${imageFile(dir, 'namespaces', pid)}: corrupted image`);
    }
    return img;
  },

  restore(task, img) {
    if (!img) return;
    // Setting names in the host's namespace would rename the host.
    for (const kind of NS_KINDS) {
      if (img.clone_flags & NS_FLAGS[kind] && !ownNamespace(task.pid, kind)) throw new CrError(`pid ${task.pid}: was not created in a new ${kind} namespace`);
    }
    if (!(img.clone_flags & CLONE.NEWUTS)) return;
    const { tracee, inj } = task;
    inj.reset();
    tracee.syscallOk('sethostname', NR.sethostname, inj.putString(img.hostname), Buffer.byteLength(img.hostname));
    inj.reset();
    tracee.syscallOk('setdomainname', NR.setdomainname, inj.putString(img.domainname), Buffer.byteLength(img.domainname));
  },

  describe(img) {
    if (!img) return ["its tree root's"];
    const own = NS_KINDS.filter((k) => img.clone_flags & NS_FLAGS[k]);
    if (!own.length) return ['the dumper\'s uts and ipc namespaces'];
    return [`own ${own.join(' and ')} namespace${own.length > 1 ? 's' : ''}${img.clone_flags & CLONE.NEWUTS ? `  hostname ${img.hostname}  domainname ${img.domainname}` : ''}`];
  },
});
