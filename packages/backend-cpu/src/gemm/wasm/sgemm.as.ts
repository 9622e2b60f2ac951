// @ts-nocheck -- AssemblyScript source (compiled by scripts/build-wasm.mjs), not TypeScript.
//
// Single-precision GEMM kernel for WebAssembly SIMD (128-bit), BLIS style:
//   one "task" computes a tm x tn tile of C over the full k, blocking k by kc and the tile's
//   rows by mc, packing B into kc x NR micro-panels and A into MR x kc micro-panels (zero-padded
//   at the edges and to a multiple of 4 in k) and running a 4 x 8 register-blocked micro-kernel
//   (8 f32x4 accumulators).
// Packed layouts (f32 indices inside one micro-panel, p = k step, kb4 = kb rounded up to 4):
//   B panel (NR columns): p * NR + j                       (a row of 8 per k step)
//   A panel (MR rows):    (p >> 2) * 16 + i * 4 + (p & 3)  (4 k steps of each row together)
// The job description lives in linear memory (layout below, all 32-bit), written by the host;
// several threads run tasks of the same job concurrently on a shared memory, each with its own
// packing area. No allocation, no runtime, no data segments.
//
// Job layout (byte offsets):
//   0 m, 4 n, 8 k, 12 a, 16 b, 20 c (byte pointers), 24 lda, 28 ldb, 32 ldc (elements),
//   36 transA, 40 transB, 44 alpha (f32), 48 accumulate, 52 tilesN, 56 tm, 60 tn, 64 kc, 68 mc

const MR: i32 = 4; // the kernel below is written for exactly 4
const NR: i32 = 8;

/** Register tile of the micro-kernel: MR rows x NR columns, as MR << 8 | NR. */
export function microTile(): i32 {
  return (MR << 8) | NR;
}

/** Bytes of packing area one thread needs for the given blocking. */
export function packBytes(tn: i32, kc: i32, mc: i32): i32 {
  const tnp = ((tn + NR - 1) / NR) * NR;
  const mcp = ((mc + MR - 1) / MR) * MR;
  const kc4 = (kc + 3) & ~3;
  return (kc4 * tnp + kc4 * mcp + MR * NR) * 4 + 64;
}

export function task(job: usize, idx: i32, pack: usize): void {
  const m = load<i32>(job, 0);
  const n = load<i32>(job, 4);
  const k = load<i32>(job, 8);
  const a = load<u32>(job, 12) as usize;
  const b = load<u32>(job, 16) as usize;
  const c = load<u32>(job, 20) as usize;
  const lda = load<i32>(job, 24);
  const ldb = load<i32>(job, 28);
  const ldc = load<i32>(job, 32);
  const transA = load<i32>(job, 36);
  const transB = load<i32>(job, 40);
  const alpha = load<f32>(job, 44);
  const accumulate = load<i32>(job, 48);
  const tilesN = load<i32>(job, 52);
  const tm = load<i32>(job, 56);
  const tn = load<i32>(job, 60);
  const kc = load<i32>(job, 64);
  const mc = load<i32>(job, 68);

  const ti = idx / tilesN;
  const tj = idx - ti * tilesN;
  const i0 = ti * tm;
  const j0 = tj * tn;
  const mEnd = min(m, i0 + tm);
  const nb = min(n, j0 + tn) - j0;
  if (i0 >= mEnd || nb <= 0) return;

  // Packing areas: B block (kc x tn, NR-wide panels), A block (mc x kc, MR-tall panels), edge tile.
  const base = (pack + 63) & ~(63 as usize);
  const tnp = ((tn + NR - 1) / NR) * NR;
  const kc4 = (kc + 3) & ~3;
  const packB = base;
  const packA = packB + ((kc4 * tnp) << 2);
  const scratch = packA + ((kc4 * (((mc + MR - 1) / MR) * MR)) << 2);

  for (let pc = 0; pc < k; pc += kc) {
    const kb = min(kc, k - pc);
    const kb4 = (kb + 3) & ~3; // panels are zero-padded to a multiple of 4 k steps
    const beta = pc > 0 || accumulate !== 0 ? 1 : 0;
    if (transB) packBT(b, ldb, pc, kb, j0, nb, packB);
    else packBN(b, ldb, pc, kb, j0, nb, packB);
    for (let ic = i0; ic < mEnd; ic += mc) {
      const mb = min(mc, mEnd - ic);
      if (transA) packAT(a, lda, ic, mb, pc, kb, packA);
      else packAN(a, lda, ic, mb, pc, kb, packA);
      for (let jr = 0; jr < nb; jr += NR) {
        const nr = min(NR, nb - jr);
        const pb = packB + ((jr * kb4) << 2);
        for (let ir = 0; ir < mb; ir += MR) {
          const mr = min(MR, mb - ir);
          const cp = c + ((((ic + ir) as usize) * (ldc as usize) + ((j0 + jr) as usize)) << 2);
          kernel(packA + ((ir * kb4) << 2), pb, kb4, cp, ldc, alpha, beta, mr, nr, scratch);
        }
      }
    }
  }
}

