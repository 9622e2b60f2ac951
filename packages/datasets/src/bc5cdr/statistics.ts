import type { BiomedicalDocument } from './document.js';
import { BC5CDR_LABELS } from './formats.js';
import { documentsToSentences } from './sentence.js';

export interface CorpusStatistics {
  /** Column names, e.g. train, dev, test. */
  splits: string[];
  /** `Documents`, `Sentences`, then `<label> mentions` per label; one value per split. */
  rows: { name: string; values: number[] }[];
}

/**
 * Counts per split, like the study's appendix table: documents, sentences (this package's splitter),
 * and mentions per label (document annotations, as the official BC5CDR counts).
 */
export function corpusStatistics(
  splits: Record<string, readonly BiomedicalDocument[]>,
  labels: readonly string[] = BC5CDR_LABELS,
): CorpusStatistics {
  const names = Object.keys(splits);
  const docs = names.map((n) => splits[n]!);
  return {
    splits: names,
    rows: [
      { name: 'Documents', values: docs.map((d) => d.length) },
      { name: 'Sentences', values: docs.map((d) => documentsToSentences(d).sentences.length) },
      ...labels.map((label) => ({
        name: `${label} mentions`,
        values: docs.map((d) => d.reduce((n, doc) => n + doc.mentions.filter((m) => m.type === label).length, 0)),
      })),
    ],
  };
}

/** The statistics as a Markdown table. */
export function formatStatisticsTable(stats: CorpusStatistics): string {
  const header = `| | ${stats.splits.join(' | ')} |`;
  const rule = `|---|${stats.splits.map(() => '---:').join('|')}|`;
  const body = stats.rows.map((r) => `| ${r.name} | ${r.values.map((v) => v.toLocaleString('en-US')).join(' | ')} |`);
  return [header, rule, ...body].join('\n');
}
