import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createCpuBackend } from '../index.js';
import { BlasSgemm } from './blas-engine.js';
import { BlasUnavailable, type ChosenSgemm, createSgemm, type SgemmArgs, type SgemmEngine, sgemmReference } from './index.js';
import { planGemm, WasmSgemm, wasmSimdSupported } from './wasm-engine.js';

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  accumulate: boolean;
  offsets: boolean;
  /** Rows further apart than packed (lda, ldb, ldc = row length + 3, 1, 5). */
  lds?: boolean;
}

function makeArgs(c: Case, seed: number): SgemmArgs {
  const r = rng(seed);
  const fill = (len: number, off: number) => {
    const x = new Float32Array(len + off + 3);
    for (let i = 0; i < x.length; i++) x[i] = r() * 2 - 1;
    return x;
  };
  const aOffset = c.offsets ? 5 : 0;
  const bOffset = c.offsets ? 2 : 0;
  const cOffset = c.offsets ? 7 : 0;
  const [aRows, aCols] = c.transA ? [c.k, c.m] : [c.m, c.k];
  const [bRows, bCols] = c.transB ? [c.n, c.k] : [c.k, c.n];
  const lda = aCols + (c.lds ? 3 : 0);
  const ldb = bCols + (c.lds ? 1 : 0);
  const ldc = c.n + (c.lds ? 5 : 0);
  const cArr = fill(c.m * ldc, cOffset);
  if (!c.accumulate) for (let i = 0; i < c.m; i++) cArr.fill(Number.NaN, cOffset + i * ldc, cOffset + i * ldc + c.n); // must never be read
  return {
    m: c.m,
    n: c.n,
    k: c.k,
    a: fill(aRows * lda, aOffset),
    aOffset,
    transA: c.transA,
    b: fill(bRows * ldb, bOffset),
    bOffset,
    transB: c.transB,
    c: cArr,
    cOffset,
    alpha: c.alpha,
    accumulate: c.accumulate,
    ...(c.lds ? { lda, ldb, ldc } : {}),
  };
}

/** Runs engine and reference on copies of the same operands and compares C (all of it). */
function check(run: (args: SgemmArgs) => void, c: Case, seed = 1): void {
  const args = makeArgs(c, seed);
  const want = { ...args, c: args.c.slice() };
  const got = { ...args, c: args.c.slice() };
  const a0 = args.a.slice();
  const b0 = args.b.slice();
  sgemmReference(want);
  run(got);
  if (!args.a.every((v, i) => Object.is(v, a0[i])) || !args.b.every((v, i) => Object.is(v, b0[i]))) throw new Error('changed A or B');
  const ldc = args.ldc ?? c.n;
  // Operands in [-1, 1]: |C| <= |alpha| k (+1); rounding differs only through summation order.
  const tol = 2e-6 * (c.k + 8) * Math.max(1, Math.abs(c.alpha)) + 2e-6;
  let worst = 0;
  let where = -1;
  for (let i = 0; i < want.c.length; i++) {
    const w = want.c[i]!;
    const g = got.c[i]!;
    const at = i - args.cOffset;
    const inside = at >= 0 && at < c.m * ldc && at % ldc < c.n;
    if (!inside) {
      // Outside C (also between its rows): untouched.
      if (!Object.is(w, g)) throw new Error(`wrote outside C at ${i}`);
      continue;
    }
    const d = Math.abs(w - g);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
      where = i;
    }
  }
  if (!(worst <= tol)) {
    throw new Error(`${JSON.stringify(c)}: max |diff| ${worst} > ${tol} at ${where} (want ${want.c[where]}, got ${got.c[where]})`);
  }
}

const DIMS = [1, 3, 4, 5, 8, 9, 17, 33, 64, 129];
const FLAGS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const describeWasm = wasmSimdSupported() ? describe : describe.skip;

