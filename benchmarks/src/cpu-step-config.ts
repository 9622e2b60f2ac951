/**
 * The CPU training-step section's configurations (neox, neox-gc, llama) and the job each child is
 * given: the config.json of fixtures/configs, the tiny overrides of --short, token ids and labels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuStepJob } from './cpu-step-job.js';

export interface CpuStepConfig {
  id: 'neox' | 'neox-gc' | 'llama';
  /** The shape, for --only. */
  shape: 'neox' | 'llama';
  /** Folder under fixtures/configs holding config.json. */
  dir: string;
  title: string;
  task: CpuStepJob['task'];
  numLabels?: number;
  r: number;
  alpha: number;
  dropout: number;
  targets: string[];
  gradientCheckpointing: boolean;
  batch: number;
  seq: number;
  /** config.json overrides for --short (a tiny version of the shape). */
  tiny: Record<string, unknown>;
}

const NEOX = {
  shape: 'neox',
  dir: 'gpt-neox-110m',
  task: 'seq-cls',
  numLabels: 9,
  r: 32,
  alpha: 16,
  dropout: 0.1,
  targets: ['query_key_value'],
  batch: 8,
  seq: 128,
  tiny: { hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 256 },
} as const;

export const CPU_STEP_CONFIGS: readonly CpuStepConfig[] = [
  {
    ...NEOX,
    id: 'neox',
    title: 'GPT-NeoX ~110M classifier',
    gradientCheckpointing: false,
    targets: [...NEOX.targets],
    tiny: { ...NEOX.tiny },
  },
  {
    ...NEOX,
    id: 'neox-gc',
    title: 'GPT-NeoX ~110M classifier, gradient checkpointing',
    gradientCheckpointing: true,
    targets: [...NEOX.targets],
    tiny: { ...NEOX.tiny },
  },
  {
    id: 'llama',
    shape: 'llama',
    dir: 'llama-100m',
    title: 'Llama ~100M, answer-only causal LM',
    task: 'causal-lm',
    r: 16,
    alpha: 32,
    dropout: 0.05,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    gradientCheckpointing: false,
    batch: 8,
    seq: 128,
    tiny: { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 172 },
  },
];

/** The short run's sizes: a tiny version of each shape. */
const SHORT_BATCH = 2;
const SHORT_SEQ = 16;

export function selectConfigs(only: readonly string[] | undefined): CpuStepConfig[] {
  if (!only || only.length === 0) return [...CPU_STEP_CONFIGS];
  for (const o of only) {
    if (!CPU_STEP_CONFIGS.some((c) => c.id === o || c.shape === o)) {
      throw new Error(`--only ${o}: choose from neox, neox-gc, llama`);
    }
  }
  return CPU_STEP_CONFIGS.filter((c) => only.includes(c.id) || only.includes(c.shape));
}

/** Token ids in [4, vocab): a fixed 32-bit LCG, exact in JavaScript and the same on every run. */
export function tokenIds(batch: number, seq: number, vocab: number, seed: number): number[][] {
  let s = (seed * 2654435761 + 7) >>> 0;
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return 4 + (s % (vocab - 4));
    }),
  );
}

export interface JobSettings {
  short: boolean;
  batch?: number;
  seq?: number;
  layers?: number;
  warmup: number;
  steps: number;
  threads: number;
  profile: boolean;
  seed: number;
  /** Ours only. */
  gemm?: string;
}

/** The job for config `c` (its config.json read from `root`), the same for both sides. */
export function makeJob(root: string, c: CpuStepConfig, s: JobSettings): CpuStepJob {
  const file = join(root, 'fixtures', 'configs', c.dir, 'config.json');
  const base = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const config: Record<string, unknown> = {
    ...base,
    ...(s.short ? c.tiny : {}),
    ...(s.layers !== undefined ? { num_hidden_layers: s.layers } : {}),
  };
  const batch = s.batch ?? (s.short ? SHORT_BATCH : c.batch);
  const seq = s.seq ?? (s.short ? SHORT_SEQ : c.seq);
  const vocab = config.vocab_size;
  if (typeof vocab !== 'number' || vocab <= 4) throw new Error(`${file}: vocab_size ${JSON.stringify(vocab)} must be a number > 4`);
  const ids = tokenIds(batch, seq, vocab, s.seed);
  // causal-lm: the first half of each row is the prompt (no loss), the second half the answer.
  const prompt = Math.floor(seq / 2);
  const labels =
    c.task === 'seq-cls' ? ids.map((_, i) => i % c.numLabels!) : ids.map((row) => row.map((id, j) => (j < prompt ? -100 : id)));
  return {
    id: c.id,
    config,
    task: c.task,
    ids,
    labels,
    ...(c.numLabels ? { numLabels: c.numLabels } : {}),
    r: c.r,
    alpha: c.alpha,
    dropout: c.dropout,
    targets: [...c.targets],
    gradientCheckpointing: c.gradientCheckpointing,
    lr: 1e-4,
    weightDecay: 0.01,
    seed: s.seed,
    warmup: s.warmup,
    steps: s.steps,
    threads: s.threads,
    ...(s.profile ? { profile: true } : {}),
    ...(s.gemm ? { gemm: s.gemm } : {}),
  };
}
