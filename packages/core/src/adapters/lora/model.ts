import { Embedding } from '../../nn/embedding.js';
import { Linear } from '../../nn/linear.js';
import { Module } from '../../nn/module.js';
import type { Generator } from '../../random/generator.js';
import { DoraEmbeddingVariant, DoraLinearVariant } from '../dora/layer.js';
import { ModulesToSaveWrapper } from '../modules-to-save.js';
import { CLASSIFIER_HEAD_NAMES, type ModuleEntry, planTargets, resolveTargetModules } from '../targets.js';
import { cloneConfig, type LoraConfig } from './config.js';
import { LoraEmbedding, LoraLayer, LoraLinear } from './layer.js';

/** How a module of the tree counts for target matching. */
export function moduleKind(m: Module): ModuleEntry['kind'] {
  if (m instanceof Linear || m instanceof LoraLinear) return 'linear';
  if (m instanceof Embedding || m instanceof LoraEmbedding) return 'embedding';
  return 'other';
}

/**
 * The modules of a tree as target matching sees them, PEFT-style: an adapted layer counts as its
 * base kind and its insides (base_layer, lora_A.<name>, …) and a modules_to_save wrapper's insides
 * are not candidates.
 */
export function describeTree(model: Module): ModuleEntry[] {
  const out: ModuleEntry[] = [];
  const skip: string[] = [];
  for (const [name, m] of model.namedModules()) {
    if (skip.some((p) => name.startsWith(p))) continue;
    out.push({ name, kind: moduleKind(m), className: m.constructor.name });
    if (m instanceof LoraLayer || m instanceof ModulesToSaveWrapper) skip.push(`${name}.`);
  }
  return out;
}

export interface AdapterOptions {
  /** model_type for PEFT's default targets; default `model.config.modelType` (or `model_type`). */
  modelType?: string | null;
  /** Path of the output head that "all-linear" leaves out; default the model's `headName`, or a top-level lm_head / embed_out. */
  outputEmbeddings?: string | null;
  /** Draws the initial adapter weights and the LoRA dropout masks; default the global generator. */
  generator?: Generator;
}

/**
 * The model type a model declares: `config.modelType`, `config.model_type` or `modelType`; for a
 * task head that declares none, that of the model it wraps (`head.model`, as `@peft/heads` keeps it).
 */
export function modelTypeOf(model: Module): string | null {
  let at: unknown = model;
  for (let depth = 0; depth < 4 && at instanceof Module; depth++) {
    const m = at as unknown as { config?: { modelType?: unknown; model_type?: unknown }; modelType?: unknown; model?: unknown };
    const t = m.config?.modelType ?? m.config?.model_type ?? m.modelType;
    if (typeof t === 'string') return t;
    at = m.model;
  }
  return null;
}

/** The output head's path: the model's `headName`, else a top-level `lm_head` or `embed_out`. */
export function outputEmbeddingsOf(model: Module): string | null {
  const head = (model as unknown as { headName?: unknown }).headName;
  if (typeof head === 'string') return head;
  for (const [name, m] of model.children()) if ((name === 'lm_head' || name === 'embed_out') && moduleKind(m) === 'linear') return name;
  return null;
}

/** The input embedding's path: the first Embedding named embed_tokens, embed_in, wte or word_embeddings. */
export function inputEmbeddingsOf(model: Module): string | null {
  for (const e of describeTree(model)) {
    if (e.kind === 'embedding' && /(^|\.)(embed_tokens|embed_in|wte|word_embeddings)$/.test(e.name)) return e.name;
  }
  return null;
}

/**
 * PEFT's LoraModel: injects adapters into `model` in place (registered under `model`, so that names
 * from a PeftModel read `base_model.model.<path>`), and switches, merges and removes them.
 */
export class LoraModel extends Module {
  readonly peftConfig = new Map<string, LoraConfig>();
  activeAdapters: string[] = [];
  /** Module paths each adapter was injected into. */
  readonly targetedModules = new Map<string, string[]>();

  constructor(model: Module) {
    super();
    this.registerModule('model', model);
  }

