import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TOKENIZER_FIXTURE_FILES, type TokenizerFixture, tokenizerFixturePath } from './fixtures.js';
import { createTokenizer } from './tokenizer.js';
import type { Tokenizer, TokenizerFiles } from './types.js';

/**
 * special-token-goldens.json (make-tokenizer-fixtures.py): strings with special-token text
 * through transformers 4.x, the slow tokenizer classes for a SentencePiece model and the
 * fast tokenizer for tokenizer.json.
 */
interface Variant {
  folder: TokenizerFixture;
  source: 'sentencepiece' | 'tokenizer.json';
  tokenizerConfig: Record<string, unknown>;
  tokenizerJson?: { metaspace?: boolean; addedTokens?: { id: number }[] };
  reference: string;
  encode: number[][];
  encodePlain: number[][];
  decode: string[];
  decodeSkip: string[];
  decodeCases: { ids: number[]; decoded: string; decodedSkip: string }[];
}

const goldens = JSON.parse(readFileSync(tokenizerFixturePath('special-token-goldens.json'), 'utf8')) as {
  strings: string[];
  variants: Record<string, Variant>;
};

/** The variant's folder with its tokenizer_config.json keys and tokenizer.json changes applied. */
function variantTokenizer(v: Variant): Tokenizer {
  const files: TokenizerFiles = {};
  for (const name of TOKENIZER_FIXTURE_FILES[v.folder]) {
    const path = tokenizerFixturePath(`${v.folder}/${name}`);
    files[name] = name.endsWith('.model') ? new Uint8Array(readFileSync(path)) : readFileSync(path, 'utf8');
  }
  const config = { ...JSON.parse(files['tokenizer_config.json'] as string), ...v.tokenizerConfig };
  files['tokenizer_config.json'] = JSON.stringify(config);
  if (v.source === 'tokenizer.json' && v.tokenizerJson) {
    const json = JSON.parse(files['tokenizer.json'] as string);
    if (v.tokenizerJson.metaspace) {
      // the newer Llama converter form, as make-tokenizer-fixtures.py's metaspace_variant
      const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
      json.normalizer = null;
      json.pre_tokenizer = metaspace;
      json.decoder = metaspace;
    }
    const have = new Set(json.added_tokens.map((t: { id: number }) => t.id));
    for (const t of v.tokenizerJson.addedTokens ?? []) if (!have.has(t.id)) json.added_tokens.push(t);
    files['tokenizer.json'] = JSON.stringify(json);
  }
  return createTokenizer(files, { prefer: v.source === 'sentencepiece' ? 'sentencepiece' : 'tokenizer.json' });
}

describe('special-token text against transformers (special-token-goldens.json)', () => {
  for (const [name, v] of Object.entries(goldens.variants)) {
    describe(`${name}: ${v.reference}`, () => {
      let made: Tokenizer | undefined;
      const tok = () => {
        made ??= variantTokenizer(v);
        return made;
      };
      const show = (ids: readonly number[]) => ids.map((id) => tok().idToToken(id)).join(' | ');
      const check = (what: (text: string, i: number) => [unknown, unknown]) => {
        const mismatches: string[] = [];
        goldens.strings.forEach((text, i) => {
          const [got, want] = what(text, i);
          if (JSON.stringify(got) !== JSON.stringify(want)) {
            const fmt = (x: unknown) => (Array.isArray(x) ? `${JSON.stringify(x)} ${show(x)}` : JSON.stringify(x));
            mismatches.push(`${JSON.stringify(text)}\n  got  ${fmt(got)}\n  want ${fmt(want)}`);
          }
        });
        expect(mismatches).toEqual([]);
      };

      it(`is read from ${v.source === 'sentencepiece' ? 'the SentencePiece model' : 'tokenizer.json'}`, () => {
        expect(tok().source === 'tokenizer.json').toBe(v.source === 'tokenizer.json');
      });

      it('encodes to the reference ids with the special tokens added', () => {
        check((text, i) => [tok().encode(text), v.encode[i]]);
      });

      it('encodes to the reference ids without them', () => {
        check((text, i) => [tok().encode(text, { addSpecialTokens: false }), v.encodePlain[i]]);
      });

      it('decodes those ids to the reference text', () => {
        check((_, i) => [tok().decode(v.encode[i]), v.decode[i]]);
      });

      it('decodes them to the reference text skipping special tokens', () => {
        check((_, i) => [tok().decode(v.encode[i], { skipSpecialTokens: true }), v.decodeSkip[i]]);
      });

      it('decodes the hand-written id lists', () => {
        for (const c of v.decodeCases) {
          expect(tok().decode(c.ids), show(c.ids)).toBe(c.decoded);
          expect(tok().decode(c.ids, { skipSpecialTokens: true }), show(c.ids)).toBe(c.decodedSkip);
        }
      });
    });
  }
});

describe('hostile added_tokens_decoder', () => {
  const dir = tokenizerFixturePath('sp-unigram');
  const model = new Uint8Array(readFileSync(`${dir}/spiece.model`));
  const config = (id: string) =>
    JSON.stringify({
      ...JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8')),
      added_tokens_decoder: { [id]: { content: '<zz>', special: true } },
    });

  it('refuses keys that are not token ids, naming tokenizer_config.json and the key', () => {
    for (const id of ['-1', '1.5', 'abc', '2147483648']) {
      expect(() => createTokenizer({ 'spiece.model': model, 'tokenizer_config.json': config(id) })).toThrow(
        `tokenizer_config.json added_tokens_decoder has the key "${id}": keys must be token ids (non-negative integers below 2^31)`,
      );
    }
  });

  it('refuses an id far past the SentencePiece pieces instead of taking it as the vocabulary size', () => {
    // Before: accepted, with a vocabulary size of 1000000001.
    expect(() => createTokenizer({ 'spiece.model': model, 'tokenizer_config.json': config('1000000000') })).toThrow(
      'tokenizer_config.json added_tokens_decoder["1000000000"]: id 1000000000 is far beyond the 600 pieces of spiece.model (at most 66137)',
    );
    expect(createTokenizer({ 'spiece.model': model, 'tokenizer_config.json': config('600') }).vocabSize).toBe(601);
  });
});
