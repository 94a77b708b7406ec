/**
 * SysV IPC of a tree's own IPC namespace: shared memory segments (with
 * their contents, saved here once however many tasks attach them),
 * message queues (with their queued messages, in order) and semaphore
 * sets, recreated in the restored root's fresh namespace with the same
 * ids, before memory.ts attaches the segments.
 *
 * This thread enters the namespace (setns) to read and rebuild it: that
 * is where /proc/sysvipc, /proc/sys/kernel/*_next_id and the SysV calls
 * show that namespace, and there are no scratch-area limits on contents.
 */
import fs from 'node:fs';
import { CrError } from '../../../userspace/errors.js';
import { IPC, MSG_COPY, NR, PAGE_SIZE, SEM, SHM } from '../../../userspace/sys/constants.js';
import { rawSyscall, SysError } from '../../../userspace/sys/libc.js';
import { imageFile, readImage } from '../image.js';
import { defineState } from './module.js';
import { inNamespace, isTreeRoot, ownNamespace } from './namespaces.js';

interface IpcPerm {
  key: number;
  id: number;
  uid: number;
  gid: number;
  mode: number;
}

interface ShmSegment {
  perm: IpcPerm;
  size: bigint;
  chunks: { offset: bigint; data: Buffer }[];
}

interface MsgQueue {
  perm: IpcPerm;
  qbytes: bigint;
  messages: { mtype: bigint; text: Buffer }[];
}

interface SemSet {
  perm: IpcPerm;
  values: number[];
}

interface IpcImage {
  sysctls: { name: string; value: string }[];
  shm: ShmSegment[];
  msg: MsgQueue[];
  sem: SemSet[];
}

/** The namespace's limits, restored before any object is created. */
const LIMITS = ['shmmax', 'shmall', 'shmmni', 'msgmax', 'msgmnb', 'msgmni', 'sem'];
/** Restored last: with it set, a segment nobody has attached yet is destroyed as soon as we detach it. */
const RMID_FORCED = 'shm_rmid_forced';

/** Sizes of struct shmid64_ds, msqid64_ds, semid64_ds on x86_64, and where msg_qbytes is. */
const SHMID_DS = 112;
const MSQID_DS = 120;
const SEMID_DS = 104;
const MSG_QBYTES = 88;

const sysctl = (name: string) => `/proc/sys/kernel/${name}`;

/** /proc/sysvipc/KIND as rows of named columns. */
function sysvipc(kind: 'shm' | 'msg' | 'sem'): Record<string, string>[] {
  const [head, ...rows] = fs.readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').map((l) => l.trim().split(/\s+/));
  return rows.map((cols) => Object.fromEntries(head.map((h, i) => [h, cols[i]])));
}

const permOf = (row: Record<string, string>, idColumn: string): IpcPerm => ({
  key: Number(row.key), id: Number(row[idColumn]), uid: Number(row.uid), gid: Number(row.gid), mode: parseInt(row.perms, 8),
});

/** Run `fn` on a segment attached in this process at `addr`, through /proc/self/mem. */
function withAttached<T>(id: number, flags: number, fn: (mem: number, addr: number) => T): T {
  const addr = rawSyscall(NR.shmat, id, 0, flags);
  const mem = fs.openSync('/proc/self/mem', flags & SHM.RDONLY ? 'r' : 'r+');
  try {
    return fn(mem, addr);
  } finally {
    fs.closeSync(mem);
    rawSyscall(NR.shmdt, addr);
  }
}

const CHUNK = 256 * PAGE_SIZE;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/** The segment's bytes, but for pages of zeros: as runs at their offsets. */
function shmChunks(id: number, size: number): ShmSegment['chunks'] {
  const chunks: ShmSegment['chunks'] = [];
  let run: { offset: number; end: number; parts: Buffer[] } | undefined;
  const flush = () => {
    if (run) chunks.push({ offset: BigInt(run.offset), data: Buffer.concat(run.parts) });
    run = undefined;
  };
  const buf = Buffer.alloc(CHUNK);
  withAttached(id, SHM.RDONLY, (mem, addr) => {
    for (let at = 0; at < size; at += CHUNK) {
      const n = Math.min(CHUNK, size - at);
      fs.readSync(mem, buf, 0, n, addr + at);
      for (let p = 0; p < n; p += PAGE_SIZE) {
        const page = buf.subarray(p, Math.min(p + PAGE_SIZE, n));
        if (page.equals(ZERO_PAGE.subarray(0, page.length))) {
          flush();
          continue;
        }
        if (run?.end !== at + p) {
          flush();
          run = { offset: at + p, end: at + p, parts: [] };
        }
        run.parts.push(Buffer.from(page));
        run.end += page.length;
      }
    }
  });
  flush();
  return chunks;
}

