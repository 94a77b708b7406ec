/** Option parsing shared by the test commands (npm run fuzz and the kernel fuzzer it starts in the VM). */
import { InvalidArgumentError } from 'commander';

/** A --count (or --seed, --first) value: a whole number, 0 or more. */
export const count = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('a number of images');
  return n;
};
