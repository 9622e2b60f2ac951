import {
  add,
  attention,
  type Backend,
  checkpoint,
  concat,
  type DType,
  type Generator,
  gelu,
  keep,
  mul,
  reshape,
  rotary,
  slice,
  sub,
  type Tensor,
  tensor,
  unary,
} from '@peft/core';
import type { ModelConfig } from '../config.js';
import { fusedRope, ropeFrequencies, ropeNeedsLength } from '../rope.js';

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
  /** The positions as host rows, when the caller gave or derived them there (not as a tensor). */
  positionRows?: readonly (readonly number[])[];
  /** The rotary embedding of this pass (set by withRope; computed per layer when absent). */
  rope?: RopeInputs;
  /** Keys and values of earlier tokens, extended in place by this pass (generation). */
  cache?: KVCache;
  /** Index of the layer running (set by runLayers). */
  layer?: number;
}

/**
 * How this pass rotates queries and keys: the fused rotary op (default, linear and dynamic rope:
 * base^(−2i/dim) / positionScale), or cos and sin tables [batch, seq, 1, rotaryDim / 2] already
 * multiplied by the attention scaling (llama3, yarn, longrope).
 */
export type RopeInputs = { base: number; positionScale: number } | { cos: Tensor; sin: Tensor };

/** The largest position + 1 of a pass (transformers' seq_len for dynamic and longrope rope). */
function ropeLength(config: ModelConfig, ctx: LayerContext): number {
  if (!ctx.positionRows) {
    throw new Error(
      `rope_type "${config.rope.type}" depends on the largest position of a batch: pass positionIds as arrays (or leave them out to derive them from the mask), not as a tensor`,
    );
  }
  let max = 0;
  for (const row of ctx.positionRows) for (const p of row) max = Math.max(max, p);
  return max + 1;
}

/**
 * The rotary inputs of one pass, as transformers' rotary embedding computes them for its
 * position ids (float32 cos and sin, rounded once to `dtype` as transformers casts them to the
 * activations' dtype).
 */
export function ropeInputs(config: ModelConfig, ctx: LayerContext, backend: Backend, dtype: DType): RopeInputs {
  const rope = config.rope;
  const seqLen = ropeNeedsLength(rope) ? ropeLength(config, ctx) : 0;
  const fused = fusedRope(rope, seqLen);
  if (fused) return fused;
  const rows = ctx.positionRows;
  if (!rows) {
    throw new Error(
      `rope_type "${rope.type}" builds its cos/sin tables on the host: pass positionIds as arrays (or leave them out to derive them from the mask), not as a tensor`,
    );
  }
  const { cos, sin, half } = ropeTables(config, rows, seqLen);
  const shape = [rows.length, rows[0]?.length ?? 0, 1, half];
  return { cos: tensor(cos, shape, { backend, dtype }), sin: tensor(sin, shape, { backend, dtype }) };
}

/**
 * The float32 cos and sin tables [batch, seq, 1, rotaryDim / 2] of the rope types that are not
 * fused (llama3, yarn, longrope), for host position rows, multiplied by the attention scaling:
 * what `ropeInputs` uploads. `seqLen` is the pass's largest position + 1 (longrope reads it).
 */
export function ropeTables(
  config: ModelConfig,
  rows: readonly (readonly number[])[],
  seqLen: number,
): { cos: Float32Array; sin: Float32Array; half: number } {
  const { invFreq, attentionScaling } = ropeFrequencies(config.rope, seqLen);
  const half = invFreq.length;
  const batch = rows.length;
  const seq = rows[0]?.length ?? 0;
  const cos = new Float32Array(batch * seq * half);
  const sin = new Float32Array(batch * seq * half);
  const scaling = Math.fround(attentionScaling);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) {
      const p = rows[b]![t]!;
      const o = (b * seq + t) * half;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * invFreq[i]!);
        cos[o + i] = Math.fround(Math.fround(Math.cos(angle)) * scaling);
        sin[o + i] = Math.fround(Math.fround(Math.sin(angle)) * scaling);
      }
    }
  }
  return { cos, sin, half };
}

/**
 * The context the layers of one pass share: the rotary inputs, computed once for all layers, and
 * the check that no layer's sliding window is shorter than the keys it would attend to.
 */
