import { noGrad } from '../../autograd/tape.js';
import { tidy } from '../../memory.js';
import { Dropout } from '../../nn/dropout.js';
import type { Embedding } from '../../nn/embedding.js';
import { normalParam } from '../../nn/init.js';
import { Linear } from '../../nn/linear.js';
import { Module } from '../../nn/module.js';
import { add, scale, sub } from '../../ops/elementwise.js';
import { embedding } from '../../ops/embedding.js';
import { linear, linearSum, matmul } from '../../ops/matmul.js';
import { cast, transpose } from '../../ops/shape.js';
import type { Generator } from '../../random/generator.js';
import type { Tensor } from '../../tensor.js';
import { Identity, ModuleDict, ParameterDict } from '../containers.js';
import { assignInPlace } from '../util.js';
import { type InitLoraWeights, loraScaling } from './config.js';

/**
 * A LoRA variant (DoRA, …) changes how one adapter of a layer computes its output and merges.
 * Variants are their own classes, chosen per adapter, never flags inside the layer.
 */
export interface LoraVariant {
  readonly name: string;
  /** Creates the variant's own parameters for `adapter` (after A and B exist). */
  init(layer: LoraLayer, adapter: string): void;
  /** `result` is the output so far (base plus earlier adapters); returns it with this adapter's part added. */
  forward(layer: LoraLayer, adapter: string, x: Tensor, result: Tensor): Tensor;
  /** The new base weight with the adapter merged in (float32); caches what unmerge needs. */
  merge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor;
  /** The base weight with the adapter taken out again. */
  unmerge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor;
}

export interface UpdateLayerOptions {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  initLoraWeights: InitLoraWeights;
  useRslora: boolean;
  variant?: LoraVariant | null;
  generator?: Generator;
}

/**
 * What LoRA layers share (PEFT's LoraLayer): the wrapped layer as `base_layer` and per-adapter
 * dictionaries registered in PEFT's order, so that parameter names are PEFT's in-memory names
 * (`<path>.base_layer.weight`, `<path>.lora_A.<adapter>.weight`, `<path>.lora_embedding_A.<adapter>`,
 * `<path>.lora_magnitude_vector.<adapter>.weight`).
 */
export abstract class LoraLayer extends Module {
  readonly r = new Map<string, number>();
  readonly loraAlpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();
  readonly useRslora = new Map<string, boolean>();
  readonly variants = new Map<string, LoraVariant>();
  /** Adapters whose output is added in forward (PEFT's active_adapters). */
  activeAdapters: string[] = [];
  /** While true, forward is the base layer's alone (PEFT's disable_adapters). */
  disabled = false;
  /** Adapters merged into the base weight, in merge order. */
  readonly mergedAdapters: string[] = [];
  /** Values a variant keeps between merge and unmerge (DoRA's weight norm). */
  readonly cache = new Map<string, Tensor>();
  readonly lora_dropout: ModuleDict<Dropout | Identity>;
  readonly lora_A: ModuleDict<Linear>;
  readonly lora_B: ModuleDict<Linear>;
  readonly lora_embedding_A: ParameterDict;
  readonly lora_embedding_B: ParameterDict;
  readonly lora_magnitude_vector: ModuleDict;

  constructor(base: Linear | Embedding) {
    super();
    this.registerModule('base_layer', base);
    this.lora_dropout = this.registerModule('lora_dropout', new ModuleDict<Dropout | Identity>());
    this.lora_A = this.registerModule('lora_A', new ModuleDict<Linear>());
    this.lora_B = this.registerModule('lora_B', new ModuleDict<Linear>());
    this.lora_embedding_A = this.registerModule('lora_embedding_A', new ParameterDict());
    this.lora_embedding_B = this.registerModule('lora_embedding_B', new ParameterDict());
    this.lora_magnitude_vector = this.registerModule('lora_magnitude_vector', new ModuleDict());
  }

  get baseLayer(): Linear | Embedding {
    return this.getSubmodule('base_layer') as Linear | Embedding;
  }

  /** The base layer's weight (PEFT's BaseTunerLayer.weight). */
  get weight(): Tensor {
    return this.baseLayer.weight;
  }

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  /** Names of the adapters this layer holds. */
  abstract adapterNames(): string[];

