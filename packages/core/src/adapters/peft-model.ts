import { Module } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { type LoraConfig, type LoraConfigInput, loraConfig } from './lora/config.js';
import type { LoraLayer } from './lora/layer.js';
import { type AdapterOptions, LoraModel } from './lora/model.js';
import type { ModulesToSaveWrapper } from './modules-to-save.js';

export interface ParameterCounts {
  trainable: number;
  /** Every parameter of the adapted model, adapters included (PEFT's "all params"). */
  total: number;
  /** PEFT's line: `trainable params: 1,234 || all params: 5,678 || trainable%: 21.7331`. */
  line: string;
}

function withCommas(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** PEFT's print_trainable_parameters line. */
export function trainableLine(trainable: number, total: number): string {
  const pct = total === 0 ? 'nan' : ((100 * trainable) / total).toFixed(4);
  return `trainable params: ${withCommas(trainable)} || all params: ${withCommas(total)} || trainable%: ${pct}`;
}

/**
 * The wrapped model's `forward` with its own signature and result (overloads included), e.g.
 * `(input, opts?) => CausalLMOutput` for a causal LM and `(batch) => { logits, loss? }` for a
 * head; untyped when the model declares no `forward`.
 */
export type PeftForward<M> = M extends { forward: infer F extends (...args: never[]) => unknown } ? F : (...args: unknown[]) => unknown;

export interface GetPeftModelOptions extends AdapterOptions {
  /** Name of the first adapter; default "default" (PEFT's). */
  adapterName?: string;
}

/**
 * A model with LoRA adapters (PEFT's PeftModel). The adapters live inside the wrapped model, whose
 * layers were replaced in place; this wrapper registers it as `base_model.model`, so
 * `namedParameters()` gives PEFT's in-memory names. `forward` is the wrapped model's, with its types.
 */
export class PeftModel<M extends Module = Module> extends Module {
  readonly #tuner: LoraModel;

  /**
   * The wrapped model's forward (PEFT's `model(**inputs)`), typed as the model's own: a
   * `PeftModel<CausalLM>` returns `{ logits }`, a `PeftModel<SequenceClassifier>` `{ logits, loss? }`.
   */
  readonly forward: PeftForward<M>;

  constructor(model: M) {
    super();
    if (model instanceof PeftModel)
      throw new Error('getPeftModel: the model already is a PeftModel: use addAdapter to add another adapter');
    this.#tuner = this.registerModule('base_model', new LoraModel(model));
    this.training = model.training;
    this.forward = ((...args: unknown[]) => {
      const m = this.model as unknown as { forward?: (...a: unknown[]) => unknown };
      if (typeof m.forward !== 'function') throw new Error(`PeftModel: the wrapped ${this.model.constructor.name} has no forward method`);
      return m.forward(...args);
    }) as PeftForward<M>;
  }

  /** The adapted model itself (PEFT's get_base_model()): call its own methods for anything beyond forward. */
  get model(): M {
    return this.#tuner.model as M;
  }

  /** @internal the LoRA tuner (PEFT's base_model). */
  get tuner(): LoraModel {
    return this.#tuner;
  }

  /** Configs by adapter name, with targetModules resolved as PEFT saves them. */
  get peftConfig(): ReadonlyMap<string, LoraConfig> {
    return this.#tuner.peftConfig;
  }

  /** The active adapter (the first, when several are active). */
  get activeAdapter(): string {
    const a = this.#tuner.activeAdapters[0];
    if (a === undefined) throw new Error('PeftModel: no adapter is active (all were deleted or unloaded)');
    return a;
  }

  get activeAdapters(): readonly string[] {
    return this.#tuner.activeAdapters;
  }

  /** Module paths (in the wrapped model) that adapter `name` adapts. */
  targetedModules(name = this.activeAdapter): readonly string[] {
    return this.#tuner.targetedModules.get(name) ?? [];
  }

  /** Adds another adapter; it stays inactive until `setAdapter(name)`. Returns its resolved config. */
  addAdapter(name: string, config: LoraConfigInput | LoraConfig, opts: AdapterOptions = {}): LoraConfig {
    return this.#tuner.injectAdapter(name, asConfig(config), opts);
  }

  /** Makes `name` the active adapter (trainable unless it was loaded for inference); others are frozen. */
  setAdapter(name: string | readonly string[]): void {
    this.#tuner.setAdapter(name);
  }

  /** Removes an adapter and frees its tensors; when it was active, the first remaining one becomes active. */
  deleteAdapter(name: string): void {
    this.#tuner.deleteAdapter(name);
  }

  /** Runs `fn` with every adapter switched off: the base model's outputs (PEFT's `with model.disable_adapter():`). Async functions are awaited before switching back on. */
  withAdaptersDisabled<T>(fn: () => T): T {
    return this.#tuner.withAdaptersDisabled(fn);
  }

  /** Merges the active adapters (or `adapters`) into the base weights in place; forward then costs what the base model's does. */
  merge(adapters?: readonly string[]): void {
    this.#tuner.merge(adapters);
  }

  /** Takes merged adapters out of the base weights again. */
  unmerge(): void {
    this.#tuner.unmerge();
  }

  /** Merges the active adapters and returns the plain model, every LoRA layer replaced by its (merged) base layer. This PeftModel is empty afterwards. */
  mergeAndUnload(adapters?: readonly string[]): M {
    return this.#tuner.unload(true, adapters) as M;
  }

  /** Returns the plain model without merging (the adapters are dropped). */
  unload(): M {
    return this.#tuner.unload(false) as M;
  }

  /** Trainable and total parameter counts, as PEFT's get_nb_trainable_parameters (shared tensors once). */
  parameterCounts(): ParameterCounts {
    let trainable = 0;
    let total = 0;
    for (const t of this.parameters()) {
      total += t.size;
      if (t.requiresGrad) trainable += t.size;
    }
    return { trainable, total, line: trainableLine(trainable, total) };
  }

  /** Prints PEFT's line (`trainable params: … || all params: … || trainable%: …`) and returns it. */
  printTrainableParameters(log: (line: string) => void = console.log): string {
    const { line } = this.parameterCounts();
    log(line);
    return line;
  }

  /** LoRA layers by path in the wrapped model. */
  loraLayers(): [string, LoraLayer][] {
    return this.#tuner.loraLayers();
  }

  /** Modules-to-save wrappers by path in the wrapped model. */
  savedModules(): [string, ModulesToSaveWrapper][] {
    return this.#tuner.wrappers();
  }

  /**
   * The adapter's tensors by PEFT in-memory name (relative to this PeftModel): LoRA A/B (and DoRA
   * magnitudes) and the modules-to-save copies of adapter `name`. To train, hand the PeftModel
   * itself to the optimizer (`new AdamW(peft, { lr })` of `@peft/trainer` takes every tensor that
   * requires grad, by name).
   */
  adapterParameters(name = this.activeAdapter): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.namedParameters()) if (n.includes(`.${name}.`) || n.endsWith(`.${name}`)) out.set(n, t);
    return out;
  }
}

