/**
 * The user backend: checkpoint/restart from userspace, through /proc,
 * ptrace and a few kernel interfaces made for it (the CRIU approach).
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Backend, CheckItem } from '../types.js';
import { nftVersion } from '../../userspace/net/netlock.js';
import { nativeBin } from '../../userspace/paths.js';
import { hasUserfaultfd, writeTracking } from '../../userspace/proc/pagemap.js';
import { memoryModes, recognizes, summary } from './identity.js';

function kernelAtLeast(major: number, minor: number): boolean {
  const [ma, mi] = os.release().split('.').map(Number);
  return ma > major || (ma === major && mi >= minor);
}

function fileCheck(name: string, file: string, required: boolean, missing: string): CheckItem {
  const ok = fs.existsSync(file);
  return { name, ok, required, detail: ok ? file : missing };
}

export const userBackend: Backend = {
  name: 'user',
  summary,
  memoryModes,

  async check() {
    const root = process.geteuid?.() === 0;
    let yama = '0';
    try {
      yama = fs.readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim();
    } catch {
      /* no Yama: classic ptrace rules */
    }
    const config = fs.existsSync('/proc/self/map_files');
    const nft = await nftVersion();
    return [
      { name: 'root', ok: root, required: true, detail: root ? 'running as root' : 'restore chooses pids and sets mm fields: run as root' },
      { name: 'ptrace', ok: yama !== '3', required: true, detail: `Yama ptrace_scope ${yama}${yama === '3' ? ': ptrace is disabled' : ''}` },
      { name: 'clone3 set_tid', ok: kernelAtLeast(5, 5), required: true, detail: `kernel ${os.release()} (needs 5.5 or later)` },
      { name: 'CONFIG_CHECKPOINT_RESTORE', ok: config, required: true, detail: config ? 'PR_SET_MM_MAP, ARCH_MAP_VDSO, map_files present' : 'kernel built without CONFIG_CHECKPOINT_RESTORE' },
      fileCheck('/proc/PID/pagemap', '/proc/self/pagemap', true, 'no pagemap: cannot tell which pages to save'),
      { name: 'PAGEMAP_SCAN', ok: kernelAtLeast(6, 7), required: true, detail: `kernel ${os.release()} (finds the pages to save in ranges; needs 6.7 or later)` },
      {
        name: 'written pages', ok: !!writeTracking(), required: false,
        detail: { 'soft-dirty': 'soft-dirty bits: pre-dumps and --prev-images-dir', 'uffd-wp': 'no soft-dirty bits: pre-dumps track written pages with an asynchronous write-protecting userfaultfd', none: 'neither CONFIG_MEM_SOFT_DIRTY nor asynchronous userfaultfd write protection: no pre-dumps' }[writeTracking() ?? 'none'],
      },
      fileCheck('ns_last_pid', '/proc/sys/kernel/ns_last_pid', false, 'not needed: pids are chosen with clone3 set_tid'),
      fileCheck('cr-mktree', nativeBin('cr-mktree'), true, 'helper not built: run npm run build'),
      fileCheck('cr-pages', nativeBin('cr-pages'), true, 'helper not built: run npm run build'),
      {
        name: 'userfaultfd', ok: hasUserfaultfd(), required: false,
        detail: hasUserfaultfd() ? 'cr-pages puts large mappings in and serves restore --lazy-pages' : 'kernel built without CONFIG_USERFAULTFD: no restore --lazy-pages (the tasks read their pages in themselves)',
      },
      { name: 'nft', ok: !!nft, required: false, detail: nft ? `${nft}: the network lock for --tcp-established` : 'nft not found: dumps with --tcp-established cannot lock the network (install nftables)' },
    ];
  },

  // Each loaded when first called: `cr show` needs neither.
  dump: async (opts) => (await import('./dump.js')).dump(opts),
  preDump: async (opts) => (await import('./dump.js')).preDump(opts),
  restore: async (opts) => (await import('./restore.js')).restore(opts),

  async recognizes(dir) {
    return recognizes(dir);
  },

  async describe(dir) {
    const [{ readInventory }, { STATE_MODULES }, { parentDir }] = await Promise.all([import('./inventory.js'), import('./state/index.js'), import('./state/memory.js')]);
    const inv = readInventory(dir);
    const parent = parentDir(dir);
    const lines = [
      `user-backend image, format ${inv.format_version}, ${inv.arch}, kernel ${inv.kernel_release}, made ${new Date(Number(inv.created_ms)).toISOString()}`,
      ...(parent ? [`builds on a pre-dump: parent ${parent}`] : []),
      ...(inv.tracks_memory ? [inv.tracking === 'UFFD_WP'
        ? `a pre-dump: each task tracks the pages it writes with a userfaultfd (${inv.trackers.map((k) => `pid ${k.pid} fd ${k.fd}`).join(', ')})`
        : 'a pre-dump: the tasks\' soft-dirty bits track the pages they write'] : []),
    ];
    const tasks = inv.tasks.map((t) => {
      const states = t.zombie ? {} : Object.fromEntries(STATE_MODULES.map((m) => [m.name, m.load(dir, t).describe()]));
      const what = t.zombie ? `zombie, wait status 0x${t.exit_status.toString(16)}`
        : `${t.threads.length} thread${t.threads.length > 1 ? 's' : ''}${t.leader_exited ? ', the leader exited' : ''}${t.stopped ? ', stopped' : ''}`;
      const ns = t.nspid.length ? ` (pids ${t.nspid.join('/')} in nested pid namespaces${t.new_pidns ? ', the init of a new one' : ''})` : '';
      lines.push(`task ${t.pid} (${t.comm})${ns} ppid ${t.ppid} pgid ${t.pgid} sid ${t.sid}: ${what}`);
      for (const [name, l] of Object.entries(states)) lines.push(`  ${name}:`, ...l.map((x) => `    ${x}`));
      return { ...t, ...states };
    });
    const trackers = inv.trackers.map((k) => ({ ...k, ino: String(k.ino) }));
    return { backend: 'user', lines, data: { ...inv, created_ms: Number(inv.created_ms), trackers, tasks } };
  },
};
