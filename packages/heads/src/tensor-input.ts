// The tensor-input form of the heads' losses: a batch as fixed-shape int32 host arrays (padded on
// the batch and sequence axes if asked), and the loss computed from the device tensors holding
// them, with nothing read on the host. A captured graph (CUDA) repeats everything but the input
// tensors' contents, so every value that changes between batches is one of these inputs.
import { affine, cast, crossEntropy, div, reshape, sum, type Tensor, unary } from '@peft/core';
import { type BaseModel, type CausalLM, type ModelConfig, prepareInput, ropeTables } from '@peft/models';
import { batchShape, checkIds, type HeadBatch, isTensor, type Rows } from './batch.js';

/** The label of a row or target that counts for nothing (PyTorch's default ignore index). */
export const IGNORE_INDEX = -100;

/** One input as host values: its shape and its elements in row-major order. */
export interface HostInput {
  shape: number[];
  dtype: 'int32' | 'float32';
  data: Int32Array | Float32Array;
}

/** The sizes to pad a batch to; each defaults to the batch's own (no padding). */
export interface InputPadding {
  /** Rows: the extra rows hold one token (`padTokenId`) and their labels are the ignore index. */
  batch?: number;
  /** Positions per row: the extra positions, on the right of every row, are masked padding. */
  seq?: number;
  /** Token id of the padding positions and rows. Default 0. */
  padTokenId?: number;
}

/** What the decoder reads: ids, attention mask and position ids, each int32 [batch, seq]. */
export interface ModelInputs<T> {
  inputIds: T;
  attentionMask: T;
  /** The host path's positions: the number of real tokens before each real one, 1 on padding. */
  positionIds: T;
  /**
   * Only for the rope types whose tables are computed on the host (llama3, yarn, longrope): the
   * float32 cos and sin [batch, seq, 1, rotaryDim / 2] of the positions, as the host path makes them.
   */
  ropeCos?: T;
  ropeSin?: T;
}

/** The padded grid of a host batch, as the decoder reads it. */
export interface InputGrid extends ModelInputs<HostInput> {
  /** Real rows and their length before padding. */
  rows: number;
  length: number;
  /** Padded sizes. */
  batch: number;
  seq: number;
}

/**
 * Whether a model's loss can be computed from input tensors alone: every rope type but dynamic,
 * whose base (a kernel parameter, not an input) depends on the batch's longest position.
 */
export function supportsTensorLoss(config: ModelConfig): boolean {
  return config.rope.type !== 'dynamic';
}

/** Whether the rotary tables travel as inputs (the rope types the rotary kernel does not fuse). */
function ropeAsTables(config: ModelConfig): boolean {
  return config.rope.type !== 'default' && config.rope.type !== 'linear' && config.rope.type !== 'dynamic';
}

export function checkTensorLossSupported(where: string, config: ModelConfig): void {
  if (!supportsTensorLoss(config)) {
    throw new Error(
      `${where}: rope_type "${config.rope.type}" sets its rotary base from the batch's longest position on the host, so this model has no tensor-input loss; use loss() with host inputs`,
    );
  }
}

/** Ids, mask and positions (and rotary tables) of a host batch padded to `pad` (see `InputPadding`). */
export function inputGrid(where: string, batch: HeadBatch, config: ModelConfig, pad: InputPadding = {}): InputGrid {
  const vocab = config.vocabSize;
  if (isTensor(batch.inputIds)) {
    throw new Error(`${where}: inputIds ${batch.inputIds.describe()} is a tensor; pass the batch as host rows (number[][])`);
  }
  const [rows, length] = batchShape(where, batch);
  checkIds(where, batch.inputIds, vocab);
  const size = (name: 'batch' | 'seq', own: number): number => {
    const v = pad[name] ?? own;
    if (!Number.isInteger(v) || v < own) throw new Error(`${where}: pad.${name} is ${v}; it must be an integer >= ${own}, the batch's own`);
    return v;
  };
  const b = size('batch', rows);
  const seq = size('seq', length);
  const padId = pad.padTokenId ?? 0;
  if (!Number.isInteger(padId) || padId < 0 || padId >= vocab)
    throw new Error(`${where}: pad.padTokenId ${padId} is outside the vocabulary [0, ${vocab})`);
  const ids = new Int32Array(b * seq).fill(padId);
  const mask = new Int32Array(b * seq);
  const positions = new Int32Array(b * seq).fill(1);
  const hostIds = batch.inputIds;
  const hostMask = batch.attentionMask as Rows | null | undefined;
  for (let r = 0; r < b; r++) {
    let seen = 0;
    for (let t = 0; t < seq; t++) {
      const at = r * seq + t;
      // A padding row holds one real-looking token, so that no attention row is fully masked.
      const real = r < rows ? t < length && (hostMask ? hostMask[r]![t] !== 0 : true) : t === 0;
      if (r < rows && t < length) ids[at] = hostIds[r]![t]!;
      if (real) {
        mask[at] = 1;
        positions[at] = seen++;
      }
    }
  }
  const shape = [b, seq];
  const int = (data: Int32Array): HostInput => ({ shape: [...shape], dtype: 'int32', data });
  const grid: InputGrid = { inputIds: int(ids), attentionMask: int(mask), positionIds: int(positions), rows, length, batch: b, seq };
  if (!ropeAsTables(config)) return grid;
  // The host path's largest position + 1 (longrope reads it): over the unpadded batch, where
  // padding positions hold 1 as here.
  let largest = 0;
  for (let r = 0; r < rows; r++) for (let t = 0; t < length; t++) largest = Math.max(largest, positions[r * seq + t]!);
  const rowsOf = Array.from({ length: b }, (_, r) => Array.from(positions.subarray(r * seq, (r + 1) * seq)));
  const { cos, sin, half } = ropeTables(config, rowsOf, largest + 1);
  const table = (data: Float32Array): HostInput => ({ shape: [b, seq, 1, half], dtype: 'float32', data });
  return { ...grid, ropeCos: table(cos), ropeSin: table(sin) };
}

