import { readFileSync } from 'node:fs';
import { BINARY_MUTATORS, describeFailures, runFuzz } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { tokenizerFixturePath } from './fixtures.js';
import { createTokenizer } from './tokenizer.js';

const SENTENCE = 'Hello world, こんにちは 123 </s>!';
const read = (file: string) => new Uint8Array(readFileSync(tokenizerFixturePath(file)));

describe('SentencePiece .model fuzz', () => {
  it('accepts each mutated .model or rejects it with an error naming the file and the byte offset, in bounded time and memory', async () => {
    const seed = read('sp-bpe/tokenizer.model');
    const append = (...bytes: number[]) => new Uint8Array([...seed, ...bytes]);
    const report = await runFuzz({
      reader: 'sentencepiece',
      file: 'tokenizer.model',
      seeds: [
        read('sp-bpe/tokenizer.model'),
        read('sp-unigram/spiece.model'),
        read('sp-extra/bpe-defaults.model'),
        read('sp-extra/unigram-defaults.model'),
      ],
      cases: 1500,
      mutators: BINARY_MUTATORS,
      extraCases: [
        { name: 'varint past 64 bits', bytes: append(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f) },
        { name: 'pieces length 2^63', bytes: append(0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01) },
        { name: 'pieces length 2^31', bytes: append(0x0a, 0x80, 0x80, 0x80, 0x80, 0x08) },
        { name: 'pieces as a varint', bytes: append(0x08, 0x05) },
        { name: 'fixed64 past the end', bytes: append(0x49, 1, 2) },
        { name: 'wire type 7', bytes: append(0x4f) },
        {
          name: 'negative piece type',
          bytes: append(0x0a, 0x0e, 0x0a, 0x01, 0x62, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
        },
        { name: 'empty', bytes: new Uint8Array(0) },
      ],
      read(bytes) {
        const tok = createTokenizer({ 'tokenizer.model': bytes });
        const ids = tok.encode(SENTENCE);
        return tok.decode(ids);
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
  }, 120_000);
});
