// curves.svg: a run's training loss (per logging window and per epoch) and its validation score per
// epoch, drawn from the run folder's log.csv, one panel above the other.
import { LOG_COLUMNS, type LogRow, lineChartSvg, type RunStore, type Series } from '@peft/trainer';

/** The file a run's curves are drawn into, in its run folder. */
export const CURVES_FILE = 'curves.svg';

/** log.csv's rows (as `logCsv` writes them); rows that do not parse are skipped. */
export function parseLogCsv(text: string): LogRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0 || lines[0]!.trim() !== LOG_COLUMNS.join(',')) return [];
  const cell = (v: string | undefined): number | null => {
    if (v === undefined || v.trim() === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  };
  const rows: LogRow[] = [];
  for (const line of lines.slice(1)) {
    const c = line.split(',');
    const epoch = cell(c[0]);
    const step = cell(c[1]);
    if (epoch === null || step === null) continue;
    rows.push({
      epoch,
      step,
      lr: cell(c[2]) ?? 0,
      loss: cell(c[3]),
      valScore: cell(c[4]),
      tokensPerSecond: cell(c[5]),
      elapsedSeconds: cell(c[6]) ?? 0,
    });
  }
  return rows;
}

export interface CurvesOptions {
  /** What the validation score is, e.g. "macro-F1" or "entity F1". */
  scoreLabel: string;
  /** Above both panels. */
  title?: string;
  /** Scores are fractions shown in percent (default true). */
  percent?: boolean;
}

const WIDTH = 760;
const PANEL = 360;

/** Drops the chart's own XML namespace and size so that it nests at a vertical offset. */
function nested(svg: string, y: number): string {
  return svg.replace(/^<svg [^>]*>/, `<svg x="0" y="${y}" width="${WIDTH}" height="${PANEL}" viewBox="0 0 ${WIDTH} ${PANEL}">`);
}

/**
 * The two panels: training loss against the optimizer step (the mean over each logging window,
 * and each epoch's mean at the epoch's last step), and the validation score against the epoch
 * (epoch 0 is the untrained state). Each panel is scaled to its own data.
 */
export function curvesSvg(rows: readonly LogRow[], opts: CurvesOptions): string {
  const windows = rows.filter((r) => r.valScore === null && r.loss !== null);
  const epochs = rows.filter((r) => r.valScore !== null);
  const loss: Series[] = [];
  if (windows.length > 0) loss.push({ label: 'loss, mean per logging window', points: windows.map((r) => [r.step, r.loss!] as const) });
  const epochLoss = epochs.filter((r) => r.loss !== null);
  if (epochLoss.length > 0) loss.push({ label: 'loss, mean per epoch', points: epochLoss.map((r) => [r.step, r.loss!] as const) });
  const percent = opts.percent ?? true;
  const score: Series[] = [{ label: `validation ${opts.scoreLabel}`, points: epochs.map((r) => [r.epoch, r.valScore!] as const) }];
  // The state the run keeps: the first epoch with the best score (the trainer's rule; epoch 0 counts).
  const best = epochs.reduce<LogRow | null>((b, r) => (b === null || r.valScore! > b.valScore! ? r : b), null);
  if (best) score.push({ label: `selected: epoch ${best.epoch}`, points: [[best.epoch, best.valScore!]] });
  const top = lineChartSvg(loss, {
    title: opts.title ? `${opts.title}: training loss` : 'training loss',
    xLabel: 'optimizer step',
    yLabel: 'cross-entropy loss',
    width: WIDTH,
    height: PANEL,
  });
  const bottom = lineChartSvg(score, {
    title: `validation ${opts.scoreLabel} per epoch (epoch 0: untrained)`,
    xLabel: 'epoch',
    yLabel: percent ? `${opts.scoreLabel} (%)` : opts.scoreLabel,
    percent,
    width: WIDTH,
    height: PANEL,
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${2 * PANEL}" viewBox="0 0 ${WIDTH} ${2 * PANEL}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${2 * PANEL}" fill="#ffffff"/>`,
    nested(top.trimEnd(), 0),
    nested(bottom.trimEnd(), PANEL),
    '</svg>',
    '',
  ].join('\n');
}

/** Draws the run folder's log.csv into curves.svg beside it; returns false when there is no log to draw. */
export async function writeCurves(store: RunStore, opts: CurvesOptions): Promise<boolean> {
  const bytes = await store.readFile('log.csv');
  if (!bytes) return false;
  const rows = parseLogCsv(new TextDecoder().decode(bytes));
  if (rows.length === 0) return false;
  await store.writeFile(CURVES_FILE, curvesSvg(rows, opts));
  return true;
}
