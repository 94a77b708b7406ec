import type { FdType } from './fdtype.js';
export const udpSockets: FdType = { type: 'udp', claims: () => false, dump: () => Buffer.alloc(0), check: () => {}, open: () => -1, describe: () => '' };