// B stored [k, n] (row p holds op(B)[p, :]).
function packBN(b: usize, ldb: i32, pc: i32, kb: i32, j0: i32, nb: i32, dst: usize): void {
  const full = nb & ~(NR - 1);
  const kb4 = (kb + 3) & ~3;
  const step = (kb4 * NR) << 2;
  for (let p = 0; p < kb; p++) {
    let src = b + ((((pc + p) as usize) * (ldb as usize) + (j0 as usize)) << 2);
    let d = dst + ((p * NR) << 2);
    for (let j = 0; j < full; j += NR) {
      v128.store(d, v128.load(src));
      v128.store(d, v128.load(src, 16), 16);
      src += NR << 2;
      d += step;
    }
    if (full < nb) {
      const rem = nb - full;
      for (let jj = 0; jj < NR; jj++) {
        store<f32>(d + (jj << 2), jj < rem ? load<f32>(src + (jj << 2)) : 0);
      }
    }
  }
  zeroTailB(dst, kb, nb);
}

// Zero rows kb .. kb4 of every B panel.
function zeroTailB(dst: usize, kb: i32, nb: i32): void {
  const kb4 = (kb + 3) & ~3;
  if (kb4 === kb) return;
  const zero = f32x4.splat(0);
  for (let j = 0; j < nb; j += NR) {
    for (let p = kb; p < kb4; p++) {
      const d = dst + ((j * kb4 + p * NR) << 2);
      v128.store(d, zero);
      v128.store(d, zero, 16);
    }
  }
}

