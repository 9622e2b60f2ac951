/**
 * One LoRA causal-LM training step, timed: the model built from a config.json with random weights
 * (drawn on the device by the backend's Philox kernel), frozen, LoRA on the given linear layers,
 * gradient checkpointing on, next-token loss on random token ids (labels = the ids, shifted by one
 * inside the loss as transformers does), AdamW on the adapter. A step is forward, backward,
 * AdamW, dropping the gradients and reading the loss back; the backend's peak bytes cover the
 * steps (weights included), not the build. The CUDA suite runs it on the GPU; a unit test on the
 * CPU backend.
 */
import {
  type Backend,
  backward,
  crossEntropy,
  type DType,
  Generator,
  getPeftModel,
  loraConfig,
  memoryInfo,
  mul,
  reshape,
} from '@peft/core';
import { CausalLMHead } from '@peft/heads';
import { type CausalLM, createModel, parseConfig } from '@peft/models';
import { AdamW, TrainingStep } from '@peft/trainer';

export interface LoraStepOptions {
  /** A Hugging Face config.json, as parsed JSON. */
  config: Record<string, unknown>;
  /** Overrides num_hidden_layers (a quick look at a shallower model). */
  layers?: number;
  dtype: DType;
  r: number;
  alpha: number;
  targets: readonly string[];
  batch: number;
  seq: number;
  /** Untimed steps first (kernel loading, cuBLASLt plans, the allocator's pool). */
  warmup: number;
  steps: number;
  gradientCheckpointing?: boolean;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /**
   * Run the step as @peft/trainer's TrainingStep (inputs: ids, positions, shifted targets,
   * 1 / targets), captured as a CUDA graph on the second step and replayed after, where the
   * backend can capture; eager elsewhere. The loss is the same; `mode` in the result says which ran.
   */
  graph?: boolean;
  /** Called after each step (warm-up included) with its index, once its loss has been read. */
  onStep?: (step: number) => void;
}

export interface LoraStepResult {
  backend: string;
  modelType: string;
  layers: number;
  dtype: DType;
  /** Parameters of the base model (embeddings and LM head included; the adapter not). */
  parameters: number;
  /** Adapter parameters (what AdamW updates). */
  trainable: number;
  batch: number;
  seq: number;
  warmup: number;
  steps: number;
  /** Every step's time, warm-up included. */
  stepMs: number[];
  medianStepMs: number;
  tokensPerSecond: number;
  /** Largest bytes handed out by the backend during the steps (the CUDA allocator's `peak`, else `memory().peakBytes`). */
  peakBytes: number;
  /** Backend bytes after the model was built, before the first step. */
  modelBytes: number;
  /** Every step's loss, warm-up included. */
  losses: number[];
  /** Seconds to build the model and the adapter. */
  buildSeconds: number;
  /** How the timed steps ran: 'eager' (the model code each step) or 'graph' (a captured step replayed). */
  mode: 'eager' | 'graph';
}

/** The raw config with num_hidden_layers overridden. */
export function withLayers(config: Record<string, unknown>, layers?: number): Record<string, unknown> {
  return layers === undefined ? config : { ...config, num_hidden_layers: layers };
}

/** Token ids in [4, vocab): a fixed linear congruential sequence, the same on every run. */
export function randomIds(batch: number, seq: number, vocab: number, seed = 7): number[][] {
  let s = seed;
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return 4 + (s % (vocab - 4));
    }),
  );
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface PeakStats {
  memoryStats(): { peak: number; current: number };
}

function hasStats(b: Backend): b is Backend & PeakStats {
  return typeof (b as Partial<PeakStats>).memoryStats === 'function';
}

/** Bytes handed out now and the peak since resetPeak (the CUDA allocator's view when there is one). */
function bytesOf(backend: Backend): { current: number; peak: number } {
  if (hasStats(backend)) {
    const s = backend.memoryStats();
    return { current: s.current, peak: s.peak };
  }
  const m = backend.memory();
  return { current: m.bytes, peak: m.peakBytes };
}

