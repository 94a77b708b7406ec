/** `npm run vm:build`: make sure the cached guest kernel (and kmod/, if present) is built; print where. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runMain } from './common.js';
import { ensureInitramfs } from './initramfs.js';
import { buildKmod, ensureKernel, type Manifest } from './kernel.js';

runMain(async () => {
  const started = Date.now();
  const kernel = await ensureKernel();
  const manifest = JSON.parse(readFileSync(join(dirname(kernel.bzImage), 'manifest.json'), 'utf8')) as Manifest;
  const initramfs = await ensureInitramfs();
  const modules = await buildKmod(kernel);
  const lines = [
    `kernel     ${kernel.bzImage}`,
    `  inputs   ${kernel.hash}`,
    `  sha256   ${manifest.bzImageSha256} (${manifest.bzImageBytes} bytes, built in ${manifest.buildSeconds} s)`,
    `build tree ${kernel.buildDir}`,
    `initramfs  ${initramfs}`,
    ...modules.map((ko) => `module     ${ko}`),
    `done in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
});
