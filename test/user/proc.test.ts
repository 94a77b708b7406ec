/**
 * The /proc parsers (userspace/proc/parse.ts) on real files: maps and
 * smaps of a live process read as a plain reading of maps does, the path
 * with its spaces and parentheses; a mapping without its VmFlags line and
 * a line of an unknown shape refused; the key-value lines a dump picks out
 * of a status file read as the file has them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { parseKeyValues, parseMaps, parseSmaps, readProc } from '../../userspace/proc/parse.js';
import { tempDir } from '../lib/harness.js';
import { test } from '../lib/modes.js';

/** maps as a regular expression reads it, to hold the parser's results against. */
function plainMaps(text: string) {
  return text.split('\n').filter(Boolean).map((l) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+) *(.*)$/.exec(l);
    assert.ok(m, `a maps line of an unexpected shape: ${l}`);
    return {
      start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), offset: BigInt(`0x${m[7]}`), inode: BigInt(m[9]),
      read: m[3] === 'r', write: m[4] === 'w', exec: m[5] === 'x', shared: m[6] === 's', dev: m[8], path: m[10],
    };
  });
}

test('maps and smaps of a live process read as its maps lines say, VmFlags and odd paths included', async () => {
  // a program whose path has spaces and parentheses, so its maps lines do
  const dir = path.join(tempDir('proc'), 'a b (c) d');
  fs.mkdirSync(dir);
  const bin = path.join(dir, 'sleep (1)');
  fs.copyFileSync('/bin/sleep', bin);
  fs.chmodSync(bin, 0o755);
  const child = spawn(bin, ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.once('spawn', r));
    // wait for the exec: the path shows in maps once it is done
    for (let i = 0; i < 100 && !readProc(child.pid!, 'maps').includes(bin); i++) await new Promise((r) => setTimeout(r, 20));
    const maps = readProc(child.pid!, 'maps');
    const smaps = readProc(child.pid!, 'smaps');
    const expected = plainMaps(maps);
    assert.ok(expected.some((m) => m.path === bin), 'the program maps its own file');
    assert.equal(parseMaps(maps), expected);
    const entries = parseSmaps(smaps);
    assert.equal(entries.map(({ vmFlags, ...m }) => m), expected);
    const flags = [...smaps.matchAll(/^VmFlags:(.*)$/gm)].map((m) => m[1].trim().split(/\s+/));
    assert.equal(entries.map((e) => [...e.vmFlags]), flags);
    assert.ok(entries.every((e) => e.vmFlags.has('rd') === e.read), 'VmFlags agree with the permissions');
    // the second time from the entries parsed the first
    assert.equal(parseSmaps(smaps), entries);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a mapping without its VmFlags line, or a maps line of another shape, is refused', () => {
  const line = '00400000-00401000 r-xp 00000000 08:01 12 /bin/x\n';
  assert.throws(() => parseSmaps(`${line}Rss: 4 kB\n${line.replace('00400000-00401000', '00401000-00402000')}VmFlags: rd ex\n`), /cannot parse smaps mapping 1/);
  assert.throws(() => parseMaps('00400000-00401000 r-xq 00000000 08:01 12 /bin/x\n'), /cannot parse maps line 1/);
  assert.throws(() => parseMaps('00400000-00401000 r-xp 00000000 08:01\n'), /cannot parse maps line 1/);
  assert.equal(parseMaps(`${line}00401000-00402000 rw-p 00000000 00:00 0 \n`).map((m) => m.path), ['/bin/x', '']);
});

test('the chosen lines of a status file read as the file has them, an empty value too', () => {
  const status = readProc(process.pid, 'status');
  const keys = ['Umask', 'Uid', 'Gid', 'Groups', 'CapBnd', 'NoNewPrivs', 'Seccomp'];
  const picked = parseKeyValues(status, keys);
  for (const key of keys) {
    const line = new RegExp(`^${key}:[ \\t]*(.*)$`, 'm').exec(status);
    assert.equal(picked.get(key), line?.[1].trim(), key);
  }
  assert.equal(parseKeyValues('Name:\tx\nGroups:\t\nUid:\t0\t0\t0\t0\n', ['Groups', 'Uid']), new Map([['Groups', ''], ['Uid', '0\t0\t0\t0']]));
  assert.throws(() => parseKeyValues('Uid 0\n', undefined), /cannot parse key-value file/);
});

test.run();
