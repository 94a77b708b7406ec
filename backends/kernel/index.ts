/**
 * The kernel backend: in-kernel checkpoint/restart (the linux-cr approach)
 * through checkpoint(2), restart(2) and clone_with_pids(2) from
 * kernel-patches/, with the engine in kmod/crengine.ko.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Backend, CheckItem } from '../types.js';
import { CrError } from '../../userspace/errors.js';
import { nftVersion } from '../../userspace/net/netlock.js';
import { dump, preDump } from './dump.js';
import { memoryModes, recognizes, summary } from './identity.js';
import { imagePath, readImage, TYPE_NAMES } from './image.js';
import { imageNetlock } from './inet.js';
import { engineStatus, helperPath, NR_CHECKPOINT, NR_CLONE_WITH_PIDS, NR_RESTART, probe } from './sys.js';

export const kernelBackend: Backend = {
  name: 'kernel',
  summary,
  memoryModes,

  async check(): Promise<CheckItem[]> {
    const p = probe();
    const root = process.geteuid?.() === 0;
    const engine = engineStatus(p);
    const nft = await nftVersion();
    return [
      { name: 'kernel', ok: true, required: false, detail: `running ${os.release()}` },
      {
        name: 'checkpoint(2)/restart(2)', ok: p.syscalls, required: true,
        detail: p.syscalls ? `syscalls ${NR_CHECKPOINT}/${NR_RESTART} present` : 'ENOSYS: boot a kernel built with kernel-patches/series',
      },
      {
        name: 'clone_with_pids(2)', ok: p.cloneWithPids, required: true,
        detail: p.cloneWithPids ? `syscall ${NR_CLONE_WITH_PIDS} present` : 'ENOSYS: boot a kernel built with kernel-patches/series',
      },
      { name: 'engine', ok: engine.registered || engine.loadable, required: true, detail: engine.detail },
      { name: 'root', ok: root, required: true, detail: root ? 'running as root' : 'clone_with_pids needs CAP_SYS_ADMIN: run as root' },
      { name: 'cr-mktree', ok: fs.existsSync(helperPath()), required: true, detail: fs.existsSync(helperPath()) ? helperPath() : 'helper not built: npm run build' },
      { name: 'nft', ok: !!nft, required: false, detail: nft ? `${nft}: the network lock for --tcp-established` : 'nft not found: dumps with --tcp-established cannot lock the network (install nftables)' },
    ];
  },

  dump,
  preDump,
  // Loaded when first called: a dump needs none of it.
  restore: async (opts) => (await import('./restore.js')).restore(opts),
  thaw: async (pid) => (await import('./restore.js')).thaw(pid),

  async recognizes(dir) {
    return recognizes(dir);
  },

  async describe(dir) {
    if (!fs.existsSync(imagePath(dir))) throw new CrError(`${dir} holds no kernel-backend image`);
    const img = readImage(imagePath(dir), true);
    const h = img.header;
    const counts = new Map<string, { n: number; bytes: number }>();
    for (const o of img.objects) {
      const c = counts.get(o.name) ?? { n: 0, bytes: 0 };
      c.n += 1;
      c.bytes += o.len;
      counts.set(o.name, c);
    }
    const lock = imageNetlock(dir);
    const lines = [
      `kernel-backend image, version ${h.version}, ${h.arch}, kernel ${h.release}, made ${h.time.toISOString()}, flags ${h.flags}`,
      ...img.tree.map((t) => `task ${t.pid} tgid ${t.tgid} ppid ${t.ppid} pgid ${t.pgid} sid ${t.sid}`),
      `objects: ${[...counts].map(([name, c]) => `${c.n} ${name} (${c.bytes} B)`).join(', ')}`,
      ...img.details,
      ...(lock ? [`network lock ${lock}: its connections' packets are held back until the restore`] : []),
      `pages: ${img.pages}${img.chain?.parentPath ? `, ${img.parentPages} more unchanged in the parent ${img.chain.parentPath}` : ''}`,
      img.error ? `ERROR ${img.error.errno}: ${img.error.message}` : img.tail ? `trailer: ${img.tail.nrObjects} objects, checksum ${img.tail.checksum} ${img.tail.checksumOk ? 'ok' : 'MISMATCH'}` : 'no trailer',
    ];
    return {
      backend: 'kernel',
      lines,
      data: { header: { ...h, time: h.time.toISOString() }, tree: img.tree, objects: img.objects, types: TYPE_NAMES, chain: img.chain, tail: img.tail, error: img.error, pages: img.pages, parentPages: img.parentPages, details: img.details },
    };
  },
};