describe('planGemm', () => {
  it('covers C with tiles aligned to the register tile', () => {
    for (const [m, n, k, t] of [
      [1, 1, 1, 1],
      [1024, 1024, 1024, 8],
      [129, 3000, 17, 4],
      [5000, 7, 300, 2],
    ] as const) {
      const p = planGemm(m, n, k, t, 4, 8);
      expect(p.tilesM * p.tm).toBeGreaterThanOrEqual(m);
      expect((p.tilesM - 1) * p.tm).toBeLessThan(m);
      expect(p.tilesN * p.tn).toBeGreaterThanOrEqual(n);
      expect((p.tilesN - 1) * p.tn).toBeLessThan(n);
      expect(p.tm % 4).toBe(0);
      if (p.tilesN > 1) expect(p.tn % 8).toBe(0);
      expect(p.kc).toBeGreaterThan(0);
      expect(p.mc).toBeLessThanOrEqual(p.tm);
    }
  });
});

describe('sgemmReference', () => {
  it('leading dimensions, offsets, every transpose: against a float64 loop', () => {
    let seed = 1;
    for (const [transA, transB] of FLAGS)
      for (const accumulate of [false, true]) {
        const c: Case = { m: 5, n: 7, k: 6, transA, transB, alpha: -1.5, accumulate, offsets: true, lds: true };
        const args = makeArgs(c, seed++);
        const { lda, ldb, ldc } = args as Required<SgemmArgs>;
        const want = args.c.slice();
        for (let i = 0; i < c.m; i++)
          for (let j = 0; j < c.n; j++) {
            let sum = 0;
            for (let p = 0; p < c.k; p++) {
              const av = transA ? args.a[args.aOffset + p * lda + i]! : args.a[args.aOffset + i * lda + p]!;
              const bv = transB ? args.b[args.bOffset + j * ldb + p]! : args.b[args.bOffset + p * ldb + j]!;
              sum += av * bv;
            }
            const at = args.cOffset + i * ldc + j;
            want[at] = c.alpha * sum + (accumulate ? want[at]! : 0);
          }
        sgemmReference(args);
        for (let i = 0; i < want.length; i++) expect(Math.abs(args.c[i]! - want[i]!)).toBeLessThan(1e-5);
      }
  });

  it('refuses a leading dimension shorter than the row', () => {
    const args = makeArgs({ m: 3, n: 4, k: 5, transA: false, transB: false, alpha: 1, accumulate: false, offsets: false }, 1);
    expect(() => sgemmReference({ ...args, lda: 4 })).toThrow(/lda must be an int32 >= the stored row length 5, got 4/);
    expect(() => sgemmReference({ ...args, ldc: 3.5 })).toThrow(/ldc/);
  });
});

