/**
 * One side of the CPU training-step comparison (`pnpm bench --backend cpu-step`): the job a child
 * process is given, what it answers, and our side of it. A job is one JSON object; the child
 * (ours: cpu-step-child.ts, PyTorch: benchmarks/python/cpu_step.py) builds the model from the job's
 * config with random weights, runs warm-up + timed steps and prints one JSON line with the result.
 *
 * A step is forward, backward, AdamW on the adapter (and the classifier head), dropping the
 * gradients and reading the loss back.
 */
import { type Backend, backward, Generator, getPeftModel, loraConfig, type Module, type Tensor } from '@peft/core';
import { CausalLMHead, SequenceClassifier } from '@peft/heads';
import { createModel, parseConfig } from '@peft/models';
import { AdamW } from '@peft/trainer';

/** What a child runs: the same object goes to ours and to PyTorch. */
export interface CpuStepJob {
  /** Config id, for logs (neox, neox-gc, llama). */
  id: string;
  /** A Hugging Face config.json (with overrides applied), as parsed JSON. */
  config: Record<string, unknown>;
  /**
   * `seq-cls`: last-token sequence classifier (`score`, no bias, trained fully: PEFT's
   * modules_to_save); `causal-lm`: the LM head, loss on the labels that are not −100.
   */
  task: 'seq-cls' | 'causal-lm';
  /** Token ids [batch][seq]. */
  ids: number[][];
  /** seq-cls: one label per row in [0, numLabels); causal-lm: [batch][seq], −100 where no loss is taken. */
  labels: number[] | number[][];
  numLabels?: number;
  r: number;
  alpha: number;
  dropout: number;
  targets: string[];
  gradientCheckpointing: boolean;
  lr: number;
  weightDecay: number;
  seed: number;
  warmup: number;
  steps: number;
  /** Compute threads (ours: the backend's GEMM threads; PyTorch: torch.set_num_threads). */
  threads: number;
  /** Ours only: time every backend kernel during the timed steps. */
  profile?: boolean;
  /** Ours only: createCpuBackend's `gemm` option (auto, blas, wasm, js) where the backend has it. */
  gemm?: string;
}

/** Per kernel (method, or method:op) during the timed steps. */
export interface KernelTimes {
  calls: number;
  ms: number;
}

export interface KernelProfile {
  /** Summed over the timed steps. */
  kernels: Record<string, KernelTimes>;
  /** matmul per shape key (`m×n×k tA tB bN`), with its multiply-adds per call. */
  matmul: Record<string, KernelTimes & { flops: number }>;
  /** Wall time of the timed steps, for the share of time outside the kernels. */
  stepMs: number;
  steps: number;
}

/** What a child prints (one JSON line). */
export interface CpuStepResult {
  side: 'ours' | 'pytorch';
  id: string;
  /** Every step's time, warm-up included. */
  stepMs: number[];
  warmup: number;
  steps: number;
  medianStepMs: number;
  tokensPerSecond: number;
  /** Every step's loss, warm-up included. */
  losses: number[];
  /** Seconds from the job read to the first step: model, adapter, head and optimizer. */
  buildSeconds: number;
  /** Seconds from process start to the job read (runtime start-up and imports). */
  startSeconds: number;
  /** The process's peak resident set size (getrusage), bytes. */
  peakRssBytes: number;
  /** Parameters of the trained model (base, head), the adapter not included. */
  parameters: number;
  /** Parameters AdamW updates. */
  trainable: number;
  /** Threads the compute actually used (as the library reports them). */
  threads: number;
  /** The GEMM engine (ours: backend.gemmEngine or backend.sgemm.description; PyTorch: its BLAS). */
  engine: string;
  /** Ours: the backend's `gemmEngine` as it is (which library, why), when it has one. */
  engineInfo?: unknown;
  versions: Record<string, string | null>;
  profile?: KernelProfile;
  /** Ours with `profile`: the kernels of the build (config to first step), as one "step". */
  buildProfile?: KernelProfile;
}

/**
 * Which GEMM engine a backend runs: its `gemmEngine` (a string, or `{ name, threads, library }`)
 * when it has one, else its sgemm's description.
 */
export function gemmEngineOf(backend: Backend): string {
  const b = backend as Backend & { gemmEngine?: unknown; sgemm?: { description?: unknown } };
  const info = b.gemmEngine;
  if (typeof info === 'string') return info;
  if (info && typeof info === 'object' && 'name' in info) {
    const { name, threads, library } = info as { name: unknown; threads?: unknown; library?: unknown };
    const t = typeof threads === 'number' ? ` x${threads} thread${threads === 1 ? '' : 's'}` : '';
    return `${String(name)}${t}${typeof library === 'string' ? ` (${library})` : ''}`;
  }
  if (typeof b.sgemm?.description === 'string') return b.sgemm.description;
  return 'unknown';
}

