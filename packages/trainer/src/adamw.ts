import { adamwStep, keep, type Module, noGrad, type RawArray, type Tensor, zeros } from '@peft/core';

/** Decides which parameters get no weight decay, by name. */
export type NoDecayRule = (name: string) => boolean;

// transformers' Trainer.get_decay_parameter_names: these patterns, searched in the lower-cased
// dotted name. It also exempts every parameter of a LayerNorm module by type; the trainer sees
// names only, so GPT-2 style LayerNorm names (ln_1, ln_f) are matched by name instead.
const NO_DECAY_PATTERNS = [/bias/, /layernorm/, /rmsnorm/, /(?:^|\.)norm(?:$|\.)/, /_norm(?:$|\.)/, /(?:^|\.)ln(?:_[a-z0-9]+)?\./];

/**
 * The Hugging Face Trainer's rule, which Study A's training used: no weight decay for biases and
 * for normalization weights (`…bias`, `…layernorm…`, `…rmsnorm…`, `norm.weight`, `…_norm.weight`,
 * `ln_f.weight`); every other parameter (LoRA A/B, a classifier head's weight) decays.
 */
export function hfNoDecay(name: string): boolean {
  const lower = name.toLowerCase();
  return NO_DECAY_PATTERNS.some((p) => p.test(lower));
}

export interface AdamWOptions {
  /** Learning rate of `step()` when it is given none. Default 1e-3 (torch.optim.AdamW's). */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay for parameters the rule does not exempt. Default 0.01 (torch.optim.AdamW, Study A). */
  weightDecay?: number;
  /** Parameters this returns true for get weight decay 0. Default `hfNoDecay`. */
  noDecay?: NoDecayRule;
}

export interface AdamWParam {
  readonly name: string;
  readonly tensor: Tensor;
  readonly weightDecay: number;
}

/** Host copy of the optimizer: per-parameter update counts and float32 moments. */
export interface AdamWState {
  steps: Record<string, number>;
  /** `<name>.exp_avg` and `<name>.exp_avg_sq` (PyTorch's state keys) for parameters that were updated. */
  moments: Map<string, Float32Array>;
}

/** What AdamW optimises: a model (its tensors that require grad) or `[name, tensor]` pairs. */
export type AdamWParams = Module | Iterable<readonly [string, Tensor]>;

function isModule(p: AdamWParams): p is Module {
  return typeof (p as Module).namedParameters === 'function';
}

/**
 * AdamW over named tensors with PyTorch's semantics (torch.optim.AdamW, foreach off): float32 moments
 * per parameter, created at its first update; a parameter without a gradient is skipped and its
 * step count does not advance. The update itself is the backend's `adamw` kernel.
 *
 * `new AdamW(peft, { lr })` optimises every tensor of the model that requires grad (for a
 * PeftModel: the adapter and the modules to save), as `torch.optim.AdamW(model.parameters())`;
 * names (PEFT's in-memory names) decide weight decay and key the optimizer state. Pairs
 * (`peft.adapterParameters()`, `task.trainable()`) pick the tensors explicitly.
 */
export class AdamW {
  readonly params: readonly AdamWParam[];
  /** The learning rate `step()` uses when it is given none. */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();
  readonly #steps = new Map<string, number>();

