/**
 * The kernel backend and terminals: a pseudo-terminal pair inside the
 * tree comes back with its index, settings, session and foreground job;
 * a tree run as a job of an interactive shell is saved and restored as a
 * shell job (--shell-job, as CRIU means it), and refused without it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { CrError } from '../../userspace/errors.js';
import { alive, crBin, sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kernelRoundTrip, kprogram, skipReason, startTo, waitFor } from './env.js';

const t = skipReason ? test.skip : test;

t('a pty pair: index, termios, window size, the session it controls and its foreground job', async () => {
  const r = await kernelRoundTrip('kpty', ['pty', tempDir('kpty')]);
  assert.not.match(r.out, /FAIL/, r.out);
  assert.is(r.out.match(/^ok /gm)?.length, 9, r.out);
  assert.equal(r.status, { code: 0, signal: null }, r.out);
  const show = r.show.join('\n');
  assert.match(show, /pty #\d+ \/dev\/pts\/\d+, 33x111/, show);
  assert.match(show, /controlling terminal #\d+, its session's leader, foreground group \d+/, show);
  assert.match(show, /file #\d+ \/dev\/tty \/dev\/tty/, show);
  assert.equal(dmesgTrouble(), []);
});

/** Until the restarted task has its own name again (not its placeholder's). */
async function restarted(pid: number, comm: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) return;
    } catch {
      /* not there yet */
    }
    await sleep(10);
  }
  throw new Error(`pid ${pid} never became ${comm}`);
}

t('a job of an interactive shell: --shell-job saves it and restores it on the restorer\'s terminal', async () => {
  const dir = tempDir('kjob');
  const images = tempDir('kjobimg');
  const before = path.join(dir, 'before.txt');
  const shell = startTo(kprogram('kshell'), [kprogram('kpty'), 'job', dir], before);
  await waitFor(before, 'ready ');
  const pid = Number(/ready (\d+)/.exec(fs.readFileSync(before, 'utf8'))![1]);

  const refused = await kernelBackend.dump({ pid, dir: tempDir('kjobno') }).catch((e: unknown) => e);
  assert.instance(refused, CrError);
  assert.match((refused as Error).message, /pid \d+: its controlling terminal pts\d+ belongs to a session outside the tree: dump it as a shell job \(--shell-job\)/);
  assert.ok(alive(pid), 'a refused checkpoint leaves the job running');

  await kernelBackend.dump({ pid, dir: images, shellJob: true });
  await shell.done;
  const show = (await kernelBackend.describe(images)).lines.join('\n');
  assert.match(show, /terminal #\d+: the shell's, the restarter's stdin takes its place, 33x111/, show);
  const noFlag = await kernelBackend.restore({ dir: images }).catch((e: unknown) => e);
  assert.instance(noFlag, CrError);
  assert.match((noFlag as Error).message, /holds a shell job .*: restore it with --shell-job/);

  // the restorer runs as a job of another shell, on another terminal
  const after = path.join(dir, 'after.txt');
  const shell2 = startTo(kprogram('kshell'), [process.execPath, crBin, 'restore', '--shell-job', '-D', images], after);
  await restarted(pid, 'kpty');
  process.kill(pid, 'SIGUSR1');
  assert.is(await shell2.done, 0, fs.readFileSync(after, 'utf8'));
  const out = fs.readFileSync(after, 'utf8');
  assert.not.match(out, /FAIL/, out);
  assert.is(out.match(/^ok /gm)?.length, 5, out);
  assert.match(out, /through \/dev\/tty/);
  assert.equal(dmesgTrouble(), []);
});

test.run();
