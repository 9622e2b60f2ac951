/**
 * createTokenizer: picks the format from the files of a Hugging Face folder, resolves
 * special tokens from its configs, and adds what transformers' tokenizers add on top of
 * the model: bos/eos, batching with truncation and padding, attention masks.
 */

import type { TokenizerBackend } from './backend.js';
import { readTokenizerSettings, type SpecialTokenKey, type TokenizerSettings } from './config.js';
import { TokenizerJsonBackend } from './json-backend.js';
import { SentencePieceBackend, type SlowTokenizerStyle } from './sentencepiece-backend.js';
import type {
  BatchEncoding,
  CreateTokenizerOptions,
  DecodeOptions,
  EncodeBatchOptions,
  EncodeOptions,
  SpecialTokens,
  Tokenizer,
  TokenizerFiles,
} from './types.js';

/** The tokenizer files looked for, in order of preference. */
export const TOKENIZER_MODEL_FILES = ['tokenizer.json', 'tokenizer.model', 'spiece.model'] as const;

/** The slow tokenizer class of tokenizer_config.json, "Fast" dropped (a SentencePiece model runs the slow one). */
function slowClass(tokenizerClass: string | null): string {
  return (tokenizerClass ?? '').replace(/Fast$/, '');
}

/** Slow tokenizer classes and what they add around a sequence when the config does not say. */
function classAffixes(tokenizerClass: string | null): { bos: boolean; eos: boolean } {
  const cls = slowClass(tokenizerClass);
  if (cls === 'T5Tokenizer') return { bos: false, eos: true };
  if (cls === 'LlamaTokenizer' || cls === 'CodeLlamaTokenizer' || cls === 'GemmaTokenizer') return { bos: true, eos: false };
  return { bos: false, eos: false };
}

function slowStyle(tokenizerClass: string | null): SlowTokenizerStyle {
  const cls = slowClass(tokenizerClass);
  return cls === 'T5Tokenizer' ? 't5' : cls === 'LlamaTokenizer' ? 'llama' : 'plain';
}

function chooseBackend(files: TokenizerFiles, settings: TokenizerSettings, options: CreateTokenizerOptions): TokenizerBackend {
  const json = files['tokenizer.json'];
  const spFile = files['tokenizer.model'] !== undefined ? 'tokenizer.model' : files['spiece.model'] !== undefined ? 'spiece.model' : null;
  const useSp = spFile !== null && (json === undefined || options.prefer === 'sentencepiece');
  if (useSp) {
    const bytes = files[spFile];
    if (!(bytes instanceof Uint8Array)) throw new Error(`${spFile} must be given as bytes (Uint8Array), got ${typeof bytes}`);
    return new SentencePieceBackend(bytes, spFile, {
      style: slowStyle(settings.tokenizerClass),
      legacy: settings.legacy ?? true,
      addPrefixSpace: settings.addPrefixSpace ?? true,
      cleanUpTokenizationSpaces: settings.cleanUpTokenizationSpaces,
      addedTokens: settings.addedTokens,
      tokenFlags: settings.tokenFlags,
    });
  }
  if (json !== undefined) {
    if (typeof json !== 'string') throw new Error(`tokenizer.json must be given as text, got ${typeof json}`);
    return new TokenizerJsonBackend(json, {
      additionalSpecialTokens: settings.additionalSpecialTokens,
      cleanUpTokenizationSpaces: settings.cleanUpTokenizationSpaces,
      eosToken: settings.tokens.eos_token ?? null,
    });
  }
  const given = Object.keys(files).filter((k) => files[k] !== undefined);
  throw new Error(
    `no tokenizer file: looked for ${TOKENIZER_MODEL_FILES.join(', ')}; ` + `given ${given.length > 0 ? given.join(', ') : 'no files'}`,
  );
}

/**
 * A tokenizer from the contents of a Hugging Face folder's tokenizer files.
 * tokenizer.json wins over a SentencePiece model unless `prefer: 'sentencepiece'`.
 *
 * ```ts
 * const tok = createTokenizer({ 'tokenizer.json': text, 'tokenizer_config.json': config });
 * tok.encode('こんにちは'); // number[]
 * ```
 */
export function createTokenizer(files: TokenizerFiles, options: CreateTokenizerOptions = {}): Tokenizer {
  const config = files['tokenizer_config.json'];
  const map = files['special_tokens_map.json'];
  if (config !== undefined && typeof config !== 'string') throw new Error('tokenizer_config.json must be given as text');
  if (map !== undefined && typeof map !== 'string') throw new Error('special_tokens_map.json must be given as text');
  const settings = readTokenizerSettings(config, map);
  return new HfFolderTokenizer(chooseBackend(files, settings, options), settings);
}

