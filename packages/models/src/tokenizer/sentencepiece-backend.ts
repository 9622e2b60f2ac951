/**
 * A SentencePiece model alone (`spiece.model` / `tokenizer.model`) as transformers 4.x's
 * slow tokenizers run it (`PreTrainedTokenizer` with `T5Tokenizer` or `LlamaTokenizer`):
 *
 * - encode: added and special tokens are cut out of the text first (transformers' Trie,
 *   then AddedToken lstrip / rstrip / single_word), each piece between them goes through
 *   SentencePiece on its own. `legacy: false` (T5 / Llama) turns the model's dummy prefix
 *   off, writes ▁ for spaces and prefixes one ▁ to the text instead, so a piece after a
 *   special token gets no extra ▁.
 * - decode: the slow `_decode`: non-special added tokens stand apart, joined with spaces;
 *   the runs between them go through the class's `convert_tokens_to_string`, where special
 *   tokens are written as they are (T5: a space before a special token that follows text,
 *   and the result stripped; Llama with `legacy`: the same space, not stripped); optional
 *   `clean_up_tokenization_spaces`.
 */

import type { TokenizerBackend, TokenizerSpecialTokens } from './backend.js';
import type { AddedTokenEntry, AddedTokenFlags } from './config.js';
import { SentencePieceProcessor } from './sentencepiece/processor.js';
import { AddedTokenTrie } from './trie.js';

const SPIECE_UNDERLINE = '\u2581';

/** whose `tokenize` / `convert_tokens_to_string` run: T5Tokenizer, LlamaTokenizer, or neither */
export type SlowTokenizerStyle = 't5' | 'llama' | 'plain';

export interface SentencePieceBackendOptions {
  style: SlowTokenizerStyle;
  /** `legacy` of T5Tokenizer / LlamaTokenizer (transformers' default: true); other styles are always legacy */
  legacy: boolean;
  /** `add_prefix_space` of T5Tokenizer / LlamaTokenizer (default true) */
  addPrefixSpace: boolean;
  cleanUpTokenizationSpaces: boolean;
  /** tokenizer_config.json added_tokens_decoder; ids past the model's pieces extend the vocabulary */
  addedTokens: readonly AddedTokenEntry[];
  /** AddedToken flags of the special tokens (added_tokens_decoder's win) */
  tokenFlags: ReadonlyMap<string, AddedTokenFlags>;
}

const NO_FLAGS: AddedTokenFlags = { lstrip: false, rstrip: false, singleWord: false };

/** Python's str.isspace() characters, which str.strip() and friends strip (JS trim() differs: \x1c-\x1f, \x85, \ufeff). */
const PY_SPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
  0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

function isPySpace(ch: string): boolean {
  return PY_SPACE.has(ch.charCodeAt(0));
}

function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && isPySpace(s[i])) i++;
  return s.slice(i);
}

function pyRstrip(s: string): string {
  let j = s.length;
  while (j > 0 && isPySpace(s[j - 1])) j--;
  return s.slice(0, j);
}