describeWasm('wasm sgemm: correctness against sgemmReference', () => {
  const engines: WasmSgemm[] = [];
  afterAll(() => {
    for (const e of engines) e.destroy();
  });
  const single = new WasmSgemm({ threads: 1 });
  // minThreadedMacs 0: even tiny products go through the worker dispatch.
  const threaded = new WasmSgemm({ threads: 3, minThreadedMacs: 0 });
  engines.push(single, threaded);

  it('all transposes, alpha, accumulate and offsets on small shapes (single thread)', () => {
    let seed = 1;
    for (const m of DIMS)
      for (const n of DIMS)
        for (const k of [1, 3, 17, 129]) {
          const [transA, transB] = FLAGS[seed % 4]!;
          const accumulate = seed % 3 === 0;
          const alpha = seed % 5 === 0 ? -0.75 : 1;
          check((a) => single.sgemm(a), { m, n, k, transA, transB, alpha, accumulate, offsets: seed % 2 === 0 }, seed++);
        }
  });

  it('every flag combination on odd shapes (single thread and threaded)', () => {
    let seed = 1000;
    for (const [m, n, k] of [
      [17, 33, 129],
      [129, 129, 129],
      [3, 517, 65],
      [261, 5, 300],
      [67, 263, 199],
      [1, 1000, 260],
      [1000, 1, 3],
    ])
      for (const [transA, transB] of FLAGS)
        for (const accumulate of [false, true])
          for (const alpha of [1, 0.5])
            for (const e of [single, threaded]) {
              check((a) => e.sgemm(a), { m, n, k, transA, transB, alpha, accumulate, offsets: true }, seed++);
            }
  });

  it('random shapes', () => {
    const r = rng(77);
    const dim = () => 1 + Math.floor(r() ** 2 * 300);
    for (let i = 0; i < 60; i++) {
      const c: Case = {
        m: dim(),
        n: dim(),
        k: dim(),
        transA: r() < 0.5,
        transB: r() < 0.5,
        alpha: r() < 0.3 ? 2 * r() - 1 : 1,
        accumulate: r() < 0.5,
        offsets: r() < 0.5,
      };
      check((a) => (i % 2 ? single : threaded).sgemm(a), c, i + 5000);
    }
  });

  it('leading dimensions larger than the rows (single thread and threaded)', () => {
    let seed = 3000;
    for (const [m, n, k] of [
      [5, 7, 9],
      [67, 130, 45],
      [300, 20, 260],
    ])
      for (const [transA, transB] of FLAGS)
        for (const accumulate of [false, true])
          for (const e of [single, threaded]) {
            check((a) => e.sgemm(a), { m, n, k, transA, transB, alpha: 0.75, accumulate, offsets: true, lds: true }, seed++);
          }
  });

  it('k = 0 clears or keeps C; m = 0 or n = 0 does nothing', () => {
    for (const e of [single, threaded]) {
      const c = new Float32Array([1, 2, 3, 4]);
      const base = { m: 2, n: 2, k: 0, a: new Float32Array(0), aOffset: 0, transA: false, b: new Float32Array(0) };
      e.sgemm({ ...base, bOffset: 0, transB: false, c, cOffset: 0, alpha: 1, accumulate: true });
      expect([...c]).toEqual([1, 2, 3, 4]);
      e.sgemm({ ...base, bOffset: 0, transB: false, c, cOffset: 0, alpha: 1, accumulate: false });
      expect([...c]).toEqual([0, 0, 0, 0]);
      e.sgemm({ ...base, m: 0, k: 3, bOffset: 0, transB: false, c, cOffset: 0, alpha: 1, accumulate: false });
      expect([...c]).toEqual([0, 0, 0, 0]);
    }
  });

  it('splits products that do not fit the memory limit', () => {
    const small = new WasmSgemm({ threads: 2, maxMemoryBytes: 1 << 20, minThreadedMacs: 0 });
    engines.push(small);
    let seed = 9000;
    for (const [m, n, k] of [
      [200, 190, 260],
      [90, 80, 700],
    ])
      for (const [transA, transB] of FLAGS)
        for (const accumulate of [false, true]) {
          check((a) => small.sgemm(a), { m, n, k, transA, transB, alpha: 0.5, accumulate, offsets: true, lds: accumulate }, seed++);
        }
    expect(small.blocksRun).toBeGreaterThan(16); // it did split
  });
});

