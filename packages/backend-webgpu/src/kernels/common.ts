/** What kernels share, and helpers used by several kernel families. */
import type { View } from '@peft/core';
import type { GpuRuntime, Launch, LaunchBinding } from '../runtime.js';
import type { AttentionKind } from './attention.js';
import type { GemmKind } from './matmul.js';

/**
 * What every kernel receives first: the runtime and the kernel forms this backend picked. It is
 * also the `owner` of every buffer the backend allocates, so it identifies the backend instance.
 */
export interface Ctx {
  readonly rt: GpuRuntime;
  /**
   * Threads of the one-row-per-workgroup reductions (norms, cross-entropy, reduce, argmax): 256 on
   * a GPU; 4 (one SIMD group) on a CPU-backed adapter, where every barrier of a workgroup tree
   * costs a switch between all of its emulated threads.
   */
  readonly rowThreads: number;
  /** Which GEMM kernel runs (see kernels/matmul.ts). */
  readonly gemm: GemmKind;
  /** Which attention kernels run (see kernels/attention.ts). */
  readonly attentionKind: AttentionKind;
}

export const WG = 256;

/** One thread per element i < n: `body` runs with `i` in scope (and the bindings' accessors). */
export function map(
  ctx: Ctx,
  kernel: string,
  n: number,
  bindings: readonly LaunchBinding[],
  body: string,
  params: Launch['params'] = [],
  extra = '',
): void {
  ctx.rt.launch({
    kernel,
    params: [['n', 'u32', n], ...params],
    bindings,
    code: `${extra}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * ${WG}u + lid;
  if (i >= P.n) { return; }
  ${body}
}`,
    groups: Math.ceil(n / WG),
  });
}

/** WGSL: `wg_sum(v, lid)`, the sum of `v` over a workgroup of `t` threads (a tree in workgroup memory `red`), seen by every thread. */
export const wgSum = (t: number): string => /* wgsl */ `var<workgroup> red: array<f32, ${t}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${t / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

/**
 * One thread per element of `shape`, which `views` (checked by core) map into their buffers:
 * `body` runs with `i` (the element) and `idx<v>` (where view v puts it) in scope.
 */
export function mapStrided(
  ctx: Ctx,
  kernel: string,
  shape: readonly number[],
  views: readonly View[],
  bindings: readonly LaunchBinding[],
  body: string,
): void {
  const plan = planStrided(kernel, shape, views);
  const ix = stridedIndex(plan);
  ctx.rt.launch({
    kernel,
    params: [['n', 'u32', plan.count], ...ix.params],
    array: ix.array,
    bindings,
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * ${WG}u + lid;
  if (i >= P.n) { return; }
  ${ix.code}
  ${body}
}`,
    groups: Math.ceil(plan.count / WG),
  });
}

const MAX_DIMS = 8;

interface StridedPlan {
  count: number;
  /** Outermost first, size-1 dims dropped and dims contiguous in every view merged. */
  shape: number[];
  strides: number[][];
  offsets: number[];
}

/**
 * Merges the dimensions of views of `shape` (already checked against their buffers by core) so
 * that the kernel walks as few as possible; more than MAX_DIMS after merging is refused.
 */
function planStrided(kernel: string, shape: readonly number[], views: readonly View[]): StridedPlan {
  let count = 1;
  for (const d of shape) count *= d;
  // Innermost first while merging, then reversed.
  const dims: number[] = [];
  const strides: number[][] = views.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && views.every((view, v) => view.strides[d] === strides[v]![last]! * dims[last]!)) {
      dims[last]! *= shape[d]!;
      continue;
    }
    dims.push(shape[d]!);
    for (let v = 0; v < views.length; v++) strides[v]!.push(views[v]!.strides[d]!);
  }
  if (dims.length > MAX_DIMS)
    throw new Error(`${kernel}: the views need ${dims.length} dimensions after merging; at most ${MAX_DIMS} are supported`);
  return { count, shape: dims.reverse(), strides: strides.map((s) => s.reverse()), offsets: views.map((v) => v.offset) };
}

/**
 * The uniform array of a strided plan ([shape…8, strides of view 0…8, strides of view 1…8]) and
 * WGSL computing `idx<v>` (the element of view v) from the linear index `i`.
 */
function stridedIndex(plan: StridedPlan): { array: Launch['array']; code: string; params: [string, 'u32', number][] } {
  const nd = plan.shape.length;
  const values = new Array<number>(MAX_DIMS * (1 + plan.strides.length)).fill(0);
  plan.shape.forEach((s, d) => {
    values[d] = s;
  });
  plan.strides.forEach((st, v) => {
    st.forEach((s, d) => {
      values[MAX_DIMS * (v + 1) + d] = s >>> 0;
    });
  });
  const el = (k: number) => `P.dims[${k >> 2}][${k & 3}]`;
  const nv = plan.strides.length;
  const lines: string[] = [`var rem = i;`];
  for (let v = 0; v < nv; v++) lines.push(`var idx${v} = P.off${v};`);
  for (let d = nd - 1; d >= 0; d--) {
    if (d > 0) lines.push(`{ let s = ${el(d)}; let c = rem % s; rem = rem / s;`);
    else lines.push(`{ let c = rem;`);
    for (let v = 0; v < nv; v++) lines.push(`  idx${v} = idx${v} + c * ${el(MAX_DIMS * (v + 1) + d)};`);
    lines.push('}');
  }
  return {
    array: { name: 'dims', type: 'u32', values },
    code: lines.join('\n  '),
    params: plan.offsets.map((o, v) => [`off${v}`, 'u32', o] as [string, 'u32', number]),
  };
}
