import { noGrad } from '../autograd/tape.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/rms-norm.js';
import { clone } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';
import { ModuleDict } from './containers.js';

/** A module that knows how to copy itself (custom heads can implement this to be used in modulesToSave). */
export interface Cloneable {
  clone(): Module;
}

function copyParams(from: Module, to: Module): void {
  const own = new Map(from.ownParameters());
  for (const [name, t] of to.ownParameters()) {
    const src = own.get(name);
    if (!src) continue;
    const c = noGrad(() => clone(src));
    t.dispose();
    to.registerParameter(name, c);
  }
}

/** A deep copy of a Linear, Embedding, LayerNorm or RMSNorm (or of a module with a `clone()` method). */
export function cloneModule(m: Module): Module {
  if (typeof (m as unknown as Cloneable).clone === 'function') return (m as unknown as Cloneable).clone();
  let copy: Module;
  if (m instanceof Linear) {
    copy = new Linear(m.inFeatures, m.outFeatures, {
      backend: m.weight.backend,
      dtype: m.weight.dtype,
      bias: m.bias !== null,
      init: 'zeros',
    });
  } else if (m instanceof Embedding) {
    copy = new Embedding(m.numEmbeddings, m.embeddingDim, { backend: m.weight.backend, dtype: m.weight.dtype, init: 'zeros' });
  } else if (m instanceof LayerNorm) {
    const params = new Map(m.ownParameters());
    const w = params.get('weight');
    copy = new LayerNorm(m.dim, {
      backend: (w ?? params.get('bias'))!.backend,
      dtype: w?.dtype,
      eps: m.eps,
      elementwiseAffine: w !== undefined,
      bias: params.has('bias'),
    });
  } else if (m instanceof RMSNorm) {
    const w = m.getParameter('weight');
    copy = new RMSNorm(m.dim, { backend: w.backend, dtype: w.dtype, eps: m.eps });
  } else {
    throw new Error(
      `modulesToSave: cannot copy a ${m.constructor.name}: supported are Linear, Embedding, LayerNorm, RMSNorm, or a module with a clone() method`,
    );
  }
  copyParams(m, copy);
  copy.training = m.training;
  return copy;
}

/**
 * PEFT's ModulesToSaveWrapper: keeps the original module frozen as `original_module` and a trainable
 * copy per adapter under `modules_to_save.<adapter>`; forward runs the active adapter's copy.
 */
export class ModulesToSaveWrapper extends Module {
  readonly modules_to_save: ModuleDict;
  activeAdapter: string | null = null;
  disabled = false;

  constructor(original: Module) {
    super();
    if (original instanceof ModulesToSaveWrapper) throw new Error('modulesToSave: module is already wrapped');
    this.registerModule('original_module', original);
    this.modules_to_save = this.registerModule('modules_to_save', new ModuleDict());
  }

  get originalModule(): Module {
    return this.getSubmodule('original_module');
  }

  /** Adds a trainable copy for `adapter`. */
  update(adapter: string): void {
    if (!this.modules_to_save.has(adapter)) this.modules_to_save.set(adapter, cloneModule(this.originalModule));
    for (const t of this.originalModule.parameters()) t.requiresGrad = false;
  }

  adapterNames(): string[] {
    return this.modules_to_save.keys();
  }

  /** The module forward runs now: the active adapter's copy, or the original. */
  get current(): Module {
    if (this.disabled || this.activeAdapter === null) return this.originalModule;
    return this.modules_to_save.get(this.activeAdapter) ?? this.originalModule;
  }

  setAdapter(active: readonly string[], frozen = false): void {
    const mine = active.filter((a) => this.modules_to_save.has(a));
    if (mine.length > 1)
      throw new Error(`modulesToSave: only one adapter can be active at a time for a saved module, got ${mine.join(', ')}`);
    this.activeAdapter = mine[0] ?? null;
    for (const a of this.adapterNames()) {
      const trainable = a === this.activeAdapter && !frozen;
      for (const t of this.modules_to_save.get(a)!.parameters()) t.requiresGrad = trainable;
    }
  }

  deleteAdapter(adapter: string): void {
    this.modules_to_save.delete(adapter)?.dispose();
    if (this.activeAdapter === adapter) this.activeAdapter = null;
  }

  forward(...args: unknown[]): unknown {
    const m = this.current as unknown as { forward(...a: unknown[]): unknown };
    return m.forward(...args);
  }

  /** Attributes models read from the wrapped layer (a Linear head's weight, features). */
  get weight(): Tensor {
    return (this.current as Linear).weight;
  }
}
