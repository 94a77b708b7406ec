/** Signal dispositions, the blocked mask and the alternate signal stack. */
import { readImage } from '../image.js';
import { NR, SIG } from '../../../userspace/sys/constants.js';
import { defineState, hex } from './module.js';

interface SigAction {
  signo: number;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

export interface SignalsImage {
  actions: SigAction[];
  blocked: bigint;
  altstack_sp: bigint;
  altstack_flags: number;
  altstack_size: bigint;
}

const NSIG = 64;
/** struct kernel_sigaction on x86_64: handler, flags, restorer, mask. */
const KSIGACTION_SIZE = 32;
/** stack_t: ss_sp, ss_flags (int, padded), ss_size. */
const STACK_T_SIZE = 24;
const SS_DISABLE = 2;

export const signals = defineState<SignalsImage>({
  name: 'signals',

  dump(task) {
    const { tracee, inj } = task;
    const actions: SigAction[] = [];
    for (let signo = 1; signo <= NSIG; signo++) {
      if (signo === SIG.KILL || signo === SIG.STOP) continue;
      inj.reset();
      const old = inj.alloc(KSIGACTION_SIZE);
      tracee.syscallOk(`rt_sigaction(${signo})`, NR.rt_sigaction, signo, 0, old, 8);
      const b = tracee.readMem(old, KSIGACTION_SIZE);
      const act = { signo, handler: b.readBigUInt64LE(0), flags: b.readBigUInt64LE(8), restorer: b.readBigUInt64LE(16), mask: b.readBigUInt64LE(24) };
      if (act.handler || act.flags || act.mask) actions.push(act);
    }
    inj.reset();
    const ss = inj.alloc(STACK_T_SIZE);
    tracee.syscallOk('sigaltstack', NR.sigaltstack, 0, ss);
    const st = tracee.readMem(ss, STACK_T_SIZE);
    task.images.write('signals', task.pid, {
      actions,
      blocked: inj.origSigmask,
      altstack_sp: st.readBigUInt64LE(0),
      altstack_flags: st.readInt32LE(8),
      altstack_size: st.readBigUInt64LE(16),
    });
  },

  load(dir, pid) {
    return readImage<SignalsImage>(dir, 'signals', pid);
  },

  restore(task, img) {
    const { tracee, inj } = task;
    for (const a of img.actions) {
      inj.reset();
      const b = Buffer.alloc(KSIGACTION_SIZE);
      [a.handler, a.flags, a.restorer, a.mask].forEach((v, i) => b.writeBigUInt64LE(v, i * 8));
      tracee.syscallOk(`rt_sigaction(${a.signo})`, NR.rt_sigaction, a.signo, inj.put(b), 0, 8);
    }
    if (!(img.altstack_flags & SS_DISABLE)) {
      inj.reset();
      const b = Buffer.alloc(STACK_T_SIZE);
      b.writeBigUInt64LE(img.altstack_sp, 0);
      b.writeInt32LE(0, 8);
      b.writeBigUInt64LE(img.altstack_size, 16);
      tracee.syscallOk('sigaltstack', NR.sigaltstack, inj.put(b), 0);
    }
  },

  finish(task, img) {
    task.tracee.setSigmask(img.blocked);
  },

  describe(img) {
    return [
      `blocked ${hex(img.blocked)}${img.altstack_flags & SS_DISABLE ? '' : `  altstack ${hex(img.altstack_sp)}+${img.altstack_size}`}`,
      ...img.actions.map((a) => `  signal ${a.signo}: handler ${hex(a.handler)} flags ${hex(a.flags)} mask ${hex(a.mask)}`),
    ];
  },
});
