/**
 * device-check's kernel timings, one case per measurement so that a fault or the time-out keeps
 * the ones before it: bf16 GEMMs through cuBLASLt, causal flash attention on tensor cores and on
 * the float32 kernels, cross-entropy over a 32000-word vocabulary, and LoRA's mixed-dtype products
 * on the skinny kernels against the widened cuBLASLt path. Operands are drawn by the backend's
 * Philox kernel (normal, σ 1): constant data lets a GPU's power management and the tensor cores'
 * zero handling report speeds that real weights never reach.
 */
import type { DType, MatmulParams } from '@peft/core';
import { type CudaBackend, type CudaBackendOptions, createCudaBackend } from '../../src/index.js';
import type { CheckCase } from './suites.js';

type Buf = ReturnType<CudaBackend['alloc']>;

/** Mean milliseconds of `fn` over `reps` runs after one untimed run, stream synchronised at both ends. */
async function timeIt(backend: CudaBackend, fn: () => void, reps = 20): Promise<number> {
  fn();
  await backend.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await backend.sync();
  return (performance.now() - t0) / reps;
}

/** A buffer of `size` normal(0, 1) values from the Philox kernel (stream `seed`). */
function randomBuffer(b: CudaBackend, dtype: DType, size: number, seed: number): Buf {
  const buf = b.alloc(dtype, size);
  b.random(buf, { seed, offset: 0, distribution: 'normal', low: 0, high: 1 });
  return buf;
}

/** Runs `body` on a fresh backend with `opts`, destroyed afterwards. */
async function withBackend<T>(opts: CudaBackendOptions, body: (b: CudaBackend) => Promise<T>): Promise<T> {
  const b = createCudaBackend(opts);
  try {
    return await body(b);
  } finally {
    b.destroy();
  }
}

const GEMM = { batch: 1, strideA: 0, strideB: 0, strideOut: 0, alpha: 1, accumulate: false } as const;

function gemmCase(m: number, n: number, k: number): CheckCase {
  return {
    name: `gemm bf16 ${m}x${n}x${k}`,
    run: () =>
      withBackend({}, async (b) => {
        const a = randomBuffer(b, 'bfloat16', m * k, 11);
        const w = randomBuffer(b, 'bfloat16', n * k, 12);
        const o = b.alloc('bfloat16', m * n);
        const p: MatmulParams = { ...GEMM, m, n, k, transA: false, transB: true };
        const ms = await timeIt(b, () => b.matmul(o, a, w, p));
        return {
          [`gemm bf16 ${m}x${n}x${k} ms`]: ms,
          [`gemm bf16 ${m}x${n}x${k} TFLOP/s`]: (2 * m * n * k) / ms / 1e9,
          gemmLibrary: b.gemmLibrary,
        };
      }),
  };
}

const [B, S, H, D] = [4, 1024, 32, 128];
const ATTENTION = { batch: B, seqQ: S, seqK: S, heads: H, kvHeads: H, headDim: D, scale: 1 / Math.sqrt(D), causal: true };
/** Causal attention's forward FLOPs: QKᵀ and PV over half the score matrix. */
const ATTENTION_FLOPS = (4 * B * H * S * S * D) / 2;

