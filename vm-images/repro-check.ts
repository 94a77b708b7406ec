/**
 * `node dist/vm-images/repro-check.js [--keep]`: build the kernel twice from
 * scratch in two fresh temp directories (the cache is neither used nor
 * touched) and compare the bzImage hashes. Exit 0 when they are equal.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMain } from './common.js';
import { buildKernelInto, readKernelInputs } from './kernel.js';
import { createProgress } from './progress.js';

runMain(async () => {
  const keep = process.argv.includes('--keep');
  const inputs = readKernelInputs();
  const progress = createProgress();
  const hashes: string[] = [];
  for (const n of [1, 2]) {
    // Different parent directories on purpose: the image must not depend on the build path.
    const dir = await mkdtemp(join(tmpdir(), `cr-lab-repro${n}-`));
    try {
      progress.log(`build ${n} of 2 in ${dir}`);
      const manifest = await buildKernelInto(join(dir, 'out'), inputs, progress);
      hashes.push(manifest.bzImageSha256);
      progress.log(`build ${n}: bzImage sha256 ${manifest.bzImageSha256} (${manifest.buildSeconds} s)`);
    } finally {
      if (!keep) await rm(dir, { recursive: true, force: true });
    }
  }
  const same = hashes[0] === hashes[1];
  process.stdout.write(`inputs  ${inputs.hash}\nbuild 1 ${hashes[0]}\nbuild 2 ${hashes[1]}\n${same ? 'reproducible' : 'NOT reproducible'}\n`);
  return same ? 0 : 1;
});
