/** One row of log.csv: a training window (every `logEverySteps` steps) or an epoch's evaluation. */
export interface LogRow {
  epoch: number;
  /** Optimizer steps completed when the row was written. */
  step: number;
  /** Learning rate of the last update in the window (0 before any update). */
  lr: number;
  /** Mean training loss over the window, or over the epoch on an evaluation row; null for the untrained state. */
  loss: number | null;
  /** Validation score; null on training rows. */
  valScore: number | null;
  tokensPerSecond: number | null;
  elapsedSeconds: number;
}

export const LOG_COLUMNS = ['epoch', 'step', 'lr', 'loss', 'val_score', 'tokens_per_s', 'elapsed_s'] as const;

function cell(x: number | null, digits?: number): string {
  if (x === null) return '';
  if (digits !== undefined && Number.isFinite(x)) return x.toFixed(digits);
  return String(x);
}

/** log.csv's text: a header, then one line per row (full precision for lr, loss and score). */
export function logCsv(rows: readonly LogRow[]): string {
  const lines = [LOG_COLUMNS.join(',')];
  for (const r of rows) {
    lines.push(
      [cell(r.epoch), cell(r.step), cell(r.lr), cell(r.loss), cell(r.valScore), cell(r.tokensPerSecond, 1), cell(r.elapsedSeconds, 3)].join(
        ',',
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