/** Attention forward and backward at 4×1024×32×128, causal, bf16; on tensor cores or (`tensorCores: false`) the float32 kernels. */
function attentionCase(tensorCores: boolean): CheckCase {
  const label = tensorCores ? 'tensor cores' : 'float32 kernels';
  return {
    name: `attention bf16 causal ${B}x${S}x${H}x${D} on the ${label}`,
    run: () =>
      withBackend({ tensorCores }, async (b) => {
        const n = B * S * H * D;
        const [q, k, v] = [21, 22, 23].map((seed) => randomBuffer(b, 'bfloat16', n, seed)) as [Buf, Buf, Buf];
        const o = b.alloc('bfloat16', n);
        const lse = b.alloc('float32', B * H * S);
        const [dq, dk, dv] = [0, 1, 2].map(() => b.alloc('bfloat16', n)) as [Buf, Buf, Buf];
        const dO = randomBuffer(b, 'bfloat16', n, 24);
        const fwd = await timeIt(b, () => b.attention(o, lse, q, k, v, null, ATTENTION), 5);
        const bwd = await timeIt(b, () => b.attentionBackward(dq, dk, dv, dO, q, k, v, o, lse, null, ATTENTION), 3);
        const key = `attention ${tensorCores ? 'tensor cores' : 'float32 kernels'}`;
        return {
          [`${key} fwd ms`]: fwd,
          [`${key} fwd TFLOP/s`]: ATTENTION_FLOPS / fwd / 1e9,
          [`${key} bwd ms`]: bwd,
          [`${key} bwd TFLOP/s`]: (2.5 * ATTENTION_FLOPS) / bwd / 1e9,
        };
      }),
  };
}

const crossEntropyCase: CheckCase = {
  name: 'crossEntropy bf16 8192x32000',
  run: () =>
    withBackend({}, async (b) => {
      const [rows, classes] = [8192, 32000];
      const logits = randomBuffer(b, 'bfloat16', rows * classes, 31);
      const targets = b.alloc('int32', rows);
      b.fill(targets, 3);
      const loss = b.alloc('float32', rows);
      const lse = b.alloc('float32', rows);
      const ms = await timeIt(b, () => b.crossEntropy(loss, lse, logits, targets, { rows, classes, ignoreIndex: -100 }));
      return { 'crossEntropy 8192x32000 bf16 ms': ms, 'crossEntropy GB/s': (rows * classes * 2) / ms / 1e6 };
    }),
};

/**
 * LoRA's mixed-dtype products at the Llama-2-7B bench shape (4096 tokens, r 16; in `hidden`), on
 * the skinny kernels (mixedKernels, the default) and widened for cuBLASLt: which path should be
 * the default is this ratio. x · Aᵀ reads 2 bytes per element of x; dA = dhᵀ · x too.
 */
function loraCase(hidden: number): CheckCase {
  const [T, r] = [4096, 16];
  return {
    name: `LoRA x·Aᵀ and dhᵀ·x ${T}x${hidden} r${r}, skinny vs widened`,
    run: async () => {
      const ms: Record<string, number> = {};
      for (const mixedKernels of [true, false]) {
        await withBackend({ mixedKernels }, async (b) => {
          const x = randomBuffer(b, 'bfloat16', T * hidden, 41);
          const A = randomBuffer(b, 'float32', r * hidden, 42);
          const dh = randomBuffer(b, 'float32', T * r, 43);
          const h = b.alloc('float32', T * r);
          const dA = b.alloc('float32', r * hidden);
          const key = mixedKernels ? 'skinny' : 'widened';
          ms[`xA ${key}`] = await timeIt(b, () => b.matmul(h, x, A, { ...GEMM, m: T, n: r, k: hidden, transA: false, transB: true }));
          ms[`dA ${key}`] = await timeIt(b, () => b.matmul(dA, dh, x, { ...GEMM, m: r, n: hidden, k: T, transA: true, transB: false }));
        });
      }
      const out: Record<string, number> = {};
      for (const op of ['xA', 'dA']) {
        const name = `LoRA ${op} ${T}x${hidden} r${r}`;
        out[`${name} skinny ms`] = ms[`${op} skinny`]!;
        out[`${name} skinny GB/s of x`] = (T * hidden * 2) / ms[`${op} skinny`]! / 1e6;
        out[`${name} widened ms`] = ms[`${op} widened`]!;
        out[`${name} skinny speedup`] = ms[`${op} widened`]! / ms[`${op} skinny`]!;
      }
      return out;
    },
  };
}

/** The timing cases, cheapest first. */
export function timingCases(): CheckCase[] {
  return [
    gemmCase(4096, 4096, 4096),
    gemmCase(8192, 4096, 11008),
    attentionCase(true),
    attentionCase(false),
    crossEntropyCase,
    loraCase(4096),
    loraCase(11008),
  ];
}
