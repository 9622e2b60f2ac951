// Study A's published test results (the numbers this recipe's runs are compared with) and the
// study's table layout.

/** A row of the study's results table; values are fractions (printed in percent). */
export interface StudyRow {
  model: string;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

const pct = (x: number) => x / 100;

/** Study A's reported test results (best validation configuration per model). */
export const LIVEDOOR_PUBLISHED: readonly StudyRow[] = [
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-sft-v2',
    accuracy: pct(97.96),
    precision: pct(97.77),
    recall: pct(97.76),
    f1: pct(97.75),
  },
  { model: 'rinna/japanese-gpt-neox-3.6b', accuracy: pct(97.55), precision: pct(97.24), recall: pct(97.39), f1: pct(97.3) },
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-sft',
    accuracy: pct(97.55),
    precision: pct(97.32),
    recall: pct(97.27),
    f1: pct(97.27),
  },
  {
    model: 'rinna/japanese-gpt-neox-3.6b-instruction-ppo',
    accuracy: pct(97.55),
    precision: pct(97.03),
    recall: pct(97.37),
    f1: pct(97.18),
  },
  { model: 'cyberagent/open-calm-7b', accuracy: pct(97.01), precision: pct(96.76), recall: pct(96.42), f1: pct(96.55) },
  { model: 'cyberagent/open-calm-3b', accuracy: pct(96.88), precision: pct(96.38), recall: pct(96.51), f1: pct(96.42) },
  { model: 'cyberagent/open-calm-1b', accuracy: pct(94.43), precision: pct(94.24), recall: pct(93.8), f1: pct(93.98) },
];

export interface StudyTableOptions {
  /** Append the study's published rows, marked "(published)". Default false. */
  published?: boolean;
}

/** The study's table layout: model | accuracy | precision | recall | F1, in percent with 2 decimals. */
export function formatStudyTable(rows: readonly StudyRow[], opts: StudyTableOptions = {}): string {
  const all = [...rows, ...(opts.published ? LIVEDOOR_PUBLISHED.map((r) => ({ ...r, model: `${r.model} (published)` })) : [])];
  const cell = (x: number) => (Number.isFinite(x) ? (x * 100).toFixed(2) : String(x));
  const lines = ['| model | accuracy | precision | recall | F1 |', '|---|---|---|---|---|'];
  for (const r of all) lines.push(`| ${r.model} | ${cell(r.accuracy)} | ${cell(r.precision)} | ${cell(r.recall)} | ${cell(r.f1)} |`);
  return `${lines.join('\n')}\n`;
}
