/**
 * The user-backend fuzzer's worker: runs inside the sandbox run.ts builds
 * (its own pid, mount, UTS, IPC and network namespaces, the file system
 * read-only but for the fuzzer's directory, a /dev of a few harmless
 * devices) and restores mutated images there, one case after another:
 *
 *   node worker.js CONFIG FIRST COUNT [check]
 *
 * With `check`, it first restores every seed as it is (`@fuzz
 * {"seed":NAME,...}`: each must be restored). For each case it prints
 * `@fuzz {"start":N,"what":...}` before the restore and
 * `@fuzz {"case":N,...}` with the outcome: refused (a one-line CrError,
 * nothing left running), restored (every task of the image there, where
 * the image put it; then killed), or misbehaved (with why). Every
 * `cliEvery`-th case goes through the `cr restore` command instead, whose
 * stderr must then be one `cr: ...` line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { backends, CrError } from '../../../backends/index.js';
import { readInventory } from '../../../backends/user/inventory.js';
import { crCommand } from '../../../userspace/paths.js';
import { running } from '../../../userspace/sys/libc.js';
import { copyImage, mutate, rng } from './mutate.js';
import type { Outcome, WorkerConfig } from './run.js';

const [configFile, firstArg, countArg, check] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as WorkerConfig;
const say = (o: object) => process.stdout.write(`@fuzz ${JSON.stringify(o)}\n`);

/** Every process of the sandbox but its init and us (zombies too: they hold pids): after a case, none may be left. */
function others(): number[] {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((p) => p !== 1 && p !== process.pid);
}

function describeProc(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid} (${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}, ${state}, parent ${ppid})`;
  } catch {
    return String(pid);
  }
}

/** Wait up to `ms` for every other process to be gone, reaped too. */
async function allGone(ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; others().length && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
}

async function killAll(): Promise<void> {
  for (const p of others()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await allGone(5000);
}

/**
 * The tree as restored: each task of the (mutated) image where the image
 * puts it. A task already gone was let go and ended (its saved state made
 * it crash, say): restored as the image said, it is noted, not a fault.
 */
function treeCheck(dir: string, root: number): Outcome {
  const inv = readInventory(dir).tasks;
  if (root !== inv[0].pid) return { kind: 'misbehaved', why: `restored, but the root came back as ${root}, not ${inv[0].pid}` };
  const ended: number[] = [];
  for (const [i, t] of inv.entries()) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${t.pid}/stat`, 'utf8');
    } catch {
      ended.push(t.pid);
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    // A parent that ended since it was looked at has given its children to init meanwhile.
    if (i && ppid !== t.ppid && !ended.includes(t.ppid) && running(t.ppid)) return { kind: 'misbehaved', why: `restored, but pid ${t.pid} has parent ${ppid}, not ${t.ppid}` };
  }
  return { kind: 'restored', ...(ended.length ? { why: `pids ${ended.join(' ')} ended at once` } : {}) };
}

async function viaLibrary(dir: string): Promise<Outcome> {
  let r;
  try {
    r = await backends.user.restore({ dir });
  } catch (err) {
    if (!(err instanceof CrError)) return { kind: 'misbehaved', why: `internal error: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')}` };
    if (err.message.includes('\n')) return { kind: 'misbehaved', why: `an error of several lines: ${JSON.stringify(err.message)}` };
    return { kind: 'refused', why: err.message };
  }
  const outcome = treeCheck(dir, r.pids[0]);
  await killAll();
  await r.wait().catch(() => undefined);
  return outcome;
}

async function viaCommand(dir: string): Promise<Outcome> {
  const r = await execa(process.execPath, [crCommand, 'restore', '--detach', '-D', dir], { reject: false, timeout: config.caseTimeoutMs });
  const lines = String(r.stderr).trim().split('\n').filter(Boolean);
  if (r.timedOut) return { kind: 'misbehaved', why: 'cr restore did not finish' };
  if (r.exitCode === 0) {
    const outcome = treeCheck(dir, Number(String(r.stdout).trim()));
    await killAll();
    return outcome;
  }
  if (r.signal || r.exitCode !== 1) return { kind: 'misbehaved', why: `cr restore ended with ${r.signal ?? `exit ${r.exitCode}`}: ${lines.at(-1)}` };
  if (lines.length !== 1 || !lines[0].startsWith('cr: ')) return { kind: 'misbehaved', why: `not one line of error: ${JSON.stringify(String(r.stderr).slice(0, 300))}` };
  if (lines[0].startsWith('cr: internal error')) return { kind: 'misbehaved', why: lines[0] };
  return { kind: 'refused', why: lines[0].slice(4) };
}

/** Restore `dir` one way or the other; then nothing of it may be left running. */
async function restoreCase(dir: string, cli: boolean): Promise<Outcome> {
  const outcome = await (cli ? viaCommand(dir) : viaLibrary(dir));
  // Nothing of a refused restore may be left; nothing of a restored one once it is killed.
  await allGone(5000);
  const left = others();
  if (!left.length) return outcome;
  await killAll();
  return outcome.kind === 'misbehaved' ? outcome : { kind: 'misbehaved', why: `left behind: ${left.map(describeProc).join(', ')} (${outcome.kind}${outcome.why ? `: ${outcome.why}` : ''})` };
}

async function main(): Promise<void> {
  const dir = path.join(config.root, 'case');
  const fresh = (images: string) => {
    fs.rmSync(dir, { recursive: true, force: true });
    copyImage(images, dir);
  };
  if (check) {
    for (const seed of config.seeds) {
      fresh(seed.images);
      say({ seed: seed.name, ...(await restoreCase(dir, false)) });
    }
  }
  const first = Number(firstArg);
  for (let n = first; n < first + Number(countArg); n++) {
    const seed = config.seeds[n % config.seeds.length];
    fresh(seed.images);
    const what = `${seed.name}: ${mutate(rng(config.seed * 1000003 + n), dir)}`;
    const cli = config.cliEvery > 0 && n % config.cliEvery === 0;
    say({ start: n, what });
    say({ case: n, what, via: cli ? 'cr' : 'library', ...(await restoreCase(dir, cli)) });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`fuzz worker: ${err.stack}\n`);
    process.exit(2);
  },
);