// B stored [n, k] (row j holds op(B)[:, j]).
function packBT(b: usize, ldb: i32, pc: i32, kb: i32, j0: i32, nb: i32, dst: usize): void {
  const full = nb & ~(NR - 1);
  const ld = (ldb as usize) << 2;
  const k4 = kb & ~3;
  const kb4 = (kb + 3) & ~3;
  for (let j = 0; j < full; j += NR) {
    const s0 = b + ((((j0 + j) as usize) * (ldb as usize) + (pc as usize)) << 2);
    const d0 = dst + ((j * kb4) << 2);
    for (let p = 0; p < k4; p += 4) {
      const s = s0 + ((p as usize) << 2);
      const r0 = v128.load(s);
      const r1 = v128.load(s + ld);
      const r2 = v128.load(s + 2 * ld);
      const r3 = v128.load(s + 3 * ld);
      const r4 = v128.load(s + 4 * ld);
      const r5 = v128.load(s + 5 * ld);
      const r6 = v128.load(s + 6 * ld);
      const r7 = v128.load(s + 7 * ld);
      const d = d0 + ((p * NR) << 2);
      let u0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
      let u1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
      let u2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
      let u3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
      v128.store(d, i32x4.shuffle(u0, u2, 0, 1, 4, 5), 0);
      v128.store(d, i32x4.shuffle(u0, u2, 2, 3, 6, 7), 32);
      v128.store(d, i32x4.shuffle(u1, u3, 0, 1, 4, 5), 64);
      v128.store(d, i32x4.shuffle(u1, u3, 2, 3, 6, 7), 96);
      u0 = i32x4.shuffle(r4, r5, 0, 4, 1, 5);
      u1 = i32x4.shuffle(r4, r5, 2, 6, 3, 7);
      u2 = i32x4.shuffle(r6, r7, 0, 4, 1, 5);
      u3 = i32x4.shuffle(r6, r7, 2, 6, 3, 7);
      v128.store(d, i32x4.shuffle(u0, u2, 0, 1, 4, 5), 16);
      v128.store(d, i32x4.shuffle(u0, u2, 2, 3, 6, 7), 48);
      v128.store(d, i32x4.shuffle(u1, u3, 0, 1, 4, 5), 80);
      v128.store(d, i32x4.shuffle(u1, u3, 2, 3, 6, 7), 112);
    }
    for (let p = k4; p < kb; p++) {
      const s = s0 + ((p as usize) << 2);
      const d = d0 + ((p * NR) << 2);
      for (let jj = 0; jj < NR; jj++) store<f32>(d + (jj << 2), load<f32>(s + (jj as usize) * ld));
    }
  }
  if (full < nb) {
    const rem = nb - full;
    const s0 = b + ((((j0 + full) as usize) * (ldb as usize) + (pc as usize)) << 2);
    const d0 = dst + ((full * kb4) << 2);
    for (let p = 0; p < kb; p++) {
      const s = s0 + ((p as usize) << 2);
      const d = d0 + ((p * NR) << 2);
      for (let jj = 0; jj < NR; jj++) {
        store<f32>(d + (jj << 2), jj < rem ? load<f32>(s + (jj as usize) * ld) : 0);
      }
    }
  }
  zeroTailB(dst, kb, nb);
}

// A stored [m, k] (row i holds op(A)[i, :]): 4 consecutive k of a row are contiguous already.
function packAN(a: usize, lda: i32, ic: i32, mb: i32, pc: i32, kb: i32, dst: usize): void {
  const k4 = kb & ~3;
  const kb4 = (kb + 3) & ~3;
  for (let i = 0; i < mb; i += MR) {
    const rows = min(MR, mb - i);
    const d0 = dst + ((i * kb4) << 2);
    for (let ii = 0; ii < MR; ii++) {
      const d1 = d0 + (ii << 4);
      if (ii >= rows) {
        for (let p = 0; p < kb4; p += 4) v128.store(d1 + ((p * MR) << 2), f32x4.splat(0));
        continue;
      }
      const s0 = a + ((((ic + i + ii) as usize) * (lda as usize) + (pc as usize)) << 2);
      for (let p = 0; p < k4; p += 4) v128.store(d1 + ((p * MR) << 2), v128.load(s0 + ((p as usize) << 2)));
      if (k4 < kb) {
        const d = d1 + ((k4 * MR) << 2);
        for (let q = 0; q < 4; q++) store<f32>(d + (q << 2), k4 + q < kb ? load<f32>(s0 + (((k4 + q) as usize) << 2)) : 0);
      }
    }
  }
}

