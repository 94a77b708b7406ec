/**
 * The `cr` command's start-up as compare/ measures it: the command's
 * CR_TIMINGS line placed against rusage's clock splits its wall time into
 * exec→call, the call and return→exit; and a command loads only the files
 * it needs (no backend for --version, one backend for check and show,
 * execa only to spawn, no protobuf code in the kernel backend's file), from
 * code caches the build trained. No timings are asserted, only how they
 * fit together.
 */
import fs from 'node:fs';
import { Module } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { execa, execaSync } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandOverhead } from '../../compare/harness.js';
import { crCommand, packageRoot } from '../../userspace/paths.js';

const rusage = path.join(packageRoot, 'compare', 'workloads', 'bin', 'rusage');
let scratch = '';

test.before(() => {
  execaSync('make', ['-s', '-C', path.join(packageRoot, 'compare', 'workloads')]);
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-startup-test-'));
});
test.after(() => fs.rmSync(scratch, { recursive: true, force: true }));

test('overhead: exec to the first call and the last return to exit, on one clock', () => {
  const ru = 'wall_us=900000 maxrss_kb=1 utime_us=1 stime_us=1 status=exit:0 start_us=1000000 end_us=1900000';
  assert.equal(commandOverhead(ru, 'call_start_us=1500000 call_end_us=1800000 native_load_us=40000\n'), { startMs: 500, nativeMs: 40, exitMs: 100 });
  assert.equal(commandOverhead(ru, 'call_start_us=1500000 call_end_us=1800000\n'), { startMs: 500, nativeMs: 0, exitMs: 100 }, 'a line from before koffi was timed');
  assert.is(commandOverhead(ru, ''), undefined, 'no CR_TIMINGS line: no overhead');
  assert.is(commandOverhead('wall_us=1 maxrss_kb=1 status=exit:0', 'call_start_us=1 call_end_us=2'), undefined, 'an old rusage without its clock');
  assert.is(commandOverhead(ru, 'call_start_us=900000 call_end_us=1800000'), undefined, 'a call before the exec is another clock');
});

