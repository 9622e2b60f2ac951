import { type Backend, backward, cast, concat, type DType, encode, keep, noGrad, reshape, type Tensor, tidy, zeros } from '@peft/core';
import type { AdamW } from './adamw.js';
import { GraphCache } from './graphs.js';
import { applyUpdate, gradientScale } from './update.js';

const STEP = 'step';

/** Shape and dtype of one input of a `TrainingStep`. */
export interface StepInputSpec {
  shape: readonly number[];
  dtype: DType;
}

export interface TrainingStepOptions<K extends string> {
  /** The optimizer over the trainable tensors; its moments live on `backend`. */
  optimizer: AdamW;
  /** Where the inputs are allocated (the model's backend). */
  backend: Backend;
  /** The step's inputs, each a fixed shape: every call writes new values into the same tensors. */
  inputs: Record<K, StepInputSpec>;
  /**
   * The mean loss of one batch, a float tensor with one element, computed from the input tensors
   * alone: anything that changes between calls (ids, labels, the number of targets) must come
   * from an input, because a replayed graph repeats every other value it saw when captured.
   */
  loss: (inputs: Readonly<Record<K, Tensor>>) => Tensor;
  /** Clip the global gradient norm to this, on the device (PyTorch's clip_grad_norm_). Default 1.0; null turns it off. */
  maxGradNorm?: number | null;
  /**
   * 'auto' (default): capture the step as a graph where the backend can (`captureGraph`, the CUDA
   * backend) and replay it from the third call on, running eagerly where it cannot or when the
   * capture fails (`graphError` says why); true: as 'auto', but a failed or impossible capture
   * throws; false: always eager.
   */
  graph?: boolean | 'auto';
}

export interface StepResult {
  /** The batch's loss. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  clipCoefficient: number;
  /** The update's 1-based number. */
  step: number;
  /** How this call ran: 'eager' (the model code ran), 'capture' (it ran once, recorded) or 'replay'. */
  mode: 'eager' | 'capture' | 'replay';
}

/**
 * One LoRA training update (forward, backward, gradient clipping and AdamW, everything on the
 * device) over fixed-shape inputs, replayed as a CUDA graph where the backend can capture one.
 * The first call runs eagerly (it loads the kernels, plans the GEMMs and creates the optimizer's
 * moments); the second runs the step under capture and launches the graph; later calls write
 * their inputs and the learning rate into device tensors and launch the graph alone, with no
 * model code on the host. The values a replay needs that change per update (learning rate, bias
 * corrections, clipping factor) are read on the device (`AdamW.stepWithScalars`), so a replayed
 * update equals an eager one. Random numbers drawn on the host's counter (`dropout` with a
 * Generator) cannot be captured: with 'auto' the capture stops at the first one and that call
 * runs eagerly, with the masks drawn after those the attempt took from the generator. Per-example
 * dropout in its device form (`setDropoutExamples(model, { device: … })` with the keys among the
 * inputs) is captured and replays each call's masks.
 *
 * The update after backward (global norm, clipping factor, AdamW) is `update.ts`'s, the one
 * `train()` applies too, and the capture and replay are `GraphCache`'s, through which `train()`
 * runs its steps. The difference: here the whole update is one graph applied before its values
 * are read, while `train()` accumulates micro-batches, then reads the loss and gradient norm back
 * and refuses a non-finite one before its update graph is launched.
 */
export class TrainingStep<K extends string> {
  readonly #o: TrainingStepOptions<K>;
  readonly #specs: [K, StepInputSpec][];
  readonly #inputs: Record<K, Tensor>;
  readonly #hyper: Tensor;
  readonly #maxGradNorm: number | null;
  readonly #graphs: GraphCache;
  #disposed = false;

  constructor(opts: TrainingStepOptions<K>) {
    this.#o = opts;
    const maxGradNorm = opts.maxGradNorm === undefined ? 1 : opts.maxGradNorm;
    if (maxGradNorm !== null && !(maxGradNorm > 0 && Number.isFinite(maxGradNorm))) {
      throw new Error(`TrainingStep: maxGradNorm must be a finite number > 0 (or null for no clipping), got ${maxGradNorm}`);
    }
    this.#maxGradNorm = maxGradNorm;
    this.#graphs = new GraphCache(opts.backend, opts.graph ?? 'auto', 'TrainingStep', 1);
    this.#specs = Object.entries(opts.inputs) as [K, StepInputSpec][];
    if (this.#specs.length === 0) throw new Error('TrainingStep: inputs is empty: the loss needs at least one input tensor');
    const inputs = {} as Record<K, Tensor>;
    for (const [name, spec] of this.#specs) {
      if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
        throw new Error(`TrainingStep: input "${name}" has shape ${JSON.stringify(spec.shape)}: use positive integers`);
      }
      inputs[name] = keep(zeros(spec.shape, { backend: opts.backend, dtype: spec.dtype }));
    }
    this.#inputs = inputs;
    this.#hyper = keep(zeros([3], { backend: opts.backend, dtype: 'float32' }));
  }

