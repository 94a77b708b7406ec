/**
 * `node dist/vm-images/repro-check.js [--once] [--keep]`: build the kernel
 * from scratch in fresh temp directories (the cache is neither used nor
 * changed) and compare the bzImage hashes. By default it builds twice;
 * `--once` builds once and compares with the cached build of the same
 * inputs (itself a from-scratch build in another directory) — half the time
 * on a busy machine. Exit 0 when the hashes are equal.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMain, VmError } from './common.js';
import { buildKernelInto, kernelCacheDir, readKernelInputs, type Manifest } from './kernel.js';
import { createProgress } from './progress.js';

runMain(async () => {
  const keep = process.argv.includes('--keep');
  const once = process.argv.includes('--once');
  const inputs = readKernelInputs();
  const progress = createProgress();
  const results: { what: string; sha256: string }[] = [];

  if (once) {
    const file = join(kernelCacheDir(), inputs.hash, 'manifest.json');
    let cached: Manifest;
    try {
      cached = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    } catch {
      throw new VmError(`--once compares with the cached build, but there is none (${file}): run npm run vm:build first`);
    }
    results.push({ what: 'cached', sha256: cached.bzImageSha256 });
  }
  for (const n of once ? [1] : [1, 2]) {
    // A fresh parent directory each time: the image must not depend on the build path.
    const dir = await mkdtemp(join(tmpdir(), `cr-lab-repro${n}-`));
    try {
      progress.log(`from-scratch build ${n} in ${dir}`);
      const manifest = await buildKernelInto(join(dir, 'out'), inputs, progress);
      results.push({ what: `build ${n}`, sha256: manifest.bzImageSha256 });
      progress.log(`build ${n}: bzImage sha256 ${manifest.bzImageSha256} (${manifest.buildSeconds} s)`);
    } finally {
      if (!keep) await rm(dir, { recursive: true, force: true });
    }
  }
  const same = results[0]!.sha256 === results[1]!.sha256;
  const lines = [`inputs  ${inputs.hash}`, ...results.map((r) => `${r.what.padEnd(7)} ${r.sha256}`)];
  process.stdout.write(`${lines.join('\n')}\n${same ? 'reproducible' : 'NOT reproducible'}\n`);
  return same ? 0 : 1;
});
