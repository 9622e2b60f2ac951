/** What kernels need from the backend, and helpers shared by the kernel families. */
import type { View } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import type { GpuRuntime, Launch, LaunchBinding } from '../runtime.js';

export interface Ctx {
  /** The backend: owner of every buffer it allocated. */
  readonly owner: object;
  readonly rt: GpuRuntime;
  /**
   * Threads of the one-row-per-workgroup reductions (norms, cross-entropy, reduce, argmax): 256 on
   * a GPU; 4 (one SIMD group) on a CPU-backed adapter, where every barrier of a workgroup tree
   * costs a switch between all of its emulated threads.
   */
  readonly rowThreads: number;
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

export const MAX_DIMS = 8;

export interface StridedPlan {
  count: number;
  /** Outermost first, size-1 dims dropped and dims contiguous in every view merged. */
  shape: number[];
  strides: number[][];
  offsets: number[];
}

/** Validates views of `shape` over buffers of `sizes` elements and merges their dimensions. */
export function planStrided(
  kernel: string,
  shape: readonly number[],
  views: readonly View[],
  names: readonly string[],
  sizes: readonly number[],
): StridedPlan {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${kernel}: view shape [${shape.join(',')}] has a bad dimension ${d}`);
    count *= d;
  }
  views.forEach((view, v) => {
    const name = names[v];
    if (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${kernel}: ${name} view has shape [${view.shape.join(',')}] but the op needs [${shape.join(',')}]`);
    }
    if (view.strides.length !== shape.length)
      throw new Error(`${kernel}: ${name} view has ${view.strides.length} strides for ${shape.length} dimensions`);
    if (!Number.isSafeInteger(view.offset) || view.offset < 0)
      throw new Error(`${kernel}: ${name} view offset must be a non-negative integer, got ${view.offset}`);
    let min = view.offset;
    let max = view.offset;
    for (let d = 0; d < shape.length; d++) {
      const s = view.strides[d]!;
      if (!Number.isSafeInteger(s)) throw new Error(`${kernel}: ${name} view stride ${s} is not an integer`);
      const reach = (shape[d]! - 1) * s;
      if (reach < 0) min += reach;
      else max += reach;
    }
    if (count > 0 && (min < 0 || max >= sizes[v]!)) {
      throw new Error(
        `${kernel}: ${name} view (shape [${shape.join(',')}], strides [${view.strides.join(',')}], offset ${view.offset}) reaches elements ${min}..${max} of a buffer of ${sizes[v]}`,
      );
    }
  });
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
export function stridedIndex(plan: StridedPlan): { array: Launch['array']; code: string; params: [string, 'u32', number][] } {
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

export type { WebGpuBuffer };