// A stored [k, m] (row p holds op(A)[:, p]): 4 x 4 transposes.
function packAT(a: usize, lda: i32, ic: i32, mb: i32, pc: i32, kb: i32, dst: usize): void {
  const ld = (lda as usize) << 2;
  const full = mb & ~(MR - 1);
  const k4 = kb & ~3;
  const kb4 = (kb + 3) & ~3;
  for (let i = 0; i < full; i += MR) {
    const s0 = a + (((pc as usize) * (lda as usize) + ((ic + i) as usize)) << 2);
    const d0 = dst + ((i * kb4) << 2);
    for (let p = 0; p < k4; p += 4) {
      const s = s0 + (p as usize) * ld;
      const r0 = v128.load(s);
      const r1 = v128.load(s + ld);
      const r2 = v128.load(s + 2 * ld);
      const r3 = v128.load(s + 3 * ld);
      const u0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
      const u1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
      const u2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
      const u3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
      const d = d0 + ((p * MR) << 2);
      v128.store(d, i32x4.shuffle(u0, u2, 0, 1, 4, 5), 0);
      v128.store(d, i32x4.shuffle(u0, u2, 2, 3, 6, 7), 16);
      v128.store(d, i32x4.shuffle(u1, u3, 0, 1, 4, 5), 32);
      v128.store(d, i32x4.shuffle(u1, u3, 2, 3, 6, 7), 48);
    }
    if (k4 < kb) {
      const d = d0 + ((k4 * MR) << 2);
      for (let ii = 0; ii < MR; ii++)
        for (let q = 0; q < 4; q++) {
          const v = k4 + q < kb ? load<f32>(s0 + ((k4 + q) as usize) * ld + ((ii as usize) << 2)) : 0;
          store<f32>(d + (((ii << 2) + q) << 2), v);
        }
    }
  }
  if (full < mb) {
    const rows = mb - full;
    const s0 = a + (((pc as usize) * (lda as usize) + ((ic + full) as usize)) << 2);
    const d0 = dst + ((full * kb4) << 2);
    for (let p = 0; p < kb4; p++) {
      const d = d0 + ((((p >> 2) << 4) + (p & 3)) << 2);
      for (let ii = 0; ii < MR; ii++) {
        const v = ii < rows && p < kb ? load<f32>(s0 + (p as usize) * ld + ((ii as usize) << 2)) : 0;
        store<f32>(d + (ii << 4), v);
      }
    }
  }
}

