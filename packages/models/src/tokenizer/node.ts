/** Node helpers: read a Hugging Face model folder's tokenizer files. */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTokenizer, TOKENIZER_MODEL_FILES } from './tokenizer.js';
import type { CreateTokenizerOptions, Tokenizer, TokenizerFiles } from './types.js';

const TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;
const BINARY_FILES = ['tokenizer.model', 'spiece.model'] as const;

async function readIfPresent<T>(path: string, read: (p: string) => Promise<T>): Promise<T | undefined> {
  try {
    return await read(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The tokenizer files of a folder that exist, read (text files as UTF-8, models as bytes). */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const files: TokenizerFiles = {};
  await Promise.all([
    ...TEXT_FILES.map(async (name) => {
      const text = await readIfPresent(join(dir, name), (p) => readFile(p, 'utf8'));
      if (text !== undefined) files[name] = text;
    }),
    ...BINARY_FILES.map(async (name) => {
      const buf = await readIfPresent(join(dir, name), (p) => readFile(p));
      if (buf !== undefined) files[name] = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    }),
  ]);
  return files;
}

/**
 * The tokenizer of a local Hugging Face model folder: tokenizer.json (fast tokenizer) or
 * tokenizer.model / spiece.model (SentencePiece, as the slow tokenizer), with
 * tokenizer_config.json and special_tokens_map.json.
 *
 * ```ts
 * const tok = await loadTokenizer('/models/open-calm-small');
 * const { inputIds, attentionMask } = tok.encodeBatch(['こんにちは', '日本語'], { padding: 'longest', padTokenId: tok.eosTokenId ?? 0 });
 * ```
 */
export async function loadTokenizer(dir: string, options: CreateTokenizerOptions = {}): Promise<Tokenizer> {
  const files = await readTokenizerFiles(dir);
  if (!TOKENIZER_MODEL_FILES.some((name) => files[name] !== undefined)) {
    throw new Error(`no tokenizer in ${dir}: looked for ${TOKENIZER_MODEL_FILES.join(', ')}`);
  }
  try {
    return createTokenizer(files, options);
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`, { cause: e });
  }
}
