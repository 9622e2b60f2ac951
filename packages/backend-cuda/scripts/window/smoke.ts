/**
 * The GPU window's first stage (scripts/gpu-window.sh): is CUDA there, which GEMM path did the
 * backend find (cuBLASLt, or why the tiled kernel), which shapes fell back from cuBLASLt, and do a
 * few bfloat16 kernels of the conformance suite give the CPU backend's results: GEMMs (cuBLASLt
 * and the mixed-dtype skinny kernels), RMSNorm, rotary, attention on tensor cores, SwiGLU,
 * cross-entropy, Philox random numbers and AdamW. Run with CUDA_LAUNCH_BLOCKING=1, so that a
 * fault names the kernel that caused it. Prints the GEMM path first and the fallbacks at the end. Its figures say whether the benchmark stages should run
 * (`gemmPath`). Exit status 0 = the cases passed, 1 = failures, 2 = CUDA unavailable.
 *
 *   node window-smoke.mjs
 */
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases } from '@peft/core/testing';
import { type CudaBackend, createCudaBackend, isAvailable } from '../../src/index.js';
import { appendFigure, hangIfAsked, recordFigures } from './figures.js';

/** Conformance cases (names as conformanceCases gives them) the smoke test runs, in bfloat16. */
const SMOKE_CASES = [
  'matmul bfloat16',
  'matmul bfloat16 a, float32 b, float32 out',
  'rmsNorm bfloat16 [5, 64]',
  'rmsNormBackward bfloat16 [5, 64]',
  'rotary bfloat16',
  'attention bfloat16 headDim 128 past a 64 tile, GQA, right padding: batch 2 seqQ 70 seqK 70 heads 4/2 headDim 128 causal masked',
  'attentionBackward bfloat16 headDim 64, queries after a cache (seqQ < seqK): batch 1 seqQ 20 seqK 90 heads 2/2 headDim 64 causal',
  'siluMul bfloat16',
  'crossEntropy bfloat16',
  'random normal bfloat16',
  'adamw bfloat16',
];

/** The backend's GEMM path in one word, for the window's decision: `cublasLt` or `tiled`. */
function gemmPath(gemmLibrary: string): 'cublasLt' | 'tiled' {
  return gemmLibrary.startsWith('cuBLASLt') ? 'cublasLt' : 'tiled';
}

async function main(): Promise<number> {
  await hangIfAsked();
  const a = isAvailable();
  console.log(`isAvailable: ${JSON.stringify(a)}`);
  recordFigures({ availability: a });
  if (!a.available) return 2;
  const probe = createCudaBackend();
  const d = probe.device;
  const device = {
    name: d.name,
    computeCapability: `sm_${d.computeCapability.join('')}`,
    totalBytes: d.totalBytes,
    driverVersion: d.driverVersion,
  };
  console.log(`GPU: ${d.name} (${device.computeCapability}, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB)`);
  console.log(`GEMM path: ${probe.gemmLibrary}`);
  recordFigures({ device, gemmLibrary: probe.gemmLibrary, gemmPath: gemmPath(probe.gemmLibrary), tensorCores: probe.tensorCores });
  probe.destroy();

  // Every backend the cases make, for the shapes cuBLASLt refused (gemmFallbacks: decided per shape on first use).
  const made: CudaBackend[] = [];
  const create = () => {
    const b = createCudaBackend();
    made.push(b);
    return b;
  };
  const cases = conformanceCases({ create, dtypes: ['bfloat16'], reference: () => createCpuBackend() });
  const missing = SMOKE_CASES.filter((n) => !cases.some((c) => c.name === n));
  if (missing.length > 0) console.log(`smoke: not in the conformance suite any more (skipped): ${missing.join('; ')}`);
  let failed = 0;
  for (const c of cases.filter((x) => SMOKE_CASES.includes(x.name))) {
    const t0 = performance.now();
    try {
      await c.run();
      appendFigure('cases', { name: c.name, ok: true, seconds: (performance.now() - t0) / 1000 });
    } catch (err) {
      failed++;
      const error = (err as Error).message;
      console.log(`FAIL smoke › ${c.name}\n  ${error.split('\n').join('\n  ')}`);
      appendFigure('cases', { name: c.name, ok: false, error, seconds: (performance.now() - t0) / 1000 });
    }
  }
  const fallbacks = made.flatMap((b) => b.gemmFallbacks);
  console.log(
    `GEMM fallbacks (shapes cuBLASLt refused, run on the tiled kernel): ${fallbacks.length ? JSON.stringify(fallbacks) : 'none'}`,
  );
  recordFigures({ gemmFallbacks: fallbacks });
  const ran = SMOKE_CASES.length - missing.length;
  console.log(
    `smoke: ${ran - failed} passed, ${failed} failed (bfloat16 against the CPU backend, CUDA_LAUNCH_BLOCKING=${process.env.CUDA_LAUNCH_BLOCKING ?? 'unset'})`,
  );
  recordFigures({ passed: ran - failed, failed });
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
