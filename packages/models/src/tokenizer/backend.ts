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
  /** Text of ids (already range-checked); `special` holds the ids to drop when skipping. */
  decode(ids: readonly number[], skipSpecial: boolean, special: ReadonlySet<number>): string;
  /**
   * Called once with the special and added token texts from the configs; a format that
   * does not split them out of the text itself (SentencePiece) does it from then on.
   */
  setSplitTokens(tokens: readonly string[]): void;
  /** ids the format itself names for tokens the configs do not mention (-1 or absent: none) */
  defaultSpecialIds(): Partial<Record<'bos_token' | 'eos_token' | 'unk_token' | 'pad_token', number>>;
  /** special token texts the format marks itself (tokenizer.json added_tokens with special: true) */
  readonly ownSpecialTokens: readonly string[];
}
