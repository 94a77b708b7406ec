/**
 * Run by sound.test.ts inside `unshare -Urpf --mount-proc` (a user
 * namespace whose setgroups is "deny", and a pid namespace it owns): the
 * caller is root there and nowhere else.  It checkpoints a task of its
 * own, then restarts the image as it is and two images edited from it
 * (no supplementary groups; securebits 0xffffffff), and prints one JSON
 * line: what each restart gave.
 */
import fs from 'node:fs';
import path from 'node:path';
import { kernelBackend } from '../../backends/kernel/index.js';
import { tempDir } from '../lib/harness.js';
import { kprogram, startTo } from './env.js';
import { editField, findObject, replaceObject } from './fuzz/format.js';

interface Result {
  setgroups: string;
  groups: string;
  restart: Record<string, string>;
}

async function waitReady(file: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('ready')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${file}: never ready`);
}

/** Restart the image in @dir and let it finish; "ok" or the error. */
async function restart(dir: string): Promise<string> {
  try {
    const r = await kernelBackend.restore({ dir });
    process.kill(r.pids[0]!, 'SIGUSR1');
    const status = await r.wait();
    return status.code === 0 ? 'ok' : `exit ${JSON.stringify(status)}`;
  } catch (err) {
    return (err as Error).message;
  }
}

async function main(): Promise<void> {
  const work = tempDir('userns');
  const out = path.join(work, 'out.txt');
  const child = startTo(kprogram('confine'), ['wait'], out);
  await waitReady(out);
  const images = tempDir('usernsimg');
  await kernelBackend.dump({ pid: child.pid, dir: images });
  await child.done;
  const img = fs.readFileSync(path.join(images, 'kernel.img'));

  // CRED without its groups: the same fixed part, ngroups 0, 88 bytes
  const cred = findObject(img, 'CRED')!;
  const noGroups = Buffer.from(img.subarray(cred.offset, cred.offset + 88));
  noGroups.writeUInt32LE(88, 4);
  noGroups.writeUInt32LE(0, 84);
  const variants: Record<string, Buffer> = {
    original: img,
    'no groups': replaceObject(img, 'CRED', noGroups),
    'securebits 0xffffffff': editField(img, 'CRED', 'securebits', 0xffffffffn),
  };
  const result: Result = {
    setgroups: fs.readFileSync('/proc/self/setgroups', 'utf8').trim(),
    groups: (/^Groups:\s*(.*)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '').trim(),
    restart: {},
  };
  for (const [name, bytes] of Object.entries(variants)) {
    const dir = tempDir('usernsvar');
    fs.writeFileSync(path.join(dir, 'kernel.img'), bytes);
    result.restart[name] = await restart(dir);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`userns-restart: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