export function withRope(config: ModelConfig, ctx: LayerContext, backend: Backend, dtype: DType, seq: number): LayerContext {
  checkSlidingWindows(config, (ctx.cache?.length ?? 0) + seq);
  if (ctx.rope) return ctx;
  return { ...ctx, rope: ropeInputs(config, ctx, backend, dtype) };
}

/**
 * Sliding-window attention is not implemented: with at most `window` keys (cached + new) no query
 * is ever more than window − 1 tokens past a key, so full causal attention computes the same.
 */
export function checkSlidingWindows(config: ModelConfig, keys: number): void {
  for (const [layer, window] of config.slidingWindows.entries()) {
    if (window !== null && keys > window) {
      const key = config.modelType === 'qwen2' ? 'sliding_window (use_sliding_window, layer_types)' : 'sliding_window';
      throw new Error(
        `${config.modelType} config.json sets ${key} ${window} for layer ${layer}: this pass attends over ${keys} tokens (cached + new), more than the window, and sliding-window attention is not implemented; keep sequences to at most ${window} tokens`,
      );
    }
  }
}

/** x [batch, seq, heads, headDim] rotated by cos/sin tables [batch, seq, 1, rotaryDim / 2] (rotate-half layout). */
function rotateWithTables(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const headDim = x.shape[3]!;
  const half = cos.shape[3]!;
  const x1 = slice(x, 3, 0, half);
  const x2 = slice(x, 3, half, 2 * half);
  // transformers: x · cat(cos, cos) + rotate_half(x) · cat(sin, sin), rotate_half(x) = cat(−x2, x1).
  const parts = [sub(mul(x1, cos), mul(x2, sin)), add(mul(x2, cos), mul(x1, sin))];
  if (2 * half < headDim) parts.push(slice(x, 3, 2 * half, headDim));
  return concat(parts, 3);
}

function applyRope(config: ModelConfig, x: Tensor, positions: Tensor, rope: RopeInputs): Tensor {
  if ('cos' in rope) return rotateWithTables(x, rope.cos, rope.sin);
  return rotary(x, positions, { rotaryDim: config.rotaryDim, base: rope.base, positionScale: rope.positionScale });
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
  const tables = ctx.rope && 'cos' in ctx.rope ? [ctx.rope.cos, ctx.rope.sin] : [];
  for (const layer of layers) {
    const layerCtx = { ...ctx, layer: i++ };
    if (checkpointing && !ctx.cache) {
      // Every tensor the layer reads goes in as an input, so that the recomputation in backward has it.
      const inputs = [h, ctx.positions, ...tables, ...(ctx.mask ? [ctx.mask] : [])];
      h = checkpoint((x, positions, ...rest) => {
        const rope = tables.length ? { cos: rest[0]!, sin: rest[1]! } : ctx.rope;
        const mask = ctx.mask ? rest[tables.length]! : null;
        return layer.forward(x!, { ...layerCtx, positions: positions!, mask, rope });
      }, inputs);
    } else {
      h = layer.forward(h, layerCtx);
    }
  }
  return h;
}

/** Attention over already projected q [B,T,H,D], k and v [B,T,Hkv,D] with rotary; returns [B, T, H·D]. */
export function rotaryAttention(config: ModelConfig, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext): Tensor {
  const rope = ctx.rope ?? ropeInputs(config, ctx, q.backend, q.dtype);
  const qr = applyRope(config, q, ctx.positions, rope);
  let kr = applyRope(config, k, ctx.positions, rope);
  if (ctx.cache) ({ k: kr, v } = ctx.cache.extend(ctx.layer ?? 0, kr, v));
  const window = config.slidingWindows[ctx.layer ?? 0];
  if (window != null && kr.shape[1]! > window) checkSlidingWindows(config, kr.shape[1]!);
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
  let positionRows: readonly (readonly number[])[] | undefined;
  if (input.positionIds) {
    positions = isTensor(input.positionIds) ? input.positionIds : toInt(backend, input.positionIds, 'positionIds');
    if (!isTensor(input.positionIds)) positionRows = input.positionIds;
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
    positionRows = rows;
  }
  return { ids, ctx: { positions, mask, ...(positionRows ? { positionRows } : {}) }, batch, seq };
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
