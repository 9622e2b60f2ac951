import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createSgemm, type SgemmArgs, type SgemmEngine, sgemmReference } from './index.js';
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
  const cArr = fill(c.m * c.n, cOffset);
  if (!c.accumulate) cArr.fill(Number.NaN); // must never be read
  return {
    m: c.m,
    n: c.n,
    k: c.k,
    a: fill(c.m * c.k, aOffset),
    aOffset,
    transA: c.transA,
    b: fill(c.k * c.n, bOffset),
    bOffset,
    transB: c.transB,
    c: cArr,
    cOffset,
    alpha: c.alpha,
    accumulate: c.accumulate,
  };
}

/** Runs engine and reference on copies of the same operands and compares C (all of it). */
function check(run: (args: SgemmArgs) => void, c: Case, seed = 1): void {
  const args = makeArgs(c, seed);
  const want = { ...args, c: args.c.slice() };
  const got = { ...args, c: args.c.slice() };
  sgemmReference(want);
  run(got);
  // Operands in [-1, 1]: |C| <= |alpha| k (+1); rounding differs only through summation order.
  const tol = 2e-6 * (c.k + 8) * Math.max(1, Math.abs(c.alpha)) + 2e-6;
  let worst = 0;
  let where = -1;
  for (let i = 0; i < want.c.length; i++) {
    const w = want.c[i]!;
    const g = got.c[i]!;
    const inside = i >= args.cOffset && i < args.cOffset + c.m * c.n;
    if (!inside) {
      // Outside C: untouched (NaN stays NaN).
      if (!(Object.is(w, g) || (Number.isNaN(w) && Number.isNaN(g)))) throw new Error(`wrote outside C at ${i}`);
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
          check((a) => small.sgemm(a), { m, n, k, transA, transB, alpha: 0.5, accumulate, offsets: true }, seed++);
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
    const e: SgemmEngine = createSgemm({ threads: 2 });
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
      const e = createSgemm({ threads: 2 });
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

describe('embedded wasm module', () => {
  it('equals a fresh compile of wasm/sgemm.as.ts (skipped when asc cannot run)', (ctx) => {
    const script = fileURLToPath(new URL('../../scripts/build-wasm.mjs', import.meta.url));
    let status = 0;
    let output = '';
    try {
      output = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
    } catch (e) {
      const err = e as { status?: number; stderr?: string; stdout?: string };
      status = err.status ?? 2;
      output = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    }
    if (status === 2) {
      console.warn(`SKIPPED: AssemblyScript compiler not runnable: ${output}`);
      ctx.skip();
    }
    expect(output).toMatch(/up to date/);
    expect(status).toBe(0);
  });
});
