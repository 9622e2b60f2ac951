import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { cloneConfig, type LoraConfig, type LoraConfigInput, loraConfig } from './lora/config.js';
import { LoraLayer } from './lora/layer.js';
import { describeTree, modelTypeOf, moduleKind, outputEmbeddingsOf } from './lora/model.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { trainableLine } from './peft-model.js';
import { CLASSIFIER_HEAD_NAMES, type ModuleEntry, planTargets, resolveTargetModules } from './targets.js';

/**
 * One module of an architecture, described without weights: enough to plan LoRA and count its
 * parameters. List every module (containers too, as `kind: 'other'` with no parameters of their
 * own), in tree order, as `named_modules()` would.
 */
export interface ModuleShape {
  /** Dotted path, e.g. "model.layers.0.self_attn.q_proj". */
  name: string;
  kind: 'linear' | 'embedding' | 'other';
  /** Linear: in_features; Embedding: num_embeddings. */
  in?: number;
  /** Linear: out_features; Embedding: embedding_dim. */
  out?: number;
  /** Linear: has a bias vector. */
  bias?: boolean;
  /** Other modules: parameters they hold themselves (a norm's weight and bias). */
  params?: number;
  /** Other modules: how many of `params` are biases (bias "all" trains them). */
  biasParams?: number;
  /** The weight is shared with a module listed earlier (tied embeddings): counted once. */
  tied?: boolean;
  className?: string;
}

export interface LoraCountOptions {
  /** model_type for PEFT's default targets (when the config has none). */
  modelType?: string | null;
  /** Path of the output head, which "all-linear" leaves out. */
  outputEmbeddings?: string | null;
}

export interface LoraCounts {
  /** Parameters that train (PEFT's "trainable params"). */
  trainable: number;
  /** Every parameter of the adapted model (PEFT's "all params"): base + adapters + modules-to-save copies. */
  total: number;
  /** Parameters of the model without adapters. */
  base: number;
  /** LoRA (and DoRA magnitude) parameters alone. */
  adapter: number;
  /** PEFT's print_trainable_parameters line. */
  line: string;
  /** Each adapted module with its rank and LoRA parameter count. */
  targets: { name: string; kind: 'linear' | 'embedding'; r: number; params: number }[];
  /** The config as it would be saved (targetModules resolved). */
  config: LoraConfig;
}

function ownParams(s: ModuleShape): { params: number; bias: number } {
  if (s.kind === 'linear') {
    const bias = s.bias ? s.out! : 0;
    return { params: (s.tied ? 0 : s.in! * s.out!) + bias, bias };
  }
  if (s.kind === 'embedding') return { params: s.tied ? 0 : s.in! * s.out!, bias: 0 };
  return { params: s.params ?? 0, bias: s.biasParams ?? 0 };
}

function checkShapes(shapes: readonly ModuleShape[]): void {
  for (const s of shapes) {
    if (s.kind !== 'other' && !(Number.isInteger(s.in) && s.in! > 0 && Number.isInteger(s.out) && s.out! > 0)) {
      throw new Error(`countLoraParameters: module "${s.name}" is a ${s.kind} without positive integer in/out (got ${s.in}, ${s.out})`);
    }
  }
}

/**
 * Trainable and total parameter counts of a LoRA config on an architecture, from its module shapes
 * alone (no weights): plan a 7B run before loading anything. Targets are matched exactly as
 * `getPeftModel` matches them.
 */
