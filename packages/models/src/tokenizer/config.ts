/**
 * Reads tokenizer_config.json and special_tokens_map.json the way transformers'
 * `from_pretrained` combines them: special_tokens_map.json wins for the keys it has,
 * unless tokenizer_config.json has added_tokens_decoder (then the map is not read);
 * token values may be strings, AddedToken objects ({ content, ... }) or null.
 */

export const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

export interface TokenizerSettings {
  /**
   * Token text per key: a string, null when a file sets it to null (none), undefined
   * when neither file mentions it (the tokenizer's own default applies).
   */
  tokens: Partial<Record<SpecialTokenKey, string | null>>;
  /** which file each token came from, for errors */
  tokenSource: Partial<Record<SpecialTokenKey, string>>;
  additionalSpecialTokens: string[];
  /** tokenizer_config.json added_tokens_decoder (transformers >= 4.34) */
  addedTokens: AddedTokenEntry[];
  /**
   * lstrip / rstrip / single_word of tokens written as AddedToken objects: the special
   * tokens and additional_special_tokens of both files, then added_tokens_decoder (which
   * wins, as transformers puts its entries in place of the others)
   */
  tokenFlags: Map<string, AddedTokenFlags>;
  addBosToken: boolean | undefined;
  addEosToken: boolean | undefined;
  paddingSide: 'right' | 'left';
  truncationSide: 'right' | 'left';
  /** null when absent or transformers' "very large" placeholder */
  modelMaxLength: number | null;
  tokenizerClass: string | null;
  cleanUpTokenizationSpaces: boolean;
  /** T5Tokenizer / LlamaTokenizer `legacy` (transformers' default when absent: true) */
  legacy: boolean | undefined;
  /** T5Tokenizer / LlamaTokenizer `add_prefix_space` (default true) */
  addPrefixSpace: boolean | undefined;
}

export interface AddedTokenFlags {
  /** eats the whitespace on its left */
  lstrip: boolean;
  /** eats the whitespace on its right */
  rstrip: boolean;
  /** only matches as a whole word */
  singleWord: boolean;
}

export interface AddedTokenEntry extends AddedTokenFlags {
  id: number;
  content: string;
  special: boolean;
}

/** Parses a JSON file's text, naming the file in the error. */
export function parseJsonFile(text: string, fileName: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${fileName} is not valid JSON: ${(e as Error).message}`);
  }
}

function asObject(value: unknown, fileName: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${fileName} must hold a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return value as Record<string, unknown>;
}

/** A token as the configs write it: "text", { content: "text", ... } or null. */
function tokenText(value: unknown, where: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new Error(`${where} must be a string, an AddedToken object with "content", or null; got ${JSON.stringify(value)}`);
}

/** The flags of an AddedToken object ({ content, lstrip, rstrip, single_word, ... }); null for a plain string. */
function tokenFlags(value: unknown): AddedTokenFlags | null {
  if (value === null || typeof value !== 'object') return null;
  const v = value as { lstrip?: unknown; rstrip?: unknown; single_word?: unknown };
  return { lstrip: v.lstrip === true, rstrip: v.rstrip === true, singleWord: v.single_word === true };
}

function side(value: unknown, where: string): 'right' | 'left' | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === 'right' || value === 'left') return value;
  throw new Error(`${where} must be "right" or "left", got ${JSON.stringify(value)}`);
}

function bool(value: unknown, where: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  throw new Error(`${where} must be true or false, got ${JSON.stringify(value)}`);
}

export function readTokenizerSettings(
  tokenizerConfigText: string | undefined,
  specialTokensMapText: string | undefined,
): TokenizerSettings {
  const CONFIG = 'tokenizer_config.json';
  const MAP = 'special_tokens_map.json';
  const config = tokenizerConfigText === undefined ? {} : asObject(parseJsonFile(tokenizerConfigText, CONFIG), CONFIG);
  const map = specialTokensMapText === undefined ? {} : asObject(parseJsonFile(specialTokensMapText, MAP), MAP);

  // transformers reads special_tokens_map.json only for configs without added_tokens_decoder
  // (saved before 4.34); then its entries replace tokenizer_config.json's
  const decoder = config.added_tokens_decoder;
  const hasDecoder = decoder !== undefined && decoder !== null;
  const files: (readonly [string, Record<string, unknown>])[] = hasDecoder
    ? [[CONFIG, config]]
    : [
        [CONFIG, config],
        [MAP, map],
      ];

  const tokens: TokenizerSettings['tokens'] = {};
  const tokenSource: TokenizerSettings['tokenSource'] = {};
  const flags = new Map<string, AddedTokenFlags>();
  for (const key of SPECIAL_TOKEN_KEYS) {
    let value: unknown;
    for (const [file, obj] of files) {
      if (key in obj) {
        tokens[key] = tokenText(obj[key], `${file} ${key}`);
        tokenSource[key] = file;
        value = obj[key];
      }
    }
    const text = tokens[key];
    if (text === undefined || text === null) continue;
    // the AddedToken object that won, or a plain string (no flags)
    const f = tokenFlags(value);
    if (f) flags.set(text, f);
    else flags.delete(text);
  }

  const additional = new Set<string>();
  for (const [file, obj] of files) {
    const list = obj.additional_special_tokens;
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new Error(`${file} additional_special_tokens must be a list`);
    list.forEach((t, i) => {
      const text = tokenText(t, `${file} additional_special_tokens[${i}]`);
      if (text === null || additional.has(text)) return;
      additional.add(text);
      const f = tokenFlags(t);
      if (f) flags.set(text, f);
    });
  }

  const addedTokens: TokenizerSettings['addedTokens'] = [];
  if (hasDecoder) {
    for (const [id, value] of Object.entries(asObject(decoder, `${CONFIG} added_tokens_decoder`))) {
      const shownId = JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}…` : id);
      if (!/^\d{1,10}$/.test(id) || Number(id) >= 2 ** 31) {
        throw new Error(`${CONFIG} added_tokens_decoder has the key ${shownId}: keys must be token ids (non-negative integers below 2^31)`);
      }
      const content = tokenText(value, `${CONFIG} added_tokens_decoder[${shownId}]`);
      if (content === null) continue;
      const special = (value as { special?: unknown }).special === true;
      const f = tokenFlags(value) ?? { lstrip: false, rstrip: false, singleWord: false };
      addedTokens.push({ id: Number(id), content, special, ...f });
      flags.set(content, f);
    }
  }

  const maxLen = config.model_max_length;
  const modelMaxLength = typeof maxLen === 'number' && Number.isInteger(maxLen) && maxLen > 0 && maxLen < 1e12 ? maxLen : null;
  const cls = config.tokenizer_class;

  return {
    tokens,
    tokenSource,
    additionalSpecialTokens: [...additional],
    addedTokens,
    tokenFlags: flags,
    addBosToken: bool(config.add_bos_token, `${CONFIG} add_bos_token`),
    addEosToken: bool(config.add_eos_token, `${CONFIG} add_eos_token`),
    paddingSide: side(config.padding_side, `${CONFIG} padding_side`) ?? 'right',
    truncationSide: side(config.truncation_side, `${CONFIG} truncation_side`) ?? 'right',
    modelMaxLength,
    tokenizerClass: typeof cls === 'string' ? cls : null,
    cleanUpTokenizationSpaces: bool(config.clean_up_tokenization_spaces, `${CONFIG} clean_up_tokenization_spaces`) ?? false,
    legacy: bool(config.legacy, `${CONFIG} legacy`),
    addPrefixSpace: bool(config.add_prefix_space, `${CONFIG} add_prefix_space`),
  };
}