/** transformers' `clean_up_tokenization`: English tokenization spaces before punctuation and clitics. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export class SentencePieceBackend implements TokenizerBackend {
  readonly sp: SentencePieceProcessor;
  readonly ownSpecialTokens: readonly string[] = [];
  readonly vocabSize: number;
  private readonly style: SlowTokenizerStyle;
  private readonly legacy: boolean;
  private readonly addPrefixSpace: boolean;
  private readonly cleanUp: boolean;
  private readonly tokenFlags: ReadonlyMap<string, AddedTokenFlags>;
  /** transformers' `_added_tokens_decoder` / `_added_tokens_encoder` */
  private readonly addedById = new Map<number, string>();
  private readonly addedByText = new Map<string, number>();
  private trie: AddedTokenTrie | null = null;
  /** all_special_tokens and their ids */
  private special = new Set<string>();
  private specialIds = new Set<number>();
  /** added tokens `_decode` keeps apart from the SentencePiece runs */
  private standAlone = new Set<string>();
  private unkText = '<unk>';
  private unkLength = 0;

  constructor(
    bytes: Uint8Array,
    readonly source: 'spiece.model' | 'tokenizer.model',
    options: SentencePieceBackendOptions,
  ) {
    this.style = options.style;
    this.legacy = options.style === 'plain' || options.legacy;
    this.addPrefixSpace = options.addPrefixSpace;
    this.cleanUp = options.cleanUpTokenizationSpaces;
    this.tokenFlags = options.tokenFlags;
    // legacy: false loads the model with add_dummy_prefix off (T5Tokenizer.get_spm_processor)
    this.sp = new SentencePieceProcessor(bytes, source, this.legacy ? {} : { addDummyPrefix: false });
    let size = this.sp.pieceSize;
    // Added tokens extend the vocabulary past the pieces; an id far past them is a broken config,
    // not a vocabulary of that size.
    const limit = this.sp.pieceSize + 2 * options.addedTokens.length + 65536;
    for (const t of options.addedTokens) {
      if (t.content.length === 0) continue;
      if (t.id >= limit) {
        throw new Error(
          `tokenizer_config.json added_tokens_decoder["${t.id}"]: id ${t.id} is far beyond the ${this.sp.pieceSize} pieces of ${source} (at most ${limit - 1})`,
        );
      }
      this.addedById.set(t.id, t.content);
      this.addedByText.set(t.content, t.id);
      size = Math.max(size, t.id + 1);
    }
    this.vocabSize = size;
  }

  tokenToId(token: string): number | null {
    return this.addedByText.get(token) ?? this.sp.pieceToId(token);
  }

  idToToken(id: number): string | null {
    return this.addedById.get(id) ?? this.sp.idToPiece(id);
  }

  setSpecialTokens(tokens: TokenizerSpecialTokens): void {
    this.special = new Set(tokens.named);
    // special tokens are added tokens too (at their vocabulary id), as the slow tokenizer adds them
    for (const t of tokens.named) {
      if (this.addedByText.has(t)) continue;
      const id = this.sp.pieceToId(t);
      if (id === null) continue;
      this.addedByText.set(t, id);
      if (!this.addedById.has(id)) this.addedById.set(id, t);
    }
    this.specialIds = new Set(tokens.named.map((t) => this.tokenToId(t)).filter((id): id is number => id !== null));
    this.standAlone = new Set([...this.addedByText.keys()].filter((t) => !this.special.has(t)));
    for (const t of tokens.additional) {
      const id = this.tokenToId(t);
      if (id !== null && id >= this.sp.pieceSize) this.standAlone.add(t);
    }
    this.trie = this.addedByText.size > 0 ? new AddedTokenTrie(this.addedByText.keys()) : null;
    this.unkText = tokens.unk ?? '<unk>';
    this.unkLength = this.sp.encode(this.unkText).length;
  }

  /** PreTrainedTokenizer.tokenize (with T5 / Llama's non-legacy prefix), as ids */
  encodeText(input: string): number[] {
    let text = input;
    const nonLegacy = !this.legacy && text.length > 0;
    if (nonLegacy) {
      text = text.replaceAll(SPIECE_UNDERLINE, ' ');
      if (this.addPrefixSpace) text = SPIECE_UNDERLINE + text;
    }
    const parts = this.trie ? this.trie.split(text) : [text];
    for (let i = 0; i < parts.length; i++) {
      const token = parts[i];
      if (!this.addedByText.has(token)) continue;
      const flags = this.tokenFlags.get(token) ?? NO_FLAGS;
      const left = i > 0 ? parts[i - 1] : '';
      const right = i < parts.length - 1 ? parts[i + 1] : '';
      if (flags.rstrip && right) parts[i + 1] = pyLstrip(right);
      if (flags.lstrip && left) parts[i - 1] = pyRstrip(left);
      if (flags.singleWord && left && left[left.length - 1] !== ' ') {
        parts[i - 1] += token;
        parts[i] = '';
      } else if (flags.singleWord && right && right[0] !== ' ') {
        parts[i + 1] = token + parts[i + 1];
        parts[i] = '';
      }
    }
    const ids: number[] = [];
    const fromAdded: boolean[] = [];
    for (const part of parts) {
      if (!part) continue;
      const added = this.addedByText.get(part);
      if (added !== undefined) {
        ids.push(added);
        fromAdded.push(true);
        continue;
      }
      for (const id of this.tokenizePiece(part)) {
        ids.push(id);
        fromAdded.push(false);
      }
    }
    // non-legacy: the ▁ put in front goes again when a special token follows it
    if (
      nonLegacy &&
      ids.length > 1 &&
      !fromAdded[0] &&
      this.sp.idToPiece(ids[0]) === SPIECE_UNDERLINE &&
      fromAdded[1] &&
      this.special.has(this.idToToken(ids[1]) as string)
    ) {
      ids.shift();
    }
    return ids;
  }

  /** T5Tokenizer / LlamaTokenizer `_tokenize` */
  private tokenizePiece(text: string): number[] {
    if (this.legacy || !(text.startsWith(SPIECE_UNDERLINE) || text.startsWith(' '))) return this.sp.encode(text);
    // without the dummy prefix sentencepiece drops a leading ▁; encode "<unk>" + text and cut "<unk>" off
    const ids = this.sp.encode(this.unkText + text);
    return ids.length >= this.unkLength ? ids.slice(this.unkLength) : ids;
  }

  defaultSpecialIds() {
    const sp = this.sp;
    return { bos_token: sp.bosId, eos_token: sp.eosId, unk_token: sp.unkId, pad_token: sp.padId };
  }

  defaultAffixes(): null {
    return null;
  }

  /** PreTrainedTokenizer._decode */
  decode(ids: readonly number[], skipSpecial: boolean): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (skipSpecial && this.specialIds.has(id)) continue;
      const token = this.idToToken(id);
      if (token === null) throw new Error(`decode: id ${id} is neither a piece of ${this.source} nor an added token`);
      tokens.push(token);
    }
    const texts: string[] = [];
    let run: string[] = [];
    for (const token of tokens) {
      if (skipSpecial && this.special.has(token)) continue;
      if (this.standAlone.has(token)) {
        if (run.length > 0) {
          const s = this.tokensToString(run);
          if (s.length > 0) texts.push(s);
          run = [];
        }
        texts.push(token);
      } else {
        run.push(token);
      }
    }
    if (run.length > 0) texts.push(this.tokensToString(run));
    const text = texts.join(' ');
    return this.cleanUp ? cleanUpTokenization(text) : text;
  }

  /** convert_tokens_to_string of the style's class */
  private tokensToString(input: readonly string[]): string {
    const tokens = [...input];
    if (this.style !== 'plain' && this.addPrefixSpace && tokens[0].startsWith(SPIECE_UNDERLINE)) {
      // the prefix space put in front at encode goes
      tokens[0] = tokens[0].slice(SPIECE_UNDERLINE.length);
    }
    let out = '';
    let run: string[] = [];
    let prevSpecial = false;
    tokens.forEach((token, i) => {
      if (this.special.has(token)) {
        const space = this.style === 't5' ? !prevSpecial : this.style === 'llama' ? !prevSpecial && i !== 0 && this.legacy : false;
        if (space) out += ' ';
        out += this.sp.decodePieces(run) + token;
        run = [];
        prevSpecial = true;
      } else {
        if (this.style === 'llama' && prevSpecial && i === 1 && this.addPrefixSpace && !token.startsWith(SPIECE_UNDERLINE)) {
          out += ' ';
        }
        run.push(token);
        prevSpecial = false;
      }
    });
    out += this.sp.decodePieces(run);
    return this.style === 't5' ? pyRstrip(pyLstrip(out)) : out;
  }
}
