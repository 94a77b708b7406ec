/**
 * The VM layer on hosts that lie: a stand-in for QEMU first on PATH plays
 * a host whose /dev/kvm boots a guest to a panic but never runs a real one,
 * or a guest that hangs or dies. `npm run vm` must still run the command
 * (under TCG, saying why in one line), and `npm test` must still run every
 * other suite and end with its closing line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packageRoot } from '../../userspace/paths.js';
import { qemuPath } from '../../vm-images/accel.js';
import { cacheRoot } from '../../vm-images/common.js';
import { dmesgTrouble } from '../../vm-images/runner.js';
import { tempDir } from '../lib/harness.js';

const realQemu = qemuPath();
const t = realQemu ? test : test.skip;
if (!realQemu) console.log('VM layer tests skipped: qemu-system-x86_64 is not installed');

/** A directory holding a qemu-system-x86_64 shell script with `body`; every call is logged to calls.log. */
function fakeQemu(body: string): { dir: string; calls: () => string[] } {
  const dir = tempDir('fakeqemu');
  const file = path.join(dir, 'qemu-system-x86_64');
  fs.writeFileSync(file, `#!/bin/sh\necho "$*" >> ${dir}/calls.log\n${body}\n`, { mode: 0o755 });
  return { dir, calls: () => (fs.existsSync(`${dir}/calls.log`) ? fs.readFileSync(`${dir}/calls.log`, 'utf8').trim().split('\n') : []) };
}

const withPath = (dir: string) => ({ ...process.env, PATH: `${dir}:${process.env.PATH}` });
const node = (args: string[], env: NodeJS.ProcessEnv) => execa(process.execPath, args, { env, reject: false, all: true, timeout: 600_000 });

/** Accelerator verdicts written while `fn` runs are this test's own: remove them after. */
async function ownVerdicts<T>(fn: () => Promise<T>): Promise<T> {
  const dir = path.join(cacheRoot(), 'accel');
  const before = new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  try {
    return await fn();
  } finally {
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (!before.has(f)) fs.rmSync(path.join(dir, f), { force: true });
  }
}

t('a /dev/kvm that boots to a panic but never runs a guest: npm run vm still runs the command under TCG', async () => {
  // What the old probe trusted: a boot to a panic-reboot exits 0. A real guest spins forever.
  const fake = fakeQemu(`case " $* " in
*" -accel kvm "*) case "$*" in *rdinit=/nonexistent*) exit 0 ;; esac; exec sleep 600 ;;
esac
exec ${realQemu} "$@"`);
  await ownVerdicts(async () => {
    const started = Date.now();
    const first = await node([path.join(packageRoot, 'dist', 'vm-images', 'vm.js'), 'sh', '-c', 'echo answered under tcg'], withPath(fake.dir));
    const secs = (Date.now() - started) / 1000;
    assert.is(first.exitCode, 0, first.all);
    assert.match(first.stdout, /^answered under tcg$/m);
    const kvm = fs.existsSync('/dev/kvm');
    const reason = kvm ? /^KVM: \/dev\/kvm present but a guest did not answer in 10 s; using TCG$/m : /^KVM: no usable \/dev\/kvm \(\w+\); using TCG$/m;
    assert.match(first.stderr, reason);
    assert.is(first.stderr.split('\n').filter((l) => l.startsWith('KVM:')).length, 1, 'said once');
    assert.ok(secs < 60, `the command ran within 60 s of start (took ${secs.toFixed(1)} s)`);
    if (kvm) assert.ok(fake.calls().some((c) => c.includes('-accel kvm') && c.includes('rdinit=/init')), 'the probe booted the real kernel and initramfs under KVM');

    // The verdict is kept: the next run boots no probe.
    const probes = fake.calls().filter((c) => c.includes('-accel kvm')).length;
    const second = await node([path.join(packageRoot, 'dist', 'vm-images', 'vm.js'), 'true'], withPath(fake.dir));
    assert.is(second.exitCode, 0, second.all);
    assert.match(second.stderr, reason);
    assert.is(fake.calls().filter((c) => c.includes('-accel kvm')).length, probes, 'no second probe');
  });
});

/** A suites directory: two host suites around the VM suite `kernel`. */
function suitesDir(): string {
  const dir = tempDir('suites');
  const uvu = path.join(packageRoot, 'node_modules', 'uvu', 'dist', 'index.mjs');
  for (const name of ['alpha', 'kernel', 'zeta']) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, `${name}.test.js`), `import { test } from '${uvu}';\ntest('${name} passes', () => {});\ntest.run();\n`);
  }
  return dir;
}

for (const [what, body, reason] of [
  ['hangs', 'echo >&7; exec sleep 600', /^✘ suite kernel \(once\) failed: the guest stopped answering \(no heartbeat for 3 s\) before the command reported an exit status \(logs in \S+\)$/m],
  ['dies', 'echo "qemu: the guest crashed" >&2; exit 1', /^✘ suite kernel \(once\) failed: QEMU failed \(exit 1\) before the command reported an exit status \(logs in \S+\)$/m],
] as const) {
  t(`a VM suite whose guest ${what}: the runner reports it, runs the other suites and ends with the closing line`, async () => {
    // Under KVM the stand-in fails at once (so no probe waits), under TCG it behaves as the guest would.
    const fake = fakeQemu(`case " $* " in *" -accel kvm "*) exit 1 ;; esac\n${body}`);
    await ownVerdicts(async () => {
      const r = await node([path.join(packageRoot, 'dist', 'test', 'run.js'), '--suites-dir', suitesDir(), '--vm-stall', '3'], withPath(fake.dir));
      assert.is(r.exitCode, 1, r.all);
      assert.match(r.stdout, reason, r.stdout);
      assert.match(r.stdout, /== zeta \(once\)\n/, 'the suite after it ran');
      // the VM suite fails in each test mode it runs in (once, and the iter sample)
      assert.match(r.stdout, /\nonce: 2 passed, 1 failed\n[^]*\n2 passed, 2 failed$/);
    });
  });
}

test('the runner counts a failed test as failed in a suite that also skips one (uvu\'s Total leaves the skipped out)', async () => {
  const dir = tempDir('suites');
  const uvu = path.join(packageRoot, 'node_modules', 'uvu', 'dist', 'index.mjs');
  fs.mkdirSync(path.join(dir, 'mixed'));
  fs.writeFileSync(path.join(dir, 'mixed', 'mixed.test.js'),
    `import { test } from '${uvu}';\ntest('passes', () => {});\ntest('fails', () => { throw new Error('no'); });\ntest.skip('skipped', () => {});\ntest.run();\n`);
  const r = await node([path.join(packageRoot, 'dist', 'test', 'run.js'), '--suites-dir', dir, '--mode', 'once'], process.env);
  assert.is(r.exitCode, 1, r.all);
  assert.match(r.stdout, /\n1 passed, 1 failed, 1 skipped$/, r.stdout);
});

test('dmesgTrouble: a kernel fault is trouble, a user program\'s fault is not', () => {
  const log = [
    '[   65.408126] traps: procstate[262] general protection fault ip:424552 sp:7fffa3624d70 error:0 in procstate[24552,401000+8c000]',
    '[   70.000001] Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP',
    '[   70.000002] WARNING: CPU: 0 PID: 1 at kernel/checkpoint.c:42 restart+0x10/0x20',
  ].join('\n');
  assert.equal(dmesgTrouble(log), log.split('\n').slice(1));
});

test.run();
