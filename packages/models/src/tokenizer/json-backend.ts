/**
 * tokenizer.json through @huggingface/tokenizers (byte-level BPE of GPT-NeoX / open-calm,
 * Llama's BPE with byte fallback, unigram, WordPiece).
 */

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { TokenizerBackend, TokenizerSpecialTokens } from './backend.js';
import { parseJsonFile } from './config.js';
import { checkTokenizerJson } from './json-validate.js';

const FILE = 'tokenizer.json';
/** stands for the sequence when asking the post-processor which tokens it adds */
const SEQUENCE_SENTINEL = '\u0000peft-sequence\u0000';

type PostProcess = (tokens: string[], pair: null, addSpecialTokens: boolean) => { tokens: string[] };

export interface JsonBackendOptions {
  additionalSpecialTokens: string[];
  cleanUpTokenizationSpaces: boolean;
  eosToken: string | null;
}

export class TokenizerJsonBackend implements TokenizerBackend {
  readonly source = 'tokenizer.json' as const;
  readonly vocabSize: number;
  readonly ownSpecialTokens: readonly string[];
  private readonly hf: HfTokenizer;
  private readonly cleanUp: boolean;
  private specialIds = new Set<number>();

  constructor(text: string, options: JsonBackendOptions) {
    const json = parseJsonFile(text, FILE);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new Error(`${FILE} must hold a JSON object`);
    }
    const tok = json as Record<string, unknown>;
    checkTokenizerJson(tok, FILE);
    const model = tok.model as { type?: unknown; vocab?: unknown };
    const added = (tok.added_tokens ?? []) as unknown[];
    const complete = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tok,
      added_tokens: added,
    };
    try {
      this.hf = new HfTokenizer(complete, {
        additional_special_tokens: options.additionalSpecialTokens,
        clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces,
        ...(options.eosToken !== null ? { eos_token: options.eosToken } : {}),
      });
    } catch (e) {
      throw new Error(`${FILE} could not be loaded (model type ${JSON.stringify(model.type)}): ${(e as Error).message}`);
    }
    this.cleanUp = options.cleanUpTokenizationSpaces;
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.ownSpecialTokens = (added as { content?: unknown; special?: unknown }[])
      .filter((t) => t.special === true && typeof t.content === 'string')
      .map((t) => t.content as string);
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.hf.id_to_token(id) ?? null;
  }

  defaultSpecialIds(): { unk_token?: number } {
    const unk = (this.hf.model as unknown as { unk_token_id?: number } | null)?.unk_token_id;
    return unk === undefined ? {} : { unk_token: unk };
  }

  setSpecialTokens(tokens: TokenizerSpecialTokens): void {
    // added_tokens in tokenizer.json are split out by the library; these are what decode skips
    this.specialIds = new Set(tokens.all.map((t) => this.hf.token_to_id(t)).filter((id): id is number => id !== undefined));
  }

  encodeText(text: string): number[] {
    return guarded('encoding', () => this.hf.encode(text, { add_special_tokens: false }).ids);
  }

  defaultAffixes(): { prefix: number[]; suffix: number[] } | null {
    const post = this.hf.post_processor as unknown as PostProcess | null;
    if (!post) return { prefix: [], suffix: [] };
    const tokens = guarded('running post_processor', () => post([SEQUENCE_SENTINEL], null, true).tokens);
    const at = tokens.indexOf(SEQUENCE_SENTINEL);
    const ids = (ts: string[]) =>
      ts.map((t) => {
        const id = this.hf.token_to_id(t);
        if (id === undefined) throw new Error(`${FILE} post_processor adds "${t}", which is not in the vocabulary`);
        return id;
      });
    return { prefix: ids(tokens.slice(0, at)), suffix: ids(tokens.slice(at + 1)) };
  }

  decode(ids: readonly number[], skipSpecial: boolean): string {
    const kept = skipSpecial ? ids.filter((id) => !this.specialIds.has(id)) : [...ids];
    if (kept.length === 0) return '';
    return guarded('decoding', () =>
      this.hf.decode(kept, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: this.cleanUp }),
    );
  }
}

/**
 * Runs a library call on a validated tokenizer.json; a failure that validation did not foresee
 * (a component field of an unexpected type) becomes an error naming the file, not a bare TypeError.
 */
function guarded<T>(what: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    const message = (e as Error)?.message ?? String(e);
    throw new Error(`${FILE}: ${what} failed, the file's components are malformed: ${message.slice(0, 300)}`);
  }
}
