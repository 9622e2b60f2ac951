import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tokenizerFixturePath } from './fixtures.js';
import { loadTokenizer } from './node.js';
import { createTokenizer } from './tokenizer.js';
import type { Tokenizer } from './types.js';

interface JsonGoldens {
  reference: string;
  strings: string[];
  tokenizers: Record<string, { vocabSize: number; encode: number[][]; encodeWithSpecialTokens: number[][]; decoded: (string | null)[] }>;
}

const goldens = JSON.parse(readFileSync(tokenizerFixturePath('tokenizer-json-goldens.json'), 'utf8')) as JsonGoldens;
const read = (file: string) => readFileSync(tokenizerFixturePath(file), 'utf8');

/** The newer Llama converter form; make-tokenizer-fixtures.py's metaspace_variant does the same. */
function metaspaceVariant(json: string): string {
  const tok = JSON.parse(json);
  const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
  tok.normalizer = null;
  tok.pre_tokenizer = metaspace;
  tok.decoder = metaspace;
  return JSON.stringify(tok);
}

const tokenizers: Record<string, () => Tokenizer> = {
  'neox-bpe': () =>
    createTokenizer({ 'tokenizer.json': read('neox-bpe/tokenizer.json'), 'tokenizer_config.json': read('neox-bpe/tokenizer_config.json') }),
  'llama-bpe': () =>
    createTokenizer({
      'tokenizer.json': read('llama-bpe/tokenizer.json'),
      'tokenizer_config.json': read('llama-bpe/tokenizer_config.json'),
    }),
  'llama-bpe-metaspace': () =>
    createTokenizer({
      'tokenizer.json': metaspaceVariant(read('llama-bpe/tokenizer.json')),
      'tokenizer_config.json': read('llama-bpe/tokenizer_config.json'),
    }),
};

describe(`tokenizer.json against ${goldens.reference}`, () => {
  for (const [name, make] of Object.entries(tokenizers)) {
    describe(name, () => {
      const golden = goldens.tokenizers[name];
      const tok = make();

      it('has the reference vocabulary size', () => {
        expect(tok.vocabSize).toBe(golden.vocabSize);
      });

      it(`encodes the golden strings to the reference ids`, () => {
        const mismatches: string[] = [];
        goldens.strings.forEach((text, i) => {
          const ids = tok.encode(text, { addSpecialTokens: false });
          if (JSON.stringify(ids) !== JSON.stringify(golden.encode[i])) {
            const show = (xs: number[]) => xs.map((id) => tok.idToToken(id)).join(' | ');
            mismatches.push(`${JSON.stringify(text)}\n  got  ${show(ids)}\n  want ${show(golden.encode[i])}`);
          }
        });
        expect(mismatches).toEqual([]);
      });

      it('adds the reference special tokens', () => {
        goldens.strings.forEach((text, i) => {
          expect(tok.encode(text), JSON.stringify(text)).toEqual(golden.encodeWithSpecialTokens[i]);
        });
      });

      it('decodes the reference ids to the reference text', () => {
        goldens.strings.forEach((text, i) => {
          expect(tok.decode(golden.encode[i]), JSON.stringify(text)).toBe(golden.decoded[i] ?? text);
        });
      });
    });
  }
});

describe('tokenizer.json cases derived by hand', () => {
  it('neox-bpe: byte-level pieces, Ġ for a space, <|endoftext|> split out as one id', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('neox-bpe'));
    expect(tok.source).toBe('tokenizer.json');
    // the 256 byte symbols follow the two special tokens in byte order: "a" = 2 + 0x61
    expect(tok.encode('a')).toEqual([99]);
    expect(tok.tokenToId('a')).toBe(99);
    // byte 0x20 (space) is written U+0120 "Ġ" in the GPT-2 byte table
    expect(tok.idToToken(2 + 0x20)).toBe('\u0120');
    expect(tok.encode('<|endoftext|>')).toEqual([0]);
    const ids = tok.encode(' the');
    expect(ids.map((id) => tok.idToToken(id))).toEqual(['\u0120the']);
    expect(tok.encode('a<|endoftext|>a')).toEqual([99, 0, 99]);
    expect([tok.bosTokenId, tok.eosTokenId, tok.unkTokenId, tok.padTokenId]).toEqual([0, 0, 0, null]);
    expect(tok.addBosToken).toBe(false);
    expect(tok.addEosToken).toBe(false);
    expect(tok.decode(tok.encode('日本語 ok  🍣'))).toBe('日本語 ok  🍣');
    expect(tok.decode([99, 0, 99], { skipSpecialTokens: true })).toBe('aa');
    expect(tok.decode([99, 0, 99])).toBe('a<|endoftext|>a');
  });

  it('llama-bpe: ▁ prefix, byte fallback for unseen characters, <s> prepended', async () => {
    const tok = await loadTokenizer(tokenizerFixturePath('llama-bpe'));
    expect(tok.source).toBe('tokenizer.json');
    expect([tok.unkTokenId, tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([0, 1, 2, null]);
    // 龘 is not in the corpus: three byte pieces E9 BE 98; byte pieces sit at 3 + byte.
    const ids = tok.encode('龘', { addSpecialTokens: false });
    const pieces = ids.map((id) => tok.idToToken(id));
    expect(pieces.slice(-3)).toEqual(['<0xE9>', '<0xBE>', '<0x98>']);
    expect(ids.slice(-3)).toEqual([3 + 0xe9, 3 + 0xbe, 3 + 0x98]);
    expect(pieces[0]).toBe('\u2581');
    expect(tok.encode('龘')[0]).toBe(1);
    expect(tok.decode(tok.encode('龘'), { skipSpecialTokens: true })).toBe('龘');
    expect(tok.decode(tok.encode('龘'))).toBe('<s> 龘');
  });
});

describe('tokenizer.json errors', () => {
  it('names the file and the parse error', () => {
    expect(() => createTokenizer({ 'tokenizer.json': '{"model": ' })).toThrow(/^tokenizer\.json is not valid JSON: .+/);
  });

  it('names the file when the model is missing', () => {
    expect(() => createTokenizer({ 'tokenizer.json': '{"added_tokens": []}' })).toThrow(
      'tokenizer.json: model is missing: expected an object with "type" and "vocab"',
    );
  });

  it('names the file and the field of a model type the library does not know', () => {
    expect(() => createTokenizer({ 'tokenizer.json': '{"model": {"type": "Nonsense"}}' })).toThrow(
      'tokenizer.json: model.type is "Nonsense": expected one of BPE, WordPiece, Unigram, WordLevel',
    );
  });

  it('names the config file and key of a special token missing from the vocabulary', () => {
    expect(() =>
      createTokenizer({ 'tokenizer.json': read('neox-bpe/tokenizer.json'), 'tokenizer_config.json': '{"pad_token": "<pad>"}' }),
    ).toThrow(/tokenizer_config\.json sets pad_token to "<pad>", which is not in the vocabulary of tokenizer\.json/);
  });

  it('names tokenizer_config.json when it does not parse', () => {
    expect(() => createTokenizer({ 'tokenizer.json': read('neox-bpe/tokenizer.json'), 'tokenizer_config.json': '{' })).toThrow(
      /^tokenizer_config\.json is not valid JSON/,
    );
  });
});