/** Every queued message, copied in place (MSG_COPY) so that nothing is consumed. */
function queuedMessages(id: number, qnum: number, cbytes: number): MsgQueue['messages'] {
  const buf = Buffer.alloc(8 + cbytes);
  const out: MsgQueue['messages'] = [];
  for (let i = 0; i < qnum; i++) {
    let n: number;
    try {
      n = rawSyscall(NR.msgrcv, id, buf, cbytes, i, IPC.NOWAIT | MSG_COPY);
    } catch (err) {
      if ((err as SysError).code === 'ENOSYS') throw new CrError('message queues need msgrcv(MSG_COPY), which this kernel lacks (CONFIG_CHECKPOINT_RESTORE)');
      throw err;
    }
    out.push({ mtype: buf.readBigInt64LE(0), text: Buffer.from(buf.subarray(8, 8 + n)) });
  }
  return out;
}

function dumpIpc(): IpcImage {
  const rmidForced = fs.readFileSync(sysctl(RMID_FORCED), 'utf8').trim();
  // Our shmdt would otherwise destroy a segment nobody else has attached.
  if (rmidForced !== '0') fs.writeFileSync(sysctl(RMID_FORCED), '0');
  try {
    const shm = sysvipc('shm').map((r) => ({ perm: permOf(r, 'shmid'), size: BigInt(r.size), chunks: shmChunks(Number(r.shmid), Number(r.size)) }));
    const msg = sysvipc('msg').map((r) => {
      const ds = Buffer.alloc(MSQID_DS);
      rawSyscall(NR.msgctl, Number(r.msqid), IPC.STAT, ds);
      return { perm: permOf(r, 'msqid'), qbytes: ds.readBigUInt64LE(MSG_QBYTES), messages: queuedMessages(Number(r.msqid), Number(r.qnum), Number(r.cbytes)) };
    });
    const sem = sysvipc('sem').map((r) => {
      const values = Buffer.alloc(2 * Number(r.nsems));
      rawSyscall(NR.semctl, Number(r.semid), 0, SEM.GETALL, values);
      return { perm: permOf(r, 'semid'), values: Array.from({ length: Number(r.nsems) }, (_, i) => values.readUInt16LE(2 * i)) };
    });
    const sysctls = [...LIMITS, RMID_FORCED].map((name) => ({ name, value: name === RMID_FORCED ? rmidForced : fs.readFileSync(sysctl(name), 'utf8').trim() }));
    return { sysctls, shm, msg, sem };
  } finally {
    if (rmidForced !== '0') fs.writeFileSync(sysctl(RMID_FORCED), rmidForced);
  }
}

/** Create an object with the id it had: the kernel hands out *_next_id next. */
function create(kind: 'shm' | 'msg' | 'sem', perm: IpcPerm, make: (flags: number) => number): void {
  fs.writeFileSync(sysctl(`${kind}_next_id`), String(perm.id));
  const id = make((perm.mode & 0o777) | IPC.CREAT | IPC.EXCL);
  if (id !== perm.id) throw new CrError(`SysV ${kind} id ${perm.id} could not be recreated (got ${id})`);
}

/** struct ipc64_perm at the head of every *id64_ds, for IPC_SET. */
function setPerm(size: number, perm: IpcPerm): Buffer {
  const ds = Buffer.alloc(size);
  ds.writeUInt32LE(perm.uid, 4);
  ds.writeUInt32LE(perm.gid, 8);
  ds.writeUInt32LE(perm.mode & 0o777, 20);
  return ds;
}

