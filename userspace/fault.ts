/**
 * Fault injection for both backends: `CR_FAULT=STAGE[:N]` makes one named
 * stage of a dump or a restore fail as a real error there would, so that a
 * test can show what such a failure leaves behind (README: "Fault
 * injection"). Unset, nothing changes. The user backend calls
 * `injectFault` at each stage; the kernel backend hands the same words to
 * the engine (its `fault` module parameter), which fails at the same
 * stages in the kernel.
 */
import { CrError } from './errors.js';

/** Each stage, and what its N counts (undefined: it takes none). */
export const FAULT_STAGES = {
  /** Every task is frozen (seized), nothing is saved yet. */
  'dump-frozen': undefined,
  /** N objects of the image are written (user: image files; kernel: objects of the stream). Default 1. */
  'dump-objects': { default: 1 },
  /** In the middle of the page data: N runs of pages (user) or N PAGES objects (kernel) are written. Default 1. */
  'dump-pages': { default: 1 },
  /** Task N of the image's tree (root 0, the default) is about to be changed: before the point of no return. */
  'restore-prepare': { default: 0 },
  /** Task N (default 1) fails after it was changed, the tasks before it rebuilt: one member of the restart group. */
  'restore-member': { default: 1 },
  /** The whole tree is recreated, none of it has run yet. */
  'restore-tree': undefined,
} as const;
export type FaultStage = keyof typeof FAULT_STAGES;

export interface Fault {
  stage: FaultStage;
  n: number;
  /** As CR_FAULT spells it, with its N: `dump-objects:3`. */
  name: string;
}

/** The fault CR_FAULT asks for, or undefined; a CrError if it names no stage. */
export function requestedFault(value = process.env.CR_FAULT): Fault | undefined {
  if (!value) return undefined;
  const m = /^([a-z-]+)(?::(\d+))?$/.exec(value);
  const stage = m?.[1] as FaultStage | undefined;
  const counts = stage && Object.hasOwn(FAULT_STAGES, stage) ? FAULT_STAGES[stage] : null;
  if (!m || counts === null) {
    const stages = Object.entries(FAULT_STAGES).map(([s, c]) => (c ? `${s}[:N]` : s));
    throw new CrError(`CR_FAULT=${value}: not a fault stage (${stages.join(', ')})`);
  }
  if (m[2] !== undefined && !counts) throw new CrError(`CR_FAULT=${value}: ${stage} takes no count`);
  const n = m[2] !== undefined ? Number(m[2]) : (counts?.default ?? 0);
  return { stage: stage!, n, name: counts ? `${stage}:${n}` : stage! };
}

/** CR_FAULT as last read, and what it asked for: every image write of a dump asks. */
let last: { value: string | undefined; fault: Fault | undefined } | undefined;

/** Fail here if CR_FAULT names this stage (and, for a counted one, this count). */
export function injectFault(stage: FaultStage, n = 0): void {
  const value = process.env.CR_FAULT;
  if (!last || last.value !== value) last = { value, fault: requestedFault(value) };
  const f = last.fault;
  if (f?.stage === stage && f.n === n) throw new CrError(`injected fault ${f.name} (CR_FAULT)`);
}
