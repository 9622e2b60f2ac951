import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CudaSuiteReport, mfu, peakBf16Flops, runCudaSuite } from './cuda-suite.js';
import { pythonTimeoutMs } from './cuda-suite-python.js';
import { resultsName } from './cuda-suite-report.js';

const here = import.meta.dirname;

// A checkout stand-in: the two fixture folders with tiny configs of the same families, and the real
// peft_step.py.
function fakeRepo(): string {
  const root = mkdtempSync(join(tmpdir(), 'peft-cuda-suite-'));
  const configs = {
    'llama-2-7b': {
      model_type: 'llama',
      vocab_size: 256,
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      rms_norm_eps: 1e-5,
      max_position_embeddings: 64,
    },
    'rinna-japanese-gpt-neox-3.6b': {
      model_type: 'gpt_neox',
      vocab_size: 256,
      hidden_size: 64,
      intermediate_size: 256,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      rotary_pct: 1.0,
      use_parallel_residual: false,
      max_position_embeddings: 64,
    },
  };
  for (const [dir, cfg] of Object.entries(configs)) {
    mkdirSync(join(root, 'fixtures', 'configs', dir), { recursive: true });
    writeFileSync(join(root, 'fixtures', 'configs', dir, 'config.json'), JSON.stringify(cfg));
  }
  mkdirSync(join(root, 'benchmarks', 'python'), { recursive: true });
  copyFileSync(join(here, '..', 'python', 'peft_step.py'), join(root, 'benchmarks', 'python', 'peft_step.py'));
  return root;
}

const cpuDeps = {
  isAvailable: () => ({ available: true, reason: 'stand-in: the CPU backend' }),
  createBackend: () => createCpuBackend(),
};

describe('pnpm bench --backend cuda', () => {
  let lines: string[];
  let root: string;
  const savedOut = process.env.OUT;
  beforeEach(() => {
    lines = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
      lines.push(a.join(' '));
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    delete process.env.OUT;
    root = fakeRepo();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    if (savedOut !== undefined) process.env.OUT = savedOut;
    rmSync(root, { recursive: true, force: true });
    process.exitCode = undefined;
  });

  it('prints one skip line and returns without CUDA', async () => {
    const r = await runCudaSuite(
      { root },
      { isAvailable: () => ({ available: false, reason: 'no GPU here' }), createBackend: createCpuBackend },
    );
    expect(r).toBeNull();
    expect(lines).toEqual(['cuda: skipped — no GPU here']);
  });

  it('runs both configs, compares with the Python side and writes the results (CPU backend, stand-in Python)', async () => {
    // Stands in for python3: node running a script that prints what peft_step.py prints on a GPU.
    const fake = join(root, 'fake-peft-step.js');
    writeFileSync(
      fake,
      `const a = process.argv.slice(2); const v = (k) => Number(a[a.indexOf(k) + 1]);
       const tokens = v('--batch') * v('--seq');
       console.log('a line that is not JSON');
       console.log(JSON.stringify({ tokensPerSecond: tokens / 0.5, medianStepMs: 500, stepMs: [500], peakBytes: 2 ** 30,
         parameters: 123456, trainable: 1000, losses: [5.5, 5.4], device: 'NVIDIA H100 80GB HBM3',
         versions: { torch: 'x', transformers: 'y', peft: 'z', cuda: '13.0' }, args: a }));`,
    );
    writeFileSync(join(root, 'benchmarks', 'python', 'peft_step.py'), readFileSync(fake));
    const r = (await runCudaSuite(
      { root, python: process.execPath, batch: 2, seq: 8, warmup: 1, steps: 2, out: 'test' },
      cpuDeps,
    )) as CudaSuiteReport;
    expect(r.results.map((x) => x.id)).toEqual(['llama', 'neox']);
    for (const x of r.results) {
      expect('skipped' in x.ours).toBe(false);
      expect('skipped' in x.pytorch).toBe(false);
      if ('skipped' in x.ours || 'skipped' in x.pytorch) continue;
      expect(x.ours.losses).toHaveLength(3);
      for (const l of x.ours.losses) expect(Number.isFinite(l)).toBe(true);
      expect(x.ours.dtype).toBe('bfloat16');
      expect(x.ours.peakBytes).toBeGreaterThan(0);
      expect(x.pytorch.mfu).toBeCloseTo((6 * 123456 * 32) / 989e12, 20);
      expect(x.ours.mfu).toBeNull(); // no GPU name on our side here
      const args = (x.pytorch as unknown as { args: string[] }).args;
      expect(args.slice(args.indexOf('--targets'), args.indexOf('--targets') + 2)).toEqual(['--targets', x.targets.join(',')]);
      expect(args[args.indexOf('--r') + 1]).toBe(String(x.r));
    }
    expect(r.results[1]!.ours).toMatchObject({ modelType: 'gpt_neox', batch: 2, seq: 8 });
    // The second run of ours, as a TrainingStep: the CPU backend cannot capture, so it ran eagerly
    // and the table says so; the bars are judged on the eager run.
    for (const x of r.results) expect(x.oursGraph).toMatchObject({ mode: 'eager', warmup: 2, steps: 2 });
    expect(r.ratios.map((x) => [x.best, x.graphTokensPerSecond])).toEqual([
      ['eager', null],
      ['eager', null],
    ]);
    expect(lines.join('\n')).toMatch(/not captured/);
    expect(r.ratios[0]!.tokensPerSecond).toBeGreaterThan(0);
    const written = JSON.parse(readFileSync(join(root, 'benchmarks', 'results', 'cuda-test.json'), 'utf8'));
    expect(written.results).toHaveLength(2);
    expect(lines.join('\n')).toMatch(/\| llama 2L 2×8 +\| /);
    expect(process.exitCode ?? 0).toBe(0);
  });

  it('reports the Python side as skipped, not failed, when python3 cannot import transformers/peft or is missing', async () => {
    for (const python of ['python3', join(root, 'no-such-python')]) {
      const r = (await runCudaSuite({ root, python, only: ['llama'], batch: 1, seq: 8, warmup: 0, steps: 1, layers: 1 }, cpuDeps))!;
      expect(r.results).toHaveLength(1);
      const p = r.results[0]!.pytorch;
      // Where torch, transformers and peft are all installed, the script still finds no CUDA device here.
      expect(p).toHaveProperty('skipped');
      expect(r.results[0]!.ours).toMatchObject({ layers: 1 });
    }
  });
});