/** Run `cr ARGS` under rusage with CR_TIMINGS and a preload that lists every file the command required. */
async function traced(args: string[]): Promise<{ ru: string; timings: string; loaded: string[]; stdout: string; stderr: string; exitCode?: number }> {
  const id = args.join('_').replace(/\W+/g, '_');
  const [ru, timings, list, hook] = ['rusage', 'timings', 'loaded', 'hook.cjs'].map((f) => path.join(scratch, `${id}.${f}`));
  // The files required, and Node's own modules loaded (process.moduleLoadList: "NativeModule child_process"…).
  fs.writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, [...Object.keys(require.cache), ...process.moduleLoadList].join('\\n')));\n`);
  const r = await execa(rusage, [ru, process.execPath, '--require', hook, crCommand, ...args], { env: { CR_TIMINGS: timings }, reject: false });
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  return { ru: read(ru), timings: read(timings), loaded: read(list).split('\n').filter((f) => f !== hook), stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
}

const crFiles = (loaded: string[]) => loaded.filter((f) => f.startsWith(path.dirname(crCommand))).map((f) => path.basename(f)).sort();

test('cr --version: no backend loaded, no backend call timed', async () => {
  const t = await traced(['--version']);
  assert.is(t.exitCode, 0);
  assert.match(t.stdout, /^\d+\.\d+\.\d+$/);
  assert.equal(crFiles(t.loaded), ['cli.js', 'cr.js', 'shared.js']);
  assert.ok(!t.loaded.some((f) => f.includes('koffi')), t.loaded.join('\n'));
  assert.ok(!t.loaded.includes('NativeModule child_process'), 'nothing to spawn: no child_process');
  assert.ok(!t.loaded.includes('NativeModule net'), 'the version goes to the pipe without a stream');
  assert.is(t.timings, '', 'nothing to time');
});

test('the bundles run from the code caches the build wrote', async () => {
  const r = await execa(process.execPath, [crCommand, 'check', '--backend=kernel'], { env: { CR_DEBUG: '1' }, reject: false });
  assert.match(r.stdout, /^kernel backend/m);
  assert.not.match(r.stderr, /rejected the code cache/);
  for (const f of ['cli.js', 'kernel.js', 'shared.js']) assert.ok(fs.existsSync(path.join(path.dirname(crCommand), `${f}.cache`)), f);
});

test("the build trained cr dump's and cr restore's code caches of the user backend (scripts/train-code-cache.mjs)", () => {
  const file = path.join(path.dirname(crCommand), 'user.js');
  const source = Module.wrap(fs.readFileSync(file, 'utf8'));
  // What a cache of the bundle's top level holds, compiled but not run: what the other commands use.
  const topLevel = new vm.Script(source, { filename: file }).createCachedData();
  assert.ok(fs.statSync(`${file}.cache`).size < 2 * topLevel.length, 'FILE.cache: the top level');
  for (const command of ['dump', 'restore']) {
    const trained = fs.readFileSync(`${file}.${command}.cache`);
    assert.not.ok(new vm.Script(source, { filename: file, cachedData: trained }).cachedDataRejected, `${command}: made by this Node for this file`);
    assert.ok(trained.length > 2 * topLevel.length, `${command}: ${trained.length} bytes against ${topLevel.length}`);
  }
});

test('cr check: the user backend alone, its call inside the command\'s wall time', async () => {
  const t = await traced(['check']);
  assert.match(t.stdout, /^user backend/m);
  assert.equal(crFiles(t.loaded), ['cli.js', 'cr.js', 'execa.js', 'shared.js', 'user.js'], 'execa for nft --version');
  assert.ok(!t.loaded.some((f) => f.includes('koffi')), 'no native call: no koffi');
  assert.match(t.timings, / native_load_us=0$/m);
  const o = commandOverhead(t.ru, t.timings);
  assert.ok(o, `${t.ru} / ${t.timings}`);
  const wallMs = Number(t.ru.match(/wall_us=(\d+)/)![1]) / 1000;
  assert.ok(o!.startMs > 0 && o!.exitMs >= 0 && o!.startMs + o!.exitMs <= wallMs, JSON.stringify({ o, wallMs }));
});

test('cr show --backend=kernel loads the kernel backend alone (not execa: it spawns nothing), and its file has no protobuf code', async () => {
  const t = await traced(['show', scratch, '--backend=kernel']);
  assert.match(t.stderr, /holds no kernel-backend image/);
  assert.equal(crFiles(t.loaded), ['cli.js', 'cr.js', 'kernel.js', 'shared.js']);
  assert.ok(!t.loaded.some((f) => f.includes('koffi')), 'reading an image needs no koffi');
  assert.ok(!t.loaded.includes('NativeModule net'), 'the error goes to the pipe without a stream');
  const kernel = fs.readFileSync(path.join(path.dirname(crCommand), 'kernel.js'), 'utf8');
  assert.not.match(kernel, /node_modules\/protobufjs/);
  assert.not.match(kernel, /dist\/backends\/user\//);
});

test('cr check --backend=kernel: koffi for its syscall probes, its native module required directly, its load timed', async () => {
  const t = await traced(['check', '--backend=kernel']);
  assert.match(t.stdout, /^kernel backend/m);
  assert.ok(t.loaded.some((f) => f.endsWith('koffi.node')), t.loaded.join('\n'));
  assert.ok(!t.loaded.some((f) => /koffi\/.*\.c?js$/.test(f)), "koffi's loader is skipped");
  assert.ok(!t.loaded.includes('NativeModule module'), 'koffi required with the bundle\'s own require, not through node:module');
  const o = commandOverhead(t.ru, t.timings);
  assert.ok(o && o.nativeMs! > 0, `${t.ru} / ${t.timings}`);
});

test.run();
