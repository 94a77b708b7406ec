/**
 * An error meant for the person at the terminal: the driver prints its
 * message on one line and exits non-zero, without a stack trace.
 */
export class CrError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CrError';
  }
}

/** The errno name of a Node system error or a CrError's cause, if any. */
export function errnoOf(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