/** Checks that each named input is a tensor of the dtype (default int32) and shape (null: any size there). */
export function checkInputs(
  where: string,
  inputs: object,
  shapes: Record<string, (number | null)[]>,
  dtype: 'int32' | 'float32' = 'int32',
): void {
  for (const [name, shape] of Object.entries(shapes)) {
    const t = (inputs as Record<string, unknown>)[name];
    const want = `${dtype} [${shape.map((d) => (d === null ? '…' : d)).join(', ')}]`;
    if (!isTensor(t)) throw new Error(`${where}: input ${name} is missing or not a tensor: expected ${want}`);
    const ok = t.dtype === dtype && t.rank === shape.length && shape.every((d, i) => d === null || t.shape[i] === d);
    if (!ok) throw new Error(`${where}: input ${name} is ${t.describe()}; expected ${want}`);
    if (t.size === 0) throw new Error(`${where}: input ${name} ${t.describe()} is empty`);
  }
}

/**
 * Checks the decoder's inputs (ids, mask, positions, and the rotary tables where the rope type
 * needs them) and returns [batch, seq].
 */
export function checkModelInputs(where: string, config: ModelConfig, inputs: ModelInputs<Tensor>): [number, number] {
  checkTensorLossSupported(where, config);
  checkInputs(where, inputs, { inputIds: [null, null] });
  const [b, t] = inputs.inputIds.shape as [number, number];
  checkInputs(where, inputs, { attentionMask: [b, t], positionIds: [b, t] });
  if (ropeAsTables(config)) {
    checkInputs(where, inputs, { ropeCos: [b, t, 1, null] }, 'float32');
    checkInputs(where, inputs, { ropeSin: [...inputs.ropeCos!.shape] }, 'float32');
  } else if (inputs.ropeCos || inputs.ropeSin) {
    throw new Error(`${where}: rope_type "${config.rope.type}" takes no ropeCos / ropeSin inputs (the rotary kernel computes them)`);
  }
  return [b, t];
}

/** Final hidden states [batch·seq, hidden] of `base` over tensor inputs. Call inside `tidy`. */
export function flatHidden(base: BaseModel, model: CausalLM, inputs: ModelInputs<Tensor>): Tensor {
  const p = prepareInput(model.backend, inputs);
  // The tables in the activations' dtype, rounded once as the host path rounds them.
  if (inputs.ropeCos && inputs.ropeSin) p.ctx.rope = { cos: cast(inputs.ropeCos, model.dtype), sin: cast(inputs.ropeSin, model.dtype) };
  const hidden = base.forward(p.ids, p.ctx);
  const [b, t, h] = hidden.shape as [number, number, number];
  return reshape(hidden, [b * t, h]);
}

/**
 * Mean cross-entropy of logits [rows, classes] over the targets that are not the ignore index,
 * counted on the device; 0 when every target is ignored (the sum is 0 and is divided by 1), a
 * loss that still reaches the graph with zero gradients, as the host path gives.
 */
export function meanCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  const total = crossEntropy(logits, targets, { reduction: 'sum', ignoreIndex: IGNORE_INDEX });
  // 1 per target >= 0, 0 for the ignore index: 1 − relu(1 − relu(t + 1)).
  const real = affine(unary('relu', affine(unary('relu', affine(cast(targets, 'float32'), 1, 1)), -1, 1)), -1, 1);
  // max(count, 1) = relu(count − 1) + 1.
  const count = affine(unary('relu', affine(sum(real), 1, -1)), 1, 1);
  return div(total, count);
}