class HfFolderTokenizer implements Tokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly specialTokens: SpecialTokens;
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly paddingSide: 'right' | 'left';
  readonly modelMaxLength: number | null;
  private readonly prefix: number[];
  private readonly suffix: number[];
  /** the suffix (eos) is left out when the ids already end with it (T5Tokenizer) */
  private readonly suffixIfAbsent: boolean;
  private readonly truncationSide: 'right' | 'left';

  constructor(
    private readonly backend: TokenizerBackend,
    settings: TokenizerSettings,
  ) {
    const defaultIds: Partial<Record<SpecialTokenKey, number>> = backend.defaultSpecialIds();

    const resolved: Partial<Record<SpecialTokenKey, { text: string; id: number }>> = {};
    const resolve = (key: SpecialTokenKey, required: boolean) => {
      const text = settings.tokens[key];
      if (text === undefined) {
        // not in the configs: the format's own id (SentencePiece trainer ids, tokenizer.json unk), if any
        const id = defaultIds[key];
        if (id !== undefined && id >= 0) resolved[key] = { text: backend.idToToken(id) as string, id };
        return;
      }
      if (text === null) return;
      const id = backend.tokenToId(text);
      if (id === null) {
        if (!required) return;
        throw new Error(
          `${settings.tokenSource[key]} sets ${key} to ${JSON.stringify(text)}, which is not in the vocabulary of ` +
            `${backend.source} (${backend.vocabSize} tokens); fix ${key} or add the token to the vocabulary`,
        );
      }
      resolved[key] = { text, id };
    };
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) resolve(key, true);
    for (const key of ['sep_token', 'cls_token', 'mask_token'] as const) resolve(key, false);

    this.bosTokenId = resolved.bos_token?.id ?? null;
    this.eosTokenId = resolved.eos_token?.id ?? null;
    this.padTokenId = resolved.pad_token?.id ?? null;
    this.unkTokenId = resolved.unk_token?.id ?? null;

    const inVocabulary = (t: string) => backend.tokenToId(t) !== null;
    // transformers' all_special_tokens: the named ones, in SPECIAL_TOKENS_ATTRIBUTES order
    const named = new Set<string>();
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const) {
      const r = resolved[key];
      if (r) named.add(r.text);
    }
    const additional = settings.additionalSpecialTokens.filter(inVocabulary);
    for (const t of additional) named.add(t);
    const all = new Set(named);
    for (const t of settings.addedTokens) if (t.special) all.add(t.content);
    for (const t of backend.ownSpecialTokens) all.add(t);
    const allSpecial = [...all].filter(inVocabulary);
    this.specialTokens = {
      bos: resolved.bos_token?.text ?? null,
      eos: resolved.eos_token?.text ?? null,
      unk: resolved.unk_token?.text ?? null,
      pad: resolved.pad_token?.text ?? null,
      all: allSpecial,
    };
    backend.setSpecialTokens({ named: [...named], all: allSpecial, additional, unk: resolved.unk_token?.text ?? null });

    // What encode() adds: the config's add_bos_token / add_eos_token when it sets them
    // (as transformers' Llama and GPT-NeoX tokenizers rebuild their post-processor),
    // else tokenizer.json's post_processor, else the slow tokenizer class's rule.
    // A SentencePiece model with T5Tokenizer runs T5Tokenizer.build_inputs_with_special_tokens:
    // eos unless the text already ends with it, whatever add_bos_token / add_eos_token say.
    const t5 = backend.source !== 'tokenizer.json' && slowStyle(settings.tokenizerClass) === 't5';
    let affixes: { prefix: number[]; suffix: number[] };
    const defaults = backend.defaultAffixes();
    if (t5) {
      affixes = { prefix: [], suffix: this.eosTokenId === null ? [] : [this.eosTokenId] };
    } else if (settings.addBosToken !== undefined || settings.addEosToken !== undefined || defaults === null) {
      const byClass = classAffixes(settings.tokenizerClass);
      const addBos = settings.addBosToken ?? (defaults === null ? byClass.bos : false);
      const addEos = settings.addEosToken ?? (defaults === null ? byClass.eos : false);
      const need = (flag: boolean, id: number | null, what: string) => {
        if (flag && id === null) {
          throw new Error(
            `tokenizer_config.json: the tokenizer adds a ${what} token (add_${what}_token or tokenizer_class ${settings.tokenizerClass}) but has no ${what}_token (set ${what}_token in tokenizer_config.json or special_tokens_map.json, or add_${what}_token false)`,
          );
        }
        return flag && id !== null ? [id] : [];
      };
      affixes = { prefix: need(addBos, this.bosTokenId, 'bos'), suffix: need(addEos, this.eosTokenId, 'eos') };
    } else {
      affixes = defaults;
    }
    this.prefix = affixes.prefix;
    this.suffix = affixes.suffix;
    this.suffixIfAbsent = t5;
    this.addBosToken = this.bosTokenId !== null && this.prefix.includes(this.bosTokenId);
    this.addEosToken = this.eosTokenId !== null && this.suffix.includes(this.eosTokenId);
    this.paddingSide = settings.paddingSide;
    this.truncationSide = settings.truncationSide;
    this.modelMaxLength = settings.modelMaxLength;
  }

  get source(): Tokenizer['source'] {
    return this.backend.source;
  }

  get vocabSize(): number {
    return this.backend.vocabSize;
  }

  tokenToId(token: string): number | null {
    return this.backend.tokenToId(token);
  }

  idToToken(id: number): string | null {
    return this.backend.idToToken(id);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`encode: text must be a string, got ${typeof text}`);
    const ids = this.backend.encodeText(text);
    return (options.addSpecialTokens ?? true) ? this.withAffixes(ids) : ids;
  }

  /** build_inputs_with_special_tokens */
  private withAffixes(ids: number[]): number[] {
    const suffix = this.suffixIfAbsent && ids.length > 0 && ids[ids.length - 1] === this.suffix[0] ? [] : this.suffix;
    return [...this.prefix, ...ids, ...suffix];
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const n = this.backend.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new Error(`decode: id ${id} is not a token id of this tokenizer (0 to ${n - 1})`);
      }
    }
    return this.backend.decode(ids, options.skipSpecialTokens ?? false);
  }

  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): BatchEncoding {
    const addSpecial = options.addSpecialTokens ?? true;
    const padding = options.padding ?? false;
    const truncation = options.truncation ?? false;
    const paddingSide = options.paddingSide ?? this.paddingSide;
    const truncationSide = options.truncationSide ?? this.truncationSide;
    if (padding !== false && padding !== 'longest' && padding !== 'max_length') {
      throw new Error(`encodeBatch: padding must be 'longest', 'max_length' or false, got ${JSON.stringify(padding)}`);
    }
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (options.maxLength !== undefined && (!Number.isInteger(options.maxLength) || options.maxLength < 1)) {
      throw new Error(`encodeBatch: maxLength must be a positive integer, got ${options.maxLength}`);
    }
    if ((truncation || padding === 'max_length') && maxLength === null) {
      throw new Error(
        `encodeBatch: ${truncation ? 'truncation' : "padding: 'max_length'"} needs maxLength, and tokenizer_config.json has no model_max_length`,
      );
    }

    let padId: number | null = null;
    if (padding !== false) {
      padId = options.padTokenId ?? this.padTokenId;
      if (padId === null) {
        const eos = this.eosTokenId === null ? '' : ` (${this.eosTokenId}, ${JSON.stringify(this.specialTokens.eos)})`;
        throw new Error(
          `encodeBatch: padding needs a pad token, and this tokenizer has none (no pad_token in tokenizer_config.json or special_tokens_map.json). ` +
            `Set pad_token there, or pass { padTokenId: tokenizer.eosTokenId }${eos} to pad with eos (the attention mask hides padding).`,
        );
      }
      if (!Number.isInteger(padId) || padId < 0 || padId >= this.vocabSize) {
        throw new Error(`encodeBatch: padTokenId ${padId} is not a token id of this tokenizer (0 to ${this.vocabSize - 1})`);
      }
    }

    const added = addSpecial ? this.prefix.length + this.suffix.length : 0;
    const inputIds = texts.map((text) => {
      let ids = this.backend.encodeText(text);
      if (truncation && maxLength !== null) {
        const room = maxLength - added;
        if (room < 0) {
          throw new Error(`encodeBatch: maxLength ${maxLength} leaves no room next to ${added} special tokens`);
        }
        if (ids.length > room) ids = truncationSide === 'right' ? ids.slice(0, room) : ids.slice(ids.length - room);
      }
      return addSpecial ? this.withAffixes(ids) : ids;
    });

    const attentionMask = inputIds.map((ids) => ids.map(() => 1));
    if (padId !== null) {
      const target = padding === 'max_length' ? (maxLength as number) : inputIds.reduce((m, ids) => Math.max(m, ids.length), 0);
      for (let i = 0; i < inputIds.length; i++) {
        const missing = target - inputIds[i].length;
        if (missing <= 0) continue;
        const pads = new Array<number>(missing).fill(padId);
        const zeros = new Array<number>(missing).fill(0);
        if (paddingSide === 'right') {
          inputIds[i].push(...pads);
          attentionMask[i].push(...zeros);
        } else {
          inputIds[i].unshift(...pads);
          attentionMask[i].unshift(...zeros);
        }
      }
    }
    return { inputIds, attentionMask };
  }
}
