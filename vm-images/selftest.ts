/**
 * `node dist/vm-images/selftest.js`: end-to-end checks of the VM runner
 * (builds the kernel first if needed). Prints one `ok`/`not ok` line per
 * check and exits 1 if any failed.
 */
import { runMain } from './common.js';
import { buildKmod, ensureKernel } from './kernel.js';
import { dmesgTrouble, runInVm, type RunOptions, type RunResult } from './runner.js';

interface Check {
  name: string;
  run: Omit<RunOptions, 'kernel'>;
  expect: (r: RunResult) => string | undefined;
}

const checks: Check[] = [
  {
    name: 'node runs and its stdout comes back',
    run: { argv: ['node', '-e', 'console.log(1+1)'] },
    expect: (r) => (r.exitCode === 0 && r.stdout === '2\n' ? undefined : `exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`),
  },
  {
    name: 'the exit status is passed on',
    run: { argv: ['sh', '-c', 'exit 7'] },
    expect: (r) => (r.exitCode === 7 ? undefined : `exit ${r.exitCode}`),
  },
  {
    name: 'stdout and stderr stay apart',
    run: { argv: ['sh', '-c', 'echo out; echo err >&2'] },
    expect: (r) => (r.stdout === 'out\n' && r.stderr === 'err\n' ? undefined : `stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`),
  },
  {
    name: 'cwd, environment and writable /tmp',
    run: { argv: ['sh', '-c', 'echo "$PWD $FOO $HOME" && touch /tmp/x && test ! -w /etc'], cwd: '/usr', env: { FOO: 'bar' } },
    expect: (r) => (r.exitCode === 0 && r.stdout === '/usr bar /tmp\n' ? undefined : `exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`),
  },
  {
    name: 'criu check passes',
    run: { argv: ['criu', 'check'] },
    expect: (r) => (r.exitCode === 0 && /Looks good/.test(r.stdout + r.stderr) ? undefined : `exit ${r.exitCode}: ${(r.stdout + r.stderr).trim()}`),
  },
  {
    name: 'a hanging command is killed by the timeout',
    run: { argv: ['sleep', '1000'], timeoutSec: 20 },
    expect: (r) => (r.timedOut && r.exitCode === 124 ? undefined : `exit ${r.exitCode}, timedOut ${r.timedOut}`),
  },
];

runMain(async () => {
  const kernel = await ensureKernel();
  let failed = 0;
  // kmod/ belongs to the kernel backend; report it, but go on with the runner checks.
  try {
    const modules = await buildKmod(kernel);
    process.stdout.write(`ok 1 - kmod/ builds against the kernel (${modules.length > 0 ? modules.join(' ') : 'no kmod/'})\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`not ok 1 - kmod/ builds against the kernel\n  # ${String(err instanceof Error ? err.message : err).replace(/\n/g, '\n  # ')}\n`);
  }
  for (const [i, check] of checks.entries()) {
    const started = Date.now();
    let problem: string | undefined;
    try {
      const r = await runInVm({ ...check.run, kernel });
      const trouble = dmesgTrouble(r.dmesg);
      problem = check.expect(r) ?? (trouble.length > 0 ? `dmesg reports trouble:\n${trouble.join('\n')}` : undefined);
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(`${problem ? 'not ok' : 'ok'} ${i + 2} - ${check.name} (${secs} s)${problem ? `\n  # ${problem.replace(/\n/g, '\n  # ')}` : ''}\n`);
    if (problem) failed++;
  }
  process.stdout.write(`1..${checks.length + 1}\n`);
  return failed === 0 ? 0 : 1;
});
