/**
 * CPU sets as sched_getaffinity(2) and sched_setaffinity(2) pass them: a
 * bitmap, CPU n at bit n % 8 of byte n / 8. Both backends save affinities
 * in this form (the user backend's cpu-TID.img as a list, the kernel
 * engine's PROCESS object as the bitmap itself).
 */

/** The CPUs set in `mask`. */
export const maskCpus = (mask: Buffer): number[] => [...Array(mask.length * 8).keys()].filter((cpu) => mask[cpu >> 3] & (1 << (cpu & 7)));

/** A bitmap of `bytes` bytes with `cpus` set. */
export function cpuMask(cpus: number[], bytes: number): Buffer {
  const mask = Buffer.alloc(bytes);
  for (const cpu of cpus) mask[cpu >> 3] |= 1 << (cpu & 7);
  return mask;
}

/** CPU numbers as ranges: "0-3,6". */
export const cpuList = (cpus: number[]): string => cpus.reduce<[number, number][]>((runs, c) => {
  const last = runs.at(-1);
  if (last && last[1] === c - 1) last[1] = c;
  else runs.push([c, c]);
  return runs;
}, []).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
