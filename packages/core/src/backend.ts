import type { DType, RawArray } from './dtype.js';

/**
 * A block of device memory owned by a backend. Opaque to everything above the backend: core only
 * reads `dtype` and `size` (in elements). Each backend extends it with its own handle.
 */
export interface DeviceBuffer {
  readonly dtype: DType;
  readonly size: number;
}

/** Bytes and buffers a backend holds right now, and the peak since creation or `resetPeak`. */
export interface BackendMemory {
  buffers: number;
  bytes: number;
  peakBytes: number;
  /** Bytes held by a reuse pool but not handed out (0 for backends without a pool). */
  pooledBytes: number;
}

/**
 * A strided view of a buffer: element `(i0, …, iN)` of the view lives at
 * `offset + Σ i_d · strides[d]` of the underlying buffer. A stride 0 broadcasts.
 */
export interface View {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'square' | 'abs' | 'silu' | 'sigmoid' | 'tanh' | 'relu';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min';
export type ReduceOp = 'sum' | 'max';

export interface MatmulParams {
  /** Number of matrices in the batch (1 for a plain GEMM). */
  batch: number;
  m: number;
  n: number;
  k: number;
  /** a is stored [k, m] (per batch) and read transposed. */
  transA: boolean;
  /** b is stored [n, k] (per batch) and read transposed: `x · Wᵀ` for a PyTorch Linear weight. */
  transB: boolean;
  /** Elements between consecutive batch matrices; 0 broadcasts one matrix over the batch. */
  strideA: number;
  strideB: number;
  /** Normally m·n. 0 with batch > 1 sums the batch's products into one matrix (+ out when accumulate). */
  strideOut: number;
  /** out = alpha · op(a) · op(b) (+ out when accumulate). */
  alpha: number;
  accumulate: boolean;
}

export interface NormParams {
  rows: number;
  dim: number;
  eps: number;
}

export interface RotaryParams {
  /** x is [batch, seq, heads, headDim] contiguous; positions is int32 [batch, seq]. */
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Rotate only the first `rotaryDim` features of each head (GPT-NeoX `rotary_pct`); even. */
  rotaryDim: number;
  /** θ_i = position / scale · base^(−2i / rotaryDim) (`rope_theta`, linear `rope_scaling`). */
  base: number;
  positionScale: number;
}

export interface AttentionParams {
  /** q is [batch, seqQ, heads, headDim]; k and v are [batch, seqK, kvHeads, headDim], contiguous. */
  batch: number;
  seqQ: number;
  seqK: number;
  heads: number;
  /** heads must be a multiple of kvHeads (grouped-query attention). */
  kvHeads: number;
  headDim: number;
  scale: number;
  /** Query i (0-based among seqQ) sees key j when j ≤ i + (seqK − seqQ). */
  causal: boolean;
}

export interface CrossEntropyParams {
  rows: number;
  classes: number;
  /** Rows whose target equals ignoreIndex contribute a loss of 0 and a gradient of 0. */
  ignoreIndex: number;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
  /** The gradient is multiplied by this before use (gradient clipping, loss scaling). */
  gradScale: number;
}

export interface RandomParams {
  /** Philox4x32-10 key and the first counter: the same (seed, offset) gives the same numbers on every backend. */
  seed: number;
  offset: number;
  distribution: 'uniform' | 'normal';
  /** uniform: [low, high); normal: mean `low`, standard deviation `high`. */
  low: number;
  high: number;
}

export interface DropoutParams {
  p: number;
  seed: number;
  offset: number;
}

/** Parameters of `rowDropout` / `rowDropoutBackward`: the keys themselves are device data. */
export interface RowDropoutParams {
  p: number;
  /** x has rows · features elements (the last axis is `features`). */
  rows: number;
  features: number;
  /** Which Philox key of `streamKeys` this call uses. */
  stream: number;
}

/**
 * What a backend must do. Output buffers are allocated by the caller (core) and passed first;
 * every kernel overwrites its outputs, no kernel accumulates unless a flag says so. Kernels read
 * inputs of any float storage dtype they claim and accumulate in float32; they round to the
 * output's dtype on store. All calls enqueue work and return at once; only `read` waits.
 */
/** Options of `Backend.captureGraph`. */
export interface CaptureOptions {
  /**
   * Record into the memory of this earlier, live graph of the same backend: buffers the new graph
   * allocates may be ones the earlier capture freed, so graphs that are only ever launched one
   * after another on the backend's stream (never concurrently), none reading another's
   * temporaries, need the memory of the largest of them rather than their sum. Buffers a capture
   * keeps (still held when it ends) are never handed to another graph. The memory is released
   * when the last graph sharing it is destroyed.
   */
  shareMemoryWith?: BackendGraph;
}

/** A captured sequence of kernels (see `Backend.captureGraph`). */
export interface BackendGraph {
  /** Enqueues the captured work again, reading whatever the captured buffers hold now. */
  launch(): void;
  /** Frees the graph and the buffers allocated during its capture. */
  destroy(): void;
}

export interface Backend {
  readonly name: string;
  /** Dtypes this backend can store (and so allocate). */
  readonly dtypes: readonly DType[];