describe('MFU', () => {
  it('knows the dense bf16 peaks by GPU name', () => {
    expect(peakBf16Flops('NVIDIA H100 80GB HBM3')?.flops).toBe(989e12);
    expect(peakBf16Flops('NVIDIA H100 PCIe')?.flops).toBe(756e12);
    expect(peakBf16Flops('NVIDIA H200')?.flops).toBe(989e12);
    expect(peakBf16Flops('NVIDIA A100-SXM4-80GB')?.flops).toBe(312e12);
    expect(peakBf16Flops('NVIDIA L4')?.flops).toBe(121e12);
    expect(peakBf16Flops('NVIDIA L40S')).toBeNull();
    expect(peakBf16Flops('NVIDIA GeForce RTX 4090')).toBeNull();
  });
  it('counts 6 P T with recompute, 4 P T without', () => {
    expect(mfu(7e9, 1000, 1e15, true)).toBeCloseTo(0.042, 10);
    expect(mfu(7e9, 1000, 1e15, false)).toBeCloseTo(0.028, 10);
    expect(mfu(7e9, 1000, null, true)).toBeNull();
  });
});

describe('results files and the PyTorch time limit in a GPU window', () => {
  it('names the results file by the configs --only chose, so that one-config runs do not overwrite each other', () => {
    const date = new Date().toISOString().slice(0, 10);
    expect(resultsName({})).toBe(`cuda-${date}.json`);
    expect(resultsName({ only: ['llama'] })).toBe(`cuda-${date}-llama.json`);
    expect(resultsName({ only: ['neox'], out: 'x', short: true })).toBe('cuda-x-neox.short.json');
  });
  it('stops PyTorch 10 s before the stage deadline, else after 30 minutes', () => {
    expect(pythonTimeoutMs(1_000, '61000')).toBe(50_000);
    expect(pythonTimeoutMs(1_000, undefined)).toBe(30 * 60_000);
    expect(pythonTimeoutMs(1_000, String(1_000 + 3 * 3600_000))).toBe(30 * 60_000);
    expect(pythonTimeoutMs(1_000, '5000')).toBeLessThanOrEqual(0);
  });
});
