// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// The row kernels of kernels/norms.ts (layerNorm, rmsNorm and their backward passes) in
// WebAssembly SIMD (128-bit), the same bits: see kernels/norms-wasm.ts for how the host feeds
// them. Every pointer is a byte address in the module's own memory, where the host has copied a
// chunk of rows (float32, `dim` apart, no padding) and the weight / bias rows.
//
// Why the bits are norms.ts's: every value is computed in float64 with the same operations in the
// same order, two lanes at a time, and rounded once to float32 (f32x4.demote_f64x2_zero, like a
// Float32Array store). A row's four interleaved partial sums (partial i adds elements j ≡ i mod 4,
// the dim mod 4 trailing elements go to partial 0, total (p0 + p1) + (p2 + p3)) are two f64x2
// accumulators over lanes (0, 1) and (2, 3) of each step of four elements, then scalar additions
// into lane 0 for the tail. The statistics are rounded to float32 (Math.fround) before use.
// WebAssembly has no fused multiply-add outside relaxed SIMD (not enabled), so each product is
// rounded as in JavaScript. The dWeight / dBias partials are per-block float64 sums, kept here
// across calls (a block may span chunks) and added in block order into float64 totals.
//
// No allocation, no runtime, no data segments: the memory is the host's to lay out.

/** Elements 0, 1 (lo) or 2, 3 (hi) of the four float32 at p, as float64 lanes. */
function lo(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}
function hi(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
}
/** Two float64 lanes rounded to float32 and stored at p. */
function put(p: usize, v: v128): void {
  v128.store64_lane(p, f32x4.demote_f64x2_zero(v), 0);
}
/** The float32 at p, as float64. */
function f(p: usize): f64 {
  return <f64>load<f32>(p);
}
/** part[i] += v for the two float64 at p. */
function addTo(p: usize, v: v128): void {
  v128.store(p, f64x2.add(v128.load(p), v));
}

/**
 * norms.ts layerNormRows over n rows at x: y = (x − mean)·rstd·w (+ b where b ≠ 0), the rows'
 * mean and rstd (float32) at meanOut / rstdOut.
 */
export function layerNormRows(y: usize, meanOut: usize, rstdOut: usize, x: usize, w: usize, b: usize, dim: i32, eps: f64, n: i32): void {
  const dim4 = dim & ~3;
  const rowBytes = (<usize>dim) << 2;
  const fdim = <f64>dim;
  for (let r = 0; r < n; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = y + <usize>r * rowBytes;
    const shift: f64 = dim > 0 ? f(xr) : 0;
    const sh = f64x2.splat(shift);
    let a01 = f64x2.splat(0);
    let a23 = f64x2.splat(0);
    let q01 = f64x2.splat(0);
    let q23 = f64x2.splat(0);
    let j = 0;
    for (; j < dim4; j += 4) {
      const p = xr + ((<usize>j) << 2);
      const d01 = f64x2.sub(lo(p), sh);
      const d23 = f64x2.sub(hi(p), sh);
      a01 = f64x2.add(a01, d01);
      a23 = f64x2.add(a23, d23);
      q01 = f64x2.add(q01, f64x2.mul(d01, d01));
      q23 = f64x2.add(q23, f64x2.mul(d23, d23));
    }
    let a0 = f64x2.extract_lane(a01, 0);
    let q0 = f64x2.extract_lane(q01, 0);
    for (; j < dim; j++) {
      const d = f(xr + ((<usize>j) << 2)) - shift;
      a0 += d;
      q0 += d * d;
    }
    const s1 = a0 + f64x2.extract_lane(a01, 1) + (f64x2.extract_lane(a23, 0) + f64x2.extract_lane(a23, 1));
    const s2 = q0 + f64x2.extract_lane(q01, 1) + (f64x2.extract_lane(q23, 0) + f64x2.extract_lane(q23, 1));
    const variance = max<f64>(0, (s2 - (s1 * s1) / fdim) / fdim);
    const m = <f32>(shift + s1 / fdim);
    const s = <f32>(1 / Math.sqrt(variance + eps));
    store<f32>(meanOut + ((<usize>r) << 2), m);
    store<f32>(rstdOut + ((<usize>r) << 2), s);
    const mf = <f64>m;
    const sf = <f64>s;
    const mv = f64x2.splat(mf);
    const sv = f64x2.splat(sf);
    let k = 0;
    if (b === 0) {
      for (; k < dim4; k += 4) {
        const o = (<usize>k) << 2;
        put(yr + o, f64x2.mul(f64x2.mul(f64x2.sub(lo(xr + o), mv), sv), lo(w + o)));
        put(yr + o + 8, f64x2.mul(f64x2.mul(f64x2.sub(hi(xr + o), mv), sv), hi(w + o)));
      }
      for (; k < dim; k++) {
        const o = (<usize>k) << 2;
        store<f32>(yr + o, <f32>((f(xr + o) - mf) * sf * f(w + o)));
      }
    } else {
      for (; k < dim4; k += 4) {
        const o = (<usize>k) << 2;
        put(yr + o, f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(lo(xr + o), mv), sv), lo(w + o)), lo(b + o)));
        put(yr + o + 8, f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(hi(xr + o), mv), sv), hi(w + o)), hi(b + o)));
      }
      for (; k < dim; k++) {
        const o = (<usize>k) << 2;
        store<f32>(yr + o, <f32>((f(xr + o) - mf) * sf * f(w + o) + f(b + o)));
      }
    }
  }
}

