import { type Backend, type DType, type Generator, type Tensor, attention, gelu, reshape, rotary, slice, tensor, unary } from '@peft/core';
import type { ModelConfig } from '../config.js';

/** Options for building a model skeleton. */
export interface BuildOptions {
  backend: Backend;
  dtype: DType;
  /** Draws the initial weights; with 'zeros' nothing is drawn (weights are loaded next). */
  init: 'random' | 'zeros';
  generator?: Generator;
}

export function linearOptions(opts: BuildOptions, bias: boolean) {
  return { backend: opts.backend, dtype: opts.dtype, bias, init: opts.init === 'zeros' ? ('zeros' as const) : ('default' as const), generator: opts.generator };
}

/** Tensors every layer of one forward pass shares. */
export interface LayerContext {
  /** int32 [batch, seq]. */
  positions: Tensor;
  /** int32 [batch, seqK] key padding mask, or null when every token is real. */
  mask: Tensor | null;
}

/** Attention over already projected q [B,T,H,D], k and v [B,T,Hkv,D] with rotary; returns [B, T, H·D]. */
export function rotaryAttention(config: ModelConfig, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext): Tensor {
  const rot = { rotaryDim: config.rotaryDim, base: config.ropeTheta, positionScale: config.ropeScale };
  const qr = rotary(q, ctx.positions, rot);
  const kr = rotary(k, ctx.positions, rot);
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

/** Uploads host inputs and derives position ids from the mask (cumulative count of real tokens − 1). */
export function prepareInput(backend: Backend, config: ModelConfig, input: ForwardInput): PreparedInput {
  const ids = isTensor(input.inputIds) ? input.inputIds : toInt(backend, input.inputIds, 'inputIds');
  if (ids.dtype !== 'int32' || ids.rank !== 2) throw new Error(`inputIds ${ids.describe()} must be int32 [batch, seq]`);
  const [batch, seq] = ids.shape as [number, number];
  let mask: Tensor | null = null;
  let hostMask: readonly (readonly number[])[] | null = null;
  if (input.attentionMask) {
    if (isTensor(input.attentionMask)) mask = input.attentionMask;
    else {
      hostMask = input.attentionMask;
      if (hostMask.length !== batch) throw new Error(`attentionMask has ${hostMask.length} rows, inputIds has ${batch}`);
      mask = toInt(backend, hostMask, 'attentionMask');
    }
    if (mask.shape[0] !== batch || mask.shape[1] !== seq) throw new Error(`attentionMask ${mask.describe()} does not match inputIds ${ids.describe()}`);
  }
  let positions: Tensor;
  if (input.positionIds) positions = isTensor(input.positionIds) ? input.positionIds : toInt(backend, input.positionIds, 'positionIds');
  else if (mask && !hostMask) {
    throw new Error('forward: an attentionMask tensor needs positionIds too (or pass the mask as arrays and positions are derived from it)');
  } else {
    const pos: number[][] = [];
    for (let b = 0; b < batch; b++) {
      let seen = 0;
      const row: number[] = [];
      for (let t = 0; t < seq; t++) {
        const real = hostMask ? hostMask[b]![t] !== 0 : true;
        row.push(real ? seen : 1);
        if (real) seen++;
      }
      pos.push(row);
    }
    positions = toInt(backend, pos, 'positionIds');
  }
  if (!isTensor(input.inputIds) && ids.shape.some((d) => d === 0)) throw new Error('inputIds: empty batch');
  for (const [name, t] of [['positionIds', positions]] as const) {
    if (t.shape[0] !== batch || t.shape[1] !== seq) throw new Error(`${name} ${t.describe()} does not match inputIds ${ids.describe()}`);
  }
  return { ids, ctx: { positions, mask }, batch, seq };
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && typeof (v as Tensor).describe === 'function' && 'dtype' in v;
}

export function checkVocab(config: ModelConfig, rows: ForwardInput['inputIds']): void {
  if (isTensor(rows)) return;
  rows.forEach((r, i) =>
    r.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
        throw new Error(`inputIds[${i}][${j}] = ${id} is outside the vocabulary [0, ${config.vocabSize})`);
      }
    }),
  );
}
