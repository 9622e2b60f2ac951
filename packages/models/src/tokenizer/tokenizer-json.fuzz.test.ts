import { readFileSync } from 'node:fs';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { describe, expect, it } from 'vitest';
import { tokenizerFixturePath } from './fixtures.js';
import { createTokenizer } from './tokenizer.js';

const SENTENCE = 'Hello world, こんにちは 123 <s>!';
const encoder = new TextEncoder();
const read = (file: string) => readFileSync(tokenizerFixturePath(file));

describe('tokenizer.json fuzz', () => {
  it('accepts each mutated tokenizer.json or rejects it with an error naming tokenizer.json, in bounded time and memory', async () => {
    const neox = read('neox-bpe/tokenizer.json');
    const llama = read('llama-bpe/tokenizer.json');
    const vocab = JSON.parse(neox.toString('utf8'));
    // biome-ignore lint/suspicious/noExplicitAny: edits of a parsed tokenizer.json
    const hostile = (edit: (t: Record<string, any>) => void) => {
      const t = structuredClone(vocab);
      edit(t);
      return encoder.encode(JSON.stringify(t));
    };
    /** tokenizer.json with its pre_tokenizer wrapped in `depth` one-element Sequences (written as text: too deep to stringify). */
    const nested = (depth: number) => {
      const inner = JSON.stringify(vocab.pre_tokenizer);
      const text = JSON.stringify({ ...vocab, pre_tokenizer: 'HOLE' });
      const deep = `${'{"type":"Sequence","pretokenizers":['.repeat(depth)}${inner}${']}'.repeat(depth)}`;
      return encoder.encode(text.replace('"HOLE"', deep));
    };
    const report = await runFuzz({
      reader: 'tokenizer.json',
      file: 'tokenizer.json',
      seeds: [new Uint8Array(neox), new Uint8Array(llama)],
      cases: 1000,
      mutators: TEXT_MUTATORS,
      extraCases: [
        { name: 'null', bytes: encoder.encode('null') },
        {
          name: 'id 1e8',
          bytes: hostile((t) => {
            t.model.vocab.zzz = 1e8;
          }),
        },
        {
          name: 'id 2^31',
          bytes: hostile((t) => {
            t.model.vocab.zzz = 2 ** 31;
          }),
        },
        {
          name: 'id -1',
          bytes: hostile((t) => {
            t.model.vocab.zzz = -1;
          }),
        },
        {
          name: 'id 1.5',
          bytes: hostile((t) => {
            t.model.vocab.zzz = 1.5;
          }),
        },
        {
          name: 'added id 1e8',
          bytes: hostile((t) => {
            t.added_tokens[0].id = 1e8;
          }),
        },
        {
          name: 'no model type',
          bytes: hostile((t) => {
            delete t.model.type;
          }),
        },
        { name: 'deep pre_tokenizer', bytes: nested(100_000) },
        {
          name: 'catastrophic Split regex',
          bytes: hostile((t) => {
            t.pre_tokenizer = {
              type: 'Sequence',
              pretokenizers: [{ type: 'Split', pattern: { Regex: '(.+)+Z' }, behavior: 'Isolated' }, t.pre_tokenizer],
            };
          }),
        },
      ],
      read(bytes) {
        const tok = createTokenizer({ 'tokenizer.json': new TextDecoder().decode(bytes) });
        return tok.encode(SENTENCE);
      },
    });
    expect(report.failures, describeFailures(report)).toEqual([]);
  }, 120_000);
});
