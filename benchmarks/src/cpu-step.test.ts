import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { memoryInfo } from '@peft/core';
import { describe, expect, it } from 'vitest';
import {
  buildProfileTable,
  CPU_STEP_CONFIGS,
  comparisonTable,
  formatTable,
  makeJob,
  mergeProfiles,
  parseChildOutput,
  parseCpuList,
  pinPrefix,
  profileTables,
  ratios,
  selectConfigs,
  summarize,
  tokenIds,
} from './cpu-step.js';
import { type CpuStepResult, checkJob, gemmEngineOf, runOursJob } from './cpu-step-job.js';
import { matmulKey, profileBackend } from './kernel-profile.js';
import { parsePipConfig, pipIndexArgs } from './python-env.js';

const ROOT = join(import.meta.dirname, '..', '..');
const config = (id: string) => CPU_STEP_CONFIGS.find((c) => c.id === id)!;
const tinyJob = (id: string, threads = 1) =>
  makeJob(ROOT, config(id), { short: true, batch: 2, seq: 8, warmup: 1, steps: 2, threads, profile: false, seed: 0 });

function result(o: Partial<CpuStepResult>): CpuStepResult {
  return {
    side: 'ours',
    id: 'neox',
    stepMs: [100, 10, 30],
    warmup: 1,
    steps: 2,
    medianStepMs: 20,
    tokensPerSecond: 800,
    losses: [2.2, 2.1, 2.0],
    buildSeconds: 1,
    startSeconds: 0.5,
    peakRssBytes: 100 * 2 ** 20,
    parameters: 1000,
    trainable: 10,
    threads: 1,
    engine: 'test',
    versions: {},
    ...o,
  };
}

describe('pip configuration', () => {
  const listed = [
    ":env:.default-timeout='180'",
    ":env:.find-links='/opt/wheels'",
    "global.constraint='/etc/xdg/pip/constraints.txt'",
    "global.extra-index-url='file:///srv/a/simple file:///srv/b/simple'",
    "global.find-links='/opt/other'",
  ].join('\n');

  it('reads extra indexes and find-links; the environment wins over the files', () => {
    expect(parsePipConfig(listed)).toEqual({
      indexUrl: null,
      extraIndexUrls: ['file:///srv/a/simple', 'file:///srv/b/simple'],
      findLinks: ['/opt/wheels'],
    });
  });

  it('turns extra indexes alone into --index-url and --extra-index-url', () => {
    expect(pipIndexArgs(parsePipConfig(listed))).toEqual([
      '--index-url',
      'file:///srv/a/simple',
      '--extra-index-url',
      'file:///srv/b/simple',
    ]);
  });

  it('leaves pip alone with no configuration or a configured index', () => {
    expect(pipIndexArgs(parsePipConfig(''))).toEqual([]);
    const withIndex = "global.index-url='file:///srv/i'\ninstall.extra-index-url='file:///srv/x'";
    expect(parsePipConfig(withIndex).indexUrl).toBe('file:///srv/i');
    expect(pipIndexArgs(parsePipConfig(withIndex))).toEqual([]);
  });

  it('reads multi-line values and prefers the install section to global', () => {
    const text = "global.extra-index-url='file:///g'\ninstall.extra-index-url='file:///i1\\nfile:///i2'";
    expect(parsePipConfig(text).extraIndexUrls).toEqual(['file:///i1', 'file:///i2']);
  });
});

