import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { parseBioSentences } from './bio.js';
import { FIXTURES, named } from './fuzz.testkit.js';

// Each mutated BIO file is read as readBio reads it (text, then parseBio, errors prefixed with the
// file name): accepted, or refused with an error naming the file, within 2 s and 256 MiB. With
// malformed: 'warn' every case must be accepted.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const SMALL =
  '-DOCSTART-\tO\n\nNaloxone\tNN\tB-Chemical\nreverses\tVBZ\tO\nblood pressure\tNN\tI-Disease\n\nA B\nb I-Disease\nc\tE-Disease\nd\tS-Chemical\n';

describe('BIO fuzz', () => {
  it('each mutated file is read or refused naming the file, in bounded time and memory', async () => {
    const warnModeErrors: string[] = [];
    const report = await runFuzz({
      reader: 'bio',
      file: 'CDR_TrainingSet.BIO.tsv',
      seeds: [encoder.encode(SMALL), new Uint8Array(readFileSync(join(FIXTURES, 'CDR_TestSet.BIO.tsv')))],
      cases: 1500,
      mutators: TEXT_MUTATORS,
      extraCases: [
        { name: 'one column', bytes: encoder.encode('a\tO\nbroken\n') },
        { name: 'empty token', bytes: encoder.encode('a\tO\n\tB-Disease\n') },
        { name: 'bad tags', bytes: encoder.encode('a\tX-Disease\nb\tB-\nc\tI-\n') },
        { name: 'tag sequence', bytes: encoder.encode('a\tI-Disease\nb\tE-Chemical\nc\tI-Chemical\nd\tS-\n') },
        { name: '50,000 tokens in one sentence', bytes: encoder.encode('a\tI-X\n'.repeat(50_000)) },
        { name: 'token of 1 MB', bytes: encoder.encode(`${'x'.repeat(2 ** 20)}\tO\n`) },
        { name: 'tag of 1 MB', bytes: encoder.encode(`a\t${'B'.repeat(2 ** 20)}\n`) },
      ],
      read(bytes, file) {
        const text = decoder.decode(bytes);
        try {
          parseBioSentences(text, { malformed: 'warn' });
        } catch (e) {
          warnModeErrors.push((e as Error).message.slice(0, 200));
        }
        return named(file, () => parseBioSentences(text));
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
    expect(warnModeErrors).toEqual([]);
    expect(report.rejected).toBeGreaterThan(0);
    expect(report.accepted).toBeGreaterThan(0);
  });
});
