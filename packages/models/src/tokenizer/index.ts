/**
 * Tokenizers of Hugging Face model folders, browser-safe: give the files' contents.
 * Node: `loadTokenizer(dir)` from ./node.ts reads them from a folder.
 */

export { SentencePieceProcessor } from './sentencepiece/processor.js';
export { createTokenizer, TOKENIZER_MODEL_FILES } from './tokenizer.js';
export type {
  BatchEncoding,
  CreateTokenizerOptions,
  DecodeOptions,
  EncodeBatchOptions,
  EncodeOptions,
  SpecialTokens,
  Tokenizer,
  TokenizerFiles,
} from './types.js';