  /** Adds (or replaces) an adapter. */
  abstract updateLayer(adapter: string, opts: UpdateLayerOptions): void;

  /** scaling · ΔW in the base weight's layout (float32). */
  abstract deltaWeight(adapter: string): Tensor;

  /** The adapter's own trainable tensors (A, B, and a variant's). */
  adapterTensors(adapter: string): Tensor[] {
    const out: Tensor[] = [];
    for (const dict of [this.lora_A, this.lora_B, this.lora_magnitude_vector]) {
      const m = dict.get(adapter);
      if (m) out.push(...m.parameters());
    }
    for (const dict of [this.lora_embedding_A, this.lora_embedding_B]) {
      const t = dict.get(adapter);
      if (t) out.push(t);
    }
    return out;
  }

  protected setScaling(adapter: string, opts: UpdateLayerOptions): void {
    if (!Number.isInteger(opts.r) || opts.r <= 0) throw new Error(`LoRA: r should be a positive integer, got ${opts.r}`);
    this.r.set(adapter, opts.r);
    this.loraAlpha.set(adapter, opts.loraAlpha);
    this.scaling.set(adapter, loraScaling(opts.loraAlpha, opts.r, opts.useRslora));
    this.useRslora.set(adapter, opts.useRslora);
    this.lora_dropout.set(adapter, opts.loraDropout > 0 ? new Dropout(opts.loraDropout, opts.generator) : new Identity());
    this.lora_dropout.get(adapter)!.training = this.training;
  }

  /** Makes `names` the active adapters; their tensors train unless `frozen`, the others never. */
  setAdapter(names: readonly string[], frozen = false): void {
    this.activeAdapters = [...names];
    for (const a of this.adapterNames()) {
      const trainable = names.includes(a) && !frozen;
      for (const t of this.adapterTensors(a)) t.requiresGrad = trainable;
    }
  }

  /** Removes an adapter and frees its tensors. */
  deleteAdapter(adapter: string): void {
    if (this.mergedAdapters.includes(adapter)) throw new Error(`LoRA: adapter "${adapter}" is merged; unmerge before deleting it`);
    for (const dict of [this.lora_A, this.lora_B, this.lora_magnitude_vector, this.lora_dropout]) dict.delete(adapter)?.dispose();
    for (const dict of [this.lora_embedding_A, this.lora_embedding_B]) dict.delete(adapter)?.dispose();
    for (const map of [this.r, this.loraAlpha, this.scaling, this.useRslora, this.variants]) map.delete(adapter);
    this.activeAdapters = this.activeAdapters.filter((a) => a !== adapter);
  }

  /** Merges the given adapters (default: the active ones not yet merged) into the base weight, in place. */
  merge(adapters?: readonly string[]): void {
    const names = (adapters ?? this.activeAdapters).filter((a) => this.adapterNames().includes(a) && !this.mergedAdapters.includes(a));
    for (const a of names) {
      noGrad(() =>
        tidy(() => {
          const w = this.weight;
          const variant = this.variants.get(a);
          const merged = variant ? variant.merge(this, a, w) : add(w, this.deltaWeight(a));
          assignInPlace(w, merged);
        }),
      );
      this.mergedAdapters.push(a);
    }
  }

  /** Takes every merged adapter out of the base weight again (last merged first). */
  unmerge(): void {
    while (this.mergedAdapters.length > 0) {
      const a = this.mergedAdapters.pop()!;
      noGrad(() =>
        tidy(() => {
          const w = this.weight;
          const variant = this.variants.get(a);
          assignInPlace(w, variant ? variant.unmerge(this, a, w) : sub(w, this.deltaWeight(a)));
        }),
      );
    }
  }

  /** The base weight with the given adapters merged, as a new float32 tensor; the layer is untouched. */
  mergedWeight(adapters: readonly string[]): Tensor {
    return noGrad(() =>
      tidy(() => {
        let w = cast(this.weight, 'float32');
        for (const a of adapters) {
          if (!this.adapterNames().includes(a)) continue;
          const variant = this.variants.get(a);
          w = variant ? variant.merge(this, a, w) : add(w, this.deltaWeight(a));
          if (variant) this.cache.get(`${a}-weight_norm`)?.dispose();
          this.cache.delete(`${a}-weight_norm`);
        }
        return w;
      }),
    );
  }