export async function runLoraStep(backend: Backend, o: LoraStepOptions): Promise<LoraStepResult> {
  const started = performance.now();
  const config = parseConfig(withLayers(o.config, o.layers));
  const generator = new Generator(o.seed ?? 0);
  // transformers' init (N(0, initializer_range²)): the same starting distribution as peft_step.py's from_config model.
  const model = createModel(config, { backend, dtype: o.dtype, init: 'transformers', generator });
  model.freeze();
  const parameters = model.parameterCount().total;
  const peft = getPeftModel(
    model,
    loraConfig({ r: o.r, loraAlpha: o.alpha, loraDropout: 0, targetModules: [...o.targets], taskType: 'CAUSAL_LM' }),
    { generator },
  );
  const optimizer = new AdamW(
    [...peft.namedParameters()].filter(([, t]) => t.requiresGrad),
    { weightDecay: o.weightDecay ?? 0.01 },
  );
  const trainable = optimizer.params.reduce((n, p) => n + p.tensor.size, 0);
  let replayable: ReturnType<typeof graphStep> | null = null;
  try {
    model.gradientCheckpointing = o.gradientCheckpointing ?? true;
    peft.train();
    const head = new CausalLMHead(peft.model);
    const inputIds = randomIds(o.batch, o.seq, config.vocabSize, (o.seed ?? 0) + 7);
    const batch = { inputIds, labels: inputIds };
    replayable = o.graph ? graphStep(model, optimizer, inputIds) : null;
    await backend.sync();
    const buildSeconds = (performance.now() - started) / 1000;
    const modelBytes = bytesOf(backend).current;
    backend.resetPeak();
    const losses: number[] = [];
    const stepMs: number[] = [];
    let mode: LoraStepResult['mode'] = 'eager';
    for (let step = 0; step < o.warmup + o.steps; step++) {
      const t0 = performance.now();
      if (replayable) {
        const r = await replayable.step.run(replayable.data, o.lr ?? 1e-4);
        losses.push(r.loss);
        if (step >= o.warmup) mode = r.mode === 'replay' ? 'graph' : 'eager';
      } else {
        const loss = head.loss(batch);
        backward(loss);
        optimizer.step(o.lr ?? 1e-4);
        optimizer.zeroGrad();
        // Reading the loss waits for everything enqueued before it: the step is done.
        losses.push(await loss.item());
        loss.dispose();
      }
      stepMs.push(performance.now() - t0);
      o.onStep?.(step);
    }
    const medianStepMs = median(stepMs.slice(o.warmup));
    return {
      backend: backend.name,
      modelType: config.modelType,
      layers: config.numLayers,
      dtype: o.dtype,
      parameters,
      trainable,
      batch: o.batch,
      seq: o.seq,
      warmup: o.warmup,
      steps: o.steps,
      stepMs,
      medianStepMs,
      tokensPerSecond: (o.batch * o.seq) / (medianStepMs / 1000),
      peakBytes: bytesOf(backend).peak,
      modelBytes,
      losses,
      buildSeconds,
      mode,
    };
  } finally {
    replayable?.step.dispose();
    optimizer.dispose();
    peft.dispose();
  }
}

/**
 * The step over fixed device inputs, for TrainingStep: the logits of every position against the
 * next id (the last position has none), summed and scaled by 1 / targets. No clipping, as the
 * PyTorch side.
 */
function graphStep(model: CausalLM, optimizer: AdamW, inputIds: number[][]) {
  const [b, t] = [inputIds.length, inputIds[0]!.length];
  const targets = new Int32Array(b * t).fill(-100);
  inputIds.forEach((row, i) => {
    for (let j = 0; j + 1 < t; j++) targets[i * t + j] = row[j + 1]!;
  });
  const data = {
    ids: Int32Array.from(inputIds.flat()),
    positions: new Int32Array(b * t).map((_, i) => i % t),
    targets,
    invCount: Float32Array.of(1 / (b * (t - 1))),
  };
  const step = new TrainingStep({
    backend: model.backend,
    optimizer,
    maxGradNorm: null,
    inputs: {
      ids: { shape: [b, t], dtype: 'int32' },
      positions: { shape: [b, t], dtype: 'int32' },
      targets: { shape: [b * t], dtype: 'int32' },
      invCount: { shape: [1], dtype: 'float32' },
    },
    loss: ({ ids, positions, targets, invCount }) => {
      const hidden = model.hiddenStates({ inputIds: ids, positionIds: positions });
      const logits = model.lmHead.forward(reshape(hidden, [b * t, hidden.shape[2]!]));
      return mul(crossEntropy(logits, targets, { reduction: 'sum', ignoreIndex: -100 }), invCount);
    },
  });
  return { step, data };
}

/** Tensors core still sees on the backend (0 after a clean run). */
export function liveTensors(backend: Backend): number {
  return memoryInfo(backend).tensors;
}
