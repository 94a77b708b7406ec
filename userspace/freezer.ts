/**
 * Control of a cgroup freezer, v1 (freezer.state) or v2 (cgroup.freeze),
 * whichever the given cgroup directory has. A frozen cgroup is a snapshot
 * of its tasks: none can fork, exit or change until it is thawed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CrError } from './errors.js';

const FREEZE_TIMEOUT_MS = 10000;

export class Freezer {
  readonly dir: string;
  readonly version: 1 | 2;

  constructor(dir: string) {
    this.dir = dir;
    if (fs.existsSync(path.join(dir, 'cgroup.freeze'))) this.version = 2;
    else if (fs.existsSync(path.join(dir, 'freezer.state'))) this.version = 1;
    else throw new CrError(`${dir} is not a cgroup with a freezer (no cgroup.freeze or freezer.state)`);
  }

  private write(file: string, value: string): void {
    try {
      fs.writeFileSync(path.join(this.dir, file), value);
    } catch (err) {
      throw new CrError(`cannot write ${path.join(this.dir, file)}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }

  private frozen(): boolean {
    if (this.version === 2) return /^frozen 1$/m.test(fs.readFileSync(path.join(this.dir, 'cgroup.events'), 'utf8'));
    return fs.readFileSync(path.join(this.dir, 'freezer.state'), 'utf8').trim() === 'FROZEN';
  }

  /** Freeze and wait until every task in the cgroup is frozen. */
  async freeze(): Promise<void> {
    this.write(this.version === 2 ? 'cgroup.freeze' : 'freezer.state', this.version === 2 ? '1' : 'FROZEN');
    for (const deadline = Date.now() + FREEZE_TIMEOUT_MS; !this.frozen(); await sleep(5)) {
      if (Date.now() > deadline) {
        this.thaw();
        throw new CrError(`cgroup ${this.dir} did not freeze within ${FREEZE_TIMEOUT_MS / 1000} s`);
      }
    }
  }

  thaw(): void {
    this.write(this.version === 2 ? 'cgroup.freeze' : 'freezer.state', this.version === 2 ? '0' : 'THAWED');
  }

  /** Every thread in the cgroup (its descendants' too, on v2 only those of this level). */
  threads(): number[] {
    const file = this.version === 2 ? 'cgroup.threads' : 'tasks';
    return fs.readFileSync(path.join(this.dir, file), 'utf8').split('\n').filter(Boolean).map(Number);
  }
}
