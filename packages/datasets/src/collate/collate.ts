import type { PromptAnswer } from '../bc5cdr/formats.js';
import { IGNORE_INDEX, type TextTokenizer } from './tokenizer.js';

export interface CollateOptions {
  tokenizer: TextTokenizer;
  /** Longest sequence kept (tokens). */
  maxLength: number;
  /** Side padding goes on. Default `'right'` (Study A reads the last real token at sum(mask) − 1). */
  padding?: 'right' | 'left';
  /** `true` (default): cut longer sequences to `maxLength`, keeping the start; `false`: error instead. */
  truncation?: boolean;
  /** Pad to the longest sequence of the batch (default, as `padding=True` in Hugging Face) or to `maxLength`. */
  padTo?: 'longest' | 'maxLength';
  /** Order rows by length, longest first; `order[i]` is then the input index of row i. */
  sortByLength?: boolean;
}

export interface Batch {
  inputIds: number[][];
  /** 1 on real tokens, 0 on padding. */
  attentionMask: number[][];
  /** Input index of each row (identity unless `sortByLength`). */
  order: number[];
}

export interface ClassificationBatch extends Batch {
  /** Class id per row. */
  labels: number[];
}

export interface CausalLMBatch extends Batch {
  /** Per position: the input id on answer tokens, −100 on prompt and padding (not shifted: labels[i] belongs to inputIds[i]). */
  labels: number[][];
}

function truncate(ids: number[], options: CollateOptions, what: string): number[] {
  if (ids.length <= options.maxLength) return ids;
  if (options.truncation === false) {
    throw new Error(`${what} has ${ids.length} tokens, more than maxLength ${options.maxLength}; raise maxLength or pass truncation: true`);
  }
  const eos = options.tokenizer.eosTokenId;
  // Hugging Face truncates before adding special tokens: a tokenizer that appends EOS keeps it last.
  if (eos !== undefined && ids[ids.length - 1] === eos) return [...ids.slice(0, options.maxLength - 1), eos];
  return ids.slice(0, options.maxLength);
}

function pad(
  rows: number[][],
  extra: number[][],
  options: CollateOptions,
): { inputIds: number[][]; attentionMask: number[][]; extra: number[][]; order: number[] } {
  if (!Number.isInteger(options.maxLength) || options.maxLength < 1)
    throw new Error(`maxLength must be a positive integer, got ${options.maxLength}`);
  let order = rows.map((_, i) => i);
  if (options.sortByLength) order = order.sort((a, b) => rows[b]!.length - rows[a]!.length || a - b);
  const width = options.padTo === 'maxLength' ? options.maxLength : Math.max(0, ...rows.map((r) => r.length));
  const left = options.padding === 'left';
  const padId = options.tokenizer.padTokenId;
  const place = (row: number[], fill: number) => {
    const padding = new Array<number>(width - row.length).fill(fill);
    return left ? [...padding, ...row] : [...row, ...padding];
  };
  return {
    inputIds: order.map((i) => place(rows[i]!, padId)),
    attentionMask: order.map((i) => place(new Array<number>(rows[i]!.length).fill(1), 0)),
    extra: order.map((i) => place(extra[i] ?? [], IGNORE_INDEX)),
    order,
  };
}

/**
 * Sequence-classification batch (Study A): each text is encoded with the tokenizer's default special
 * tokens, truncated to `maxLength` and padded; `labels` are the class ids.
 */
export function collate(examples: readonly { text: string; label: number }[], options: CollateOptions): ClassificationBatch {
  const rows = examples.map((e, i) => truncate(options.tokenizer.encode(e.text), options, `example ${i}`));
  const { inputIds, attentionMask, order } = pad(rows, [], options);
  return { inputIds, attentionMask, order, labels: order.map((i) => examples[i]!.label) };
}

export interface CausalLMCollateOptions extends CollateOptions {
  /** Append `tokenizer.eosTokenId` after the answer (default true when the tokenizer has one). */
  appendEos?: boolean;
}

/**
 * Causal-LM batch for generation-style NER (Study B): ids = encode(prompt) ++ encode(answer, no
 * special tokens) ++ [EOS]. The prompt is encoded on its own, exactly as at generation time, so the
 * answer ids are what the model must produce after it. Labels are −100 on the prompt (through
 * `Answer:`) and on padding and the ids elsewhere; sequences over `maxLength` lose their end (the
 * answer first, then the EOS).
 */
export function collateCausalLM(examples: readonly PromptAnswer[], options: CausalLMCollateOptions): CausalLMBatch {
  const { tokenizer } = options;
  const eos = options.appendEos === false ? undefined : tokenizer.eosTokenId;
  const rows: number[][] = [];
  const labels: number[][] = [];
  examples.forEach((e, i) => {
    const prompt = tokenizer.encode(e.prompt);
    const answer = [...tokenizer.encode(e.answer, { addSpecialTokens: false }), ...(eos === undefined ? [] : [eos])];
    const ids = [...prompt, ...answer];
    if (ids.length > options.maxLength && options.truncation === false) {
      throw new Error(
        `example ${i} has ${ids.length} tokens, more than maxLength ${options.maxLength}; raise maxLength or pass truncation: true`,
      );
    }
    rows.push(ids.slice(0, options.maxLength));
    labels.push([...prompt.map(() => IGNORE_INDEX), ...answer].slice(0, options.maxLength));
  });
  const { inputIds, attentionMask, extra, order } = pad(rows, labels, options);
  return { inputIds, attentionMask, order, labels: extra };
}
