/**
 * Fake backends for testing the comparison harness on the host, without a
 * VM or a real checkpointer: "dump" remembers the workload's READY line and
 * kills it, "restore" starts a stand-in that answers SIGUSR1 with whatever
 * DONE line the fake wants to print.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Backend, ExitStatus } from '../../backends/types.js';
import { CrError } from '../../userspace/errors.js';

export interface FakeBehaviour {
  /** What the stand-in prints on SIGUSR1, given the checksum before the dump. */
  done?: (sum: string) => string;
  exitCode?: number;
  dumpThrows?: string;
  restoreThrows?: string;
  /** Leave the workload running after a "successful" dump. */
  leaveRunning?: boolean;
  checkFails?: string;
}

export function fakeBackend(name: string, b: FakeBehaviour): Backend {
  return {
    name: name as Backend['name'],
    summary: `fake backend ${name}`,
    memoryModes: { mapPages: true, lazyPages: true },
    async check() {
      return [{ name: 'fake', ok: !b.checkFails, required: true, detail: b.checkFails ?? 'fine' }];
    },
    async dump(opts) {
      if (b.dumpThrows) throw new CrError(b.dumpThrows);
      const t0 = performance.now();
      const log = fs.readlinkSync(`/proc/${opts.pid}/fd/1`);
      const ready = fs.readFileSync(log, 'utf8').match(/^READY \d+ ([0-9a-f]{16})/m);
      fs.mkdirSync(opts.dir, { recursive: true });
      fs.writeFileSync(path.join(opts.dir, 'fake.json'), JSON.stringify({ log, sum: ready?.[1] }));
      if (!b.leaveRunning) process.kill(-opts.pid, 'SIGKILL');
      return { pids: [opts.pid], stats: { totalMs: performance.now() - t0, frozenMs: 1, freezeMs: 0.5, imageBytes: 1234 } };
    },
    async restore(opts) {
      if (b.restoreThrows) throw new CrError(b.restoreThrows);
      const t0 = performance.now();
      const { log, sum } = JSON.parse(fs.readFileSync(path.join(opts.dir, 'fake.json'), 'utf8')) as { log: string; sum: string };
      const line = (b.done ?? ((s: string) => `DONE ${s}`))(sum);
      const fd = fs.openSync(log, 'a');
      const child = spawn('/bin/sh', ['-c', `trap 'echo "${line}"; exit ${b.exitCode ?? 0}' USR1; echo started; while :; do sleep 0.02; done`],
        { stdio: ['ignore', fd, fd], detached: true });
      fs.closeSync(fd);
      const exited = new Promise<ExitStatus>((r) => child.once('exit', (code, signal) => r({ code, signal })));
      // wait until the trap is installed
      for (let i = 0; i < 200 && !/^started$/m.test(fs.readFileSync(log, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
      return { pids: [child.pid!], stats: { totalMs: performance.now() - t0 }, wait: () => exited };
    },
    async recognizes(dir) {
      return fs.existsSync(path.join(dir, 'fake.json'));
    },
    async describe() {
      return { backend: name as Backend['name'], lines: ['fake'], data: {} };
    },
  };
}
