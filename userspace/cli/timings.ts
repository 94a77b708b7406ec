/**
 * CR_TIMINGS=FILE: the `cr` command appends one line to FILE as it exits,
 *
 *   call_start_us=<n> call_end_us=<n> native_load_us=<n>
 *
 * the CLOCK_MONOTONIC times (µs) at which its first backend call started
 * (the backend's file loaded; what a backend imports on its first call, such
 * as the user backend's dump and restore code, loads inside the call) and
 * its last one returned, and how long the calls spent loading koffi (on the
 * first native call, userspace/sys/libc.ts: a start-up cost paid inside the
 * call). With the times a launcher took just before exec and after wait
 * (compare/workloads/rusage prints them as start_us and end_us) they split
 * the command's wall time into its own start-up, the backend's work and its
 * own exit.
 */
import fs from 'node:fs';
import { koffiLoadMs } from '../sys/libc.js';

const file = process.env.CR_TIMINGS;
let start: bigint | undefined;
let end: bigint | undefined;

if (file) {
  process.on('exit', () => {
    if (start === undefined || end === undefined) return;
    fs.appendFileSync(file, `call_start_us=${start / 1000n} call_end_us=${end / 1000n} native_load_us=${Math.round(koffiLoadMs() * 1000)}\n`);
  });
}

/** Run one backend call, noting when the first started and the last ended. */
export async function timed<T>(call: () => Promise<T>): Promise<T> {
  if (!file) return call();
  start ??= process.hrtime.bigint();
  try {
    return await call();
  } finally {
    end = process.hrtime.bigint();
  }
}
