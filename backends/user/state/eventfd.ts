/**
 * eventfd: created empty with its semaphore mode, then its counter is
 * written back (a write takes the full 64 bits, eventfd2's initval only 32).
 */
import { CrError } from '../../../userspace/errors.js';
import { NR, O } from '../../../userspace/sys/constants.js';
import { decodeMessage, encodeMessage } from '../image.js';
import { liftFd, type FdType, type OpenFileImage } from './fdtype.js';

interface EventfdFile {
  count: bigint;
  semaphore: boolean;
}

const EFD_SEMAPHORE = 1;
const payloadOf = (file: OpenFileImage, where: string) => decodeMessage<EventfdFile>('EventfdFile', file.payload, where);

export const eventfds: FdType = {
  type: 'eventfd',

  claims(f) {
    return f.target === 'anon_inode:[eventfd]';
  },

  dump(_task, f) {
    const count = f.info.get('eventfd-count');
    const semaphore = f.info.get('eventfd-semaphore');
    if (count === undefined || semaphore === undefined) throw new CrError(`pid ${f.pid} fd ${f.fd}: fdinfo of the eventfd lacks its count or mode`);
    return encodeMessage('EventfdFile', { count: BigInt(`0x${count}`), semaphore: semaphore === '1' });
  },

  check(file, where) {
    payloadOf(file, where);
  },

  open(task, file) {
    const e = payloadOf(file, `pid ${task.pid} file ${file.id}`);
    const { tracee, inj } = task;
    const fd = liftFd(task, Number(tracee.syscallOk('eventfd2', NR.eventfd2, 0, O.CLOEXEC | (e.semaphore ? EFD_SEMAPHORE : 0))));
    if (e.count) {
      inj.reset();
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(e.count, 0);
      tracee.syscallOk('write eventfd', NR.write, fd, inj.put(b), 8);
    }
    return fd;
  },

  describe(file) {
    const e = payloadOf(file, `file ${file.id}`);
    return `eventfd count ${e.count}${e.semaphore ? ' semaphore' : ''}`;
  },
};
