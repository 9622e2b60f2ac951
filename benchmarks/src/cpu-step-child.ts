/**
 * Our side of the CPU training-step comparison, in a process of its own (so that its peak RSS is
 * its own): reads one job (cpu-step-job.ts) as JSON on stdin, runs it on @peft/backend-cpu with
 * the job's thread count and prints the result as one JSON line on stdout; progress goes to stderr.
 *
 *   node --conditions=@peft/source --import tsx benchmarks/src/cpu-step-child.ts < job.json
 */
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend } from '@peft/core';
import { type CpuStepJob, type CpuStepResult, checkJob, type KernelProfile, runOursJob } from './cpu-step-job.js';
import { profileBackend } from './kernel-profile.js';

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

async function main(): Promise<number> {
  const text = await readStdin();
  const startSeconds = performance.now() / 1000;
  let job: CpuStepJob;
  try {
    job = JSON.parse(text) as CpuStepJob;
  } catch (err) {
    throw new Error(`cpu-step-child: stdin is not one JSON job (${(err as Error).message}): ${text.slice(0, 200)}`);
  }
  checkJob(job);
  // `gemm` only where the backend has the option (it is passed through as given).
  const options = { threads: job.threads, ...(job.gemm ? { gemm: job.gemm } : {}) } as Parameters<typeof createCpuBackend>[0];
  const real = createCpuBackend(options);
  const profiled = job.profile ? profileBackend(real) : null;
  const backend: Backend = profiled?.backend ?? real;
  const { gemmEngine } = real as unknown as { gemmEngine?: { threads?: unknown } };
  const threadsUsed = gemmEngine?.threads;
  let buildProfile: KernelProfile | undefined;
  try {
    const r = await runOursJob(backend, job, {
      onBuilt: (seconds) => {
        if (profiled) buildProfile = profiled.snapshot(seconds * 1000, 1);
        profiled?.reset();
      },
      onTimed: () => profiled?.reset(),
      onStep: (step, ms, loss) =>
        process.stderr.write(
          `    ours ${job.id} x${job.threads} ${step < job.warmup ? 'warm-up' : 'step'} ${step + 1}/${job.warmup + job.steps}: ${(ms / 1000).toFixed(2)} s, loss ${loss.toFixed(4)}\n`,
        ),
    });
    const timed = r.stepMs.slice(job.warmup);
    const result: CpuStepResult = {
      ...r,
      startSeconds,
      // maxRSS is in kilobytes.
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      threads: typeof threadsUsed === 'number' ? threadsUsed : job.threads,
      ...(gemmEngine === undefined ? {} : { engineInfo: gemmEngine }),
      versions: { node: process.version, v8: process.versions.v8 ?? null },
      ...(profiled
        ? {
            profile: profiled.snapshot(
              timed.reduce((s, v) => s + v, 0),
              timed.length,
            ),
            buildProfile,
          }
        : {}),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } finally {
    real.destroy();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // The message again on the last line: the parent quotes the end of stderr.
    process.stderr.write(`${(err as Error).stack ?? String(err)}\ncpu-step-child: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
