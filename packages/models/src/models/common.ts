import {
  attention,
  type Backend,
  checkpoint,
  concat,
  type DType,
  type Generator,
  gelu,
  keep,
  reshape,
  rotary,
  slice,
  type Tensor,
  tensor,
  unary,
} from '@peft/core';
import type { ModelConfig } from '../config.js';

/** Options for building a model skeleton. */
export interface BuildOptions {
  backend: Backend;
  dtype: DType;
  /**
   * 'random': PyTorch's layer defaults; 'transformers': N(0, initializerRange²) for Linear and
   * Embedding weights, zero biases (transformers' `_init_weights`); 'zeros': nothing is drawn
   * (weights are loaded next). Norms start at one (weight) and zero (bias) in every case.
   */
  init: 'random' | 'zeros' | 'transformers';
  /** config.json's initializer_range (0.02 when absent), for 'transformers'. */
  initializerRange?: number;
  generator?: Generator;
}

/** The init option of Linear and Embedding for a BuildOptions.init. */
export function paramInit(opts: BuildOptions): 'default' | 'zeros' | { normal: number } {
  return opts.init === 'zeros' ? 'zeros' : opts.init === 'transformers' ? { normal: opts.initializerRange ?? 0.02 } : 'default';
}

export function linearOptions(opts: BuildOptions, bias: boolean) {
  return { backend: opts.backend, dtype: opts.dtype, bias, init: paramInit(opts), generator: opts.generator };
}

/** Tensors every layer of one forward pass shares. */
export interface LayerContext {
  /** int32 [batch, seq]. */
  positions: Tensor;
  /** int32 [batch, seqK] key padding mask (past and new tokens), or null when every token is real. */
  mask: Tensor | null;
  /** Keys and values of earlier tokens, extended in place by this pass (generation). */
  cache?: KVCache;
  /** Index of the layer running (set by runLayers). */
  layer?: number;
}

/**
 * Keys (after rotary) and values of the tokens seen so far, per layer, [batch, seqPast, kvHeads,
 * headDim]. Owned by the caller: dispose it when generation ends.
 */
export class KVCache {
  readonly #layers: ({ k: Tensor; v: Tensor } | undefined)[] = [];

  /** Tokens held (0 before the first pass). */
  get length(): number {
    return this.#layers[0]?.k.shape[1] ?? 0;
  }

  /** @internal appends this pass's keys and values for `layer`; returns all of them. */
  extend(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const past = this.#layers[layer];
    const all = past ? { k: concat([past.k, k], 1), v: concat([past.v, v], 1) } : { k: reshape(k, k.shape), v: reshape(v, v.shape) };
    keep(all);
    if (past) {
      past.k.dispose();
      past.v.dispose();
    }
    this.#layers[layer] = all;
    return all;
  }

  dispose(): void {
    for (const l of this.#layers) {
      l?.k.dispose();
      l?.v.dispose();
    }
    this.#layers.length = 0;
  }
}

/** Runs decoder layers in order, with gradient checkpointing when asked. */
export function runLayers(
  layers: Iterable<{ forward(x: Tensor, ctx: LayerContext): Tensor }>,
  h: Tensor,
  ctx: LayerContext,
  checkpointing: boolean,
): Tensor {
  let i = 0;
  for (const layer of layers) {
    const layerCtx = { ...ctx, layer: i++ };
    if (checkpointing && !ctx.cache) {
      const inputs = [h, ctx.positions, ...(ctx.mask ? [ctx.mask] : [])];
      h = checkpoint(
        (x, positions, mask) => layer.forward(x!, { ...layerCtx, positions: positions!, mask: ctx.mask ? mask! : null }),
        inputs,
      );
    } else {
      h = layer.forward(h, layerCtx);
    }
  }
  return h;
}

/** Attention over already projected q [B,T,H,D], k and v [B,T,Hkv,D] with rotary; returns [B, T, H·D]. */
export function rotaryAttention(config: ModelConfig, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext): Tensor {
  const rot = { rotaryDim: config.rotaryDim, base: config.ropeTheta, positionScale: config.ropeScale };
  const qr = rotary(q, ctx.positions, rot);
  let kr = rotary(k, ctx.positions, rot);
  if (ctx.cache) ({ k: kr, v } = ctx.cache.extend(ctx.layer ?? 0, kr, v));
  const out = attention(qr, kr, v, ctx.mask, { causal: true, scale: 1 / Math.sqrt(config.headDim) });
  const [b, t] = q.shape as [number, number];
  return reshape(out, [b, t, config.numHeads * config.headDim]);
}