  constructor(params: AdamWParams, opts: AdamWOptions = {}) {
    const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
    const lr = opts.lr ?? 1e-3;
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW: lr ${lr} must be a finite number >= 0`);
    const eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    for (const [k, v] of [
      ['beta1', beta1],
      ['beta2', beta2],
    ] as const) {
      if (!(v >= 0 && v < 1)) throw new Error(`AdamW: ${k} ${v} must be in [0, 1)`);
    }
    if (!(eps >= 0)) throw new Error(`AdamW: eps ${eps} must be >= 0`);
    if (!(wd >= 0)) throw new Error(`AdamW: weightDecay ${wd} must be >= 0`);
    const rule = opts.noDecay ?? hfNoDecay;
    const list: AdamWParam[] = [];
    const seen = new Set<string>();
    const named = isModule(params) ? [...params.namedParameters()].filter(([, t]) => t.requiresGrad) : params;
    for (const [name, tensor] of named) {
      if (seen.has(name)) throw new Error(`AdamW: parameter name "${name}" appears twice: names must be unique`);
      seen.add(name);
      if (tensor.dtype === 'int32') throw new Error(`AdamW: ${tensor.describe()} is int32: only float tensors can be trained`);
      list.push({ name, tensor, weightDecay: rule(name) ? 0 : wd });
    }
    if (list.length === 0 && isModule(params)) {
      throw new Error(
        `AdamW: the ${params.constructor.name} has no tensor that requires grad: add an adapter (getPeftModel) or unfreeze what should train`,
      );
    }
    this.params = list;
    this.lr = lr;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
  }

  /**
   * One update of every parameter that has a gradient, with learning rate `lr` (default the
   * optimizer's `lr`); each gradient is multiplied by `gradScale` first (clipping), inside the kernel.
   */
  step(lr: number = this.lr, gradScale = 1): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW.step: learning rate ${lr} must be a finite number >= 0`);
    if (!Number.isFinite(gradScale)) throw new Error(`AdamW.step: gradScale ${gradScale} must be finite`);
    this.#update(lr, gradScale, null, undefined);
  }

  /**
   * Updates every parameter that has a gradient, of those in `only` when given (values from
   * `scalars` on the device when given); returns their names.
   */
  #update(lr: number, gradScale: number, scalars: Tensor | null, only: ReadonlySet<string> | undefined): string[] {
    const updated: string[] = [];
    noGrad(() => {
      for (const p of this.params) {
        const grad = p.tensor.grad;
        if (!grad || (only && !only.has(p.name))) continue;
        const m = this.#moment(this.#m, p);
        const v = this.#moment(this.#v, p);
        const step = (this.#steps.get(p.name) ?? 0) + 1;
        this.#steps.set(p.name, step);
        const { beta1, beta2, eps } = this;
        adamwStep(p.tensor, grad, m, v, { lr, beta1, beta2, eps, weightDecay: p.weightDecay, step, gradScale }, scalars);
        updated.push(p.name);
      }
    });
    return updated;
  }

  /**
   * The 1-based number of the next update, which every parameter updated so far shares. A
   * replayable step (`TrainingStep`) reads it; parameters whose counts differ (one skipped an
   * update for want of a gradient) make it throw, naming two of them.
   */
  nextStep(): number {
    let first: [string, number] | null = null;
    for (const [name, n] of this.#steps) {
      if (!first) first = [name, n];
      else if (n !== first[1]) {
        throw new Error(
          `AdamW: parameters have had different numbers of updates ("${first[0]}" ${first[1]}, "${name}" ${n}): a replayed step needs one count`,
        );
      }
    }
    return (first?.[1] ?? 0) + 1;
  }

  /** lr, 1 − β1^t and 1 − β2^t of update `t` (computed in float64, rounded once), for `stepWithScalars`. */
  hyper(lr: number, t: number): Float32Array {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW: learning rate ${lr} must be a finite number >= 0`);
    if (!Number.isSafeInteger(t) || t < 1) throw new Error(`AdamW: step ${t} must be an integer >= 1`);
    return Float32Array.of(lr, 1 - this.beta1 ** t, 1 - this.beta2 ** t);
  }

  /**
   * Enqueues the update of every parameter that has a gradient, reading the learning rate, the
   * bias corrections and the gradient scale from `scalars` on the device (float32 [4]: the three
   * values of `hyper(lr, t)`, then gradScale), so that a captured graph of this call replays with
   * new values. Advances the step counts as `step` does; returns the names updated. With `only`,
   * just those of its names that have a gradient are updated (parameters at another update number
   * take scalars of their own).
   */
  stepWithScalars(scalars: Tensor, only?: ReadonlySet<string>): string[] {
    if (scalars.dtype !== 'float32' || scalars.size !== 4) {
      throw new Error(`AdamW.stepWithScalars: scalars ${scalars.describe()} must be float32 with 4 elements`);
    }
    // lr and gradScale here only pass validation: the kernel reads them from scalars.
    return this.#update(0, 1, scalars, only);
  }

  /** Counts one more update of each named parameter: what a graph replay of `stepWithScalars` did on the device. */
  advance(names: Iterable<string>): void {
    for (const name of names) {
      const n = this.#steps.get(name);
      if (n === undefined) throw new Error(`AdamW.advance: parameter "${name}" has never been updated`);
      this.#steps.set(name, n + 1);
    }
  }

  /**
   * Sets the step counts back to `counts()` taken earlier (a capture that failed after
   * `stepWithScalars` counted); moments created since, for parameters without a count there,
   * are freed (under a failed capture they belonged to the graph's released memory).
   */
  restoreCounts(counts: ReadonlyMap<string, number>): void {
    this.#steps.clear();
    for (const [k, v] of counts) this.#steps.set(k, v);
    for (const map of [this.#m, this.#v]) {
      for (const [name, t] of map) {
        if (counts.has(name)) continue;
        t.dispose();
        map.delete(name);
      }
    }
  }

  /** A copy of the step counts. */
  counts(): Map<string, number> {
    return new Map(this.#steps);
  }

  #moment(map: Map<string, Tensor>, p: AdamWParam): Tensor {
    let t = map.get(p.name);
    if (!t) {
      t = keep(zeros(p.tensor.shape, { backend: p.tensor.backend, dtype: 'float32' }));
      map.set(p.name, t);
    }
    return t;
  }

  /** Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`): memory is freed until the next backward. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.tensor.grad?.dispose();
      p.tensor.grad = null;
    }
  }

  /** Reads the moments back to the host, for a checkpoint. */
  async state(): Promise<AdamWState> {
    const moments = new Map<string, Float32Array>();
    for (const p of this.params) {
      const m = this.#m.get(p.name);
      const v = this.#v.get(p.name);
      if (!m || !v) continue;
      moments.set(`${p.name}.exp_avg`, (await m.raw()) as Float32Array);
      moments.set(`${p.name}.exp_avg_sq`, (await v.raw()) as Float32Array);
    }
    return { steps: Object.fromEntries(this.#steps), moments };
  }

  /** Restores a state read by `state()`; names and sizes must match this optimizer's parameters. */
  setState(state: { steps: Record<string, number>; moments: Map<string, RawArray> }): void {
    const known = new Map(this.params.map((p) => [p.name, p]));
    for (const name of Object.keys(state.steps)) {
      if (!known.has(name)) throw new Error(`AdamW.setState: the state has parameter "${name}", which this optimizer does not train`);
    }
    this.#clear();
    for (const p of this.params) {
      const steps = state.steps[p.name];
      if (steps === undefined) continue;
      const m = state.moments.get(`${p.name}.exp_avg`);
      const v = state.moments.get(`${p.name}.exp_avg_sq`);
      if (!(m instanceof Float32Array) || !(v instanceof Float32Array) || m.length !== p.tensor.size || v.length !== p.tensor.size) {
        throw new Error(`AdamW.setState: moments of "${p.name}" are missing or do not have ${p.tensor.size} float32 values`);
      }
      this.#steps.set(p.name, steps);
      this.#moment(this.#m, p).backend.write(this.#m.get(p.name)!.buffer('AdamW.setState'), m);
      this.#moment(this.#v, p).backend.write(this.#v.get(p.name)!.buffer('AdamW.setState'), v);
    }
  }

  /** Updates applied to a parameter so far. */
  stepsOf(name: string): number {
    return this.#steps.get(name) ?? 0;
  }

  #clear(): void {
    for (const t of this.#m.values()) t.dispose();
    for (const t of this.#v.values()) t.dispose();
    this.#m.clear();
    this.#v.clear();
    this.#steps.clear();
  }

  /** Frees the moments. */
  dispose(): void {
    this.#clear();
  }
}
