/**
 * Registers, FPU state and the rseq registration of a thread. Registers
 * are the last thing put back, after every injected call.
 */
import { NR } from '../../../userspace/sys/constants.js';
import { REG_NAMES, type Regs, type Rseq, resumableRegs } from '../../../userspace/sys/ptrace.js';
import { CrError } from '../../../userspace/errors.js';
import { readImage } from '../image.js';
import { defineState, hex } from './module.js';

export interface CpuImage {
  regs: Regs;
  xstate: Buffer;
  rseq: Rseq | null;
}

export const cpu = defineState<CpuImage>({
  name: 'cpu',

  dump(task) {
    task.images.write('cpu', task.pid, {
      // A call the task was blocked in is entered again after restore.
      regs: resumableRegs(task.inj.origRegs, false),
      xstate: task.tracee.getXstate(),
      rseq: task.tracee.getRseq(),
    });
  },

  load(dir, pid) {
    const img = readImage<CpuImage>(dir, 'cpu', pid);
    if (!img.regs || REG_NAMES.some((r) => typeof img.regs[r] !== 'bigint')) throw new CrError(`cpu-${pid}.img: registers missing`);
    return img;
  },

  restore(task, state) {
    // The placeholder runs without rseq (see cr-mktree), so the area can be registered anew.
    const r = state.rseq;
    if (r) task.tracee.syscallOk('rseq', NR.rseq, r.addr, r.size, 0, r.signature);
  },

  finish(task, state) {
    task.tracee.setRegs(state.regs);
    task.tracee.setXstate(state.xstate);
  },

  describe(state) {
    const r = state.regs;
    return [`rip ${hex(r.rip)}  rsp ${hex(r.rsp)}  fs_base ${hex(r.fs_base)}  xstate ${state.xstate.length} bytes`];
  },
});
