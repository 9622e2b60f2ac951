// scripts/gpu-window.sh end to end on the host emulator (PEFT_GPU_WINDOW_EMULATE=1): one result
// file per stage with its status, a stage that hangs killed at its time-out while the next one
// still runs, the budget stopping later stages, device-check carrying on after a process dies in a
// case, the unpacking of .device without xz, and the transfer size of a packing.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { findCxx } from '../src/emulator.testkit.js';
import { describeTransfer, TRANSFER_LIMIT_BYTES, transferSize } from './transfer-size.mjs';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..', '..');
const script = join(root, 'scripts', 'gpu-window.sh');
const cxx = await findCxx();
if (!cxx) console.warn('[backend-cuda] no C++ compiler: skipping the GPU window on the host emulator');
const scratch = mkdtempSync(join(tmpdir(), 'peft-gpu-window-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface StageResult {
  stage: string;
  status: string;
  exitCode: number | null;
  seconds: number;
  timeoutSeconds?: number;
  reason: string;
  notes?: string[];
  // biome-ignore lint/suspicious/noExplicitAny: the stage's figures, JSON read back from its file
  figures: Record<string, any>;
}

const STAGES = ['smoke', 'llama', 'conformance', 'neox', 'webgpu'];

/** Runs the window into a fresh folder; returns the folder, each stage's result and the wall time. */
async function window(name: string, seconds: number, env: Record<string, string>) {
  const out = join(scratch, name);
  const t0 = performance.now();
  const { stdout } = await run('bash', [script, out, String(seconds)], {
    cwd: root,
    env: { ...process.env, PEFT_GPU_WINDOW_EMULATE: '1', ...env },
    maxBuffer: 64 * 2 ** 20,
  });
  const results = STAGES.map((s, i) => JSON.parse(readFileSync(join(out, `${i + 1}-${s}.json`), 'utf8')) as StageResult);
  return { out, stdout, results, seconds: (performance.now() - t0) / 1000 };
}

const nvidiaIcd = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some(
  (d) => existsSync(d) && readdirSync(d).some((f) => /nvidia/i.test(f)),
);

describe.skipIf(!cxx)('scripts/gpu-window.sh on the host emulator', () => {
  it('runs every stage in its own process and writes one result file per stage, with its figures', async () => {
    const w = await window('all', 300, {});
    expect(w.seconds).toBeLessThan(300);
    expect(w.results.map((r) => r.stage)).toEqual(STAGES);
    expect(w.results.slice(0, 4).map((r) => [r.stage, r.status, r.exitCode])).toEqual([
      ['smoke', 'passed', 0],
      ['llama', 'passed', 0],
      ['conformance', 'passed', 0],
      ['neox', 'passed', 0],
    ]);
    if (!nvidiaIcd)
      expect(w.results[4]).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^no Vulkan driver for the GPU/) });
    for (const r of w.results.slice(0, 4)) {
      expect(r.seconds).toBeGreaterThan(0);
      expect(existsSync(join(w.out, `${w.results.indexOf(r) + 1}-${r.stage}.log`))).toBe(true);
    }
    const [smoke, llama, conformance, neox] = w.results as [StageResult, StageResult, StageResult, StageResult];
    // The GEMM path is printed before the stages' work and recorded: the emulator's cuBLASLt stand-in.
    expect(w.stdout.indexOf('GEMM path: cuBLASLt')).toBeLessThan(w.stdout.indexOf('=== 2-llama'));
    expect(smoke.figures).toMatchObject({ gemmPath: 'cublasLt', passed: 11, failed: 0, gemmFallbacks: [] });
    // The big shapes in dry mode: the allocator's real-sized figures (GPU.md: weights 12.74 GiB, step peak 15.48 GiB).
    expect(llama.notes?.join(' ')).toMatch(/dry mode/);
    expect(llama.figures.llama.ours.modelBytes / 2 ** 30).toBeCloseTo(12.74, 1);
    expect(llama.figures.llama.oursGraph.mode).toBe('graph');
    expect(llama.figures.llama.pytorch).toEqual({ skipped: '--no-python' });
    expect(neox.figures.neox.ours.modelBytes / 2 ** 30).toBeCloseTo(6.97, 1);
    expect(existsSync(join(w.out, 'cuda-bench-llama.json')) && existsSync(join(w.out, 'cuda-bench-neox.json'))).toBe(true);
    // Conformance: each suite counted; the training comparison keeps both loss traces.
    const suites = conformance.figures.suites;
    expect(Object.keys(suites)).toEqual([
      'conformance',
      'conformance-tiled',
      'conformance-f32-attention',
      'gradcheck',
      'training',
      'timings',
    ]);
    for (const s of Object.values(suites) as { failures: unknown[] }[]) expect(s.failures).toEqual([]);
    const neoxTraining = suites.training.figures['training neox-classifier float32: 20 LoRA steps vs the CPU backend'];
    expect(neoxTraining.cpuLosses).toHaveLength(20);
    expect(neoxTraining.cudaLosses).toHaveLength(20);
    expect(neoxTraining.toleranceUsed).toBeLessThan(1);
    expect(conformance.figures.timings['gemm bf16 4096x4096x4096 TFLOP/s']).toBeGreaterThan(0);
    const summary = JSON.parse(readFileSync(join(w.out, 'window.json'), 'utf8'));
    expect(summary.stages.map((s: { status: string }) => s.status).slice(0, 4)).toEqual(['passed', 'passed', 'passed', 'passed']);
  }, 320_000);

  it('kills a stage that hangs at its time-out (status timeout) and runs the next stage', async () => {
    const w = await window('hang', 300, {
      PEFT_GPU_WINDOW_HANG: 'conformance',
      PEFT_GPU_WINDOW_TIMEOUTS: 'conformance=6',
      PEFT_GPU_WINDOW_STAGES: 'conformance,neox',
    });
    expect(w.results.map((r) => r.status)).toEqual(['skipped', 'skipped', 'timeout', 'passed', 'skipped']);
    expect(w.results[0]!.reason).toMatch(/^not selected/);
    expect(w.results[2]).toMatchObject({ exitCode: 124, timeoutSeconds: 6, reason: 'killed at its 6-s time-out' });
    expect(w.results[2]!.seconds).toBeGreaterThanOrEqual(6);
    expect(w.results[2]!.seconds).toBeLessThan(20);
    expect(w.results[3]!.figures.neox.ours.peakBytes).toBeGreaterThan(0);
    // neox's 68 s (150 s scaled to 300) plus what the skipped smoke and llama left it; conformance's 6 s were set, not scaled.
    expect(w.results[3]!.timeoutSeconds).toBeGreaterThan(68 + 27 + 95 - 10);
  }, 200_000);

  it('starts no stage once the budget is spent: the rest get a "skipped: budget" file', async () => {
    const w = await window('budget', 27, {
      PEFT_GPU_WINDOW_HANG: 'smoke',
      PEFT_GPU_WINDOW_TIMEOUTS: 'smoke=8',
      PEFT_GPU_WINDOW_STAGES: 'smoke,llama',
    });
    expect(w.results.map((r) => r.status)).toEqual(['timeout', 'skipped', 'skipped', 'skipped', 'skipped']);
    expect(w.results[1]!.reason).toMatch(/^budget: \d+ s left of 27 s/);
  }, 120_000);

  it('the stages bundled as bundle-device.mjs packs them run on their own (smoke on the emulator)', async () => {
    const { useEmulator } = await import('../src/emulator.testkit.js');
    await useEmulator();
    const dir = join(scratch, 'bundles');
    await run(process.execPath, [join(import.meta.dirname, 'bundle-device.mjs'), '--bundles-only', dir], { cwd: root });
    expect(readdirSync(dir).sort()).toEqual(['bench-cuda.mjs', 'device-check.mjs', 'window-smoke.mjs', 'window-webgpu.mjs']);
    const figures = join(scratch, 'bundled-smoke.json');
    // koffi from the package's node_modules (NODE_PATH), as the GPU machine has it from the packed node_modules.
    const r = await run(process.execPath, [join(dir, 'window-smoke.mjs')], {
      cwd: root,
      env: { ...process.env, NODE_PATH: join(import.meta.dirname, '..', 'node_modules'), PEFT_GPU_WINDOW_FIGURES: figures },
    });
    expect(r.stdout).toMatch(/smoke: 11 passed, 0 failed/);
    expect(JSON.parse(readFileSync(figures, 'utf8'))).toMatchObject({ gemmPath: 'cublasLt', passed: 11 });
  }, 120_000);

  it('device-check carries on in a new process after one dies inside a case', async () => {
    const { useEmulator } = await import('../src/emulator.testkit.js');
    await useEmulator();
    const figures = join(scratch, 'crash.json');
    const r = await run(
      process.execPath,
      [
        '--conditions=@peft/source',
        '--import',
        'tsx',
        join(import.meta.dirname, 'device-check.ts'),
        '--only',
        'matmul float16',
        '--no-bench',
      ],
      {
        cwd: root,
        env: { ...process.env, PEFT_DEVICE_CHECK_CRASH: 'matmul float16 a, float32 b, float32 out', PEFT_GPU_WINDOW_FIGURES: figures },
      },
    ).catch((e: { code: number; stdout: string }) => e);
    expect((r as { code?: number }).code).toBe(1);
    const c = JSON.parse(readFileSync(figures, 'utf8')).suites.conformance;
    expect(c.failures).toEqual([
      { name: 'matmul float16 a, float32 b, float32 out', error: 'the process ended (SIGKILL) during this case' },
    ]);
    expect(c.restarts).toBe(1);
    expect(c.passed).toBeGreaterThanOrEqual(3); // the cases before and after it, and destroy
  }, 120_000);
});

