// Study B's published numbers, as data: which finding reports which F1 for a setting, and the
// results table that prints a run's scores beside them.
import type { NerMethod } from '@peft/datasets';
import type { NerScores } from '../tasks/ner.js';
import type { Bc5cdrLayers } from './bc5cdr-layers.js';

/** One number of the study beside the setting that reproduces it. */
export interface Bc5cdrPublishedNumber {
  /** Study B's finding (see the example's README). */
  finding: 1 | 2 | 3 | 4;
  split: 'validation' | 'test';
  /** `overall` is the micro average over both types. */
  row: 'overall' | 'Disease' | 'Chemical';
  /** F1 in percent, or a range over the rank grid (`89.0–89.5`). */
  f1: string;
  note: string;
}

export interface Bc5cdrSetting {
  method: NerMethod;
  labels: 'per-label' | 'all';
  prompt: boolean;
  layers: Bc5cdrLayers | readonly string[];
  r: number;
}

const RANK_GRID = [2, 4, 8, 64, 128];
const LAYER_F1: Record<Bc5cdrLayers, string> = { q: '65–69', qk: '60–64', qkv: '88–89', qkvo: '88–89', all: '89.0–89.5' };

/**
 * Study B's published numbers for a setting (Llama-2-7B unless noted). Findings 3 and 4 do not say
 * which output format they used; they are matched to tagging, per-label, no prompt (the formats
 * findings 1 and 2 found best).
 */
export function bc5cdrPublished(s: Bc5cdrSetting): Bc5cdrPublishedNumber[] {
  const out: Bc5cdrPublishedNumber[] = [];
  if (s.method === 'tagging' && s.labels === 'per-label') {
    out.push(
      s.prompt
        ? { finding: 1, split: 'validation', row: 'Chemical', f1: '93.1', note: 'Llama-2-chat-7B with the instruction' }
        : { finding: 1, split: 'validation', row: 'Chemical', f1: '93.6', note: 'input only (Llama-2-chat-7B: 93.4)' },
    );
  }
  if (!s.prompt) {
    const f2: Record<string, string> = {
      'tagging per-label': '88.6',
      'tagging all': '88.4',
      'extraction per-label': '85.8',
      'extraction all': '86.5',
    };
    out.push({ finding: 2, split: 'validation', row: 'overall', f1: f2[`${s.method} ${s.labels}`]!, note: `${s.method}, ${s.labels}` });
  }
  if (!s.prompt && s.method === 'tagging' && s.labels === 'per-label' && typeof s.layers === 'string' && RANK_GRID.includes(s.r)) {
    out.push({
      finding: 3,
      split: 'validation',
      row: 'overall',
      f1: LAYER_F1[s.layers],
      note: `LoRA on ${s.layers}, r ∈ {${RANK_GRID.join(', ')}}`,
    });
    if (s.layers === 'all' && s.r === 128) {
      out.push({ finding: 4, split: 'test', row: 'overall', f1: '88.9', note: 'full fine-tuning 89.3; BINDER (PubMedBERT) 91.9' });
    }
  }
  return out;
}

const pct = (x: number) => (100 * x).toFixed(2);

/** The results table: P / R / F1 per type and overall for dev and test, the study's numbers beside. */
export function bc5cdrResultsTable(
  validation: NerScores,
  test: NerScores,
  labels: readonly string[],
  published: readonly Bc5cdrPublishedNumber[],
): string {
  const head = '| entity type | dev P | dev R | dev F1 | test P | test R | test F1 | study F1 (Llama-2-7B) |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---|';
  const pub = (rowName: string) =>
    published
      .filter((p) => p.row === rowName)
      .map((p) => `${p.split === 'test' ? 'test' : 'dev'} ${p.f1} (finding ${p.finding}: ${p.note})`)
      .join('; ') || '—';
  const line = (name: string, v: { precision: number; recall: number; f1: number }, t: typeof v, key: string) =>
    `| ${name} | ${pct(v.precision)} | ${pct(v.recall)} | ${pct(v.f1)} | ${pct(t.precision)} | ${pct(t.recall)} | ${pct(t.f1)} | ${pub(key)} |`;
  const rows = labels.map((l) => line(l, validation.perType[l]!, test.perType[l]!, l));
  rows.push(line('overall (micro)', validation, test, 'overall'));
  return [head, rule, ...rows].join('\n');
}