describe('jobs, pinning, configs', () => {
  it('makes the same job for both sides: ids in range, labels per task', () => {
    const neox = tinyJob('neox');
    expect(neox.ids).toHaveLength(2);
    expect(neox.ids[0]).toHaveLength(8);
    expect(neox.labels).toEqual([0, 1]);
    expect(neox.config.hidden_size).toBe(64);
    expect(neox.config.rotary_pct).toBe(0.25);
    for (const id of neox.ids.flat()) expect(id >= 4 && id < 32000 && Number.isInteger(id)).toBe(true);
    const llama = tinyJob('llama');
    expect((llama.labels as number[][])[0]!.slice(0, 4)).toEqual([-100, -100, -100, -100]);
    expect((llama.labels as number[][])[1]!.slice(4)).toEqual(llama.ids[1]!.slice(4));
    expect(tokenIds(2, 8, 100, 3)).toEqual(tokenIds(2, 8, 100, 3));
    expect(() => checkJob({ ...neox, threads: 0 })).toThrow(/threads 0/);
  });

  it('names our GEMM engine: gemmEngine when the backend has it, else the sgemm description', () => {
    const info = { name: 'openblas', threads: 2, library: 'libopenblas.so.0', reason: 'found' };
    expect(gemmEngineOf({ gemmEngine: info, sgemm: { description: 'x' } } as never)).toBe('openblas x2 threads (libopenblas.so.0)');
    expect(gemmEngineOf({ gemmEngine: 'blas' } as never)).toBe('blas');
    expect(gemmEngineOf({ sgemm: { description: 'wasm-simd x1 thread' } } as never)).toBe('wasm-simd x1 thread');
    expect(
      makeJob(ROOT, config('llama'), { short: true, warmup: 0, steps: 1, threads: 1, profile: false, seed: 0, gemm: 'wasm' }).gemm,
    ).toBe('wasm');
  });

  it('selects configs by shape or id, naming a wrong one', () => {
    expect(selectConfigs(['neox']).map((c) => c.id)).toEqual(['neox', 'neox-gc']);
    expect(selectConfigs(['llama', 'neox-gc']).map((c) => c.id)).toEqual(['neox-gc', 'llama']);
    expect(() => selectConfigs(['gpt2'])).toThrow(/--only gpt2/);
  });

  it('pins to as many allowed CPUs as threads', () => {
    expect(parseCpuList('0-2,5,7-8')).toEqual([0, 1, 2, 5, 7, 8]);
    expect(() => parseCpuList('0-x')).toThrow(/"0-x"/);
    expect(pinPrefix(1, [2, 3], true).prefix).toEqual(['taskset', '-c', '2']);
    expect(pinPrefix(2, [2, 3], true).prefix).toEqual(['taskset', '-c', '2,3']);
    expect(pinPrefix(4, [0, 1], true).note).toMatch(/4 threads on 2 CPUs/);
    expect(pinPrefix(1, [0, 1], false).prefix).toEqual([]);
  });
});

describe('child output, summaries, table', () => {
  it('takes the last JSON line; a skip is a skip; a crash names the exit and the end of stderr', () => {
    const ok = parseChildOutput('x', `noise\n${JSON.stringify(result({}))}\n`, 0, null, '');
    expect(ok.ok && ok.result.tokensPerSecond).toBe(800);
    const skip = parseChildOutput('x', '{"skipped": "no torch"}\n', 2, null, '');
    expect(skip).toEqual({ ok: false, reason: 'no torch', skipped: true });
    const crash = parseChildOutput('ours', '', 1, null, 'a\nb\nc\nError: boom\n');
    expect(!crash.ok && crash.reason).toBe('ours exited with 1, no JSON result: b | c | Error: boom');
    const killed = parseChildOutput('py', '', null, 'SIGKILL', '');
    expect(!killed.ok && killed.reason).toMatch(/py was killed \(SIGKILL\)/);
    const bad = parseChildOutput('py', '{"tokensPerSecond": 1', 0, null, '');
    expect(!bad.ok && bad.reason).toMatch(/does not parse/);
    const partial = parseChildOutput('py', '{"stepMs": [], "losses": [], "warmup": 0}', 0, null, '');
    expect(!partial.ok && partial.reason).toMatch(/tokensPerSecond is undefined/);
  });

  it('takes the median over the timed steps of every run, the largest RSS, and ratios ours ÷ PyTorch', () => {
    const ours = summarize(
      [result({ stepMs: [500, 100, 300] }), result({ stepMs: [500, 200, 400], peakRssBytes: 300 * 2 ** 20, buildSeconds: 3 })],
      1000,
    )!;
    expect(ours.medianStepMs).toBe(250);
    expect(ours.tokensPerSecond).toBe(4000);
    expect(ours.peakRssBytes).toBe(300 * 2 ** 20);
    expect(ours.buildSeconds).toBe(2);
    const torch = summarize([result({ stepMs: [9, 125, 125], peakRssBytes: 600 * 2 ** 20, buildSeconds: 4 })], 1000)!;
    expect(ratios(ours, torch)).toEqual({ tokensPerSecond: 0.5, peakRss: 0.5, buildSeconds: 0.5 });
    expect(ratios(ours, null)).toEqual({ tokensPerSecond: null, peakRss: null, buildSeconds: null });
    expect(summarize([], 10)).toBeNull();

    const cell = {
      config: config('neox'),
      threads: 2,
      batch: 8,
      seq: 128,
      layers: 12,
      pin: '',
      ours: { runs: [], summary: ours },
      pytorch: { runs: [], summary: null, skipped: 'no python' },
      ratios: ratios(ours, null),
      profile: null,
      buildProfile: null,
    };
    const table = comparisonTable([cell]);
    expect(table[0]).toMatch(/^\| config +\| threads \| tokens\/s ours/);
    expect(table[2]).toContain('neox 12L 8×128');
    expect(table[2]).toContain('4,000');
    expect(table[2]).toContain('skipped');
    expect(table[2]).toContain('300 MiB');
    expect(formatTable(['a', 'b'], [['xx', '1']])).toEqual(['| a  | b |', '|----|--:|', '| xx | 1 |']);
  });
});

