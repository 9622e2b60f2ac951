/**
 * What device-check runs, as named suites of cases: each suite runs in a process of its own
 * (device-check.ts), so that a GPU fault, which leaves the CUDA context unusable, fails one case
 * instead of everything after it. A case may return figures (loss traces, timings) to be kept.
 */
import { createCpuBackend } from '@peft/backend-cpu';
import { conformanceCases, gradcheckCases } from '@peft/core/testing';
import { compareTraining, graphTrainer, type TrainingKind } from '../../../integration/src/training-check.js';
import { createCudaBackend } from '../../src/index.js';
import { timingCases } from './timings.js';

export interface CheckCase {
  name: string;
  /** Resolves with the case's figures (an object) or nothing. */
  run: () => Promise<unknown>;
}

export interface Suite {
  name: string;
  title: string;
  /** Whether `--only` filters this suite's cases (the timings always run whole). */
  filtered: boolean;
  cases(): CheckCase[];
}

const TRAINING: [TrainingKind, 'float32' | 'bfloat16'][] = [
  ['neox-classifier', 'float32'],
  ['llama-causal-lm', 'float32'],
  ['llama-causal-lm', 'bfloat16'],
  ['llama-head-dim-64', 'bfloat16'],
];

/** 20 LoRA steps of one tiny model against the CPU backend's losses; the loss traces are its figures. */
function trainingCase(kind: TrainingKind, dtype: 'float32' | 'bfloat16'): CheckCase {
  return {
    name: `training ${kind} ${dtype}: 20 LoRA steps vs the CPU backend`,
    run: async () => {
      const cpu = createCpuBackend();
      const cuda = createCudaBackend();
      try {
        const r = await compareTraining(cuda, cpu, kind, dtype);
        const worst = Math.max(...r.relative);
        const used = Math.max(...r.used);
        console.log(
          `${r.kind} ${r.dtype}: losses cpu ${r.cpuLosses[0]!.toFixed(6)} → ${r.cpuLosses.at(-1)!.toFixed(6)}, cuda ${r.otherLosses[0]!.toFixed(6)} → ` +
            `${r.otherLosses.at(-1)!.toFixed(6)}; worst relative difference ${worst.toExponential(2)} (step ${r.relative.indexOf(worst) + 1}), ` +
            `${(100 * used).toFixed(0)}% of the tolerance at most; GEMMs ${JSON.stringify(cuda.gemmCounts)}`,
        );
        const figures = {
          tolerance: r.tolerance,
          cpuLosses: r.cpuLosses,
          cudaLosses: r.otherLosses,
          worstRelative: worst,
          toleranceUsed: used,
          gemmCounts: { ...cuda.gemmCounts },
        };
        if (!r.ok) {
          throw Object.assign(
            new Error(`outside the tolerance (${r.tolerance}): cpu ${JSON.stringify(r.cpuLosses)}, cuda ${JSON.stringify(r.otherLosses)}`),
            { figures },
          );
        }
        return figures;
      } finally {
        cpu.destroy();
        cuda.destroy();
      }
    },
  };
}

/** A LoRA step captured as a CUDA graph: its replays give the eager steps' losses and gradient norms. */
const graphCase: CheckCase = {
  name: 'training llama-causal-lm float32: a LoRA step captured as a CUDA graph replays to the eager steps',
  run: async () => {
    const cuda = createCudaBackend();
    const eager = await graphTrainer(cuda, { graph: false });
    const graphed = await graphTrainer(cuda, { graph: true });
    try {
      const modes: string[] = [];
      const losses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const e = await eager.run();
        const g = await graphed.run();
        modes.push(g.mode);
        losses.push(g.loss);
        // The same kernels on the same GPU in the same order (cuBLASLt's plans cached per shape):
        // equal on the emulator; 1e-6 leaves room for a GEMM algorithm that is not bitwise
        // reproducible, far below what a stale learning rate or step count moves (1e-4 and up).
        const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
        if (rel(g.loss, e.loss) > 1e-6 || rel(g.gradNorm, e.gradNorm) > 1e-6) {
          throw new Error(`step ${i + 1} (${g.mode}): loss ${g.loss} / norm ${g.gradNorm}, eager ${e.loss} / ${e.gradNorm}`);
        }
      }
      console.log(`captured LoRA step: ${modes.join(', ')}; losses equal to the eager run's`);
      if (modes.at(-1) !== 'replay') throw new Error(`the step was not replayed: ${modes.join(', ')}`);
      return { modes, losses };
    } finally {
      eager.dispose();
      graphed.dispose();
      cuda.destroy();
    }
  },
};

export const SUITES: readonly Suite[] = [
  {
    name: 'conformance',
    title: 'conformance',
    filtered: true,
    cases: () =>
      conformanceCases({
        create: () => createCudaBackend(),
        dtypes: ['float32', 'float16', 'bfloat16'],
        reference: () => createCpuBackend(),
      }),
  },
  {
    name: 'conformance-tiled',
    title: 'conformance (tiled GEMM)',
    filtered: true,
    cases: () =>
      conformanceCases({ create: () => createCudaBackend({ cublas: false }), dtypes: ['float32', 'bfloat16'] }).filter(
        (c) => c.name.startsWith('matmul') || c.name.startsWith('destroy'),
      ),
  },
  {
    name: 'conformance-f32-attention',
    title: 'conformance (attention on the float32 kernels)',
    filtered: true,
    cases: () =>
      conformanceCases({ create: () => createCudaBackend({ tensorCores: false }), dtypes: ['float16', 'bfloat16'] }).filter(
        (c) => c.name.startsWith('attention') || c.name.startsWith('destroy'),
      ),
  },
  { name: 'gradcheck', title: 'gradcheck', filtered: true, cases: () => gradcheckCases({ create: () => createCudaBackend() }) },
  {
    name: 'training',
    title: 'training',
    filtered: true,
    cases: () => [...TRAINING.map(([kind, dtype]) => trainingCase(kind, dtype)), graphCase],
  },
  { name: 'timings', title: 'timings', filtered: false, cases: timingCases },
];

/** The cases of `suite` that `only` (names' substrings, any of them) selects; destroy cases always run. */
export function selectCases(suite: Suite, only: readonly string[]): CheckCase[] {
  const all = suite.cases();
  if (!suite.filtered || only.length === 0) return all;
  return all.filter((c) => c.name.startsWith('destroy') || only.some((o) => c.name.includes(o)));
}
