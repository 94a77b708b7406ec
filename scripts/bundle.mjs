#!/usr/bin/env node
// Bundle the `cr` command into dist/cr/ after tsc, as CommonJS: the driver
// (cli.js: the CLI and the backends' identity modules) and one file
// per backend, required only when a command uses that backend; cr.js (the
// bin, userspace/cli/launch.ts) runs them from the V8 code cache written
// here for each. A command
// reads a handful of files instead of a module graph of hundreds, which
// matters in the VM, where every file comes over 9p under emulation, and
// CommonJS skips Node's ES module loader, whose start-up costs about as
// much there as the whole CLI (see README.md, "Start-up").
//
// Modules whose identity matters across files are bundled once, into
// shared.js, which the others require: CrError (the driver tests for it
// with instanceof) and the koffi bindings (koffi's type names are global to
// the process: a second copy of libc.js fails to declare its structs). One
// file rather than one each: every file a command requires costs a few
// reads over 9p in the VM, about 15 ms there even for a small one.
// koffi stays outside (a native addon).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outdir = path.join(dist, 'cr');

/** Output file (in dist/cr/) for each module of dist/ that is bundled on its own (several into one: a file that exports all of theirs). */
const files = {
  'userspace/cli/launch.js': 'cr.js',
  'userspace/cli/cr.js': 'cli.js',
  'backends/user/index.js': 'user.js',
  'backends/kernel/index.js': 'kernel.js',
  'backends/criu/index.js': 'criu.js',
  'userspace/errors.js': 'shared.js',
  'userspace/sys/libc.js': 'shared.js',
  'userspace/net/socket.js': 'shared.js',
};
const fileOf = new Map(Object.entries(files).map(([src, out]) => [path.join(dist, src), out]));

/**
 * Imports that become a proxy requiring the real module on the first call
 * of one of its functions (the ones named here are all the importers use):
 * execa, bundled into a file of its own (`file`): it pulls in a dozen of
 * Node's own modules, and most commands (a kernel dump, show, check) spawn
 * nothing or only late.
 */
const lazyImports = {
  execa: { file: 'execa.js', functions: ['execa', 'execaSync'] },
};

const lazyProxy = (name) => {
  const { file, functions } = lazyImports[name];
  return [
    'let loaded;',
    `const load = () => (loaded ??= require(${JSON.stringify(`./${file}`)}));`,
    ...functions.map((fn) => `export const ${fn} = (...args) => load().${fn}(...args);`),
  ].join('\n');
};

/** Every import of another bundle's module becomes a require() of its file; a lazy import's, its proxy; node:module, the bundle's require. */
const separate = (self) => ({
  name: 'cr-separate',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.namespace === 'cr-lazy') return { path: args.path, external: true };
      const out = fileOf.get(path.resolve(args.resolveDir, args.path));
      return out && out !== self ? { path: `./${out}`, external: true } : undefined;
    });
    b.onResolve({ filter: new RegExp(`^(${Object.keys(lazyImports).join('|')})$`) }, (args) => {
      if (args.namespace === 'cr-lazy') return { path: args.path, external: true };
      if (lazyImports[args.path].file === self) return undefined;
      return { path: args.path, namespace: 'cr-lazy' };
    });
    b.onLoad({ filter: /.*/, namespace: 'cr-lazy' }, (args) => ({ contents: lazyProxy(args.path), loader: 'js' }));
    // In a CommonJS bundle createRequire(__filename) is the bundle's own
    // require: cr-lab's code gets that instead of compiling node:module
    // (several ms of a command in the VM).
    b.onResolve({ filter: /^node:module$/ }, (args) => (args.importer.startsWith(dist + path.sep) ? { path: args.path, namespace: 'cr-module' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'cr-module' }, () => ({ contents: 'export const createRequire = () => require;', loader: 'js' }));
  },
});

/**
 * The koffi native module koffi loads on this machine, relative to dist/cr/,
 * and koffi's version: userspace/sys/libc.ts requires it directly (see there).
 */
const koffiRequire = createRequire(path.join(root, 'package.json'));
const koffi = koffiRequire('koffi');
const koffiNative = Object.keys(koffiRequire.cache).find((f) => f.endsWith('.node') && koffiRequire.cache[f].exports.version === koffi.version);

fs.rmSync(outdir, { recursive: true, force: true });
fs.mkdirSync(outdir, { recursive: true });
// .js files under dist/cr/ are CommonJS, whatever the package's "type" says.
fs.writeFileSync(path.join(outdir, 'package.json'), '{ "type": "commonjs" }\n');

/** [esbuild's entry options, output file] of each bundle. */
const entries = [
  ...[...new Set(Object.values(files))].map((out) => [out, Object.keys(files).filter((src) => files[src] === out)]).map(([out, srcs]) => [
    srcs.length === 1
      ? { entryPoints: [path.join(dist, srcs[0])] }
      : { stdin: { contents: srcs.map((src) => `export * from './${src}';`).join('\n'), resolveDir: dist, sourcefile: out } },
    out,
  ]),
  ...Object.entries(lazyImports).map(([pkg, l]) => [{ entryPoints: [fileURLToPath(import.meta.resolve(pkg))] }, l.file]),
];
await Promise.all(entries.map(([entry, out]) => build({
  ...entry,
  outfile: path.join(outdir, out),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['koffi'],
  // import() of another bundle becomes require(): no ES module loader at run time.
  supported: { 'dynamic-import': false },
  // paths.ts finds the package root from its own folder: dist/cr/ is two levels below it, as dist/userspace/ is.
  define: {
    'import.meta.dirname': '__dirname',
    'import.meta.filename': '__filename',
    ...(koffiNative && { __crKoffiNative: JSON.stringify(`./${path.relative(outdir, koffiNative)}`), __crKoffiVersion: JSON.stringify(koffi.version) }),
  },
  plugins: [separate(out)],
  logLevel: 'warning',
})));
/**
 * A default import of one of Node's modules (`import fs from 'node:fs'`,
 * cr-lab's style) gets the module's exports as `default` and every other
 * name through the prototype, instead of esbuild's __toESM(), which copies
 * each export behind a getter of its own: fs's hundred, for every module
 * that imports it, about 30 ms of a user-backend command on the host and
 * several times that under TCG.
 */
const builtinInterop = 'var __crBuiltin = (mod) => Object.create(mod, { default: { value: mod, enumerable: true } });\n';
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
for (const out of new Set(entries.map(([, o]) => o))) {
  const file = path.join(outdir, out);
  let code = fs.readFileSync(file, 'utf8')
    .replace(/__toESM\(require\("([\w:/]+)"\)(?:, 1)?\)/g, (call, name) => (builtins.has(name) ? `__crBuiltin(require("${name}"))` : call));
  if (code.includes('__crBuiltin(')) code = code.replace(/^(#!.*\n)?("use strict";\n)?/, (head) => `${head}${builtinInterop}`);
  // cli.js runs inside the launcher's function wrapper, where a #! line is a syntax error.
  if (out === 'cli.js') code = code.replace(/^#!.*\n/, '');
  fs.writeFileSync(file, code);
}
fs.chmodSync(path.join(outdir, 'cr.js'), 0o755);
// Each bundle's code cache, as compiled by loading it (see launch.ts).
execFileSync(process.execPath, [path.join(outdir, 'cr.js'), '--version'], { env: { ...process.env, CR_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'ignore', 'inherit'] });
