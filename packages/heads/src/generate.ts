import { argmax, noGrad, slice, type Tensor, tidy } from '@peft/core';
import { KVCache } from '@peft/models';
import { baseHidden, checkIds, inEvalMode, isTensor, type Rows } from './batch.js';
import type { CausalLMHead } from './causal-lm-head.js';

/** What generation needs of a tokenizer: decoding ids to text (for stop strings). */
export interface TokenDecoder {
  decode(ids: readonly number[]): string;
}

/**
 * Prompts for `generate`: token id rows of any lengths (left-padded here), an int32 tensor
 * [batch, seq] of equal-length prompts, or a padded batch with its attention mask (any padding
 * side; the real tokens are taken from the mask and left-padded again).
 */
export type Prompts = Rows | Tensor | { inputIds: Rows | Tensor; attentionMask?: Rows | Tensor | null };

export interface GenerateOptions {
  /** The most tokens added to each row (the EOS included). */
  maxNewTokens: number;
  /** Token id(s) that end a row; default the model config's `eos_token_id`; null: none. */
  eosTokenId?: number | readonly number[] | null;
  /**
   * Id placed on the left of shorter prompts and fed to finished rows (always masked out);
   * default the config's `pad_token_id`. Needed when the prompts have different lengths and no mask.
   */
  padTokenId?: number | null;
  /** A row ends once its decoded new text contains one of these; the output is cut before it. */
  stopStrings?: readonly string[];
  /** Decodes new tokens for `stopStrings` (and `generateText`). */
  tokenizer?: TokenDecoder;
}

export interface GenerateResult {
  /** New token ids per row, without the EOS, cut before a stop string. */
  tokens: number[][];
  /** The decoded new text per row, cut exactly before a stop string (when a tokenizer is given). */
  texts?: string[];
}

async function hostRows(x: Rows | Tensor, what: string): Promise<number[][]> {
  if (!isTensor(x)) return x.map((r) => [...r]);
  if (x.rank !== 2) throw new Error(`generate: ${what} ${x.describe()} must be [batch, seq]`);
  const [b, t] = x.shape as [number, number];
  const flat = Array.from(await x.data());
  return Array.from({ length: b }, (_, i) => flat.slice(i * t, (i + 1) * t));
}

/** The real tokens of each prompt, and an id for the padding. */
async function promptRows(
  prompts: Prompts,
  opts: GenerateOptions,
  configPad: number | null,
): Promise<{ rows: number[][]; pad: number | null }> {
  const explicitPad = opts.padTokenId ?? configPad;
  if (isTensor(prompts) || Array.isArray(prompts)) {
    const rows = await hostRows(prompts as Rows | Tensor, 'prompts');
    const lengths = rows.map((r) => r.length);
    if (explicitPad === null && lengths.some((n) => n !== lengths[0])) {
      throw new Error(
        `generate: the prompts have different lengths (${lengths.join(', ')}) and no pad id is known: pass opts.padTokenId (any id: padding is masked), or pass { inputIds, attentionMask } padded yourself`,
      );
    }
    return { rows, pad: explicitPad };
  }
  const batch = prompts as Exclude<Prompts, Rows | Tensor>;
  const ids = await hostRows(batch.inputIds, 'inputIds');
  const mask = batch.attentionMask ? await hostRows(batch.attentionMask, 'attentionMask') : null;
  if (mask && (mask.length !== ids.length || mask.some((r, i) => r.length !== ids[i]!.length))) {
    throw new Error(
      `generate: attentionMask (${mask.length} rows of ${mask.map((r) => r.length).join(', ')}) does not match inputIds (${ids.length} rows of ${ids.map((r) => r.length).join(', ')})`,
    );
  }
  if (!mask) {
    const lengths = ids.map((r) => r.length);
    if (lengths.some((n) => n !== lengths[0]) && explicitPad === null) {
      throw new Error(
        `generate: inputIds rows have different lengths (${lengths.join(', ')}) and there is no attentionMask or padTokenId to pad them`,
      );
    }
    return { rows: ids, pad: explicitPad };
  }
  let maskedId: number | null = null;
  const rows = ids.map((r, i) =>
    r.filter((id, j) => {
      if (mask[i]![j] !== 0) return true;
      maskedId ??= id;
      return false;
    }),
  );
  return { rows, pad: explicitPad ?? maskedId };
}

