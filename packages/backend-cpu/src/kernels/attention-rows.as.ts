// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Row kernels of the CPU backend's attention (attention.ts, attention-rows.ts) in WebAssembly
// SIMD (128-bit): the forward's softmax of a block of score rows, and the backward's
// P = exp(S − lse), D_i = Σ_j P_ij·dP_ij and dS = P·(dP − D_i).
//
// A block is `rows` rows of `n` float32 values, n apart. Row r sees its first
// seen(r) = clamp(seen0 + r·step, 0, n) entries (the causal rule); the rest of the row is set to
// 0. With `bias` (a byte pointer, 0 for none), the float32 bias[c] (0 for a real key, −∞ for
// padding) is added to entry c of every row first. Sums are float64. No allocation, no runtime.

/**
 * e^x in each lane: x = t·ln 2 + r with t = round(x·log2 e) and ln 2 split in two (Cody–Waite),
 * e^r by Cephes' expf polynomial on |r| ≤ ln 2 / 2 (about 1 ulp), 2^t added to the exponent bits.
 * Lanes below −86.6 (e^x < 2.6e-38, where 2^t would leave the normal range), −∞ included, give 0.
 */
function exp4(x: v128): v128 {
  const xc = f32x4.min(x, f32x4.splat(88.0));
  const t = f32x4.nearest(f32x4.mul(xc, f32x4.splat(<f32>Math.LOG2E)));
  let r = f32x4.sub(xc, f32x4.mul(t, f32x4.splat(0.693359375)));
  r = f32x4.add(r, f32x4.mul(t, f32x4.splat(2.1219444e-4)));
  let y = f32x4.splat(1.98756915e-4);
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, f32x4.mul(r, r)), r), f32x4.splat(1.0));
  y = i32x4.add(y, i32x4.shl(i32x4.trunc_sat_f32x4_s(t), 23));
  return v128.andnot(y, f32x4.lt(x, f32x4.splat(-86.6)));
}

function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

function sum2(acc: v128): f64 {
  return f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
}

/** acc + the four lanes of v, widened to float64. */
function addWide(acc: v128, v: v128): v128 {
  acc = f64x2.add(acc, f64x2.promote_low_f32x4(v));
  return f64x2.add(acc, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
}

function seenOf(r: i32, n: i32, seen0: i32, step: i32): i32 {
  return min(max(seen0 + r * step, 0), n);
}

/**
 * Softmax of each row over what it sees: row ← e^(x − max) (0 where unseen), maxOut[r] = max
 * (float32), sumOut[r] = Σ e^(x − max) (float64). A row that sees no key (max −∞) becomes all 0
 * with max −∞ and sum 0.
 */
export function softmaxRows(s: usize, rows: i32, n: i32, seen0: i32, step: i32, bias: usize, maxOut: usize, sumOut: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = s + ((<usize>(r * n)) << 2);
    const seen = seenOf(r, n, seen0, step);
    let mv = f32x4.splat(-Infinity);
    let c = 0;
    if (bias) {
      for (; c + 4 <= seen; c += 4) mv = f32x4.max(mv, f32x4.add(v128.load(row + ((<usize>c) << 2)), v128.load(bias + ((<usize>c) << 2))));
    } else {
      for (; c + 4 <= seen; c += 4) mv = f32x4.max(mv, v128.load(row + ((<usize>c) << 2)));
    }
    let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; c < seen; c++) {
      const x = load<f32>(row + ((<usize>c) << 2)) + (bias ? load<f32>(bias + ((<usize>c) << 2)) : 0);
      m = max(m, x);
    }
    store<f32>(maxOut + ((<usize>r) << 2), m);
    if (m === -Infinity) {
      memory.fill(row, 0, (<usize>n) << 2);
      store<f64>(sumOut + ((<usize>r) << 3), 0);
      continue;
    }
    const mm = f32x4.splat(m);
    let acc = f64x2.splat(0);
    c = 0;
    if (bias) {
      for (; c + 4 <= seen; c += 4) {
        const at = (<usize>c) << 2;
        const e = exp4(f32x4.sub(f32x4.add(v128.load(row + at), v128.load(bias + at)), mm));
        v128.store(row + at, e);
        acc = addWide(acc, e);
      }
    } else {
      for (; c + 4 <= seen; c += 4) {
        const at = (<usize>c) << 2;
        const e = exp4(f32x4.sub(v128.load(row + at), mm));
        v128.store(row + at, e);
        acc = addWide(acc, e);
      }
    }
    let sum = sum2(acc);
    for (; c < seen; c++) {
      const at = (<usize>c) << 2;
      const e = exp1(load<f32>(row + at) + (bias ? load<f32>(bias + at) : 0) - m);
      store<f32>(row + at, e);
      sum += <f64>e;
    }
    memory.fill(row + ((<usize>seen) << 2), 0, (<usize>(n - seen)) << 2);
    store<f64>(sumOut + ((<usize>r) << 3), sum);
  }
}

/**
 * The backward's row math, in place: p holds the scores S and becomes P = e^(S − lse[r]) (0
 * where unseen), ds holds dP and becomes dS = P·(dP − D_r) with D_r = Σ_c P·dP. A row whose
 * lse is −∞ becomes all 0 in both.
 */
export function gradRows(p: usize, ds: usize, rows: i32, n: i32, seen0: i32, step: i32, bias: usize, lse: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = (<usize>(r * n)) << 2;
    const pr = p + off;
    const dr = ds + off;
    const l = load<f32>(lse + ((<usize>r) << 2));
    if (l === -Infinity) {
      memory.fill(pr, 0, (<usize>n) << 2);
      memory.fill(dr, 0, (<usize>n) << 2);
      continue;
    }
    const seen = seenOf(r, n, seen0, step);
    const lv = f32x4.splat(l);
    let acc = f64x2.splat(0);
    let c = 0;
    for (; c + 4 <= seen; c += 4) {
      const at = (<usize>c) << 2;
      let x = v128.load(pr + at);
      if (bias) x = f32x4.add(x, v128.load(bias + at));
      const e = exp4(f32x4.sub(x, lv));
      v128.store(pr + at, e);
      acc = addWide(acc, f32x4.mul(e, v128.load(dr + at)));
    }
    let di = sum2(acc);
    for (; c < seen; c++) {
      const at = (<usize>c) << 2;
      const e = exp1(load<f32>(pr + at) + (bias ? load<f32>(bias + at) : 0) - l);
      store<f32>(pr + at, e);
      di += <f64>(e * load<f32>(dr + at));
    }
    const d = f32x4.splat(<f32>di);
    c = 0;
    for (; c + 4 <= seen; c += 4) {
      const at = (<usize>c) << 2;
      v128.store(dr + at, f32x4.mul(v128.load(pr + at), f32x4.sub(v128.load(dr + at), d)));
    }
    for (; c < seen; c++) {
      const at = (<usize>c) << 2;
      store<f32>(dr + at, load<f32>(pr + at) * (load<f32>(dr + at) - <f32>di));
    }
    const tail = (<usize>(n - seen)) << 2;
    memory.fill(pr + ((<usize>seen) << 2), 0, tail);
    memory.fill(dr + ((<usize>seen) << 2), 0, tail);
  }
}
