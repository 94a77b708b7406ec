import type { FdType } from './fdtype.js';
export const tcpSockets: FdType = { type: 'tcp', claims: () => false, dump: () => Buffer.alloc(0), check: () => {}, open: () => -1, describe: () => '' };
