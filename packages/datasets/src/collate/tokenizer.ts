/**
 * What collation needs from a tokenizer. `encode(text)` returns the ids the model's tokenizer gives
 * by default (with the special tokens it adds, as Hugging Face `tokenizer(text)` does);
 * `encode(text, { addSpecialTokens: false })` the ids of the text alone.
 */
export interface TextTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  padTokenId: number;
  eosTokenId?: number;
}

/** Label value ignored by the loss (PyTorch's cross-entropy `ignore_index`). */
export const IGNORE_INDEX = -100;