  // --- memory ---------------------------------------------------------------------------------
  /**
   * A buffer of `size` elements whose contents are unspecified (a backend may hand out pooled
   * memory as it was left): every op writes all of its output, and `fill` makes zeros.
   */
  alloc(dtype: DType, size: number): DeviceBuffer;
  /** Uploads raw bits (see `encode`) into `buf` starting at element `offset`. */
  write(buf: DeviceBuffer, data: RawArray, offset?: number): void;
  /** Reads `buf` back as raw bits: Float32Array, Uint16Array (f16/bf16) or Int32Array. */
  read(buf: DeviceBuffer): Promise<RawArray>;
  free(buf: DeviceBuffer): void;
  memory(): BackendMemory;
  resetPeak(): void;
  /** Resolves when all enqueued work has finished. */
  sync(): Promise<void>;
  /** Frees everything the backend holds (pools, workers, device); freeing one of its buffers afterwards does nothing. */
  destroy(): void;
  /**
   * Optional: records the work `fn` enqueues, without running it, as a graph to replay with
   * `launch()` (a CUDA graph). Nothing may be written or read during capture; buffers allocated
   * during capture belong to the graph until `destroy()` (or, with `shareMemoryWith`, to the
   * graphs sharing that memory until the last is destroyed). Backends without it run eagerly.
   */
  captureGraph?(fn: () => void, options?: CaptureOptions): BackendGraph;

  // --- data movement -------------------------------------------------------------------------
  fill(out: DeviceBuffer, value: number): void;
  /** out[i] = x[view(i)], converting dtype; out is contiguous with view.shape. Covers cast, permute, slice, broadcast. */
  copy(out: DeviceBuffer, x: DeviceBuffer, view: View): void;
  /** dst[view(i)] += src[i]; the view must not map two elements to the same place. Backward of `copy`. */
  addInto(dst: DeviceBuffer, src: DeviceBuffer, view: View): void;