describe('scripts/gpu-window.sh --unpack', () => {
  // A stand-in checkout: the script, a "node" that prints a version, and one archive of the packing's form.
  function fakeCheckout(): string {
    const dir = mkdtempSync(join(scratch, 'checkout-'));
    mkdirSync(join(dir, 'scripts'));
    copyFileSync(script, join(dir, 'scripts', 'gpu-window.sh'));
    mkdirSync(join(dir, '.device', 'stage', 'peft', 'dist'), { recursive: true });
    writeFileSync(join(dir, '.device', 'stage', 'node'), '#!/bin/sh\necho v0.0.0-stand-in\n');
    writeFileSync(join(dir, '.device', 'stage', 'peft', 'dist', 'stage.mjs'), 'export {};\n');
    return dir;
  }

  /** A PATH of links to every program on this PATH but xz and its aliases. */
  function pathWithoutXz(): string {
    const bin = mkdtempSync(join(scratch, 'bin-'));
    // By name, not existsSync: a link to a missing file (a dangling .bin entry) must not be made twice.
    const linked = new Set<string>();
    for (const d of (process.env.PATH ?? '').split(delimiter)) {
      let names: string[] = [];
      try {
        names = readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        if (/^(xz|unxz|xzcat|lzma|unlzma|lzcat)$/.test(n) || linked.has(n)) continue;
        linked.add(n);
        symlinkSync(join(d, n), join(bin, n));
      }
    }
    return bin;
  }

  it('unpacks node and the archives with xz, and with python3 where xz is missing', async () => {
    const dir = fakeCheckout();
    const dev = join(dir, '.device');
    await run('bash', ['-c', 'xz -c stage/node > node-v0-linux-x64.xz && tar -C stage -cf - peft | xz -c > peft.tar.xz && rm -rf stage'], {
      cwd: dev,
    });
    const withXz = await run('bash', [join(dir, 'scripts', 'gpu-window.sh'), '--unpack', join(dir, 'run1')]);
    expect(withXz.stdout).toMatch(/node v0\.0\.0-stand-in/);
    expect(withXz.stdout).not.toMatch(/no xz here/);
    const noXz = await run('bash', [join(dir, 'scripts', 'gpu-window.sh'), '--unpack', join(dir, 'run2')], {
      env: { ...process.env, PATH: pathWithoutXz() },
    });
    expect(noXz.stdout).toMatch(/no xz here: decompressing .*node-v0-linux-x64\.xz with python3's lzma module/);
    expect(noXz.stdout).toMatch(/no xz here: unpacking .*peft\.tar\.xz with python3's tarfile module/);
    expect(noXz.stdout).toMatch(/node v0\.0\.0-stand-in/);
    expect(readFileSync(join(dir, 'run2', 'peft', 'dist', 'stage.mjs'), 'utf8')).toBe('export {};\n');
  }, 60_000);
});

describe('the transfer size (bundle-device.mjs refuses 50 MiB and more)', () => {
  it('counts the tracked files and .device/, and flags a packing at the bar', async () => {
    const repo = mkdtempSync(join(scratch, 'repo-'));
    await run('git', ['init', '-q'], { cwd: repo });
    writeFileSync(join(repo, 'a.txt'), 'x'.repeat(1000));
    writeFileSync(join(repo, 'untracked.txt'), 'y'.repeat(500));
    await run('git', ['add', 'a.txt'], { cwd: repo });
    mkdirSync(join(repo, '.device', 'sub'), { recursive: true });
    writeFileSync(join(repo, '.device', 'sub', 'b.xz'), Buffer.alloc(2000));
    expect(transferSize(repo)).toEqual({ tracked: 1000, device: 2000, total: 3000, limit: TRANSFER_LIMIT_BYTES, ok: true });
    expect(transferSize(repo, join(repo, '.device'), 3000).ok).toBe(false);
    expect(describeTransfer(transferSize(repo, join(repo, '.device'), 3000))).toMatch(/= 0\.0 MB .*TOO LARGE$/);
  });

  it('this repository: the tracked files leave .device/ at least 30 MB under the bar', () => {
    const s = transferSize(root);
    console.log(describeTransfer(s));
    expect(s.tracked).toBeLessThan(TRANSFER_LIMIT_BYTES - 30e6);
    // A packing present here (bundle-device.mjs) must be under the bar as a whole.
    if (existsSync(join(root, '.device', 'peft.tar.xz'))) expect(s.ok).toBe(true);
  });
});

describe('scripts/gpu-window.mjs: time-outs, skips and statuses', async () => {
  // Plain JavaScript without declarations: imported through a path held in a variable.
  const path = join(root, 'scripts', 'gpu-window.mjs');
  const m = (await import(/* @vite-ignore */ path)) as {
    STAGES: { name: string; seconds: number; cuda: boolean; bench?: boolean }[];
    plannedTimeouts(budget: number, overrides?: string): Record<string, number>;
    skipReason(stage: unknown, w: unknown, results: Record<string, { figures: Record<string, unknown> }>): string | null;
    judge(stage: unknown, ended: unknown, figures: Record<string, unknown>, timeoutS: number): { status: string; reason: string };
  };
  const stage = (name: string) => m.STAGES.find((s) => s.name === name)!;

  it('sizes the time-outs for 660 s and scales them with the budget (15 s at least); overrides in seconds', () => {
    expect(m.plannedTimeouts(660)).toEqual({ smoke: 60, llama: 210, conformance: 150, neox: 150, webgpu: 60 });
    expect(m.plannedTimeouts(330)).toEqual({ smoke: 30, llama: 105, conformance: 75, neox: 75, webgpu: 30 });
    expect(m.plannedTimeouts(60).smoke).toBe(15);
    expect(m.plannedTimeouts(660, 'llama=300,neox=20')).toMatchObject({ llama: 300, neox: 20, smoke: 60 });
    expect(() => m.plannedTimeouts(660, 'lama=3')).toThrow(/PEFT_GPU_WINDOW_TIMEOUTS: "lama=3" is not <stage>=<seconds>/);
  });

  it('skips the benchmark stages when smoke found no cuBLASLt, and every CUDA stage without CUDA', () => {
    const w = { selected: null, emulatorReason: null };
    const tiled = { smoke: { figures: { gemmPath: 'tiled', gemmLibrary: 'tiled kernel: no cuBLASLt found (tried …)' } } };
    expect(m.skipReason(stage('llama'), w, tiled)).toBe('the GEMM path is not cuBLASLt (smoke): tiled kernel: no cuBLASLt found (tried …)');
    expect(m.skipReason(stage('neox'), w, tiled)).toMatch(/^the GEMM path is not cuBLASLt/);
    expect(m.skipReason(stage('conformance'), w, tiled)).toBeNull();
    const none = { smoke: { figures: { availability: { available: false, reason: 'no libcuda.so.1' } } } };
    expect(m.skipReason(stage('conformance'), w, none)).toBe('CUDA unavailable (smoke): no libcuda.so.1');
    expect(m.skipReason(stage('webgpu'), w, none)).toBeNull();
    expect(m.skipReason(stage('webgpu'), { ...w, selected: ['smoke'] }, {})).toBe('not selected (PEFT_GPU_WINDOW_STAGES=smoke)');
  });

  it('judges a stage by how its process ended', () => {
    const ended = (code: number | null, seconds: number) => ({ code, signal: null, seconds, tail: 'first\nlast line\n' });
    expect(m.judge(stage('llama'), ended(0, 100), {}, 210).status).toBe('passed');
    expect(m.judge(stage('llama'), ended(124, 210), {}, 210)).toEqual({ status: 'timeout', reason: 'killed at its 210-s time-out' });
    expect(m.judge(stage('llama'), ended(137, 220), {}, 210).status).toBe('timeout');
    // Killed by something else before its time-out (the kernel's OOM killer): a failure.
    expect(m.judge(stage('llama'), ended(137, 50), {}, 210)).toEqual({ status: 'failed', reason: 'exit 137: last line' });
    expect(m.judge(stage('smoke'), ended(2, 1), { availability: { available: false, reason: 'no GPU' } }, 60)).toEqual({
      status: 'failed',
      reason: 'CUDA unavailable: no GPU',
    });
  });
});