  override dispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
    super.dispose();
  }
}

/** LoRA on a Linear: y = base(x) + B·A·dropout(x) · scaling for each active adapter. */
export class LoraLinear extends LoraLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(base: Linear) {
    super(base);
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  override get baseLayer(): Linear {
    return this.getSubmodule('base_layer') as Linear;
  }

  get bias(): Tensor | null {
    return this.baseLayer.bias;
  }

  adapterNames(): string[] {
    return this.lora_A.keys();
  }

  updateLayer(adapter: string, opts: UpdateLayerOptions): void {
    if (this.adapterNames().includes(adapter)) this.deleteAdapter(adapter);
    this.setScaling(adapter, opts);
    const backend = this.weight.backend;
    const { r, generator } = opts;
    const init = opts.initLoraWeights;
    // nn.Linear's default init is Kaiming-uniform with a = √5, i.e. U(±1/√in): PEFT's A for init true.
    const a = new Linear(this.inFeatures, r, { backend, bias: false, generator, init: init === 'gaussian' ? 'zeros' : 'default' });
    if (init === 'gaussian') {
      const old = a.weight;
      a.registerParameter('weight', normalParam([r, this.inFeatures], 1 / r, { backend, generator }));
      old.dispose();
    }
    const b = new Linear(r, this.outFeatures, { backend, bias: false, generator, init: init === false ? 'default' : 'zeros' });
    this.lora_A.set(adapter, a);
    this.lora_B.set(adapter, b);
    if (opts.variant) {
      this.variants.set(adapter, opts.variant);
      opts.variant.init(this, adapter);
    }
  }

  /** The adapter's A and B weights. */
  factors(adapter: string): { a: Tensor; b: Tensor } {
    const a = this.lora_A.get(adapter);
    const b = this.lora_B.get(adapter);
    if (!a || !b) throw new Error(`LoRA: layer has no adapter "${adapter}" (it has ${this.adapterNames().join(', ') || 'none'})`);
    return { a: a.weight, b: b.weight };
  }

  deltaWeight(adapter: string): Tensor {
    const { a, b } = this.factors(adapter);
    const ba = matmul(b, a);
    const d = scale(ba, this.scaling.get(adapter)!);
    ba.dispose();
    return d;
  }

  forward(x: Tensor): Tensor {
    const base = this.baseLayer;
    if (this.disabled) {
      if (this.merged) this.unmerge();
      return base.forward(x);
    }
    if (this.merged) return base.forward(x);
    const fused = this.fusedForward(x);
    if (fused) return fused;
    return tidy(() => {
      let result = base.forward(x);
      const dtype = result.dtype;
      for (const name of this.activeAdapters) {
        const a = this.lora_A.get(name);
        if (!a) continue;
        const variant = this.variants.get(name);
        if (variant) {
          result = variant.forward(this, name, x, result);
          continue;
        }
        const dropped = this.lora_dropout.get(name)!.forward(x);
        // The scaling is applied to x·Aᵀ [tokens, r], not to the product [tokens, out] (PEFT's
        // order): the same value up to float32 rounding, without a pass over the wide tensor in
        // forward and in backward.
        const h = linear(scale(linear(dropped, a.weight), this.scaling.get(name)!), this.lora_B.get(name)!.weight);
        // Summed in float32, rounded once to the base output's dtype (PEFT: the float32 sum, then
        // .to(result dtype)), with no float32 [tokens, out] tensor in between.
        result = add(result, h, { dtype });
      }
      return result.dtype === dtype ? result : cast(result, dtype);
    });
  }

