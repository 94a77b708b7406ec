/** Build progress: a cli-progress bar on a terminal, plain periodic lines otherwise (CI logs). */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Start a phase with an estimated number of steps. */
  phase(name: string, total: number): void;
  /** One step of the current phase done. */
  tick(): void;
  /** End the current phase (the bar is removed or a final line printed). */
  done(): void;
  /** A line of text that must not garble the bar. */
  log(line: string): void;
}

const PLAIN_INTERVAL_MS = 15_000;

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  return stream.isTTY ? new BarProgress(stream) : new PlainProgress(stream);
}

class BarProgress implements Progress {
  private bar: cliProgress.SingleBar | undefined;
  private value = 0;
  private total = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  phase(name: string, total: number): void {
    this.done();
    this.value = 0;
    this.total = total;
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: `${name.padEnd(14)} [{bar}] {value}/{total} {duration_formatted}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0);
  }

  tick(): void {
    if (!this.bar) return;
    this.value++;
    // The total is an estimate; grow it rather than overflow the bar.
    if (this.value > this.total) {
      this.total = this.value;
      this.bar.setTotal(this.total);
    }
    this.bar.update(this.value);
  }

  done(): void {
    if (!this.bar) return;
    this.bar.setTotal(this.value);
    this.bar.update(this.value);
    this.bar.stop();
    this.bar = undefined;
  }

  log(line: string): void {
    if (this.bar) {
      // Clear the bar's line, print, and let the next update redraw it.
      this.stream.write(`\r\x1b[K${line}\n`);
      this.bar.render();
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}

class PlainProgress implements Progress {
  private name = '';
  private value = 0;
  private total = 0;
  private started = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  phase(name: string, total: number): void {
    this.done();
    this.name = name;
    this.value = 0;
    this.total = total;
    this.started = Date.now();
    this.stream.write(`${name}: started (about ${total} steps)\n`);
    this.timer = setInterval(() => this.report(), PLAIN_INTERVAL_MS);
    this.timer.unref();
  }

  tick(): void {
    this.value++;
  }

  done(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.stream.write(`${this.name}: done, ${this.value} steps in ${this.elapsed()} s\n`);
  }

  log(line: string): void {
    this.stream.write(`${line}\n`);
  }

  private report(): void {
    this.stream.write(`${this.name}: ${this.value}/${Math.max(this.total, this.value)} after ${this.elapsed()} s\n`);
  }

  private elapsed(): number {
    return Math.round((Date.now() - this.started) / 1000);
  }
}