/** The median; NaN for no values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Checks a job's shape before anything is built; errors name the field and the value. */
export function checkJob(job: CpuStepJob): void {
  const fail = (what: string) => {
    throw new Error(`cpu-step job ${JSON.stringify(job?.id)}: ${what}`);
  };
  if (typeof job !== 'object' || job === null) throw new Error(`cpu-step job: expected an object, got ${JSON.stringify(job)}`);
  if (job.task !== 'seq-cls' && job.task !== 'causal-lm') fail(`task ${JSON.stringify(job.task)} must be "seq-cls" or "causal-lm"`);
  if (!Array.isArray(job.ids) || job.ids.length === 0 || !Array.isArray(job.ids[0]) || job.ids[0].length === 0) {
    fail('ids must be a non-empty [batch][seq] array');
  }
  if (!Array.isArray(job.labels) || job.labels.length !== job.ids.length) {
    fail(`labels has ${Array.isArray(job.labels) ? job.labels.length : JSON.stringify(job.labels)} rows, ids ${job.ids.length}`);
  }
  if (job.task === 'seq-cls' && !(Number.isInteger(job.numLabels) && job.numLabels! > 0)) {
    fail(`numLabels ${job.numLabels} must be a positive integer for seq-cls`);
  }
  for (const k of ['r', 'threads'] as const) {
    if (!(Number.isInteger(job[k]) && job[k] > 0)) fail(`${k} ${job[k]} must be a positive integer`);
  }
  for (const k of ['warmup', 'steps'] as const) {
    if (!(Number.isInteger(job[k]) && job[k] >= 0)) fail(`${k} ${job[k]} must be a non-negative integer`);
  }
  if (job.steps + job.warmup === 0) fail('warmup + steps is 0: nothing to run');
}

export interface OursBuild {
  model: Module;
  loss(): Tensor;
  optimizer: AdamW;
  parameters: number;
  trainable: number;
  dispose(): void;
}

/** Our model for `job`, as the PyTorch side builds it: random weights (transformers' init), frozen, LoRA, the head. */
export function buildOurs(backend: Backend, job: CpuStepJob): OursBuild {
  const config = parseConfig(job.config, `${job.id} config`);
  const causal = createModel(config, { backend, dtype: 'float32', init: 'transformers', generator: new Generator(job.seed) });
  causal.freeze();
  causal.gradientCheckpointing = job.gradientCheckpointing;
  const lora = {
    r: job.r,
    loraAlpha: job.alpha,
    loraDropout: job.dropout,
    targetModules: [...job.targets],
  };
  const adapterGenerator = new Generator(job.seed + 2);
  let model: Module;
  let loss: () => Tensor;
  // The classifier does not use the LM head, which Study A's loader builds all the same; freed with the model.
  let unused: Module | null = null;
  if (job.task === 'seq-cls') {
    unused = causal.lmHead;
    const head = new SequenceClassifier(causal, { numLabels: job.numLabels!, generator: new Generator(job.seed + 1) });
    const peft = getPeftModel(head, loraConfig({ ...lora, modulesToSave: ['score'], taskType: 'SEQ_CLS' }), {
      modelType: config.modelType,
      generator: adapterGenerator,
    });
    model = peft;
    const batch = { inputIds: job.ids };
    const labels = job.labels as number[];
    loss = () => peft.model.loss(batch, labels);
  } else {
    const peft = getPeftModel(causal, loraConfig({ ...lora, taskType: 'CAUSAL_LM' }), { generator: adapterGenerator });
    model = peft;
    const head = new CausalLMHead(peft.model);
    const batch = { inputIds: job.ids, labels: job.labels as number[][] };
    loss = () => head.loss(batch);
  }
  model.train();
  const params = [...model.namedParameters()];
  // The base and the head once: neither the adapter nor PEFT's trainable copy of the head (as the PyTorch side counts).
  const parameters = params
    .filter(([name]) => !name.includes('lora_') && !name.includes('.modules_to_save.'))
    .reduce((n, [, t]) => n + t.size, 0);
  const optimizer = new AdamW(
    params.filter(([, t]) => t.requiresGrad),
    { weightDecay: job.weightDecay },
  );
  const trainable = optimizer.params.reduce((n, p) => n + p.tensor.size, 0);
  return {
    model,
    loss,
    optimizer,
    parameters,
    trainable,
    dispose() {
      optimizer.dispose();
      model.dispose();
      unused?.dispose();
    },
  };
}

export interface RunOursHooks {
  /** After the model, adapter, head and optimizer are built, with the seconds that took. */
  onBuilt?: (seconds: number) => void;
  /** After the warm-up steps, before the first timed one. */
  onTimed?: () => void;
  /** After each step with its index (warm-up included), time and loss. */
  onStep?: (step: number, ms: number, loss: number) => void;
}

/** Our side of `job` on `backend`, in this process; peakRssBytes and startSeconds are the caller's to fill in. */
export async function runOursJob(
  backend: Backend,
  job: CpuStepJob,
  hooks: RunOursHooks = {},
): Promise<Omit<CpuStepResult, 'peakRssBytes' | 'startSeconds' | 'versions' | 'threads' | 'profile'>> {
  checkJob(job);
  const started = performance.now();
  const built = buildOurs(backend, job);
  try {
    await backend.sync();
    const buildSeconds = (performance.now() - started) / 1000;
    hooks.onBuilt?.(buildSeconds);
    const losses: number[] = [];
    const stepMs: number[] = [];
    for (let step = 0; step < job.warmup + job.steps; step++) {
      if (step === job.warmup) hooks.onTimed?.();
      const t0 = performance.now();
      const loss = built.loss();
      backward(loss);
      built.optimizer.step(job.lr);
      built.optimizer.zeroGrad();
      losses.push(await loss.item());
      loss.dispose();
      const ms = performance.now() - t0;
      stepMs.push(ms);
      hooks.onStep?.(step, ms, losses.at(-1)!);
    }
    const medianStepMs = median(stepMs.slice(job.warmup).length ? stepMs.slice(job.warmup) : stepMs);
    const tokens = job.ids.length * job.ids[0]!.length;
    return {
      side: 'ours',
      id: job.id,
      stepMs,
      warmup: job.warmup,
      steps: job.steps,
      medianStepMs,
      tokensPerSecond: tokens / (medianStepMs / 1000),
      losses,
      buildSeconds,
      parameters: built.parameters,
      trainable: built.trainable,
      engine: gemmEngineOf(backend),
    };
  } finally {
    built.dispose();
  }
}