function asConfig(c: LoraConfigInput | LoraConfig): LoraConfig {
  return 'peftType' in c && c.peftType === 'LORA' && 'fanInFanOut' in c
    ? loraConfig(fromResolved(c as LoraConfig))
    : loraConfig(c as LoraConfigInput);
}

function fromResolved(c: LoraConfig): LoraConfigInput {
  const { peftType: _p, ...rest } = c;
  return rest;
}

/**
 * Wraps `model` with a LoRA adapter (PEFT's get_peft_model): the target layers are replaced in
 * place, every base parameter is frozen, the adapter (and modulesToSave, and biases as `bias` says)
 * train. The model type for default targets comes from `opts.modelType`, else `model.config.modelType`
 * (or `config.model_type`).
 */
export function getPeftModel<M extends Module>(
  model: M,
  config: LoraConfigInput | LoraConfig = {},
  opts: GetPeftModelOptions = {},
): PeftModel<M> {
  const peft = new PeftModel(model);
  try {
    peft.tuner.injectAdapter(opts.adapterName ?? 'default', asConfig(config), opts);
  } catch (error) {
    // Leave the caller's model as it was: nothing was replaced unless a target was wrapped.
    if (peft.loraLayers().length > 0 || peft.savedModules().length > 0) peft.tuner.unload(false);
    throw error;
  }
  return peft;
}
