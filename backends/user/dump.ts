/**
 * Checkpoint through /proc and ptrace: seize the task, let every state
 * module save its part (asking the task itself, through injected system
 * calls, for what /proc does not show), then kill it or let it go.
 * On any failure the task is given back exactly as it was and the partial
 * image is removed.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { DumpOptions, DumpResult } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { procMaps, procStat, procStatus, statField } from '../../userspace/proc/parse.js';
import { SIG } from '../../userspace/sys/constants.js';
import { Injection } from '../../userspace/sys/inject.js';
import { kill, pidExists, SysError, waitpid, WALL } from '../../userspace/sys/libc.js';
import { Tracee } from '../../userspace/sys/ptrace.js';
import { FORMAT_VERSION, ImageWriter } from './image.js';
import { STATE_MODULES } from './state/index.js';
import type { DumpShared, DumpTask } from './state/module.js';

/** The tasks to dump, root first; refuses trees and threads it cannot handle yet. */
function collectTasks(pid: number): number[] {
  if (!Number.isInteger(pid) || pid <= 0) throw new CrError(`invalid pid ${pid}`);
  if (pid === process.pid) throw new CrError(`pid ${pid} is cr itself`);
  if (!pidExists(pid)) throw new CrError(`pid ${pid} does not exist`);
  const status = procStatus(pid);
  if (Number(status.get('Tgid')) !== pid) throw new CrError(`pid ${pid} is a thread of process ${status.get('Tgid')}; dump the process`);
  if (Number(status.get('Threads')) > 1) throw new CrError(`pid ${pid} has ${status.get('Threads')} threads: multithreaded processes are not supported yet`);
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  if (children) throw new CrError(`pid ${pid} has children (${children}): process trees are not supported yet`);
  if (status.get('State')?.startsWith('Z')) throw new CrError(`pid ${pid} is a zombie`);
  return [pid];
}

function seize(pid: number): Tracee {
  try {
    return Tracee.seize(pid);
  } catch (err) {
    const code = (err as SysError).code;
    if (code === 'EPERM') throw new CrError(`pid ${pid}: not permitted to trace it (checkpoint needs ptrace rights over the task)`);
    if (code === 'ESRCH') throw new CrError(`pid ${pid} does not exist`);
    throw err;
  }
}

function asCrError(err: unknown): Error {
  if (err instanceof CrError) return err;
  if (err instanceof SysError) return new CrError(err.message, { cause: err });
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EACCES' || code === 'EROFS' || code === 'EIO') {
    return new CrError(`cannot write the image: ${code}`, { cause: err });
  }
  return err as Error;
}

export async function dump(opts: DumpOptions): Promise<DumpResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const pids = collectTasks(opts.pid);
  const stats = { pagesWritten: 0 };
  const shared: DumpShared = { files: [], pipes: new Set() };
  // Seize first: a task we may not trace leaves the image directory untouched.
  const tracees: Tracee[] = [];
  let images: ImageWriter;
  try {
    for (const pid of pids) tracees.push(seize(pid));
    images = new ImageWriter(opts.dir);
  } catch (err) {
    for (const t of tracees) t.detachQuietly();
    throw err;
  }
  const frozenAt = performance.now();
  log(`seized ${pids.join(' ')} in ${(frozenAt - t0).toFixed(1)} ms`);
  try {

    for (const tracee of tracees) {
      const maps = procMaps(tracee.pid);
      const inj = Injection.begin(tracee);
      try {
        const task: DumpTask = { pid: tracee.pid, tracee, inj, maps, images, shared, stats, log };
        for (const m of STATE_MODULES) {
          m.dump(task);
          log(`pid ${tracee.pid}: ${m.name} saved`);
        }
        inj.end();
      } catch (err) {
        inj.abandon();
        throw err;
      }
    }
    images.write('inventory', undefined, {
      format_version: FORMAT_VERSION,
      arch: process.arch,
      kernel_release: os.release(),
      created_ms: BigInt(Date.now()),
      page_size: 4096,
      tasks: pids.map((pid) => {
        const stat = procStat(pid);
        return { pid, ppid: Number(statField(stat, 4)), pgid: Number(statField(stat, 5)), sid: Number(statField(stat, 6)), comm: stat.comm };
      }),
    });
  } catch (err) {
    images.discard();
    for (const t of tracees) t.detachQuietly();
    throw asCrError(err);
  }

  for (const t of tracees) {
    if (opts.leaveRunning) {
      t.detach();
    } else {
      t.closeMem();
      kill(t.pid, SIG.KILL);
      waitpid(t.pid, WALL); // the tracer sees the death first; the parent still reaps it
    }
  }
  const end = performance.now();
  return {
    pids,
    stats: { freezeMs: frozenAt - t0, frozenMs: end - frozenAt, totalMs: end - t0, imageBytes: images.bytes(), pagesWritten: stats.pagesWritten },
  };
}