describeWasm('wasm sgemm: threads', () => {
  it('reuses one pool across calls, workers take tasks, destroy ends them', async () => {
    const e = new WasmSgemm({ threads: 2 });
    expect(e.threads).toBe(2);
    expect(e.description).toBe('wasm-simd x2 threads');
    const deadline = Date.now() + 10_000;
    while (e.readyWorkers < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(e.readyWorkers).toBe(1);
    for (let i = 0; i < 20 && e.workerTasks === 0; i++) {
      check(
        (a) => e.sgemm(a),
        { m: 300, n: 600, k: 400, transA: false, transB: i % 2 === 1, alpha: 1, accumulate: false, offsets: false },
        i,
      );
    }
    expect(e.workerTasks).toBeGreaterThan(0);
    expect(e.readyWorkers).toBe(1); // still the same single worker
    e.destroy();
    await e.exited();
    expect(() =>
      e.sgemm(makeArgs({ m: 1, n: 1, k: 1, transA: false, transB: false, alpha: 1, accumulate: false, offsets: false }, 1)),
    ).toThrow(/destroyed/);
    e.destroy(); // idempotent
  });

  it('createSgemm: js fallback, tiny products, description', () => {
    const js = createSgemm({ js: true });
    expect(js.description).toBe('js');
    const e: SgemmEngine = createSgemm({ engine: 'wasm', threads: 2 });
    expect(e.description).toMatch(/^wasm-simd x2 threads$/);
    for (const engine of [js, e]) {
      check((a) => engine.sgemm(a), { m: 2, n: 3, k: 4, transA: true, transB: false, alpha: 1, accumulate: true, offsets: true });
      check((a) => engine.sgemm(a), { m: 70, n: 90, k: 110, transA: false, transB: true, alpha: 3, accumulate: false, offsets: true });
    }
    e.destroy();
  });

  it('worker threads never keep Node alive', () => {
    const index = fileURLToPath(new URL('./index.ts', import.meta.url));
    const code = `import { createSgemm } from ${JSON.stringify(index)};
      const e = createSgemm({ engine: 'wasm', threads: 2 });
      const a = new Float32Array(256 * 256).fill(1);
      const c = new Float32Array(256 * 256);
      await new Promise((r) => setTimeout(r, 50));
      e.sgemm({ m: 256, n: 256, k: 256, a, aOffset: 0, transA: false, b: a, bOffset: 0, transB: false, c, cOffset: 0, alpha: 1, accumulate: false });
      console.log(e.description, c[0]);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 30_000,
      cwd: fileURLToPath(new URL('../../../..', import.meta.url)),
    });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('wasm-simd x2 threads 256');
    expect(r.status).toBe(0);
  });
});

/** glibc's libc (Linux), for tests that need a library without cblas_sgemm or raw pointers back. */
const noGlibc = (() => {
  if (process.platform !== 'linux') return true;
  try {
    createRequire(import.meta.url)('koffi').load('libc.so.6');
    return false;
  } catch {
    return true;
  }
})();

/** The BLAS engine at 2 threads, or why there is none (its tests then skip with that reason). */
let blas2: ChosenSgemm | undefined;
let noBlas = '';
try {
  blas2 = createSgemm({ engine: 'blas', threads: 2 });
} catch (e) {
  noBlas = (e as Error).message;
}
const blasLabel = blas2 ? `${blas2.description}, ${blas2.info.reason}` : `SKIPPED, no BLAS: ${noBlas}`;

describe.skipIf(!blas2)(`blas sgemm: correctness against sgemmReference (${blasLabel})`, () => {
  const single = blas2 ? createSgemm({ engine: 'blas', threads: 1 }) : undefined;
  const engines = () => [single!, blas2!];
  afterAll(() => {
    single?.destroy();
  });

  it('all transposes, alpha, accumulate and offsets on small shapes', () => {
    let seed = 1;
    for (const m of DIMS)
      for (const n of DIMS)
        for (const k of [1, 3, 17, 129]) {
          const [transA, transB] = FLAGS[seed % 4]!;
          const accumulate = seed % 3 === 0;
          const alpha = seed % 5 === 0 ? -0.75 : 1;
          const e = engines()[seed % 2]!;
          check((a) => e.sgemm(a), { m, n, k, transA, transB, alpha, accumulate, offsets: seed % 2 === 0, lds: seed % 7 === 0 }, seed++);
        }
  });

  it('every flag combination with offsets and leading dimensions on odd shapes (1 and 2 threads)', () => {
    let seed = 1000;
    for (const [m, n, k] of [
      [17, 33, 129],
      [129, 129, 129],
      [3, 517, 65],
      [261, 5, 300],
      [1, 1000, 260],
      [1000, 1, 3],
    ])
      for (const [transA, transB] of FLAGS)
        for (const accumulate of [false, true])
          for (const lds of [false, true])
            for (const e of engines()) {
              check((a) => e.sgemm(a), { m, n, k, transA, transB, alpha: lds ? 0.5 : 1, accumulate, offsets: true, lds }, seed++);
            }
  });

  it('random shapes', () => {
    const r = rng(78);
    const dim = () => 1 + Math.floor(r() ** 2 * 300);
    for (let i = 0; i < 40; i++) {
      const c: Case = {
        m: dim(),
        n: dim(),
        k: dim(),
        transA: r() < 0.5,
        transB: r() < 0.5,
        alpha: r() < 0.3 ? 2 * r() - 1 : 1,
        accumulate: r() < 0.5,
        offsets: r() < 0.5,
        lds: r() < 0.5,
      };
      check((a) => engines()[i % 2]!.sgemm(a), c, i + 6000);
    }
  });

  it('k = 0 clears or keeps C; m = 0 or n = 0 does nothing', () => {
    for (const e of engines()) {
      const c = new Float32Array([1, 2, 3, 4, 5]);
      const base = { m: 2, n: 2, k: 0, a: new Float32Array(0), aOffset: 0, transA: false, b: new Float32Array(0), bOffset: 0 };
      e.sgemm({ ...base, transB: false, c, cOffset: 0, alpha: 1, accumulate: true });
      expect([...c]).toEqual([1, 2, 3, 4, 5]);
      e.sgemm({ ...base, transB: false, c, cOffset: 1, alpha: 1, accumulate: false, ldc: 2 });
      expect([...c]).toEqual([1, 0, 0, 0, 0]);
      e.sgemm({ ...base, m: 0, k: 3, transB: false, c, cOffset: 0, alpha: 1, accumulate: false });
      expect([...c]).toEqual([1, 0, 0, 0, 0]);
    }
  });

  it('refuses operands that do not fit their arrays (native code must never read past them)', () => {
    const e = blas2!;
    const args = makeArgs({ m: 4, n: 5, k: 6, transA: false, transB: true, alpha: 1, accumulate: false, offsets: false }, 3);
    expect(() => e.sgemm({ ...args, a: args.a.subarray(0, 20) })).toThrow(/a needs 24 elements from offset 0, its array has 20/);
    expect(() => e.sgemm({ ...args, bOffset: 10 })).toThrow(/b needs 30 elements from offset 10/);
    expect(() => e.sgemm({ ...args, ldc: 7 })).toThrow(/c needs 26 elements from offset 0, its array has 23/);
    expect(() => e.sgemm({ ...args, cOffset: -1 })).toThrow(/offset -1/);
    expect(() => e.sgemm({ ...args, lda: 5 })).toThrow(/lda must be an int32 >= the stored row length 6, got 5/);
  });
});

describe.skipIf(!blas2)(`blas sgemm: threads and FFI (${blasLabel})`, () => {
  it('runs on the threads asked for, each engine on its own count', () => {
    const one = new BlasSgemm({ threads: 1 });
    const two = new BlasSgemm({ threads: 2 });
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    if (one.lib.threadControl && one.lib.vendor !== 'accelerate') {
      // The count is library state: each engine sets its own before its products.
      expect(one.libraryThreads()).toBe(1);
      expect(two.libraryThreads()).toBe(2);
      expect(one.libraryThreads()).toBe(1);
    }
    expect(createCpuBackend({ gemm: 'blas', threads: 1 }).gemmEngine.threads).toBe(1);
    expect(createCpuBackend({ gemm: 'blas', threads: 2 }).gemmEngine.threads).toBe(2);
  });

  it.skipIf(noGlibc)('koffi hands a Float32Array (or a subarray) to C as a pointer into its own memory', () => {
    const koffi = createRequire(import.meta.url)('koffi');
    const libc = koffi.load('libc.so.6');
    const memmove = libc.func('void *memmove(float *dst, const float *src, size_t n)');
    const x = new Float32Array(4096).map((_, i) => i);
    const at = (arr: Float32Array) => koffi.address(memmove(arr, arr, 0)) as bigint;
    expect(at(x.subarray(5)) - at(x)).toBe(20n); // same memory, not a copy per argument
    expect(at(x)).toBe(at(x));
    memmove(x.subarray(1), x, 8); // a plain (not _Out_) pointer: writes land in the array
    expect([...x.subarray(0, 4)]).toEqual([0, 0, 1, 3]);
  });

  it('the BLAS threads never keep Node alive', () => {
    const index = fileURLToPath(new URL('./index.ts', import.meta.url));
    const code = `import { createSgemm } from ${JSON.stringify(index)};
      const e = createSgemm({ engine: 'blas', threads: 2 });
      const a = new Float32Array(512 * 512).fill(1);
      const c = new Float32Array(512 * 512);
      e.sgemm({ m: 512, n: 512, k: 512, a, aOffset: 0, transA: false, b: a, bOffset: 0, transB: false, c, cOffset: 0, alpha: 1, accumulate: false });
      console.log(e.info.name, c[0]);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 30_000,
      cwd: fileURLToPath(new URL('../../../..', import.meta.url)),
    });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${blas2!.info.name} 512`);
    expect(r.status).toBe(0);
  });
});

describe('engine choice', () => {
  const withEnv = <T>(value: string | undefined, f: () => T): T => {
    const old = process.env.PEFT_BLAS;
    if (value === undefined) delete process.env.PEFT_BLAS;
    else process.env.PEFT_BLAS = value;
    try {
      return f();
    } finally {
      if (old === undefined) delete process.env.PEFT_BLAS;
      else process.env.PEFT_BLAS = old;
    }
  };

  it("'wasm' and 'js' run those engines whatever BLAS is installed", () => {
    const wasm = createCpuBackend({ gemm: 'wasm', threads: 2 });
    expect(wasm.gemmEngine).toEqual({ name: 'wasm-simd', threads: 2, reason: "gemm 'wasm' was asked for" });
    expect(wasm.sgemm.description).toBe('wasm-simd x2 threads');
    wasm.destroy();
    const js = createCpuBackend({ gemm: 'js' });
    expect(js.gemmEngine).toEqual({ name: 'js', threads: 1, reason: "gemm 'js' was asked for" });
    expect(js.sgemm.description).toBe('js');
  });

  it("'auto' takes the BLAS when one loads, else wasm-simd with the reason", () => {
    const be = withEnv(undefined, () => createCpuBackend({ threads: 1 }));
    if (blas2) expect(be.gemmEngine.name).toBe(blas2.info.name);
    if (be.gemmEngine.name === 'wasm-simd' || be.gemmEngine.name === 'js') {
      expect(be.gemmEngine.reason).toMatch(/BLAS/);
    } else {
      expect(be.gemmEngine.reason).toMatch(/^found /);
      expect(be.gemmEngine.library).toBeTruthy();
      expect(be.gemmEngine.threads).toBe(1);
    }
    be.destroy();
  });

  it('PEFT_BLAS=off: auto falls back to wasm-simd, blas refuses', () => {
    const be = withEnv('off', () => createCpuBackend({ threads: 1 }));
    expect(be.gemmEngine).toEqual({ name: 'wasm-simd', threads: 1, reason: 'BLAS turned off by PEFT_BLAS' });
    be.destroy();
    expect(() => withEnv('off', () => createCpuBackend({ gemm: 'blas' }))).toThrow(
      /engine 'blas' was asked for, but PEFT_BLAS turns the BLAS off/,
    );
  });

  it('a PEFT_BLAS library that cannot be used is an error naming it, in auto and blas', () => {
    for (const gemm of ['auto', 'blas'] as const) {
      expect(() => withEnv('/nonexistent/libopenblas.so.0', () => createCpuBackend({ gemm }))).toThrow(
        /cannot use the BLAS PEFT_BLAS=\/nonexistent\/libopenblas.so.0: .*(No such file|not found|cannot)/i,
      );
    }
    expect(() => createSgemm({ engine: 'blas', blas: '/nonexistent/libblis.so.4' })).toThrow(BlasUnavailable);
  });

  it.skipIf(noGlibc)('a library without cblas_sgemm is refused with that reason', () => {
    expect(() => createSgemm({ engine: 'blas', blas: 'libc.so.6' })).toThrow(/cannot use the BLAS libc.so.6: does not export cblas_sgemm/);
  });

  it.skipIf(noGlibc)('a search that finds nothing names every library tried and why', () => {
    expect(() => withEnv(undefined, () => new BlasSgemm({ candidates: ['libnonexistent-blas.so.9', 'libc.so.6'] }))).toThrow(
      /^no BLAS found: tried libnonexistent-blas.so.9 \(.*No such file.*\), libc.so.6 \(does not export cblas_sgemm\)$/,
    );
    if (!blas2) expect(noBlas).toMatch(/^createSgemm: engine 'blas' was asked for, but /);
  });

  it('refuses an unknown engine name', () => {
    expect(() => createSgemm({ engine: 'cuda' as never })).toThrow(/engine must be 'auto', 'blas', 'wasm' or 'js', got "cuda"/);
  });
});