  // --- elementwise ---------------------------------------------------------------------------
  // Operands of unary, affine and the *Backward elementwise kernels have exactly out.size elements.
  unary(op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void;
  /** out[i] = x[i]·alpha + beta. */
  affine(out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void;
  /** out (contiguous, shape = aView.shape = bView.shape) = a[aView(i)] op b[bView(i)]. */
  binary(op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void;
  /** x viewed as [outer, reduce, inner]; out is [outer, inner]. */
  reduce(op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, reduce: number, inner: number): void;
  /** out int32 [rows] = index of the largest of each row of x [rows, cols] (first one on ties). */
  argmax(out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void;

  // --- matmul --------------------------------------------------------------------------------
  /** out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b]); op(a) is [m, k], op(b) is [k, n], out [m, n]. Its backward is matmul with other flags. */
  matmul(out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void;

  // --- embedding / gather --------------------------------------------------------------------
  /** out [n, dim] = weight[ids[i]] for ids int32 [n]; an id outside [0, rows) is an error or zeros (backend's choice, documented). */
  embedding(out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void;
  /** dWeight [rows, dim] = 0, then dWeight[ids[i]] += dOut[i]. */
  embeddingBackward(dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void;

  // --- norms ---------------------------------------------------------------------------------
  /** y = (x − mean) · rstd · weight + bias per row; saves mean and rstd (float32 [rows]). weight/bias may be null. */
  layerNorm(
    out: DeviceBuffer,
    mean: DeviceBuffer,
    rstd: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    bias: DeviceBuffer | null,
    p: NormParams,
  ): void;
  /** dWeight and dBias (float32 [dim]) are written when not null. */
  layerNormBackward(
    dx: DeviceBuffer,
    dWeight: DeviceBuffer | null,
    dBias: DeviceBuffer | null,
    dy: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    mean: DeviceBuffer,
    rstd: DeviceBuffer,
    p: NormParams,
  ): void;
  /** y = x · rstd · weight with rstd = 1/√(mean(x²) + eps); saves rstd (float32 [rows]). */
  rmsNorm(out: DeviceBuffer, rstd: DeviceBuffer, x: DeviceBuffer, weight: DeviceBuffer | null, p: NormParams): void;
  rmsNormBackward(
    dx: DeviceBuffer,
    dWeight: DeviceBuffer | null,
    dy: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    rstd: DeviceBuffer,
    p: NormParams,
  ): void;

  // --- rotary --------------------------------------------------------------------------------
  /** Rotary embedding, rotate-half layout (GPT-NeoX, Llama in transformers). */
  rotary(out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void;
  /** The inverse rotation applied to dy. */
  rotaryBackward(dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void;

  // --- attention -----------------------------------------------------------------------------
  /**
   * Scaled dot-product attention with an optional causal rule and key padding mask (int32
   * [batch, seqK], 1 = real token, 0 = padding; null = all real). out is [batch, seqQ, heads,
   * headDim]; lse (float32 [batch, heads, seqQ]) is the log-sum-exp of each row's scores, saved
   * for backward. A query row that sees no key gets out = 0 and lse = −Infinity.
   */
  attention(
    out: DeviceBuffer,
    lse: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void;
  /**
   * Gradients of attention. The reference recomputes P from q, k and lse and takes
   * D_i = Σ_j P_ij·dP_ij (equal to Σ dO_i·O_i in exact arithmetic, but not amplified by the
   * rounding of a stored low-precision `out`); a backend may use `out` for D_i only.
   */
  attentionBackward(
    dq: DeviceBuffer,
    dk: DeviceBuffer,
    dv: DeviceBuffer,
    dOut: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    out: DeviceBuffer,
    lse: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void;

  // --- activations ---------------------------------------------------------------------------
  /** GELU: exact (erf) or the tanh approximation (`gelu_new`). */
  gelu(out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void;
  geluBackward(dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void;
  /** out = silu(gate) · up (SwiGLU). */
  siluMul(out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void;
  siluMulBackward(dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void;
  /** Backward of the elementwise unary ops that have one: dx = dy · f'(x) (f'(x) from x, or from y = f(x) for exp/sqrt/rsqrt/sigmoid/tanh). */
  unaryBackward(op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void;

  // --- loss ----------------------------------------------------------------------------------
  /** loss float32 [rows] = logsumexp(logits row) − logits[target]; lse float32 [rows] saved. */
  crossEntropy(loss: DeviceBuffer, lse: DeviceBuffer, logits: DeviceBuffer, targets: DeviceBuffer, p: CrossEntropyParams): void;
  /** dLogits = (softmax(logits) − onehot(target)) · dLoss[row]; 0 for ignored rows. */
  crossEntropyBackward(
    dLogits: DeviceBuffer,
    dLoss: DeviceBuffer,
    logits: DeviceBuffer,
    targets: DeviceBuffer,
    lse: DeviceBuffer,
    p: CrossEntropyParams,
  ): void;

  // --- randomness ----------------------------------------------------------------------------
  /** Philox4x32-10 numbers: element i uses counter offset + ⌊i/4⌋, lane i mod 4 (normal: Box–Muller on lane pairs). */
  random(out: DeviceBuffer, p: RandomParams): void;
  /** out = x · mask / (1 − p), mask[i] = uniform(seed, offset)[i] ≥ p. */
  dropout(out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void;
  /** dx = dy · mask / (1 − p), the same mask regenerated from (seed, offset). */
  dropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void;
  /**
   * Per-example dropout with its keys on the device (int32 buffers holding uint32 bits): row r
   * uses the Philox key (streamKeys[2·stream], streamKeys[2·stream+1]) and the first counter
   * rowKeys[2r] · 2²⁶ + rowKeys[2r+1] · ⌈features/4⌉ (example key, position; 64-bit); element j of
   * the row uses counter + ⌊j/4⌋ (as (lo, hi, 0, 0)), lane j mod 4; out = x · (uniform ≥ p) / (1 − p):
   * `exampleDropout`'s masks bit for bit. Keys must be in [0, 2²⁷) and positions such that
   * (position + 1) · ⌈features/4⌉ ≤ 2²⁶: the CPU throws naming the row otherwise; a GPU reads
   * both as uint32 and draws some mask from the wrapped counter, never reading out of bounds.
   * Nothing on the host depends on the keys, so a captured graph replays with new keys.
   */
  rowDropout(out: DeviceBuffer, x: DeviceBuffer, streamKeys: DeviceBuffer, rowKeys: DeviceBuffer, p: RowDropoutParams): void;
  /** dx = dy · mask / (1 − p), `rowDropout`'s mask regenerated from the same keys. */
  rowDropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, streamKeys: DeviceBuffer, rowKeys: DeviceBuffer, p: RowDropoutParams): void;

  // --- optimizer -----------------------------------------------------------------------------
  /**
   * In place: decoupled weight decay, then Adam moments and update. m and v are float32.
   * With `scalars` (float32, 4 elements: lr, 1 − β1^t, 1 − β2^t, gradScale) those values are read
   * on the device instead of `p.lr`, `p.step` and `p.gradScale`, and the decay factor is
   * 1 − lr·weightDecay in float32: a captured graph then replays with new values written there.
   */
  adamw(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, p: AdamWParams, scalars?: DeviceBuffer | null): void;
}
