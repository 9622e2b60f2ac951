/**
 * Every kernel in kernels/*.cu, its op family (= its fatbin) and its parameters, and the packing
 * of launch arguments into the buffer cuLaunchKernel reads (CU_LAUNCH_PARAM_BUFFER_POINTER):
 * each parameter at the next offset aligned to its own alignment, as the C ABI lays out a
 * kernel's parameters. A test compares these signatures with the PTX nvcc emitted
 * (fatbin/manifest.json), so a kernel whose C signature changed without this table fails in CI.
 */
import type { DType } from '@peft/core';

/** Keep equal to the DT_* defines in kernels/common.cuh. */
export const DTYPE_CODE: Record<DType, number> = { float32: 0, float16: 1, bfloat16: 2, int32: 3 };

/** Keep equal to the U_* defines in kernels/elementwise.cu. */
export const UNARY_CODE = { neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, square: 5, abs: 6, silu: 7, sigmoid: 8, tanh: 9, relu: 10 } as const;
/** Keep equal to the B_* defines in kernels/elementwise.cu. */
export const BINARY_CODE = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5 } as const;

/** ptr: a device address; i32/u32/f32: 4 bytes; i64/u64: 8 bytes; view: struct View; attn: struct AttnShape. */
export type ParamType = 'ptr' | 'i32' | 'u32' | 'f32' | 'i64' | 'u64' | 'view' | 'attn';

/** The PTX parameter type nvcc emits for each of ours. */
export const PTX_TYPE: Record<ParamType, string> = {
  ptr: 'u64',
  i32: 'u32',
  u32: 'u32',
  f32: 'f32',
  i64: 'u64',
  u64: 'u64',
  view: 'b8[144]@8',
  attn: 'b8[32]@4',
};

const SIZE: Record<ParamType, [size: number, align: number]> = {
  ptr: [8, 8],
  i32: [4, 4],
  u32: [4, 4],
  f32: [4, 4],
  i64: [8, 8],
  u64: [8, 8],
  view: [144, 8],
  attn: [32, 4],
};

/** Keep equal to MAX_RANK in kernels/common.cuh. */
export const MAX_RANK = 8;