// C[0:mr, 0:nr] = alpha * (Apanel · Bpanel) + (beta ? C : 0), for a 4 x 8 tile; kb4 is a multiple
// of 4. Each iteration loads 4 k steps of the 4 rows of A (4 vectors) and splats lanes by shuffles.
// Why this shape: V8 (x64) gives wasm 15 xmm registers and schedules an iteration's loads first;
// 8 accumulators, 4 A vectors, 2 B vectors and a splat/product fit, while 5 x 8 and 6 x 8 tiles spill
// accumulators to the stack every iteration. Shuffle splats beat load-broadcasts (fewer address ops).
function kernel(pa: usize, pb: usize, kb4: i32, cp: usize, ldc: i32, alpha: f32, beta: i32, mr: i32, nr: i32, scratch: usize): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  const end = pb + ((kb4 * NR) << 2);
  while (pb < end) {
    const a0 = v128.load(pa);
    const a1 = v128.load(pa, 16);
    const a2 = v128.load(pa, 32);
    const a3 = v128.load(pa, 48);
    let b0 = v128.load(pb);
    let b1 = v128.load(pb, 16);
    let s = i32x4.shuffle(a0, a0, 0, 0, 0, 0);
    c00 = f32x4.add(c00, f32x4.mul(s, b0));
    c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = i32x4.shuffle(a1, a1, 0, 0, 0, 0);
    c10 = f32x4.add(c10, f32x4.mul(s, b0));
    c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = i32x4.shuffle(a2, a2, 0, 0, 0, 0);
    c20 = f32x4.add(c20, f32x4.mul(s, b0));
    c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = i32x4.shuffle(a3, a3, 0, 0, 0, 0);
    c30 = f32x4.add(c30, f32x4.mul(s, b0));
    c31 = f32x4.add(c31, f32x4.mul(s, b1));
    b0 = v128.load(pb, 32);
    b1 = v128.load(pb, 48);
    s = i32x4.shuffle(a0, a0, 1, 1, 1, 1);
    c00 = f32x4.add(c00, f32x4.mul(s, b0));
    c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = i32x4.shuffle(a1, a1, 1, 1, 1, 1);
    c10 = f32x4.add(c10, f32x4.mul(s, b0));
    c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = i32x4.shuffle(a2, a2, 1, 1, 1, 1);
    c20 = f32x4.add(c20, f32x4.mul(s, b0));
    c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = i32x4.shuffle(a3, a3, 1, 1, 1, 1);
    c30 = f32x4.add(c30, f32x4.mul(s, b0));
    c31 = f32x4.add(c31, f32x4.mul(s, b1));
    b0 = v128.load(pb, 64);
    b1 = v128.load(pb, 80);
    s = i32x4.shuffle(a0, a0, 2, 2, 2, 2);
    c00 = f32x4.add(c00, f32x4.mul(s, b0));
    c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = i32x4.shuffle(a1, a1, 2, 2, 2, 2);
    c10 = f32x4.add(c10, f32x4.mul(s, b0));
    c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = i32x4.shuffle(a2, a2, 2, 2, 2, 2);
    c20 = f32x4.add(c20, f32x4.mul(s, b0));
    c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = i32x4.shuffle(a3, a3, 2, 2, 2, 2);
    c30 = f32x4.add(c30, f32x4.mul(s, b0));
    c31 = f32x4.add(c31, f32x4.mul(s, b1));
    b0 = v128.load(pb, 96);
    b1 = v128.load(pb, 112);
    s = i32x4.shuffle(a0, a0, 3, 3, 3, 3);
    c00 = f32x4.add(c00, f32x4.mul(s, b0));
    c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = i32x4.shuffle(a1, a1, 3, 3, 3, 3);
    c10 = f32x4.add(c10, f32x4.mul(s, b0));
    c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = i32x4.shuffle(a2, a2, 3, 3, 3, 3);
    c20 = f32x4.add(c20, f32x4.mul(s, b0));
    c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = i32x4.shuffle(a3, a3, 3, 3, 3, 3);
    c30 = f32x4.add(c30, f32x4.mul(s, b0));
    c31 = f32x4.add(c31, f32x4.mul(s, b1));
    pa += (4 * MR) << 2;
    pb += (4 * NR) << 2;
  }
  const va = f32x4.splat(alpha);
  const full = mr === MR && nr === NR;
  const ld: usize = full ? (ldc as usize) << 2 : NR << 2;
  const out = full ? cp : scratch;
  const acc = full && beta !== 0;
  storeRow(out, va, c00, c01, acc);
  storeRow(out + ld, va, c10, c11, acc);
  storeRow(out + 2 * ld, va, c20, c21, acc);
  storeRow(out + 3 * ld, va, c30, c31, acc);
  if (!full) {
    // Edge tile: merge the valid part of the scratch tile into C.
    const ldcb = (ldc as usize) << 2;
    for (let i = 0; i < mr; i++) {
      const s = scratch + ((i * NR) << 2);
      const d = cp + (i as usize) * ldcb;
      if (beta !== 0) {
        for (let j = 0; j < nr; j++) store<f32>(d + (j << 2), load<f32>(d + (j << 2)) + load<f32>(s + (j << 2)));
      } else {
        for (let j = 0; j < nr; j++) store<f32>(d + (j << 2), load<f32>(s + (j << 2)));
      }
    }
  }
}

function storeRow(p: usize, va: v128, x0: v128, x1: v128, acc: bool): void {
  if (acc) {
    v128.store(p, f32x4.add(v128.load(p), f32x4.mul(va, x0)));
    v128.store(p, f32x4.add(v128.load(p, 16), f32x4.mul(va, x1)), 16);
  } else {
    v128.store(p, f32x4.mul(va, x0));
    v128.store(p, f32x4.mul(va, x1), 16);
  }
}
