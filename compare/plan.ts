/**
 * From command-line options to the list of cases and the settings the
 * inside part runs with. The host builds the plan and hands it to the VM
 * as one JSON argument, so both sides agree on what was asked.
 */
import type { CaseSpec, Mode } from './harness.js';
import { type Feature, features, workloads } from './workloads.js';

export interface CompareOptions {
  workloads?: string;
  sizes?: string;
  backends?: string;
  reps?: number;
  cliReps?: number;
  featureReps?: number;
  modes?: string;
  quick?: boolean;
}

export interface Plan {
  cases: CaseSpec[];
  backends: string[];
  reps: number;
  cliReps: number;
  featureReps: number;
  modes: Mode[];
  quick: boolean;
}

export const ALL_BACKENDS = ['user', 'kernel', 'criu'];
export const ALL_MODES: Mode[] = ['lib', 'cli', 'native'];

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

/** "--sizes 8,32" applies to every workload; "--sizes mem=8,32;tree=2" to the ones named. */
export function parseSizes(s: string | undefined): { all?: number[]; per: Record<string, number[]> } {
  const per: Record<string, number[]> = {};
  if (!s) return { per };
  if (!s.includes('=')) return { all: s.split(',').map(Number).filter((n) => n > 0), per };
  for (const part of s.split(/[;\s]+/).filter(Boolean)) {
    const [w, v] = part.split('=');
    per[w] = v.split(',').map(Number).filter((n) => n > 0);
  }
  return { per };
}

/** The case of one feature probe (the soak draws from them too). */
export function featureCase(f: Feature): CaseSpec {
  return { kind: 'feature', workload: f.name, group: f.group, size: null, args: f.args, ...(f.tcpEstablished ? { tcpEstablished: true } : {}) };
}

export function makePlan(o: CompareOptions): Plan {
  const quick = !!o.quick;
  const names = list(o.workloads) ?? [...workloads.map((w) => w.name), 'features'];
  const extra = ['features', 'startup'];
  for (const n of names) if (!extra.includes(n) && !workloads.some((w) => w.name === n)) throw new Error(`unknown workload '${n}' (have: ${workloads.map((w) => w.name).join(', ')}, ${extra.join(', ')})`);
  const sizes = parseSizes(o.sizes);
  const cases: CaseSpec[] = [];
  for (const w of workloads) {
    if (!names.includes(w.name)) continue;
    // The variants come with a full run's default backends; -b names every backend and variant itself.
    const variants = !quick && !o.backends ? w.variants : undefined;
    for (const size of sizes.per[w.name] ?? sizes.all ?? (quick ? w.quickSizes : w.sizes)) {
      cases.push({ kind: 'bench', workload: w.name, size, args: w.args(size), variants });
    }
  }
  // The start-up lines alone: the header's times and the smallest mem case, whose cli rows give the command's own overhead.
  if (names.includes('startup') && !names.includes('mem')) {
    const mem = workloads.find((w) => w.name === 'mem')!;
    const size = Math.min(...(sizes.per.mem ?? sizes.all ?? mem.quickSizes));
    cases.push({ kind: 'bench', workload: mem.name, size, args: mem.args(size) });
  }
  if (names.includes('features')) {
    for (const f of features) cases.push(featureCase(f));
  }
  const modes = (list(o.modes) ?? ALL_MODES) as Mode[];
  for (const m of modes) if (!ALL_MODES.includes(m)) throw new Error(`unknown mode '${m}' (have: ${ALL_MODES.join(', ')})`);
  return {
    cases,
    backends: list(o.backends) ?? ALL_BACKENDS,
    reps: o.reps ?? (quick ? 2 : 5),
    cliReps: o.cliReps ?? o.reps ?? (quick ? 1 : 5),
    featureReps: o.featureReps ?? 1,
    modes,
    quick,
  };
}
