/** A child process that shows it is alive by what it prints: killed once it has been silent too long. */
export interface Watchdog {
  /** A sign of life: the silence starts again. */
  arm(): void;
  /** The child ended: no more killing. */
  stop(): void;
  /** Whether it was killed for its silence. */
  readonly fired: boolean;
}

export function watchdog(ms: number, kill: () => void): Watchdog {
  let timer: NodeJS.Timeout | undefined;
  let fired = false;
  const dog: Watchdog = {
    arm() {
      clearTimeout(timer);
      timer = setTimeout(() => {
        fired = true;
        kill();
      }, ms);
    },
    stop: () => clearTimeout(timer),
    get fired() {
      return fired;
    },
  };
  dog.arm();
  return dog;
}