/**
 * norms.ts layerNormBackwardRows over n rows at dy / x (rows r0 … r0 + n − 1 of `rows`, with
 * their mean and rstd at mean / rstd). Where dwPart ≠ 0: the block partials of Σ dy·x̂ and Σ dy
 * (float64, dim each, at dwPart / dbPart) start at 0 on a row that begins a block (r a multiple
 * of `block`), take each row, and are added into the totals at dwSum / dbSum when the block ends.
 */
export function layerNormBackwardRows(
  dx: usize,
  dy: usize,
  x: usize,
  w: usize,
  mean: usize,
  rstd: usize,
  dim: i32,
  n: i32,
  r0: i32,
  rows: i32,
  block: i32,
  dwPart: usize,
  dbPart: usize,
  dwSum: usize,
  dbSum: usize,
): void {
  const dim4 = dim & ~3;
  const rowBytes = (<usize>dim) << 2;
  const fdim = <f64>dim;
  const params = dwPart !== 0;
  for (let i = 0; i < n; i++) {
    const r = r0 + i;
    if (params && r % block === 0) {
      memory.fill(dwPart, 0, (<usize>dim) << 3);
      memory.fill(dbPart, 0, (<usize>dim) << 3);
    }
    const at = <usize>i * rowBytes;
    const xr = x + at;
    const gr = dy + at;
    const mf = <f64>load<f32>(mean + ((<usize>i) << 2));
    const sf = <f64>load<f32>(rstd + ((<usize>i) << 2));
    const mv = f64x2.splat(mf);
    const sv = f64x2.splat(sf);
    let g01 = f64x2.splat(0);
    let g23 = f64x2.splat(0);
    let h01 = f64x2.splat(0);
    let h23 = f64x2.splat(0);
    let j = 0;
    let g0: f64 = 0;
    let h0: f64 = 0;
    if (params) {
      for (; j < dim4; j += 4) {
        const o = (<usize>j) << 2;
        const d01 = lo(gr + o);
        const d23 = hi(gr + o);
        const x01 = f64x2.mul(f64x2.sub(lo(xr + o), mv), sv);
        const x23 = f64x2.mul(f64x2.sub(hi(xr + o), mv), sv);
        const e01 = f64x2.mul(d01, lo(w + o));
        const e23 = f64x2.mul(d23, hi(w + o));
        g01 = f64x2.add(g01, e01);
        g23 = f64x2.add(g23, e23);
        h01 = f64x2.add(h01, f64x2.mul(e01, x01));
        h23 = f64x2.add(h23, f64x2.mul(e23, x23));
        const p = (<usize>j) << 3;
        addTo(dwPart + p, f64x2.mul(d01, x01));
        addTo(dwPart + p + 16, f64x2.mul(d23, x23));
        addTo(dbPart + p, d01);
        addTo(dbPart + p + 16, d23);
      }
      g0 = f64x2.extract_lane(g01, 0);
      h0 = f64x2.extract_lane(h01, 0);
      for (; j < dim; j++) {
        const o = (<usize>j) << 2;
        const d = f(gr + o);
        const xh = (f(xr + o) - mf) * sf;
        const e = d * f(w + o);
        g0 += e;
        h0 += e * xh;
        const p = (<usize>j) << 3;
        store<f64>(dwPart + p, load<f64>(dwPart + p) + d * xh);
        store<f64>(dbPart + p, load<f64>(dbPart + p) + d);
      }
    } else {
      for (; j < dim4; j += 4) {
        const o = (<usize>j) << 2;
        const e01 = f64x2.mul(lo(gr + o), lo(w + o));
        const e23 = f64x2.mul(hi(gr + o), hi(w + o));
        g01 = f64x2.add(g01, e01);
        g23 = f64x2.add(g23, e23);
        h01 = f64x2.add(h01, f64x2.mul(e01, f64x2.mul(f64x2.sub(lo(xr + o), mv), sv)));
        h23 = f64x2.add(h23, f64x2.mul(e23, f64x2.mul(f64x2.sub(hi(xr + o), mv), sv)));
      }
      g0 = f64x2.extract_lane(g01, 0);
      h0 = f64x2.extract_lane(h01, 0);
      for (; j < dim; j++) {
        const o = (<usize>j) << 2;
        const e = f(gr + o) * f(w + o);
        g0 += e;
        h0 += e * ((f(xr + o) - mf) * sf);
      }
    }
    const meanG = (g0 + f64x2.extract_lane(g01, 1) + (f64x2.extract_lane(g23, 0) + f64x2.extract_lane(g23, 1))) / fdim;
    const meanGX = (h0 + f64x2.extract_lane(h01, 1) + (f64x2.extract_lane(h23, 0) + f64x2.extract_lane(h23, 1))) / fdim;
    const mg = f64x2.splat(meanG);
    const mgx = f64x2.splat(meanGX);
    const dr = dx + at;
    let k = 0;
    for (; k < dim4; k += 4) {
      const o = (<usize>k) << 2;
      const t01 = f64x2.sub(f64x2.sub(f64x2.mul(lo(gr + o), lo(w + o)), mg), f64x2.mul(f64x2.mul(f64x2.sub(lo(xr + o), mv), sv), mgx));
      const t23 = f64x2.sub(f64x2.sub(f64x2.mul(hi(gr + o), hi(w + o)), mg), f64x2.mul(f64x2.mul(f64x2.sub(hi(xr + o), mv), sv), mgx));
      put(dr + o, f64x2.mul(sv, t01));
      put(dr + o + 8, f64x2.mul(sv, t23));
    }
    for (; k < dim; k++) {
      const o = (<usize>k) << 2;
      store<f32>(dr + o, <f32>(sf * (f(gr + o) * f(w + o) - meanG - (f(xr + o) - mf) * sf * meanGX)));
    }
    if (params && ((r + 1) % block === 0 || r + 1 === rows)) {
      addBlock(dwSum, dwPart, dim);
      addBlock(dbSum, dbPart, dim);
    }
  }
}

