#!/usr/bin/env node
// Set-up for `npm test` and `npm run compare` on a fresh Debian 12 machine:
// the Debian packages the project builds and runs with, then `npm ci`.
// The kernel source is installed at the version vm-images/kernel.json pins,
// not the newest: Debian's security archive moves on (6.12.117 → 118 within
// weeks) and keeps the older versions, and the VM kernel's patches and cache
// key are made for the pinned one.
// Plain JavaScript with no dependencies: it runs before node_modules exists.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// What each package is for: build-essential and libc6-dev build the static
// helpers and test programs; util-linux gives setpriv and mount for the
// tests; nftables gives nft, the user backend's network lock for TCP
// connections dumped with --tcp-established; the rest build and boot the VM
// kernel (vm-images/) and run CRIU in it (ccache lets kernels of different
// patch series share their objects).
const kernelPins = JSON.parse(fs.readFileSync(path.join(root, 'vm-images', 'kernel.json'), 'utf8'));
const PACKAGES = [
  'build-essential', 'libc6-dev', 'util-linux', 'xz-utils',
  `${kernelPins.package}=${kernelPins.version}`, 'bc', 'flex', 'bison', 'libelf-dev', 'patch', 'kmod',
  'qemu-system-x86', 'busybox-static', 'criu', 'nftables', 'ccache',
];

/** Whether a package (`name` or `name=version`) is installed, at that version if one is given. */
function installed(spec) {
  const [pkg, version] = spec.split('=');
  try {
    const [status, have] = execFileSync('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\t');
    return status.includes('install ok installed') && (version === undefined || have === version);
  } catch {
    return false;
  }
}

function run(cmd, args, env = {}) {
  console.log(`setup: ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } });
}

const missing = PACKAGES.filter((p) => !installed(p));
if (missing.length) {
  if (process.geteuid() !== 0) {
    console.error(`setup: missing Debian packages: ${missing.join(' ')}\nsetup: install them as root: apt-get install --no-install-recommends ${missing.join(' ')}`);
    process.exit(1);
  }
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], env);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', '--allow-downgrades', ...missing], env);
}

// npm ci when node_modules is missing or older than the lock file.
const lock = path.join(root, 'package-lock.json');
const stamp = path.join(root, 'node_modules', '.package-lock.json');
if (!fs.existsSync(stamp) || fs.statSync(stamp).mtimeMs < fs.statSync(lock).mtimeMs) run('npm', ['ci', '--no-audit', '--no-fund']);
