import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tokenizerFixturePath } from './fixtures.js';
import { createTokenizer } from './tokenizer.js';

// biome-ignore lint/suspicious/noExplicitAny: edits of a parsed tokenizer.json
type Json = Record<string, any>;
const neox = JSON.parse(readFileSync(tokenizerFixturePath('neox-bpe/tokenizer.json'), 'utf8')) as Json;

/** The neox fixture with `edit` applied; the time and error of loading it and encoding a sentence. */
function load(edit: (t: Json) => void): { error: Error | null; ms: number } {
  const t = structuredClone(neox);
  edit(t);
  const text = JSON.stringify(t);
  const started = performance.now();
  let error: Error | null = null;
  try {
    createTokenizer({ 'tokenizer.json': text }).encode('Hello world');
  } catch (e) {
    error = e as Error;
  }
  return { error, ms: performance.now() - started };
}

function rejects(edit: (t: Json) => void, message: string): void {
  const { error, ms } = load(edit);
  expect(error?.message).toContain(message);
  expect(error?.constructor).toBe(Error);
  expect(ms).toBeLessThan(500);
}

describe('tokenizer.json validation', () => {
  it('refuses ids far beyond the vocabulary at once instead of sizing arrays by them', () => {
    // Before: an id of 1e8 loaded in 7.5–16 s (an array of 1e8 slots), 2^31 ran for minutes.
    rejects(
      (t) => (t.model.vocab.zzz = 1e8),
      'tokenizer.json: model.vocab["zzz"] is 100000000: expected a non-negative integer id below 66660 (twice the number of tokens plus 65536)',
    );
    rejects(
      (t) => (t.model.vocab.zzz = 2 ** 31),
      'tokenizer.json: model.vocab["zzz"] is 2147483648: expected a non-negative integer id below 66660',
    );
    rejects(
      (t) => (t.added_tokens[0].id = 1e8),
      'tokenizer.json: added_tokens[0].id is 100000000: expected a non-negative integer id below 66658',
    );
  });

  it('refuses ids that are not non-negative integers, and duplicate ids', () => {
    for (const bad of [-1, 1.5, '5', null]) {
      const { error } = load((t) => (t.model.vocab.zzz = bad));
      expect(error?.message).toContain(`tokenizer.json: model.vocab["zzz"] is ${JSON.stringify(bad)}: expected a non-negative integer id`);
    }
    rejects((t) => (t.model.vocab.zzz = 5), 'tokenizer.json: model.vocab["zzz"] has id 5, which model.vocab["ă"] has too');
  });

  it('checks the model: type, vocab, merges', () => {
    rejects((t) => delete t.model.type, 'tokenizer.json: model.type is missing: expected one of BPE, WordPiece, Unigram, WordLevel');
    rejects((t) => (t.model.vocab = null), 'tokenizer.json: model.vocab is null: expected an object mapping tokens to ids (BPE)');
    rejects((t) => (t.model.merges = null), 'tokenizer.json: model.merges is null: expected a list of merges ("a b" or ["a", "b"])');
    rejects(
      (t) => t.model.merges.push('qqq rrr'),
      `tokenizer.json: model.merges[${neox.model.merges.length}] merges "qqq", which is not in model.vocab`,
    );
    rejects((t) => (t.model.merges[0] = 'a b c'), 'tokenizer.json: model.merges[0] is "a b c": expected two tokens ("a b" or ["a", "b"])');
    rejects((t) => (t.model.merges[1] = 7), 'tokenizer.json: model.merges[1] is 7: expected "a b" or ["a", "b"]');
    rejects(
      (t) =>
        (t.model = {
          type: 'Unigram',
          vocab: [
            ['a', 0],
            ['a', -1],
          ],
        }),
      'tokenizer.json: model.vocab[1] repeats the token "a" of model.vocab[0]',
    );
    rejects(
      (t) => (t.model = { type: 'Unigram', vocab: [['a', 0]], unk_id: 4 }),
      'tokenizer.json: model.unk_id is 4: expected null or an id below the vocabulary size 1',
    );
  });

  it('checks added_tokens', () => {
    rejects((t) => (t.added_tokens = {}), 'tokenizer.json: added_tokens is {}: expected a list');
    rejects((t) => (t.added_tokens[0] = null), 'tokenizer.json: added_tokens[0] is null: expected an object with "id" and "content"');
    rejects((t) => (t.added_tokens[0].content = null), 'tokenizer.json: added_tokens[0].content is null: expected a non-empty string');
    rejects((t) => (t.added_tokens[0].special = 'yes'), 'tokenizer.json: added_tokens[0].special is "yes": expected true or false');
    rejects(
      (t) => (t.added_tokens[0].id = 5),
      'tokenizer.json: added_tokens[0].id is 5, which the vocabulary gives to "ă", not to "<|endoftext|>"',
    );
  });

  it('bounds component nesting and checks component types and post_processor fields', () => {
    const deep = (d: number) => {
      let n: unknown = neox.pre_tokenizer;
      for (let i = 0; i < d; i++) n = { type: 'Sequence', pretokenizers: [n] };
      return n;
    };
    expect(load((t) => (t.pre_tokenizer = deep(3))).error).toBeNull();
    const { error } = load((t) => (t.pre_tokenizer = deep(40)));
    // Before: 100,000 levels overflowed the stack inside the library ("Maximum call stack size exceeded").
    expect(error?.message).toMatch(/^tokenizer\.json: pre_tokenizer(\.pretokenizers\[0\]){16} nests Sequences more than 16 deep$/);
    rejects((t) => (t.normalizer = { type: 'Nope' }), 'tokenizer.json: normalizer.type is "Nope": expected one of BertNormalizer');
    rejects((t) => (t.decoder = 5), 'tokenizer.json: decoder is 5: expected an object with a "type"');
    rejects(
      (t) => (t.post_processor = { type: 'TemplateProcessing', single: 5 }),
      'tokenizer.json: post_processor.single is 5: expected a list of {"SpecialToken": …} or {"Sequence": …} items',
    );
    rejects(
      (t) => (t.pre_tokenizer = { type: 'Split', pattern: { Regex: 5 }, behavior: 'Isolated' }),
      'tokenizer.json: pre_tokenizer.pattern is {"Regex":5}: expected {"String": text} or {"Regex": pattern}',
    );
  });

  it('refuses Split / Replace regexes that repeat a repeating group (catastrophic backtracking on encode)', () => {
    const split = (regex: string) => (t: Json) => {
      t.pre_tokenizer = {
        type: 'Sequence',
        pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, t.pre_tokenizer],
      };
    };
    // Before: encoding a 40-character sentence with (.+)+Z ran for more than 60 s.
    rejects(
      split('(.+)+Z'),
      'tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex "(.+)+Z" repeats a group that itself repeats (the quantifier at character 5)',
    );
    rejects(
      (t) => (t.normalizer = { type: 'Replace', pattern: { Regex: '(\\w*,)*x' }, content: '' }),
      'tokenizer.json: normalizer.pattern.Regex',
    );
    // The regexes of real tokenizers (GPT-2, Llama 3, BLOOM) pass.
    for (const regex of [
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      ' ?[^(\\s|[.,!?…。，、।۔،])]+',
    ]) {
      expect(load(split(regex)).error, regex).toBeNull();
    }
  });
});
