/** Injection sessions give a task back as the kernel would have: its interrupted call restarted, or EINTR. */
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { NR } from '../../userspace/sys/constants.js';
import { Injection } from '../../userspace/sys/inject.js';
import { Tracee } from '../../userspace/sys/ptrace.js';
import { sleep, start, tempDir, waitLines } from '../lib/harness.js';

/** Until the task sleeps in the system call numbered `nr` (/proc/PID/syscall's first field). */
async function inCall(pid: number, nr: number): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (Number(fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]) === nr) return;
    await sleep(20);
  }
  throw new Error(`pid ${pid} never entered system call ${nr}`);
}

for (const blocked of [false, true]) {
  const how = blocked ? 'blocked outside the call' : 'never blocked';
  test(`a signal (${how}) that comes while a session holds a task in sigsuspend wakes it once the session ends`, async () => {
    const out = path.join(tempDir('inject'), 'out.txt');
    const p = start('sigsuspend', blocked ? ['blocked'] : [], out);
    try {
      await waitLines(out, 1);
      await inCall(p.pid, NR.rt_sigsuspend);
      const t = Tracee.seize(p.pid);
      const inj = Injection.begin(t);
      assert.is(Number(inj.tracee.syscallOk('getpid', NR.getpid)) > 0, true);
      process.kill(p.pid, 'SIGUSR2');
      inj.end();
      t.detach();
      // Entered again by hand, the call would sleep for good: the handler runs first and returns into it.
      const code = await Promise.race([p.exited, sleep(60000).then(() => 'still asleep')]);
      assert.is(code, 0);
      assert.is(fs.readFileSync(out, 'utf8'), 'waiting\nwoke\n');
    } finally {
      p.child.kill('SIGKILL');
    }
  });
}

test('a task held in sigsuspend with no signal goes back to sleep in it, and wakes on the next signal', async () => {
  const out = path.join(tempDir('inject'), 'out.txt');
  const p = start('sigsuspend', [], out);
  try {
    await waitLines(out, 1);
    await inCall(p.pid, NR.rt_sigsuspend);
    const t = Tracee.seize(p.pid);
    Injection.begin(t).end();
    t.detach();
    await inCall(p.pid, NR.rt_sigsuspend);
    assert.is(fs.readFileSync(out, 'utf8'), 'waiting\n');
    process.kill(p.pid, 'SIGUSR2');
    const code = await Promise.race([p.exited, sleep(60000).then(() => 'still asleep')]);
    assert.is(code, 0);
    assert.is(fs.readFileSync(out, 'utf8'), 'waiting\nwoke\n');
  } finally {
    p.child.kill('SIGKILL');
  }
});

test.run();
