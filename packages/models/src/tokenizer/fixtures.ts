/**
 * Paths of the tokenizer fixtures (Node only; for tests and tiny test checkpoints in this
 * repository, not part of the published API; the folders are not in the npm package).
 *
 *   neox-bpe/    tokenizer.json, byte-level BPE in the GPT-NeoX / open-calm format
 *                (<|endoftext|> = bos = eos = unk, no pad token)
 *   llama-bpe/   tokenizer.json (Llama 2 converter form, <s> added) + tokenizer.model
 *   sp-unigram/  spiece.model, SentencePiece unigram with byte fallback (rinna style:
 *                T5Tokenizer config, appends </s>, pad [PAD])
 *   sp-bpe/      tokenizer.model, SentencePiece BPE with byte fallback (slow Llama style)
 *
 * Each folder is what a Hugging Face model folder holds for its tokenizer (with
 * tokenizer_config.json and special_tokens_map.json), so `loadTokenizer(dir)` reads it;
 * copy its files next to a tiny checkpoint's config.json. Made by
 * packages/models/scripts/make-tokenizer-fixtures.py.
 */

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOKENIZER_FIXTURES_DIR: string = fileURLToPath(new URL('./fixtures', import.meta.url));

export const TOKENIZER_FIXTURES = ['neox-bpe', 'llama-bpe', 'sp-unigram', 'sp-bpe'] as const;
export type TokenizerFixture = (typeof TOKENIZER_FIXTURES)[number];

/** Absolute path of a fixture folder, or of a file under the fixtures folder. */
export function tokenizerFixturePath(name: TokenizerFixture | (string & {})): string {
  return join(TOKENIZER_FIXTURES_DIR, name);
}

/** The files of each fixture folder, for copying next to a test checkpoint. */
export const TOKENIZER_FIXTURE_FILES: Record<TokenizerFixture, readonly string[]> = {
  'neox-bpe': ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'],
  'llama-bpe': ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json'],
  'sp-unigram': ['spiece.model', 'tokenizer_config.json', 'special_tokens_map.json'],
  'sp-bpe': ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json'],
};