function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Batched greedy decoding with one KV-cache step per token (the engine behind CausalLMHead.generate). */
export async function greedyGenerate(head: CausalLMHead, prompts: Prompts, opts: GenerateOptions): Promise<GenerateResult> {
  const { model } = head;
  const config = model.config;
  const vocab = config.vocabSize;
  const max = opts.maxNewTokens;
  if (!Number.isInteger(max) || max < 0) throw new Error(`generate: maxNewTokens is ${max}; it must be an integer >= 0`);
  const stops = opts.stopStrings ?? [];
  if (stops.some((s) => typeof s !== 'string' || s.length === 0))
    throw new Error(`generate: stopStrings ${JSON.stringify(stops)} must be non-empty strings`);
  if (stops.length > 0 && !opts.tokenizer) throw new Error('generate: stopStrings need opts.tokenizer to decode the new tokens');
  const eosOpt = opts.eosTokenId === undefined ? config.eosTokenId : opts.eosTokenId;
  const eos = new Set(eosOpt === null ? [] : typeof eosOpt === 'number' ? [eosOpt] : eosOpt);

  const { rows, pad: padId } = await promptRows(prompts, opts, config.padTokenId);
  if (rows.length === 0) throw new Error('generate: no prompts');
  rows.forEach((r, i) => {
    if (r.length === 0) throw new Error(`generate: prompt row ${i} has no tokens`);
  });
  checkIds('generate', rows, vocab);
  const width = Math.max(...rows.map((r) => r.length));
  const pad = padId ?? eos.values().next().value ?? 0;
  if (!Number.isInteger(pad) || pad < 0 || pad >= vocab)
    throw new Error(`generate: padTokenId ${pad} is outside the vocabulary [0, ${vocab})`);
  const batch = rows.length;

  // Left padding: every row's newest token sits in the last column.
  let stepIds = rows.map((r) => [...Array(width - r.length).fill(pad), ...r]);
  const mask = rows.map((r) => [...Array(width - r.length).fill(0), ...Array(r.length).fill(1)]);
  const out: number[][] = rows.map(() => []);
  const done = rows.map(() => max === 0);
  const stopAt: number[] = rows.map(() => -1);

  const cache = new KVCache();
  try {
    await inEvalMode(head, async () => {
      for (let step = 0; step < max && done.some((d) => !d); step++) {
        const next = noGrad(() =>
          tidy(() => {
            const hidden = baseHidden(head.base, model, { inputIds: stepIds, attentionMask: mask }, cache);
            const n = hidden.shape[1]!;
            const last = n === 1 ? hidden : slice(hidden, 1, n - 1, n);
            return argmax(head.lmHead.forward(last));
          }),
        );
        let picked: ArrayLike<number>;
        try {
          picked = await next.data();
        } finally {
          next.dispose();
        }
        const fed: number[] = [];
        for (let b = 0; b < batch; b++) {
          if (done[b]) {
            fed.push(-1);
            continue;
          }
          const token = picked[b]!;
          if (eos.has(token)) {
            done[b] = true;
            fed.push(-1);
            continue;
          }
          out[b]!.push(token);
          if (stops.length > 0) {
            const at = firstStop(opts.tokenizer!.decode(out[b]!), stops);
            if (at >= 0) {
              done[b] = true;
              stopAt[b] = at;
              fed.push(-1);
              continue;
            }
          }
          fed.push(token);
        }
        // Finished rows are fed the pad id, masked out: they no longer change, nor change others.
        stepIds = fed.map((id) => [id < 0 ? pad : id]);
        fed.forEach((id, b) => {
          mask[b]!.push(id < 0 ? 0 : 1);
        });
      }
    });
  } finally {
    cache.dispose();
  }

  const tokenizer = opts.tokenizer;
  const texts = tokenizer
    ? out.map((ids, b) => (stopAt[b]! >= 0 ? tokenizer.decode(ids).slice(0, stopAt[b]) : tokenizer.decode(ids)))
    : undefined;
  const tokens = out.map((ids, b) => {
    if (stopAt[b]! < 0) return ids;
    // The longest prefix whose text lies wholly before the stop string.
    for (let k = ids.length - 1; k >= 0; k--) {
      const text = tokenizer!.decode(ids.slice(0, k));
      if (text.length <= stopAt[b]! && firstStop(text, stops) < 0) return ids.slice(0, k);
    }
    return [];
  });
  return texts ? { tokens, texts } : { tokens };
}
