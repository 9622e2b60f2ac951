/** What a tokenizer format provides to `createTokenizer`'s common layer (special tokens, batching). */
export interface TokenizerBackend {
  readonly source: 'tokenizer.json' | 'spiece.model' | 'tokenizer.model';
  /** max id + 1 */
  readonly vocabSize: number;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
  /** Ids of `text` without bos/eos; special tokens written in the text are recognized. */
  encodeText(text: string): number[];
  /**
   * Tokens the format itself adds around a sequence (tokenizer.json's post_processor),
   * used when tokenizer_config.json does not set add_bos_token / add_eos_token.
   * null: the format has no rule of its own.
   */
  defaultAffixes(): { prefix: number[]; suffix: number[] } | null;
  /** Text of ids (already range-checked); `skipSpecial` drops the special tokens. */
  decode(ids: readonly number[], skipSpecial: boolean): string;
  /**
   * Called once with the special tokens resolved from the configs; a format that does not
   * split them out of the text itself (SentencePiece) does it from then on.
   */
  setSpecialTokens(tokens: TokenizerSpecialTokens): void;
  /** ids the format itself names for tokens the configs do not mention (-1 or absent: none) */
  defaultSpecialIds(): Partial<Record<'bos_token' | 'eos_token' | 'unk_token' | 'pad_token', number>>;
  /** special token texts the format marks itself (tokenizer.json added_tokens with special: true) */
  readonly ownSpecialTokens: readonly string[];
}

/** The special tokens of a tokenizer, by text (each in the vocabulary). */
export interface TokenizerSpecialTokens {
  /**
   * transformers' `all_special_tokens`: bos, eos, unk, sep, pad, cls, mask and
   * additional_special_tokens as the configs name them
   */
  named: readonly string[];
  /** those and the added tokens marked special (added_tokens_decoder, tokenizer.json added_tokens) */
  all: readonly string[];
  /** additional_special_tokens */
  additional: readonly string[];
  unk: string | null;
}
