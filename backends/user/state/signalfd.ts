/** signalfd: only its mask; the signals it reads are the task's pending ones (signals.ts). */
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';
import { hex } from './module.js';

interface SignalfdFile {
  sigmask: bigint;
}

const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<SignalfdFile>('SignalfdFile', file.payload, where);

export const signalfds: FdType = {
  type: 'signalfd',

  claims(f) {
    return f.target === 'anon_inode:[signalfd]';
  },

  dump(_task, f) {
    const mask = f.info.get('sigmask');
    if (mask === undefined) throw new CrError(`pid ${f.pid} fd ${f.fd}: fdinfo of the signalfd lacks its sigmask`);
    return encodeMessage('SignalfdFile', { sigmask: BigInt(`0x${mask}`) });
  },

  check(file, where) {
    payloadOf(file, where);
  },

  open(task, file) {
    const s = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    task.inj.reset();
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(s.sigmask, 0);
    const fd = liftFd(task, Number(task.tracee.syscallOk('signalfd4', NR.signalfd4, -1, task.inj.put(mask), 8, O.CLOEXEC)));
    return fd;
  },

  describe(file) {
    return `signalfd mask ${hex(payloadOf(file, `file ${file.id}`).sigmask)}`;
  },
};
