#!/usr/bin/env node
/**
 * The `cr` command's entry point (dist/cr/cr.js, bundled as CommonJS):
 * runs the driver's bundle (cli.js) and the backends' with V8's code cache
 * that `npm run build` wrote next to each (FILE.cache). Compiling the
 * bundles costs about as much as the rest of the CLI's start-up under
 * emulation, and Node 20 has no compile cache of its own. A cache V8
 * rejects (another Node, other V8 flags, a rebuilt bundle) costs only the
 * read: the source is compiled as usual (CR_DEBUG=1 says so on stderr).
 *
 * A command the build trained (scripts/train-code-cache.mjs: `cr dump`,
 * `cr restore`) has caches of its own, FILE.COMMAND.cache, which also hold
 * every function that command ran; every other command uses FILE.cache,
 * the bundle's top level only, so that no command deserialises what only
 * the others run.
 *
 * CR_WRITE_CODE_CACHE=1 (the build) loads every bundle in its folder and
 * writes each one's FILE.cache at exit; CR_WRITE_CODE_CACHE=command (the
 * training) writes FILE.COMMAND.cache of each bundle the command loaded.
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

// The loader's class as every CommonJS module sees it: requiring node:module
// would compile that public module first (several ms in the VM).
const Module = module.constructor as typeof import('node:module');

type Loader = (module: NodeJS.Module, filename: string) => void;
const extensions = (Module as unknown as { _extensions: Record<string, Loader> })._extensions;
const wrap = (Module as unknown as { wrap(source: string): string }).wrap;

const load = Module.createRequire(__filename);
const writeMode = ['1', 'command'].find((m) => m === process.env.CR_WRITE_CODE_CACHE);
const command = /^[a-z][a-z-]*$/.test(process.argv[2] ?? '') ? process.argv[2] : undefined;
const compiled = new Map<string, vm.Script>();
const plainJs = extensions['.js'];

/** The first of these caches that exists. */
function readCache(files: string[]): Buffer | undefined {
  for (const f of files) {
    try {
      return fs.readFileSync(f);
    } catch {
      /* not built with this one */
    }
  }
  return undefined;
}

/** dist/cr's own bundles compile with their cache; anything else as Node would. */
extensions['.js'] = (module, filename) => {
  if (path.dirname(filename) !== __dirname) return plainJs(module, filename);
  const cachedData = readCache([...(command ? [`${filename}.${command}.cache`] : []), `${filename}.cache`]);
  const script = new vm.Script(wrap(fs.readFileSync(filename, 'utf8')), { filename, cachedData });
  if (script.cachedDataRejected && process.env.CR_DEBUG) process.stderr.write(`cr: V8 rejected the code cache of ${filename}\n`);
  if (writeMode) compiled.set(filename, script);
  script.runInThisContext()(module.exports, Module.createRequire(filename), module, filename, __dirname);
};

if (writeMode) {
  const suffix = writeMode === 'command' && command ? `.${command}.cache` : '.cache';
  process.on('exit', () => {
    for (const [file, script] of compiled) fs.writeFileSync(`${file}${suffix}`, script.createCachedData());
  });
}
if (writeMode === '1') {
  for (const f of fs.readdirSync(__dirname)) {
    if (!f.endsWith('.js') || f === 'cr.js' || f === 'cli.js') continue;
    try {
      load(`./${f}`);
    } catch (err) {
      // e.g. koffi has no build for this machine: that bundle runs without a cache
      process.stderr.write(`cr: no code cache for ${f}: ${(err as Error).message.split('\n')[0]}\n`);
    }
  }
}
load('./cli.js');