/** Part i of a per-head fused projection viewed as [B, T, H, parts, D]. */
export function headPart(fused: Tensor, i: number): Tensor {
  const [b, t, h, , d] = fused.shape as [number, number, number, number, number];
  return reshape(slice(fused, 3, i, i + 1), [b, t, h, d]);
}

export function activation(config: ModelConfig, x: Tensor): Tensor {
  switch (config.hiddenAct) {
    case 'gelu':
      return gelu(x, false);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return gelu(x, true);
    case 'silu':
      return unary('silu', x);
  }
}

/** Host inputs as the model reads them. */
export interface ForwardInput {
  /** Token ids [batch][seq] (rows of equal length: pad them) or an int32 tensor [batch, seq]. */
  inputIds: readonly (readonly number[])[] | Tensor;
  /** 1 for real tokens, 0 for padding; default all real. */
  attentionMask?: readonly (readonly number[])[] | Tensor | null;
  /** Default: the number of real tokens before each one (so left or right padding changes nothing). */
  positionIds?: readonly (readonly number[])[] | Tensor;
}

export interface PreparedInput {
  ids: Tensor;
  ctx: LayerContext;
  /** Tensors made here (disposed by the caller's scope). */
  batch: number;
  seq: number;
}

function toInt(backend: Backend, rows: readonly (readonly number[])[], what: string): Tensor {
  const batch = rows.length;
  const seq = rows[0]?.length ?? 0;
  const flat: number[] = [];
  rows.forEach((r, i) => {
    if (r.length !== seq) throw new Error(`${what}: row ${i} has ${r.length} tokens, row 0 has ${seq}: pad the batch to one length`);
    flat.push(...r);
  });
  return tensor(flat, [batch, seq], { backend, dtype: 'int32' });
}

/**
 * Uploads host inputs and derives position ids from the mask: the number of real tokens before
 * each one (padding gets 1, as transformers' generate does), so left or right padding changes
 * nothing. With `pastLength` > 0 (a KV cache), the mask covers past and new tokens.
 */
export function prepareInput(backend: Backend, input: ForwardInput, pastLength = 0): PreparedInput {
  const ids = isTensor(input.inputIds) ? input.inputIds : toInt(backend, input.inputIds, 'inputIds');
  if (ids.dtype !== 'int32' || ids.rank !== 2) throw new Error(`inputIds ${ids.describe()} must be int32 [batch, seq]`);
  const [batch, seq] = ids.shape as [number, number];
  if (batch === 0 || seq === 0) throw new Error(`inputIds ${ids.describe()} is empty`);
  const total = pastLength + seq;
  const hostMask = input.attentionMask && !isTensor(input.attentionMask) ? input.attentionMask : null;
  let mask: Tensor | null = null;
  if (input.attentionMask) {
    mask = hostMask ? toInt(backend, hostMask, 'attentionMask') : (input.attentionMask as Tensor);
    if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== total) {
      throw new Error(
        `attentionMask ${mask.describe()} must be [${batch}, ${total}] (batch, ${pastLength ? 'cached + new tokens' : 'tokens'})`,
      );
    }
  } else if (pastLength > 0) {
    throw new Error('forward: with a KV cache, pass the attentionMask of all tokens so far');
  }
  let positions: Tensor;
  if (input.positionIds) {
    positions = isTensor(input.positionIds) ? input.positionIds : toInt(backend, input.positionIds, 'positionIds');
    if (positions.shape[0] !== batch || positions.shape[1] !== seq)
      throw new Error(`positionIds ${positions.describe()} do not match inputIds ${ids.describe()}`);
  } else if (mask && !hostMask) {
    throw new Error(
      'forward: an attentionMask tensor needs positionIds too (or pass the mask as arrays and positions are derived from it)',
    );
  } else {
    const rows: number[][] = [];
    for (let b = 0; b < batch; b++) {
      let seen = 0;
      const row: number[] = [];
      for (let t = 0; t < total; t++) {
        const real = hostMask ? hostMask[b]![t] !== 0 : true;
        if (t >= pastLength) row.push(real ? seen : 1);
        if (real) seen++;
      }
      rows.push(row);
    }
    positions = toInt(backend, rows, 'positionIds');
  }
  return { ids, ctx: { positions, mask }, batch, seq };
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && typeof (v as Tensor).describe === 'function' && 'dtype' in v;
}

export function checkVocab(config: ModelConfig, rows: ForwardInput['inputIds']): void {
  if (isTensor(rows)) return;
  for (const [i, r] of rows.entries()) {
    for (const [j, id] of r.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
        throw new Error(`inputIds[${i}][${j}] = ${id} is outside the vocabulary [0, ${config.vocabSize})`);
      }
    }
  }
}
