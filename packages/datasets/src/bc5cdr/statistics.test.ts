import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readPubTator } from '../node/bc5cdr.js';
import { corpusStatistics, formatStatisticsTable } from './statistics.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'bc5cdr');

describe('corpusStatistics', () => {
  it('counts documents, sentences and mentions per label per split', async () => {
    const read = async (split: string) => (await readPubTator(join(fixtures, `CDR_${split}Set.PubTator.txt`))).documents;
    const stats = corpusStatistics({ train: await read('Training'), dev: await read('Development'), test: await read('Test') });
    expect(formatStatisticsTable(stats)).toBe(
      [
        '| | train | dev | test |',
        '|---|---:|---:|---:|',
        '| Documents | 8 | 6 | 6 |',
        '| Sentences | 33 | 22 | 22 |',
        '| Disease mentions | 24 | 16 | 18 |',
        '| Chemical mentions | 24 | 18 | 15 |',
      ].join('\n'),
    );
  });
});