  /**
   * base(x) + Σ B·(A·dropout(x)·scaling) as one `linearSum` (each product accumulates into the
   * output, the bias broadcast into it first), when the base is a plain Linear, no active adapter
   * has a variant and everything shares one dtype; null otherwise (then `forward` sums tensors).
   */
  private fusedForward(x: Tensor): Tensor | null {
    const base = this.baseLayer;
    const dtype = x.dtype;
    if (base.constructor !== Linear || x.shape[x.rank - 1] !== this.inFeatures || base.weight.dtype !== dtype) return null;
    if (base.bias && base.bias.dtype !== dtype) return null;
    const active = this.activeAdapters.filter((name) => this.lora_A.get(name));
    for (const name of active) {
      if (this.variants.get(name)) return null;
      if (this.lora_A.get(name)!.weight.dtype !== dtype || this.lora_B.get(name)!.weight.dtype !== dtype) return null;
    }
    return tidy(() => {
      const terms: [Tensor, Tensor][] = [[x, base.weight]];
      for (const name of active) {
        const dropped = this.lora_dropout.get(name)!.forward(x);
        // Scaled on x·Aᵀ [tokens, r] as in `forward`.
        terms.push([scale(linear(dropped, this.lora_A.get(name)!.weight), this.scaling.get(name)!), this.lora_B.get(name)!.weight]);
      }
      return linearSum(terms, base.bias);
    });
  }
}

/**
 * LoRA on an Embedding with PEFT's layout: A is [r, numEmbeddings], B is [embeddingDim, r], and
 * y = base(ids) + embedding(ids, Aᵀ) · Bᵀ · scaling (no dropout: the input is token ids).
 */
export class LoraEmbedding extends LoraLayer {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  constructor(base: Embedding) {
    super(base);
    this.numEmbeddings = base.numEmbeddings;
    this.embeddingDim = base.embeddingDim;
  }

  override get baseLayer(): Embedding {
    return this.getSubmodule('base_layer') as Embedding;
  }

  adapterNames(): string[] {
    return this.lora_embedding_A.keys();
  }

  updateLayer(adapter: string, opts: UpdateLayerOptions): void {
    if (this.adapterNames().includes(adapter)) this.deleteAdapter(adapter);
    this.setScaling(adapter, opts);
    const backend = this.weight.backend;
    const { r, generator } = opts;
    // PEFT: both start N(0, 1); a LoRA init then zeroes A (B stays normal, as nn.Embedding's init).
    const a = normalParam([r, this.numEmbeddings], 1, { backend, generator });
    const b = normalParam([this.embeddingDim, r], 1, { backend, generator });
    if (opts.initLoraWeights !== false && a.size > 0) backend.fill(a.buffer(), 0);
    this.lora_embedding_A.set(adapter, a);
    this.lora_embedding_B.set(adapter, b);
    if (opts.variant) {
      this.variants.set(adapter, opts.variant);
      opts.variant.init(this, adapter);
    }
  }

  factors(adapter: string): { a: Tensor; b: Tensor } {
    const a = this.lora_embedding_A.get(adapter);
    const b = this.lora_embedding_B.get(adapter);
    if (!a || !b) throw new Error(`LoRA: layer has no adapter "${adapter}" (it has ${this.adapterNames().join(', ') || 'none'})`);
    return { a, b };
  }

  /** (B·A)ᵀ · scaling: [numEmbeddings, embeddingDim] like the base weight. */
  deltaWeight(adapter: string): Tensor {
    const { a, b } = this.factors(adapter);
    const ab = matmul(a, b, { transA: true, transB: true });
    const d = scale(ab, this.scaling.get(adapter)!);
    ab.dispose();
    return d;
  }

  /** embedding(ids, Aᵀ) · Bᵀ, unscaled: [..., embeddingDim]. */
  loraOutput(adapter: string, ids: Tensor): Tensor {
    const { a, b } = this.factors(adapter);
    return matmul(embedding(transpose(a), ids), b, { transB: true });
  }

  forward(ids: Tensor): Tensor {
    const base = this.baseLayer;
    if (this.disabled) {
      if (this.merged) this.unmerge();
      return base.forward(ids);
    }
    if (this.merged) return base.forward(ids);
    return tidy(() => {
      let result = base.forward(ids);
      const dtype = result.dtype;
      for (const name of this.activeAdapters) {
        if (!this.lora_embedding_A.has(name)) continue;
        const variant = this.variants.get(name);
        if (variant) {
          result = variant.forward(this, name, ids, result);
          continue;
        }
        result = add(result, scale(this.loraOutput(name, ids), this.scaling.get(name)!));
      }
      return result.dtype === dtype ? result : cast(result, dtype);
    });
  }
}