export function countLoraParameters(
  shapes: readonly ModuleShape[],
  input: LoraConfigInput | LoraConfig,
  opts: LoraCountOptions = {},
): LoraCounts {
  checkShapes(shapes);
  const config = 'fanInFanOut' in input && 'peftType' in input ? cloneConfig(input as LoraConfig) : loraConfig(input as LoraConfigInput);
  if (config.taskType === 'SEQ_CLS' || config.taskType === 'TOKEN_CLS')
    config.modulesToSave = [...(config.modulesToSave ?? []), ...CLASSIFIER_HEAD_NAMES];
  const entries: ModuleEntry[] = shapes.map((s) => ({ name: s.name, kind: s.kind, className: s.className }));
  if (!entries.some((e) => e.name === '')) entries.unshift({ name: '', kind: 'other' });
  resolveTargetModules(config, entries, { modelType: opts.modelType ?? null, outputEmbeddings: opts.outputEmbeddings ?? null });
  const plan = planTargets(config, entries);
  const byName = new Map(shapes.map((s) => [s.name, s]));
  let base = 0;
  let biasAll = 0;
  for (const s of shapes) {
    const own = ownParams(s);
    base += own.params;
    biasAll += own.bias;
  }
  let adapter = 0;
  let loraOnlyBias = 0;
  const targets = plan.targets.map((t) => {
    const s = byName.get(t.name)!;
    let params = t.r * (s.in! + s.out!);
    // DoRA's magnitude: one per output row (Linear) or per embedding feature (Embedding).
    if (config.useDora) params += s.out!;
    adapter += params;
    if (s.kind === 'linear' && s.bias) loraOnlyBias += s.out!;
    return { name: t.name, kind: t.kind, r: t.r, params };
  });
  // modules_to_save: every module whose path ends with a listed name gets a full trainable copy.
  let copies = 0;
  let copiedBias = 0;
  const wrapped: string[] = [];
  if (config.modulesToSave) {
    for (const s of shapes) {
      if (s.name === '' || !config.modulesToSave.some((m) => s.name.endsWith(m))) continue;
      if (plan.targets.some((t) => t.name === s.name) || wrapped.some((w) => s.name.startsWith(`${w}.`))) continue;
      wrapped.push(s.name);
      for (const sub of shapes) {
        if (sub.name === s.name || sub.name.startsWith(`${s.name}.`)) {
          const own = ownParams({ ...sub, tied: false });
          copies += own.params;
          copiedBias += ownParams(sub).bias;
        }
      }
    }
  }
  let trainable = adapter + copies;
  if (config.bias === 'all') trainable += biasAll - copiedBias;
  else if (config.bias === 'lora_only') trainable += loraOnlyBias;
  if (config.inferenceMode) trainable = 0;
  const total = base + adapter + copies;
  return { trainable, total, base, adapter, line: trainableLine(trainable, total), targets, config };
}

/** The shapes of a real module tree (what `countLoraParameters` reads), shared weights marked tied. */
export function describeModel(model: Module): ModuleShape[] {
  const seen = new Set<Tensor>();
  const out: ModuleShape[] = [];
  const entries = new Map(describeTree(model).map((e) => [e.name, e]));
  for (const [name, m] of model.namedModules()) {
    if (!entries.has(name)) continue;
    if (m instanceof LoraLayer || m instanceof ModulesToSaveWrapper) {
      throw new Error(`describeModel: "${name}" already carries an adapter: describe the model before getPeftModel`);
    }
    const own = [...m.ownParameters()];
    const fresh = own.filter(([, t]) => !seen.has(t));
    for (const [, t] of own) seen.add(t);
    const kind = moduleKind(m);
    if (m instanceof Linear) {
      out.push({
        name,
        kind,
        in: m.inFeatures,
        out: m.outFeatures,
        bias: m.bias !== null,
        tied: !fresh.some(([n]) => n === 'weight'),
        className: 'Linear',
      });
    } else if (m instanceof Embedding) {
      out.push({ name, kind, in: m.numEmbeddings, out: m.embeddingDim, tied: fresh.length === 0, className: 'Embedding' });
    } else {
      out.push({
        name,
        kind: 'other',
        params: fresh.reduce((n, [, t]) => n + t.size, 0),
        biasParams: fresh.filter(([n]) => n === 'bias').reduce((n, [, t]) => n + t.size, 0),
        className: m.constructor.name,
      });
    }
  }
  return out;
}

/** Counts for `config` on a real model without touching it. */
export function countLoraParametersOf(model: Module, config: LoraConfigInput | LoraConfig, opts: LoraCountOptions = {}): LoraCounts {
  return countLoraParameters(describeModel(model), config, {
    modelType: opts.modelType !== undefined ? opts.modelType : modelTypeOf(model),
    outputEmbeddings: opts.outputEmbeddings !== undefined ? opts.outputEmbeddings : outputEmbeddingsOf(model),
  });
}