function restoreIpc(img: IpcImage): void {
  for (const { name, value } of img.sysctls) if (name !== RMID_FORCED) fs.writeFileSync(sysctl(name), value);
  for (const s of img.shm) {
    const { id } = s.perm;
    create('shm', s.perm, (flags) => rawSyscall(NR.shmget, s.perm.key, Number(s.size), flags));
    withAttached(id, 0, (mem, addr) => {
      for (const c of s.chunks) fs.writeSync(mem, c.data, 0, c.data.length, addr + Number(c.offset));
    });
    rawSyscall(NR.shmctl, id, IPC.SET, setPerm(SHMID_DS, s.perm));
    if (s.perm.mode & SHM.LOCKED) rawSyscall(NR.shmctl, id, SHM.LOCK, 0);
  }
  for (const q of img.msg) {
    create('msg', q.perm, (flags) => rawSyscall(NR.msgget, q.perm.key, flags));
    // Room for the messages first: qbytes may be above the default.
    const ds = setPerm(MSQID_DS, q.perm);
    ds.writeBigUInt64LE(q.qbytes, MSG_QBYTES);
    rawSyscall(NR.msgctl, q.perm.id, IPC.SET, ds);
    for (const m of q.messages) {
      const buf = Buffer.alloc(8 + m.text.length);
      buf.writeBigInt64LE(m.mtype, 0);
      m.text.copy(buf, 8);
      rawSyscall(NR.msgsnd, q.perm.id, buf, m.text.length, IPC.NOWAIT);
    }
  }
  for (const s of img.sem) {
    create('sem', s.perm, (flags) => rawSyscall(NR.semget, s.perm.key, s.values.length, flags));
    const values = Buffer.alloc(2 * s.values.length);
    s.values.forEach((v, i) => values.writeUInt16LE(v, 2 * i));
    rawSyscall(NR.semctl, s.perm.id, 0, SEM.SETALL, values);
    rawSyscall(NR.semctl, s.perm.id, 0, IPC.SET, setPerm(SEMID_DS, s.perm));
  }
}

/** A failed system call or file write (of a sysctl, of a segment's pages) as a CrError. */
const asCr = (what: string, err: unknown) => (err instanceof SysError || (err as NodeJS.ErrnoException).code ? new CrError(`${what}: ${(err as Error).message}`, { cause: err }) : err);

export const ipc = defineState<IpcImage | null>({
  name: 'ipc',

  dump(task) {
    if (!isTreeRoot(task) || !ownNamespace(task.pid, 'ipc')) return;
    let img: IpcImage;
    try {
      img = inNamespace(task.pid, 'ipc', dumpIpc);
    } catch (err) {
      throw asCr(`pid ${task.pid}: cannot save its IPC namespace`, err);
    }
    task.images.write('ipc', task.pid, img);
  },

  load(dir, { pid }) {
    // Only the root of a tree with its own IPC namespace has one.
    if (!fs.existsSync(imageFile(dir, 'ipc', pid))) return null;
    const img = readImage<IpcImage>(dir, 'ipc', pid);
    if ([...img.shm, ...img.msg, ...img.sem].some((o) => !o.perm)) throw new CrError(`${imageFile(dir, 'ipc', pid)}: corrupted image (an IPC object without its permissions)`);
    // Only the namespace's own limits, as numbers: restore writes them into /proc/sys/kernel.
    for (const { name, value } of img.sysctls) {
      if (![...LIMITS, RMID_FORCED].includes(name) || !/^\d+(\s+\d+)*$/.test(value)) throw new CrError(`${imageFile(dir, 'ipc', pid)}: corrupted image (sysctl ${JSON.stringify(name)})`);
    }
    for (const s of img.shm) {
      if (s.chunks.some((c) => c.offset + BigInt(c.data.length) > s.size)) throw new CrError(`${imageFile(dir, 'ipc', pid)}: corrupted image (shm ${s.perm.id})`);
    }
    return img;
  },

  restore(task, img) {
    if (!img) return;
    if (!ownNamespace(task.pid, 'ipc')) throw new CrError(`pid ${task.pid}: was not created in a new ipc namespace`);
    try {
      inNamespace(task.pid, 'ipc', () => restoreIpc(img));
    } catch (err) {
      throw asCr(`pid ${task.pid}: cannot rebuild its IPC namespace`, err);
    }
  },

  /** Once every task has attached its segments: what destroys segments nobody holds. */
  settle(task, img) {
    if (!img) return;
    inNamespace(task.pid, 'ipc', () => {
      for (const s of img.shm) if (s.perm.mode & SHM.DEST) rawSyscall(NR.shmctl, s.perm.id, IPC.RMID, 0);
      const forced = img.sysctls.find((s) => s.name === RMID_FORCED);
      if (forced) fs.writeFileSync(sysctl(RMID_FORCED), forced.value);
    });
  },

  describe(img) {
    if (!img) return ['none saved with this task'];
    const key = (p: IpcPerm) => `key 0x${(p.key >>> 0).toString(16).padStart(8, '0')} id ${p.id} mode 0${p.mode.toString(8)} uid ${p.uid} gid ${p.gid}`;
    return [
      ...img.shm.map((s) => `shm ${key(s.perm)}  ${s.size} bytes, ${s.chunks.reduce((n, c) => n + c.data.length, 0)} saved`),
      ...img.msg.map((q) => `msg ${key(q.perm)}  ${q.messages.length} messages (qbytes ${q.qbytes})`),
      ...img.sem.map((s) => `sem ${key(s.perm)}  values ${s.values.join(' ')}`),
    ];
  },
});