describe('our side of a job', () => {
  it('runs a tiny job in this process with the profiler: falling loss, kernels timed, memory released', async () => {
    const real = createCpuBackend({ threads: 1 });
    try {
      const profiled = profileBackend(real);
      const job = { ...tinyJob('neox-gc'), lr: 1e-2 };
      const r = await runOursJob(profiled.backend, job, { onTimed: () => profiled.reset() });
      expect(r.stepMs).toHaveLength(3);
      expect(r.losses[2]!).toBeLessThan(r.losses[0]!);
      expect(Math.abs(r.losses[0]! - Math.log(9))).toBeLessThan(1);
      // score (64 × 9) and LoRA on query_key_value (r 32: 64 → 192) in 2 layers.
      expect(r.trainable).toBe(64 * 9 + 2 * 32 * (64 + 192));
      expect(r.engine).toBe(gemmEngineOf(real));
      const p = profiled.snapshot(10, 2);
      expect(p.kernels.matmul!.calls).toBeGreaterThan(0);
      expect(p.kernels.attentionBackward!.calls).toBeGreaterThan(0);
      expect(Object.keys(p.matmul).length).toBeGreaterThan(0);
      expect(
        matmulKey({
          batch: 1,
          m: 2,
          n: 3,
          k: 4,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideOut: 6,
          alpha: 1,
          accumulate: false,
        }),
      ).toBe('2×3×4 tB');
      const merged = mergeProfiles([p, p])!;
      expect(merged.steps).toBe(4);
      expect(merged.kernels.matmul!.calls).toBe(2 * p.kernels.matmul!.calls);
      const lines = profileTables(merged);
      expect(lines.some((l) => l.includes('(outside kernels)'))).toBe(true);
      expect(memoryInfo(profiled.backend).tensors).toBe(0);
      expect(real.memory().bytes).toBe(0);
    } finally {
      real.destroy();
    }
  });

  it('speaks the child protocol: a job on stdin, one JSON result line on stdout', () => {
    const job = tinyJob('llama');
    const child = join(import.meta.dirname, 'cpu-step-child.ts');
    const stdout = execFileSync(process.execPath, ['--conditions=@peft/source', '--import', 'tsx', child], {
      input: JSON.stringify({ ...job, profile: true }),
      encoding: 'utf8',
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const parsed = parseChildOutput('ours', stdout, 0, null, '');
    if (!parsed.ok) throw new Error(parsed.reason);
    const r = parsed.result;
    expect(r.side).toBe('ours');
    expect(r.id).toBe('llama');
    expect(r.losses).toHaveLength(3);
    expect(Math.abs(r.losses[0]! - Math.log(32000))).toBeLessThan(1.5);
    expect(r.peakRssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(r.startSeconds).toBeGreaterThan(0);
    expect(r.profile?.steps).toBe(2);
    expect(r.profile?.kernels.crossEntropy?.calls).toBe(2);
    // The build draws the weights with the backend's random kernel.
    expect(r.buildProfile?.kernels.random?.calls).toBeGreaterThan(0);
    expect(buildProfileTable(r.buildProfile!).some((l) => l.includes('random'))).toBe(true);
  }, 60_000);
});
