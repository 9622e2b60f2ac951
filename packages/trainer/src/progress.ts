/** Where progress goes and how it looks. */
export interface ProgressOptions {
  /** Receives text exactly as it would go to the terminal. Default: `process.stderr` where it exists, else `console.log` lines. */
  write?: (text: string) => void;
  /** Redraw one bar in place (a terminal) instead of printing lines. Default: whether stderr is a TTY. */
  tty?: boolean;
  /** Without a TTY: a line every this many optimizer steps (and at every epoch's end). Default: about 10 lines per epoch. */
  everySteps?: number;
  /** Characters in the bar. Default 24. */
  width?: number;
}

export interface ProgressStep {
  epoch: number;
  epochs: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  /** Seconds left at the current pace, null before the pace is known. */
  etaSeconds: number | null;
}

/** "1:02:03", "4:05", "7s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '?';
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1);
}

interface StderrLike {
  write(text: string): unknown;
  isTTY?: boolean;
}

function defaultStream(): StderrLike | null {
  const proc = (globalThis as { process?: { stderr?: StderrLike } }).process;
  return proc?.stderr && typeof proc.stderr.write === 'function' ? proc.stderr : null;
}

/**
 * A progress bar on a terminal (step/total, loss, learning rate, tokens/s, ETA, redrawn in place),
 * plain lines elsewhere (CI logs): every `everySteps` steps and at each epoch's end.
 */
export class Progress {
  readonly tty: boolean;
  readonly #write: (text: string) => void;
  readonly #width: number;
  readonly #every: number | undefined;
  #barShown = false;

  constructor(opts: ProgressOptions = {}) {
    const stream = defaultStream();
    this.#write = opts.write ?? (stream ? (t) => void stream.write(t) : (t) => console.log(t.replace(/\n$/, '')));
    this.tty = opts.tty ?? (opts.write ? false : stream?.isTTY === true);
    this.#width = opts.width ?? 24;
    this.#every = opts.everySteps;
  }

  /** Shows an optimizer step: redraws the bar, or prints a line when one is due. */
  step(s: ProgressStep): void {
    const eta = s.etaSeconds === null ? '?' : formatDuration(s.etaSeconds);
    const stats = `loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${formatRate(s.tokensPerSecond)} tok/s ETA ${eta}`;
    if (this.tty) {
      const filled = Math.round((this.#width * s.stepInEpoch) / Math.max(1, s.stepsPerEpoch));
      const bar = '█'.repeat(filled) + '░'.repeat(this.#width - filled);
      this.#write(`\r\x1b[2Kepoch ${s.epoch}/${s.epochs} ${bar} ${s.stepInEpoch}/${s.stepsPerEpoch} ${stats}`);
      this.#barShown = true;
      return;
    }
    const every = this.#every ?? Math.max(1, Math.ceil(s.stepsPerEpoch / 10));
    if (s.stepInEpoch % every !== 0 && s.stepInEpoch !== s.stepsPerEpoch) return;
    this.#write(`epoch ${s.epoch}/${s.epochs} step ${s.stepInEpoch}/${s.stepsPerEpoch} (${s.step}/${s.totalSteps}) ${stats}\n`);
  }

  /** Prints a line of its own (evaluation results), above the bar on a terminal. */
  line(text: string): void {
    if (this.#barShown) {
      this.#write('\r\x1b[2K');
      this.#barShown = false;
    }
    this.#write(`${text}\n`);
  }

  /** Leaves the terminal on a fresh line. */
  done(): void {
    if (this.#barShown) this.#write('\n');
    this.#barShown = false;
  }
}
