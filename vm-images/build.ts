/**
 * `npm run vm:build [-- --debug-kernel]`: make sure the cached guest kernel
 * (of that flavour), the initramfs and kmod/ (if present) are built; print where.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runMain } from './common.js';
import { ensureInitramfs } from './initramfs.js';
import { buildKmod, ensureKernel, type Manifest } from './kernel.js';

runMain(async () => {
  const started = Date.now();
  const say = (line: string): boolean => process.stdout.write(`${line}\n`);
  const kernel = await ensureKernel({ flavour: process.argv.includes('--debug-kernel') ? 'debug' : 'normal' });
  const manifest = JSON.parse(readFileSync(join(dirname(kernel.bzImage), 'manifest.json'), 'utf8')) as Manifest;
  say(`kernel     ${kernel.bzImage} (${kernel.flavour})`);
  say(`  inputs   ${kernel.hash}`);
  say(`  sha256   ${manifest.bzImageSha256} (${manifest.bzImageBytes} bytes, built in ${manifest.buildSeconds} s)`);
  say(`build tree ${kernel.buildDir}`);
  say(`initramfs  ${await ensureInitramfs()}`);
  for (const ko of await buildKmod(kernel)) say(`module     ${ko}`);
  say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
});
