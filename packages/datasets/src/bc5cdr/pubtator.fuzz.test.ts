import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { FIXTURES, named } from './fuzz.testkit.js';
import { parsePubTator } from './pubtator.js';

// Each mutated PubTator file is read as readPubTator reads it (text, then parsePubTator, errors
// prefixed with the file name): accepted, or refused with an error naming the file, within 2 s and
// 256 MiB. With malformed and mismatch set to 'warn' every case must be accepted.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const SMALL = [
  '100|t|Drug X causes rash.',
  '100|a|Rash and fever followed drug X.',
  '100\t0\t6\tDrug X\tChemical\tC1',
  '100\t14\t18\trash\tDisease\tD1',
  '100\t29\t34\tfever\tDisease\tD2|D3\tfever|pyrexia',
  '100\tCID\tC1\tD1',
  '',
  '200|t|\u{1d6fc}-Tocopherol and aspirin.',
  '200|a|x',
  '200\t0\t12\t\u{1d6fc}-Tocopherol\tChemical\tC1',
  '200\t17\t24\taspirin\tChemical\tC2',
  '',
].join('\n');

describe('PubTator fuzz', () => {
  it('each mutated file is read or refused naming the file, in bounded time and memory', async () => {
    const bad = (start: string) => encoder.encode(`1|t|Drug X causes rash.\n1|a|Fever.\n1\t${start}\t6\tDrug X\tChemical\tC1\n\n`);
    const warnModeErrors: string[] = [];
    const report = await runFuzz({
      reader: 'pubtator',
      file: 'CDR_TrainingSet.PubTator.txt',
      seeds: [encoder.encode(SMALL), new Uint8Array(readFileSync(join(FIXTURES, 'CDR_DevelopmentSet.PubTator.txt')))],
      cases: 1500,
      mutators: TEXT_MUTATORS,
      extraCases: [
        ...['-1', '1.0', '', ' 0', 'abc', 'Infinity', '99999999999999999999'].map((s) => ({
          name: `start ${JSON.stringify(s)}`,
          bytes: bad(s),
        })),
        { name: 'title of 2^24 characters', bytes: encoder.encode(`1|t|${'x'.repeat(2 ** 24)}\n1|a|y\n\n`) },
        { name: '20,000 annotations', bytes: encoder.encode(`1|t|ab\n${'1\t0\t1\ta\tChemical\tC1\n'.repeat(20_000)}\n`) },
        { name: 'PMID of 100 KB', bytes: encoder.encode(`${'9'.repeat(100_000)}|t|a\n\n`) },
      ],
      read(bytes, file) {
        const text = decoder.decode(bytes);
        try {
          parsePubTator(text, { malformed: 'warn', mismatch: 'warn' });
        } catch (e) {
          warnModeErrors.push((e as Error).message.slice(0, 200));
        }
        return named(file, () => parsePubTator(text));
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(warnModeErrors).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });
});
