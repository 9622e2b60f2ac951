/** The file contents `createTokenizer` reads, keyed by their names in a Hugging Face folder. */
export interface TokenizerFiles {
  'tokenizer.json'?: string;
  'tokenizer_config.json'?: string;
  'special_tokens_map.json'?: string;
  /** SentencePiece model (T5 / rinna name) */
  'spiece.model'?: Uint8Array;
  /** SentencePiece model (Llama name) */
  'tokenizer.model'?: Uint8Array;
  /** other files of the folder are ignored */
  [file: string]: string | Uint8Array | undefined;
}

export interface CreateTokenizerOptions {
  /**
   * Which to use when a folder has both tokenizer.json and a SentencePiece model.
   * Default 'tokenizer.json' (transformers' fast tokenizer); 'sentencepiece' is the slow one.
   */
  prefer?: 'tokenizer.json' | 'sentencepiece';
}

export interface EncodeOptions {
  /** add bos / eos as the tokenizer's config says (default true) */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** drop bos / eos / pad / unk and other special tokens (default false) */
  skipSpecialTokens?: boolean;
}

export interface EncodeBatchOptions extends EncodeOptions {
  /** truncation and padding: 'max_length' length; defaults to model_max_length of tokenizer_config.json */
  maxLength?: number;
  /** cut sequences (special tokens kept) to maxLength (default false) */
  truncation?: boolean;
  /** which end truncation cuts (default: truncation_side of tokenizer_config.json, else 'right') */
  truncationSide?: 'right' | 'left';
  /** 'longest' pads to the longest sequence, 'max_length' to maxLength; false (default) does not pad */
  padding?: 'longest' | 'max_length' | false;
  /** where padding goes (default: padding_side of tokenizer_config.json, else 'right') */
  paddingSide?: 'right' | 'left';
  /** pad with this id, e.g. `tokenizer.eosTokenId` for a model that has no pad token */
  padTokenId?: number;
}

export interface BatchEncoding {
  inputIds: number[][];
  /** 1 for tokens, 0 for padding */
  attentionMask: number[][];
}

export interface SpecialTokens {
  bos: string | null;
  eos: string | null;
  unk: string | null;
  pad: string | null;
  /** every special token (the above, sep/cls/mask, additional and added special tokens) */
  all: string[];
}

export interface Tokenizer {
  /** which file it runs: tokenizer.json (@huggingface/tokenizers) or a SentencePiece model (slow tokenizer) */
  readonly source: 'tokenizer.json' | 'spiece.model' | 'tokenizer.model';
  /** number of ids, added tokens included (max id + 1) */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly specialTokens: SpecialTokens;
  /** whether `encode` with special tokens starts with bos / ends with eos */
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly paddingSide: 'right' | 'left';
  readonly modelMaxLength: number | null;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  encodeBatch(texts: readonly string[], options?: EncodeBatchOptions): BatchEncoding;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
}