  get model(): Module {
    return this.getSubmodule('model');
  }

  loraLayers(): [string, LoraLayer][] {
    return [...this.model.namedModules()].filter((e): e is [string, LoraLayer] => e[1] instanceof LoraLayer);
  }

  wrappers(): [string, ModulesToSaveWrapper][] {
    return [...this.model.namedModules()].filter((e): e is [string, ModulesToSaveWrapper] => e[1] instanceof ModulesToSaveWrapper);
  }

  /**
   * Adds adapter `name`: resolves targets, wraps or updates each target layer, wraps modulesToSave.
   * The first adapter becomes active; later ones stay inactive (and frozen) until `setAdapter`.
   */
  injectAdapter(name: string, input: LoraConfig, opts: AdapterOptions = {}): LoraConfig {
    if (!name || name.includes('.')) throw new Error(`LoRA: adapter name "${name}" must be non-empty and contain no "."`);
    if (this.peftConfig.has(name)) throw new Error(`LoRA: an adapter named "${name}" already exists; delete it first or pick another name`);
    for (const other of this.peftConfig.values()) {
      if (other.bias !== 'none' && input.bias !== 'none') {
        throw new Error(`LoRA: only one adapter may train biases (bias "${other.bias}" is already set); use bias "none" for "${name}"`);
      }
    }
    const config = cloneConfig(input);
    if (config.taskType === 'SEQ_CLS' || config.taskType === 'TOKEN_CLS') {
      // PeftModelForSequenceClassification / ForTokenClassification add the usual head names.
      config.modulesToSave = [...(config.modulesToSave ?? []), ...CLASSIFIER_HEAD_NAMES];
    }
    const model = this.model;
    const entries = describeTree(model);
    resolveTargetModules(config, entries, {
      modelType: opts.modelType !== undefined ? opts.modelType : modelTypeOf(model),
      outputEmbeddings: opts.outputEmbeddings !== undefined ? opts.outputEmbeddings : outputEmbeddingsOf(model),
    });
    const plan = planTargets(config, entries);
    const first = this.peftConfig.size === 0;
    const variantFor = (layer: LoraLayer) =>
      !config.useDora ? null : layer instanceof LoraLinear ? new DoraLinearVariant() : new DoraEmbeddingVariant();
    for (const t of plan.targets) {
      let layer = model.getSubmodule(t.name);
      if (!(layer instanceof LoraLayer)) {
        if (layer instanceof Linear) layer = new LoraLinear(layer);
        else if (layer instanceof Embedding) layer = new LoraEmbedding(layer);
        else
          throw new Error(
            `LoRA: target module "${t.name}" is a ${layer.constructor.name}: only Linear and Embedding modules can be adapted`,
          );
        (layer as LoraLayer).activeAdapters = [...this.activeAdapters];
        layer.training = model.training;
        model.setSubmodule(t.name, layer);
      }
      const lora = layer as LoraLayer;
      lora.updateLayer(name, {
        r: t.r,
        loraAlpha: t.alpha,
        loraDropout: config.loraDropout,
        initLoraWeights: config.initLoraWeights,
        useRslora: config.useRslora,
        variant: variantFor(lora),
        generator: opts.generator,
      });
      for (const [, m] of lora.namedModules()) m.training = model.training;
    }
    this.targetedModules.set(
      name,
      plan.targets.map((t) => t.name),
    );
    this.peftConfig.set(name, config);
    if (first) this.activeAdapters = [name];
    // modules_to_save: PEFT matches every module path that ends with a listed name.
    if (config.modulesToSave) {
      const keys = entries.map((e) => e.name).filter((k) => k !== '');
      for (const key of keys) {
        if (!config.modulesToSave.some((m) => key.endsWith(m))) continue;
        let m: Module;
        try {
          m = model.getSubmodule(key);
        } catch {
          continue;
        }
        if (m instanceof LoraLayer) continue;
        const wrapper = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m);
        if (wrapper !== m) {
          wrapper.training = model.training;
          model.setSubmodule(key, wrapper);
        }
        wrapper.update(name);
        for (const [, sub] of wrapper.namedModules()) sub.training = model.training;
      }
    }
    this.markTrainable();
    return config;
  }

  /** PEFT's housekeeping after injecting: only active adapters (and their biases, modules to save) train. */
  markTrainable(): void {
    for (const [n, t] of this.model.namedParameters()) if (!n.includes('lora_')) t.requiresGrad = false;
    const active = this.activeAdapters;
    const frozen = active.every((a) => this.peftConfig.get(a)?.inferenceMode);
    for (const [, layer] of this.loraLayers()) layer.setAdapter(active, frozen);
    for (const a of active) {
      const bias = this.peftConfig.get(a)?.bias ?? 'none';
      if (bias === 'all') {
        for (const [n, t] of this.model.namedParameters()) if (n.includes('bias')) t.requiresGrad = !frozen;
      } else if (bias === 'lora_only') {
        for (const [, layer] of this.loraLayers()) {
          const b = layer instanceof LoraLinear ? layer.bias : null;
          if (b) b.requiresGrad = !frozen;
        }
      }
    }
    for (const [, w] of this.wrappers()) w.setAdapter(active, frozen);
  }

  setAdapter(names: string | readonly string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const n of list) {
      if (!this.peftConfig.has(n))
        throw new Error(`LoRA: no adapter "${n}"; adapters are ${[...this.peftConfig.keys()].join(', ') || 'none'}`);
    }
    for (const [, layer] of this.loraLayers()) {
      if (layer.merged) layer.unmerge();
    }
    this.activeAdapters = list;
    this.markTrainable();
  }

  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name))
      throw new Error(`LoRA: no adapter "${name}"; adapters are ${[...this.peftConfig.keys()].join(', ') || 'none'}`);
    for (const [, layer] of this.loraLayers()) {
      if (layer.mergedAdapters.includes(name)) layer.unmerge();
      layer.deleteAdapter(name);
    }
    for (const [, w] of this.wrappers()) w.deleteAdapter(name);
    this.peftConfig.delete(name);
    this.targetedModules.delete(name);
    const remaining = this.activeAdapters.filter((a) => a !== name);
    this.activeAdapters = remaining.length > 0 ? remaining : [...this.peftConfig.keys()].slice(0, 1);
    this.markTrainable();
  }

  /** Runs `fn` with every adapter switched off (merged ones are unmerged first, as in PEFT). */
  withAdaptersDisabled<T>(fn: () => T): T {
    const layers = this.loraLayers().map(([, l]) => l);
    const wrappers = this.wrappers().map(([, w]) => w);
    const restore = () => {
      for (const l of layers) l.disabled = false;
      for (const w of wrappers) w.disabled = false;
    };
    for (const l of layers) l.disabled = true;
    for (const w of wrappers) w.disabled = true;
    let result: T;
    try {
      result = fn();
    } catch (error) {
      restore();
      throw error;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  merge(adapters?: readonly string[]): void {
    for (const [, layer] of this.loraLayers()) layer.merge(adapters ?? this.activeAdapters);
  }

  unmerge(): void {
    for (const [, layer] of this.loraLayers()) layer.unmerge();
  }

  /** Replaces every adapted layer by its base layer (merged first when `merge`), and each saved module by its active copy. */
  unload(merge: boolean, adapters?: readonly string[]): Module {
    const model = this.model;
    for (const [path, layer] of this.loraLayers()) {
      if (merge) layer.merge(adapters ?? this.activeAdapters);
      const base = layer.baseLayer;
      model.setSubmodule(path, base);
      layer.registerModule('base_layer', null);
      layer.dispose();
    }
    for (const [path, w] of this.wrappers()) {
      const keep = w.current;
      model.setSubmodule(path, keep);
      if (keep === w.originalModule) w.registerModule('original_module', null);
      else w.modules_to_save.delete(w.activeAdapter!);
      w.dispose();
    }
    this.peftConfig.clear();
    this.activeAdapters = [];
    return model;
  }
}