/** struct View of common.cuh: rank, offset, shape[8], stride[8] (all int64). */
export interface KernelView {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/** struct AttnShape of kernels/attention.cuh. */
export interface AttnShape {
  batch: number;
  seqQ: number;
  seqK: number;
  heads: number;
  kvHeads: number;
  D: number;
  scale: number;
  causal: boolean;
}

export type ParamValue = number | bigint | boolean | KernelView | AttnShape;

const d = 'ptr'; // a device pointer
const t = 'i32'; // a dtype code or an int

export const KERNELS = {
  // copy.cu
  copy_convert: { family: 'copy', params: [d, t, d, t, 'view', 'i64'] },
  copy_bits32: { family: 'copy', params: [d, d, 'view', 'i64'] },
  copy_bits16: { family: 'copy', params: [d, d, 'view', 'i64'] },
  add_into: { family: 'copy', params: [d, t, d, t, 'view', 'i64'] },
  // elementwise.cu
  unary: { family: 'elementwise', params: [t, d, t, d, t, 'i64'] },
  unary_backward: { family: 'elementwise', params: [t, d, t, d, t, d, t, 'i64'] },
  affine: { family: 'elementwise', params: [d, t, d, t, 'f32', 'f32', 'i64'] },
  binary: { family: 'elementwise', params: [t, d, t, d, t, 'view', d, t, 'view', 'i64'] },
  // reduce.cu
  reduce_axis: { family: 'reduce', params: [t, d, t, d, t, 'i64', 'i64', 'i64'] },
  reduce_rows: { family: 'reduce', params: [t, d, t, d, t, 'i64'] },
  argmax_rows: { family: 'reduce', params: [d, d, t, 'i64'] },
  // matmul.cu
  gemm_tiled: {
    family: 'matmul',
    params: [d, t, d, t, d, t, 'i32', 'i32', 'i32', 'i32', 'i32', 'i64', 'i64', 'i64', 'i32', 'i32', 'f32', 'i32'],
  },
  // embedding.cu
  embedding: { family: 'embedding', params: [d, t, d, t, d, 'i64', 'i64', 'i64'] },
  embedding_backward: { family: 'embedding', params: [d, d, t, d, 'i64', 'i64', 'i64'] },
  // norms.cu
  layer_norm: { family: 'norms', params: [d, t, d, d, d, t, d, t, d, t, 'i64', 'f32', 'i32'] },
  layer_norm_backward: { family: 'norms', params: [d, t, d, t, d, t, d, t, d, d, 'i64'] },
  norm_param_grad: { family: 'norms', params: [d, d, d, t, d, t, d, d, 'i64', 'i64', 'i64'] },
  // rotary.cu
  rotary: { family: 'rotary', params: [d, t, d, t, d, 'i64', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32'] },
  // attention.cu (NV = 2, 4, 8 feature registers per lane: headDim ≤ 64, 128, 256)
  attention_fwd_2: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, 'attn'] },
  attention_fwd_4: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, 'attn'] },
  attention_fwd_8: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, 'attn'] },
  attention_bwd_dq_2: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, t, d, d, 'attn'] },
  attention_bwd_dq_4: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, t, d, d, 'attn'] },
  attention_bwd_dq_8: { family: 'attention', params: [d, t, d, d, t, d, t, d, t, d, t, d, d, 'attn'] },
  attention_bwd_dkdv_2: { family: 'attention', params: [d, t, d, t, d, t, d, t, d, t, d, t, d, d, d, 'attn'] },
  attention_bwd_dkdv_4: { family: 'attention', params: [d, t, d, t, d, t, d, t, d, t, d, t, d, d, d, 'attn'] },
  attention_bwd_dkdv_8: { family: 'attention', params: [d, t, d, t, d, t, d, t, d, t, d, t, d, d, d, 'attn'] },
  // attention_tc.cu: tensor cores, q, k, v of one 16-bit dtype, headDim 64 or 128
  attention_fwd_tc_bf16_64: { family: 'attention_tc', params: [d, t, d, d, d, d, d, 'attn'] },
  attention_fwd_tc_bf16_128: { family: 'attention_tc', params: [d, t, d, d, d, d, d, 'attn'] },
  attention_fwd_tc_f16_64: { family: 'attention_tc', params: [d, t, d, d, d, d, d, 'attn'] },
  attention_fwd_tc_f16_128: { family: 'attention_tc', params: [d, t, d, d, d, d, d, 'attn'] },
  attention_bwd_dkdv_tc_bf16_64: { family: 'attention_tc', params: [d, t, d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dkdv_tc_bf16_128: { family: 'attention_tc', params: [d, t, d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dkdv_tc_f16_64: { family: 'attention_tc', params: [d, t, d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dkdv_tc_f16_128: { family: 'attention_tc', params: [d, t, d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dq_tc_bf16_64: { family: 'attention_tc', params: [d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dq_tc_bf16_128: { family: 'attention_tc', params: [d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dq_tc_f16_64: { family: 'attention_tc', params: [d, t, d, d, d, d, d, d, d, 'attn'] },
  attention_bwd_dq_tc_f16_128: { family: 'attention_tc', params: [d, t, d, d, d, d, d, d, d, 'attn'] },
  // activations.cu
  gelu: { family: 'activations', params: [d, t, d, t, 'i32', 'i64'] },
  gelu_backward: { family: 'activations', params: [d, t, d, t, d, t, 'i32', 'i64'] },
  silu_mul: { family: 'activations', params: [d, t, d, t, d, t, 'i64'] },
  silu_mul_backward: { family: 'activations', params: [d, t, d, t, d, t, d, t, d, t, 'i64'] },
  // loss.cu
  cross_entropy: { family: 'loss', params: [d, d, d, t, d, 'i64', 'i32'] },
  cross_entropy_backward: { family: 'loss', params: [d, t, d, t, d, t, d, d, 'i64', 'i32'] },
  // random.cu
  random_fill: { family: 'random', params: [d, t, 'u32', 'u32', 'u64', 'i32', 'f32', 'f32', 'i64'] },
  dropout: { family: 'random', params: [d, t, d, t, 'u32', 'u32', 'u64', 'f32', 'f32', 'i64'] },
  row_dropout: { family: 'random', params: [d, t, d, t, d, t, d, 'f32', 'f32', 'i64', 'i64'] },
  // matmul_skinny.cu: a 16-bit operand against a float32 one with a small side (LoRA's rank)
  gemm_skinny_n_16: { family: 'matmul_skinny', params: [d, d, t, d, t, t, t, t, 'f32', t] },
  gemm_skinny_n_32: { family: 'matmul_skinny', params: [d, d, t, d, t, t, t, t, 'f32', t] },
  gemm_skinny_n_64: { family: 'matmul_skinny', params: [d, d, t, d, t, t, t, t, 'f32', t] },
  gemm_skinny_m_16: { family: 'matmul_skinny', params: [d, d, d, t, d, t, t, t, t, t, 'f32', t] },
  gemm_skinny_m_32: { family: 'matmul_skinny', params: [d, d, d, t, d, t, t, t, t, t, 'f32', t] },
  gemm_skinny_m_64: { family: 'matmul_skinny', params: [d, d, d, t, d, t, t, t, t, t, 'f32', t] },
  skinny_sum: { family: 'matmul_skinny', params: [d, d, t, 'i64', 'f32', t] },
  // adamw.cu
  adamw: { family: 'adamw', params: [d, t, d, t, d, d, 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', d, 'f32', 'i64'] },
} as const satisfies Record<string, { family: string; params: readonly ParamType[] }>;

export type KernelName = keyof typeof KERNELS;

/** Bytes the packed arguments of `params` take. */
export function packedSize(params: readonly ParamType[]): number {
  let at = 0;
  for (const p of params) {
    const [size, align] = SIZE[p];
    at = Math.ceil(at / align) * align + size;
  }
  return at;
}

/**
 * Writes `values` for `params` into `view` from byte 0 (little-endian, C layout) and returns the
 * byte count. Pointers are device addresses (numbers); null/0 is a null pointer.
 */
export function packArgs(view: DataView, kernel: string, params: readonly ParamType[], values: readonly ParamValue[]): number {
  if (values.length !== params.length) {
    throw new Error(`launch ${kernel}: ${values.length} arguments for ${params.length} parameters`);
  }
  let at = 0;
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    const [size, align] = SIZE[p];
    at = Math.ceil(at / align) * align;
    if (at + size > view.byteLength) throw new Error(`launch ${kernel}: arguments take more than ${view.byteLength} bytes`);
    const v = values[i];
    switch (p) {
      case 'ptr':
      case 'i64':
      case 'u64':
        if (p === 'i64') view.setBigInt64(at, BigInt(v as number | bigint), true);
        else view.setBigUint64(at, BigInt(v as number | bigint), true);
        break;
      case 'i32':
        view.setInt32(at, typeof v === 'boolean' ? Number(v) : (v as number), true);
        break;
      case 'u32':
        view.setUint32(at, v as number, true);
        break;
      case 'f32':
        view.setFloat32(at, v as number, true);
        break;
      case 'view': {
        const kv = v as KernelView;
        const rank = kv.shape.length;
        if (rank > MAX_RANK) throw new Error(`launch ${kernel}: a view of rank ${rank} (more than ${MAX_RANK} after merging dims)`);
        view.setBigInt64(at, BigInt(rank), true);
        view.setBigInt64(at + 8, BigInt(kv.offset), true);
        for (let k = 0; k < MAX_RANK; k++) {
          view.setBigInt64(at + 16 + 8 * k, BigInt(k < rank ? kv.shape[k] : 1), true);
          view.setBigInt64(at + 80 + 8 * k, BigInt(k < rank ? kv.strides[k] : 0), true);
        }
        break;
      }
      case 'attn': {
        const s = v as AttnShape;
        const ints = [s.batch, s.seqQ, s.seqK, s.heads, s.kvHeads, s.D];
        for (let k = 0; k < ints.length; k++) view.setInt32(at + 4 * k, ints[k], true);
        view.setFloat32(at + 24, s.scale, true);
        view.setInt32(at + 28, s.causal ? 1 : 0, true);
        break;
      }
    }
    at += size;
  }
  return at;
}

/**
 * The same view with fewer dims: size-1 dims dropped and neighbours merged where
 * stride[d] = stride[d+1]·shape[d+1] (so a contiguous view becomes rank 1). Element order is kept.
 */
export function simplifyView(v: KernelView): KernelView {
  const shape: number[] = [];
  const strides: number[] = [];
  for (let k = 0; k < v.shape.length; k++) {
    if (v.shape[k] === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && strides[last] === v.strides[k] * v.shape[k]) {
      shape[last] *= v.shape[k];
      strides[last] = v.strides[k];
    } else {
      shape.push(v.shape[k]);
      strides.push(v.strides[k]);
    }
  }
  if (shape.length === 0) return { shape: [1], strides: [1], offset: v.offset };
  return { shape, strides, offset: v.offset };
}

/** Two views of one shape (binary's a and b) simplified together: dims merge only where both allow it. */
export function simplifyViews(a: KernelView, b: KernelView): [KernelView, KernelView] {
  const shape: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  for (let k = 0; k < a.shape.length; k++) {
    const n = a.shape[k];
    if (n === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && sa[last] === a.strides[k] * n && sb[last] === b.strides[k] * n) {
      shape[last] *= n;
      sa[last] = a.strides[k];
      sb[last] = b.strides[k];
    } else {
      shape.push(n);
      sa.push(a.strides[k]);
      sb.push(b.strides[k]);
    }
  }
  if (shape.length === 0)
    return [
      { shape: [1], strides: [1], offset: a.offset },
      { shape: [1], strides: [1], offset: b.offset },
    ];
  return [
    { shape, strides: sa, offset: a.offset },
    { shape: [...shape], strides: sb, offset: b.offset },
  ];
}

/** Whether the view reads elements offset, offset+1, … in order (a plain contiguous range). */
export function isContiguous(v: KernelView): boolean {
  const s = simplifyView(v);
  return s.shape.length === 1 && (s.strides[0] === 1 || s.shape[0] === 1);
}