  /** Why the step runs eagerly on a backend that can capture graphs (the capture's error), or null. */
  get graphError(): string | null {
    return this.#graphs.error;
  }

  /** True once a graph has been captured: later calls replay it. */
  get captured(): boolean {
    return this.#graphs.has(STEP);
  }

  /**
   * Writes `data` (every input, `shape`'s element count each, row-major) and runs one update with
   * learning rate `lr`; resolves once its loss, gradient norm and clipping factor are read back.
   * Calls must not overlap.
   */
  async run(data: Readonly<Record<K, ArrayLike<number>>>, lr: number): Promise<StepResult> {
    if (this.#disposed) throw new Error('TrainingStep.run: this step was disposed');
    const { backend, optimizer } = this.#o;
    for (const [name, spec] of this.#specs) {
      const values = data[name];
      const t = this.#inputs[name];
      if (!values || typeof values.length !== 'number') throw new Error(`TrainingStep.run: input "${name}" is missing`);
      if (values.length !== t.size) {
        throw new Error(
          `TrainingStep.run: input "${name}" has ${values.length} values; its shape [${spec.shape.join(', ')}] needs ${t.size}`,
        );
      }
    }
    for (const name of Object.keys(data)) {
      if (!(name in this.#inputs))
        throw new Error(`TrainingStep.run: "${name}" is not one of the inputs (${Object.keys(this.#inputs).join(', ')})`);
    }
    const step = optimizer.nextStep();
    for (const [name, spec] of this.#specs) backend.write(this.#inputs[name].buffer('TrainingStep'), encode(data[name], spec.dtype));
    backend.write(this.#hyper.buffer('TrainingStep'), optimizer.hyper(lr, step));
    const counts = optimizer.counts();
    let recorded: { out: Tensor; updated: string[] } | null = null;
    const { mode, value } = this.#graphs.run(STEP, () => this.#body(), {
      // Nothing ran: undo what the recording changed on the host.
      undo: () => {
        optimizer.zeroGrad();
        optimizer.restoreCounts(counts);
      },
      // A parameter updated for the first time under capture had its moments zeroed inside the
      // graph: every replay would zero them again.
      check: ({ updated }) => {
        const fresh = updated.filter((name) => !counts.has(name));
        if (fresh.length > 0)
          throw new Error(`parameter "${fresh[0]}" got its first gradient during the capture, not in the eager first call`);
      },
      onDrop: () => recorded?.out.dispose(),
    });
    if (mode === 'capture') recorded = value;
    if (mode === 'replay') optimizer.advance(value.updated);
    const out = value.out;
    try {
      const [loss, gradNorm, clipCoefficient] = (await out.raw()) as Float32Array;
      return { loss: loss!, gradNorm: gradNorm!, clipCoefficient: clipCoefficient!, step, mode };
    } finally {
      if (mode === 'eager') out.dispose();
    }
  }

  /** Forward, backward, clipping and AdamW (the update `train()` applies too); returns [loss, gradNorm, clipCoefficient] as one float32 tensor. */
  #body(): { out: Tensor; updated: string[] } {
    const { optimizer } = this.#o;
    const loss = tidy(() => this.#o.loss(this.#inputs));
    if (loss.size !== 1 || loss.dtype === 'int32') {
      loss.dispose();
      throw new Error(`TrainingStep: the loss must be one float value, got ${loss.describe()}`);
    }
    backward(loss);
    let updated: string[] = [];
    return noGrad(() => {
      const out = tidy(() => {
        const grads = optimizer.params.flatMap((p) => (p.tensor.grad ? [p.tensor.grad] : []));
        if (grads.length === 0) throw new Error('TrainingStep: no trainable parameter received a gradient from the loss');
        const { norm, coef } = gradientScale(grads, this.#maxGradNorm, this.#o.backend);
        updated = applyUpdate(optimizer, this.#hyper, coef);
        optimizer.zeroGrad();
        const flat = reshape(loss, [1]);
        return concat([flat.dtype === 'float32' ? flat : cast(flat, 'float32'), norm, coef], 0);
      });
      loss.dispose();
      return { out, updated };
    });
  }

  /** Frees the graph, the input tensors and what the step kept. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#graphs.dispose();
    for (const t of Object.values(this.#inputs) as Tensor[]) t.dispose();
    this.#hyper.dispose();
  }
}
