/** Pseudo-terminals, /dev/tty, and a job of an interactive shell (--shell-job). */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, crBin, programBin, roundTrip, start, tempDir, waitLines } from '../lib/harness.js';
import { crTest, test } from '../lib/modes.js';

const children = (pid: number) => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);

crTest('a pty pair of the tree: termios, window size, packet mode, lock, number, the session it controls and its foreground group', async () => {
  // Bytes in flight in the pty are refused rather than lost: try again once they have gone.
  let r;
  for (let tries = 0; !r; tries++) {
    try {
      r = await roundTrip('pty', ['40'], 5);
    } catch (err) {
      if (tries > 3 || !/bytes waiting for its/.test((err as Error).message)) throw err;
    }
  }
  assert.match(r.show, /pty master (\d+): 111x37 packet mode session (\d+) foreground (\d+)/);
  assert.match(r.show, /pty master \d+: 0x0 locked/);
  assert.match(r.show, /pty slave \/dev\/pts\/\d+/);
  assert.match(r.show, /\/dev\/tty \(pty \d+\)/);
  assert.is(r.restored, r.reference);
  assert.match(r.restored, /tick 39: fg mine, session ok, echo off, VINTR 7, 111x37 \| pty the same, 111x37, packet on, the other locked\n/);
});

test('a shell job (--shell-job) comes back on the terminal cr restore runs on, as its foreground job', async () => {
  const dir = tempDir('shelljob');
  const images = tempDir('shelljob-img');
  const before = path.join(dir, 'before.txt');
  const after = path.join(dir, 'after.txt');
  fs.writeFileSync(before, '');
  const term = start('ptyrun', [before, programBin('ttyjob'), '100'], path.join(dir, 'ptyrun.txt'));
  await waitLines(before, 5);
  const [leader] = children(term.pid);
  const [job] = children(leader);

  const refused = await cr(['dump', '-t', String(job), '-D', images]);
  assert.is(refused.exitCode, 1);
  assert.match(refused.stderr, /^cr: pid \d+ fd 3: \/dev\/tty, a terminal from outside the tree, is not supported \(dump a shell job with --shell-job\)$/);
  assert.ok(alive(job), 'the job goes on');

  const d = await cr(['dump', '--shell-job', '-t', String(job), '-D', images]);
  assert.is(d.exitCode, 0, d.all);
  await term.exited;
  const show = (await cr(['show', images])).stdout;
  assert.match(show, /fd 0: the shell job's terminal flags 0100002/);
  assert.match(show, /fd 3: \/dev\/tty flags/);
  const noJob = await cr(['restore', '-D', images]);
  assert.match(noJob.stderr, /holds a shell job: restore it with --shell-job/);

  // Another terminal, another session: cr restore is the job of a new shell there.
  const r = await execa(programBin('ptyrun'), [after, process.execPath, crBin, 'restore', '--shell-job', '-D', images], { reject: false });
  assert.is(r.exitCode, 0, `${r.stdout}${r.stderr}`);
  const answers = (fs.readFileSync(before, 'utf8') + fs.readFileSync(after, 'utf8')).replace(/\r/g, '').trim().split('\n');
  assert.is(answers.pop(), `pid ${job}`);
  assert.equal(answers, [...Array(100).keys()].map((i) => `answer ${i} to a line: stdin and stdout one terminal, /dev/tty it, the foreground job`));
  assert.ok(fs.readFileSync(after, 'utf8').includes('answer 99'));
});

test.run();
