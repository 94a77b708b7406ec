#!/usr/bin/env node
// Bundle the `cr` command into dist/cr/ after tsc: one entry file and a chunk
// per backend (each backend is imported only when used), so a command reads
// a handful of files instead of a module graph of hundreds. It matters in the
// VM, where every file comes over 9p under emulation. koffi stays outside
// (a native addon); CommonJS dependencies get a real require.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const outdir = path.join(root, 'dist', 'cr');
// Chunk names change with their content: start empty so none is left over.
fs.rmSync(outdir, { recursive: true, force: true });

await build({
  entryPoints: [path.join(root, 'dist', 'userspace', 'cli', 'cr.js')],
  // Two levels below the package root, as dist/userspace/cli/ is: paths.ts finds the root the same way.
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi'],
  banner: { js: "import { createRequire as __crRequire } from 'node:module'; const require = __crRequire(import.meta.url);" },
  logLevel: 'warning',
});
