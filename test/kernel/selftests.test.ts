/**
 * The kernel selftests of kernel-patches/ (tools/testing/selftests/checkpoint:
 * reserved flags, the calls without an engine, bad descriptors, permission,
 * the image framing, one task checkpointed and restarted), built from the
 * tree of the kernel this VM booted and run twice: before the engine is
 * loaded and after.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { ensureEngine, probe } from '../../backends/kernel/sys.js';
import { tempDir } from '../lib/harness.js';
import { skipReason } from './env.js';

const tree = process.env.CR_LAB_KERNEL_BUILD;
const t = skipReason || !tree ? test.skip : test;

/** Build the selftest in a scratch directory (the tree is read-only here) with the uapi header it tests. */
async function build(): Promise<string> {
  const out = tempDir('kselftest');
  const include = path.join(out, 'include');
  fs.mkdirSync(path.join(include, 'linux'), { recursive: true });
  fs.copyFileSync(path.join(tree!, 'include', 'uapi', 'linux', 'checkpoint.h'), path.join(include, 'linux', 'checkpoint.h'));
  const r = await execa('make', ['-s', '-C', path.join(tree!, 'tools', 'testing', 'selftests', 'checkpoint'), `OUTPUT=${out}`, `KHDR_INCLUDES=-isystem ${include}`], { reject: false, all: true });
  assert.is(r.exitCode, 0, r.all);
  return path.join(out, 'checkpoint_test');
}

/** Run it; the TAP totals line. */
async function run(bin: string): Promise<{ pass: number; fail: number; skip: number; out: string }> {
  const r = await execa(bin, { reject: false, all: true });
  const m = /# Totals: pass:(\d+) fail:(\d+) xfail:\d+ xpass:\d+ skip:(\d+) error:(\d+)/.exec(r.all ?? '');
  assert.ok(m, r.all);
  return { pass: Number(m[1]), fail: Number(m[2]) + Number(m[4]), skip: Number(m[3]), out: r.all ?? '' };
}

t('selftests/checkpoint pass without the engine and with it', async () => {
  const bin = await build();
  if (probe().engine) await execa('rmmod', ['crengine']);
  const without = await run(bin);
  assert.is(without.fail, 0, without.out);
  assert.match(without.out, /ok \d+ global.without_engine\n/);
  assert.ok(without.skip >= 5, 'the tests that need an engine skip without one');

  assert.is(ensureEngine(), undefined);
  const withEngine = await run(bin);
  assert.is(withEngine.fail, 0, withEngine.out);
  assert.match(withEngine.out, /ok \d+ global.without_engine # SKIP/);
  for (const name of ['bad_fds', 'no_such_task', 'permission', 'image_framing', 'checkpoint_restart']) {
    assert.match(withEngine.out, new RegExp(`ok \\d+ global.${name}\\n`), name);
  }
});

test.run();