/** sum[j] += part[j], j < dim (float64): one block's partials into the totals. */
function addBlock(sum: usize, part: usize, dim: i32): void {
  const dim2 = dim & ~1;
  let j = 0;
  for (; j < dim2; j += 2) {
    const p = (<usize>j) << 3;
    addTo(sum + p, v128.load(part + p));
  }
  if (j < dim) {
    const p = (<usize>j) << 3;
    store<f64>(sum + p, load<f64>(sum + p) + load<f64>(part + p));
  }
}

/** norms.ts rmsNormRows over n rows at x: y = x·rstd·w, the rows' rstd (float32) at rstdOut. */
export function rmsNormRows(y: usize, rstdOut: usize, x: usize, w: usize, dim: i32, eps: f64, n: i32): void {
  const dim4 = dim & ~3;
  const rowBytes = (<usize>dim) << 2;
  const fdim = <f64>dim;
  for (let r = 0; r < n; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = y + <usize>r * rowBytes;
    let q01 = f64x2.splat(0);
    let q23 = f64x2.splat(0);
    let j = 0;
    for (; j < dim4; j += 4) {
      const p = xr + ((<usize>j) << 2);
      const v01 = lo(p);
      const v23 = hi(p);
      q01 = f64x2.add(q01, f64x2.mul(v01, v01));
      q23 = f64x2.add(q23, f64x2.mul(v23, v23));
    }
    let q0 = f64x2.extract_lane(q01, 0);
    for (; j < dim; j++) {
      const v = f(xr + ((<usize>j) << 2));
      q0 += v * v;
    }
    const q = q0 + f64x2.extract_lane(q01, 1) + (f64x2.extract_lane(q23, 0) + f64x2.extract_lane(q23, 1));
    const s = <f32>(1 / Math.sqrt(q / fdim + eps));
    store<f32>(rstdOut + ((<usize>r) << 2), s);
    const sf = <f64>s;
    const sv = f64x2.splat(sf);
    let k = 0;
    for (; k < dim4; k += 4) {
      const o = (<usize>k) << 2;
      put(yr + o, f64x2.mul(f64x2.mul(lo(xr + o), sv), lo(w + o)));
      put(yr + o + 8, f64x2.mul(f64x2.mul(hi(xr + o), sv), hi(w + o)));
    }
    for (; k < dim; k++) {
      const o = (<usize>k) << 2;
      store<f32>(yr + o, <f32>(f(xr + o) * sf * f(w + o)));
    }
  }
}

/**
 * norms.ts rmsNormBackwardRows over n rows at dy / x (rows r0 … r0 + n − 1 of `rows`, their
 * rstd at rstd); where dwPart ≠ 0, Σ dy·x̂ by blocks into dwSum as layerNormBackwardRows.
 */
export function rmsNormBackwardRows(
  dx: usize,
  dy: usize,
  x: usize,
  w: usize,
  rstd: usize,
  dim: i32,
  n: i32,
  r0: i32,
  rows: i32,
  block: i32,
  dwPart: usize,
  dwSum: usize,
): void {
  const dim4 = dim & ~3;
  const rowBytes = (<usize>dim) << 2;
  const fdim = <f64>dim;
  const params = dwPart !== 0;
  for (let i = 0; i < n; i++) {
    const r = r0 + i;
    if (params && r % block === 0) memory.fill(dwPart, 0, (<usize>dim) << 3);
    const at = <usize>i * rowBytes;
    const xr = x + at;
    const gr = dy + at;
    const sf = <f64>load<f32>(rstd + ((<usize>i) << 2));
    const sv = f64x2.splat(sf);
    let h01 = f64x2.splat(0);
    let h23 = f64x2.splat(0);
    let j = 0;
    let h0: f64 = 0;
    if (params) {
      for (; j < dim4; j += 4) {
        const o = (<usize>j) << 2;
        const d01 = lo(gr + o);
        const d23 = hi(gr + o);
        const x01 = f64x2.mul(lo(xr + o), sv);
        const x23 = f64x2.mul(hi(xr + o), sv);
        h01 = f64x2.add(h01, f64x2.mul(f64x2.mul(d01, lo(w + o)), x01));
        h23 = f64x2.add(h23, f64x2.mul(f64x2.mul(d23, hi(w + o)), x23));
        const p = (<usize>j) << 3;
        addTo(dwPart + p, f64x2.mul(d01, x01));
        addTo(dwPart + p + 16, f64x2.mul(d23, x23));
      }
      h0 = f64x2.extract_lane(h01, 0);
      for (; j < dim; j++) {
        const o = (<usize>j) << 2;
        const d = f(gr + o);
        const xh = f(xr + o) * sf;
        h0 += d * f(w + o) * xh;
        const p = (<usize>j) << 3;
        store<f64>(dwPart + p, load<f64>(dwPart + p) + d * xh);
      }
    } else {
      for (; j < dim4; j += 4) {
        const o = (<usize>j) << 2;
        h01 = f64x2.add(h01, f64x2.mul(f64x2.mul(lo(gr + o), lo(w + o)), f64x2.mul(lo(xr + o), sv)));
        h23 = f64x2.add(h23, f64x2.mul(f64x2.mul(hi(gr + o), hi(w + o)), f64x2.mul(hi(xr + o), sv)));
      }
      h0 = f64x2.extract_lane(h01, 0);
      for (; j < dim; j++) {
        const o = (<usize>j) << 2;
        h0 += f(gr + o) * f(w + o) * (f(xr + o) * sf);
      }
    }
    const meanGX = (h0 + f64x2.extract_lane(h01, 1) + (f64x2.extract_lane(h23, 0) + f64x2.extract_lane(h23, 1))) / fdim;
    const mgx = f64x2.splat(meanGX);
    const dr = dx + at;
    let k = 0;
    for (; k < dim4; k += 4) {
      const o = (<usize>k) << 2;
      const t01 = f64x2.sub(f64x2.mul(lo(gr + o), lo(w + o)), f64x2.mul(f64x2.mul(lo(xr + o), sv), mgx));
      const t23 = f64x2.sub(f64x2.mul(hi(gr + o), hi(w + o)), f64x2.mul(f64x2.mul(hi(xr + o), sv), mgx));
      put(dr + o, f64x2.mul(sv, t01));
      put(dr + o + 8, f64x2.mul(sv, t23));
    }
    for (; k < dim; k++) {
      const o = (<usize>k) << 2;
      store<f32>(dr + o, <f32>(sf * (f(gr + o) * f(w + o) - f(xr + o) * sf * meanGX)));
    }
    if (params && ((r + 1) % block === 0 || r + 1 === rows)) addBlock(dwSum, dwPart, dim);
  }
}
