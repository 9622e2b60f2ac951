import { noGrad } from '../autograd/tape.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { cast } from '../ops/shape.js';
import type { Generator } from '../random/generator.js';
import type { SafetensorsFile } from '../safetensors/reader.js';
import { openSafetensors } from '../safetensors/reader.js';
import type { FileOpener } from '../safetensors/sharded-reader.js';
import { DEFAULT_MAX_SHARD_SIZE, planShards } from '../safetensors/shards.js';
import { type ByteSink, type NamedLazyTensorToWrite, writeSafetensorsTo } from '../safetensors/writer.js';
import type { Tensor } from '../tensor.js';
import { cloneConfig, fromPeftConfigDict, type LoraConfig, type TaskType, toPeftConfigJson } from './lora/config.js';
import { LoraLayer } from './lora/layer.js';
import { describeTree, inputEmbeddingsOf, modelTypeOf, outputEmbeddingsOf } from './lora/model.js';
import { getPeftModel, PeftModel } from './peft-model.js';
import { ALL_LINEAR, CLASSIFIER_HEAD_NAMES, EMBEDDING_LAYER_NAMES, fullMatch, planTargets, resolveTargetModules } from './targets.js';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** Where saving writes files: a directory on disk (`@peft/core/node`), memory (`memorySink`), a browser download. */
export interface FileSink {
  readonly name: string;
  writeFile(fileName: string, data: string | ((sink: ByteSink) => Promise<unknown>)): Promise<void>;
}

/** A sink that keeps files in memory (browsers, tests); `files` holds their bytes by name. */
export function memorySink(name = 'memory'): FileSink & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    name,
    files,
    async writeFile(fileName, data) {
      if (typeof data === 'string') {
        files.set(fileName, new TextEncoder().encode(data));
        return;
      }
      const chunks: Uint8Array[] = [];
      await data({
        async write(chunk) {
          chunks.push(chunk.slice());
        },
      });
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.byteLength;
      }
      files.set(fileName, out);
    },
  };
}

export interface AdapterStateOptions {
  /** Adapter to save; default the active one. */
  adapterName?: string;
  /**
   * Also save the base embedding layers (input and output embeddings). 'auto' (PEFT's default):
   * when embed_tokens or lm_head is among the LoRA targets, save the base weights of those of
   * them that carry LoRA, as PEFT does.
   */
  saveEmbeddingLayers?: boolean | 'auto';
}

const PREFIX = 'base_model.model.';

/** PEFT's remove_adapter_name: `…lora_A.default.weight` → `…lora_A.weight`, `…lora_embedding_A.default` → `…lora_embedding_A`. */
function removeAdapterName(key: string, adapter: string): string {
  if (!key.includes('.')) return key;
  if (key.endsWith(`.${adapter}`)) return key.slice(0, -(adapter.length + 1));
  const dot = key.lastIndexOf('.');
  let head = key.slice(0, dot);
  if (head.endsWith(`.${adapter}`)) head = head.slice(0, -(adapter.length + 1));
  return `${head}${key.slice(dot)}`;
}

function embeddingIsTargeted(config: LoraConfig, model: Module): boolean {
  const t = config.targetModules;
  if (typeof t === 'string') {
    if (t === ALL_LINEAR) return false;
    return [...model.namedModules()].some(
      ([k]) => EMBEDDING_LAYER_NAMES.some((e) => new RegExp(`^(?:.*\\.)?${e}$`).test(k)) && fullMatch(t, k),
    );
  }
  return !!t && EMBEDDING_LAYER_NAMES.some((e) => t.includes(e));
}

/**
 * The adapter's tensors under the keys PEFT writes to adapter_model.safetensors
 * (get_peft_model_state_dict): `base_model.model.<path>.lora_A.weight`, no adapter name,
 * `lora_magnitude_vector` for DoRA, `<path>.weight` for modules to save, biases as `bias` says.
 */
export function adapterStateDict(peft: PeftModel, opts: AdapterStateOptions = {}): Map<string, Tensor> {
  const adapter = opts.adapterName ?? peft.activeAdapter;
  const config = peft.peftConfig.get(adapter);
  if (!config) throw new Error(`adapterStateDict: no adapter "${adapter}"; adapters are ${[...peft.peftConfig.keys()].join(', ')}`);
  const state = new Map(peft.namedParameters());
  const picked = new Map<string, Tensor>();
  const loraBiases = new Set<string>();
  if (config.bias === 'lora_only') {
    // PEFT looks for `<path>.bias` next to the LoRA keys, which an adapted layer keeps as base_layer.bias;
    // we save that tensor under its real name so that the trained biases are not lost.
    for (const [path, layer] of peft.loraLayers())
      if (layer.adapterNames().includes(adapter)) loraBiases.add(`${PREFIX}${path}.base_layer.bias`);
  }
  for (const [k, t] of state) {
    const isLora = k.includes('lora_');
    const keepIt = isLora || (config.bias === 'all' && k.includes('bias')) || loraBiases.has(k);
    if (!keepIt) continue;
    if ((isLora && k.includes(adapter)) || k.includes('bias')) picked.set(k, t);
  }
  if (config.useDora) {
    for (const [k, t] of [...picked]) {
      if (k.endsWith(`lora_magnitude_vector.${adapter}.weight`)) {
        picked.delete(k);
        picked.set(k.slice(0, -'.weight'.length), t);
      }
    }
  }
  for (const [path, w] of peft.savedModules()) {
    const copy = w.modules_to_save.get(adapter);
    if (!copy) continue;
    for (const [k, t] of copy.namedParameters()) picked.set(`${PREFIX}${path}.${k}`, t);
  }
  let saveEmbeddings = opts.saveEmbeddingLayers ?? 'auto';
  const targeted = embeddingIsTargeted(config, peft.model);
  if (saveEmbeddings === 'auto') saveEmbeddings = targeted;
  if (saveEmbeddings) {
    for (const path of [inputEmbeddingsOf(peft.model), outputEmbeddingsOf(peft.model)]) {
      if (!path) continue;
      const layer = peft.model.getSubmodule(path);
      const wrapped = layer instanceof LoraLayer;
      if (targeted && !wrapped) continue;
      const name = `${PREFIX}${path}${wrapped ? '.base_layer' : ''}`;
      for (const [k, t] of state) if (k.includes(name)) picked.set(k, t);
    }
  }
  const out = new Map<string, Tensor>();
  for (const [k, t] of picked) out.set(removeAdapterName(k, adapter), t);
  return out;
}

/** `auto_mapping` PEFT writes when task_type is null: the transformers class of the base model. */
function autoMapping(peft: PeftModel, config: LoraConfig): Record<string, string> | null {
  if (config.taskType !== null) return null;
  const raw = (peft.model as unknown as { config?: { raw?: { architectures?: unknown; model_type?: unknown } } }).config?.raw;
  const arch = Array.isArray(raw?.architectures) ? raw.architectures[0] : undefined;
  if (typeof arch !== 'string' || typeof raw?.model_type !== 'string') return null;
  return { base_model_class: arch, parent_library: `transformers.models.${raw.model_type}.modeling_${raw.model_type}` };
}

export interface SaveAdapterOptions extends AdapterStateOptions {
  /** Recorded as base_model_name_or_path when the config has none (PEFT takes the base model's name_or_path). */
  baseModelNameOrPath?: string;
}

/** Writes adapter_config.json and adapter_model.safetensors for one adapter, exactly as PEFT's save_pretrained. */
export async function saveAdapterTo(peft: PeftModel, sink: FileSink, opts: SaveAdapterOptions = {}): Promise<void> {
  const adapter = opts.adapterName ?? peft.activeAdapter;
  const tensors = adapterStateDict(peft, { ...opts, adapterName: adapter });
  const list: NamedLazyTensorToWrite[] = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: () => t.raw() }));
  const config = { ...peft.peftConfig.get(adapter)! };
  // save_pretrained writes inference_mode true and fills base_model_name_or_path (from the base
  // model's name_or_path: the folder it was loaded from).
  config.inferenceMode = true;
  if (config.baseModelNameOrPath === null) config.baseModelNameOrPath = opts.baseModelNameOrPath ?? nameOrPathOf(peft.model);
  await sink.writeFile(ADAPTER_WEIGHTS_NAME, (s) => writeSafetensorsTo(s, list, { format: 'pt' }, `${sink.name}/${ADAPTER_WEIGHTS_NAME}`));
  await sink.writeFile(
    ADAPTER_CONFIG_NAME,
    toPeftConfigJson(config, { autoMapping: autoMapping(peft, config), id2label: labelsOf(peft.model) }),
  );
}

/** Where a model was loaded from (transformers' `name_or_path`): its `nameOrPath`, else config.json's `_name_or_path`. */
export function nameOrPathOf(model: Module): string | null {
  const m = model as unknown as { nameOrPath?: unknown; config?: { raw?: { _name_or_path?: unknown } } };
  if (typeof m.nameOrPath === 'string') return m.nameOrPath;
  const raw = m.config?.raw?._name_or_path;
  return typeof raw === 'string' ? raw : null;
}

/** A classifier's class names by id (its `id2label` list), saved with its adapter; null for other models. */
export function labelsOf(model: Module): string[] | null {
  const labels = (model as unknown as { id2label?: unknown }).id2label;
  return Array.isArray(labels) && labels.length > 0 && labels.every((l) => typeof l === 'string') ? [...labels] : null;
}

export interface LoadAdapterOptions {
  /** Name to load the adapter under; default "default". */
  adapterName?: string;
  /** Train the loaded adapter (PEFT's is_trainable); default false: frozen, for inference. */
  isTrainable?: boolean;
  /** model_type when the model does not declare one (only used when adapter_config.json has no target_modules). */
  modelType?: string;
  generator?: Generator;
  /**
   * How the model is used (PEFT's task type: a classifier is SEQ_CLS or TOKEN_CLS, a language model
   * CAUSAL_LM); when adapter_config.json's task_type differs, a warning says so. Default: the
   * model's own `taskType`, else read from its heads (a `score` / `classifier` module: a classifier).
   */
  taskType?: TaskType;
  /** Receives warnings (an adapter trained on another base model or for another task); default console.warn. */
  warn?: (message: string) => void;
}

/** The last path segment of a model name or folder ("EleutherAI/pythia-70m" → "pythia-70m"). */
function modelBaseName(nameOrPath: string): string {
  const parts = nameOrPath.split(/[\\/]+/).filter((p) => p !== '');
  return (parts[parts.length - 1] ?? nameOrPath).toLowerCase();
}

const shortName = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

/** Warnings for an adapter that may belong to another base model or task (not errors: folders get moved and renamed). */
function warnOnMismatch(config: LoraConfig, model: Module, file: string, opts: LoadAdapterOptions): void {
  const warn = opts.warn ?? console.warn;
  const trainedOn = config.baseModelNameOrPath;
  const loadedFrom = nameOrPathOf(model);
  if (trainedOn && loadedFrom && modelBaseName(trainedOn) !== modelBaseName(loadedFrom)) {
    warn(
      `${file}: base_model_name_or_path is ${shortName(trainedOn)} but the base model was loaded from ${shortName(loadedFrom)}: ` +
        'the adapter may have been trained on another model (ignore this if the folder was renamed)',
    );
  }
  const declared = (model as unknown as { taskType?: unknown }).taskType;
  const hasClassifier = [...model.children()].some(([name]) => (CLASSIFIER_HEAD_NAMES as readonly string[]).includes(name));
  const loadedAs: TaskType | null = opts.taskType ?? (typeof declared === 'string' ? (declared as TaskType) : null);
  const task = config.taskType;
  if (task === null) return;
  const classifierTask = task === 'SEQ_CLS' || task === 'TOKEN_CLS';
  if (loadedAs !== null) {
    if (loadedAs !== task)
      warn(`${file}: task_type is "${task}" but the model is loaded as "${loadedAs}": the adapter was trained for another task`);
  } else if (classifierTask && !hasClassifier) {
    warn(
      `${file}: task_type is "${task}" (a classifier with a trained ${CLASSIFIER_HEAD_NAMES.join(' / ')} head) but this model has no such head: load it onto a classifier`,
    );
  } else if (task === 'CAUSAL_LM' && hasClassifier) {
    warn(`${file}: task_type is "CAUSAL_LM" but this model is a classifier (it has a ${CLASSIFIER_HEAD_NAMES.join(' / ')} head)`);
  }
}

/**
 * Checks the adapter file's header (names, shapes, dtypes of the LoRA tensors) against the config
 * and the model before any adapter weight is allocated, so that an absurd rank or a file for
 * another model fails at once. Target-matching errors are left to the injection that follows.
 */
function checkAdapterHeader(config: LoraConfig, model: Module, file: SafetensorsFile, where: string, opts: LoadAdapterOptions): void {
  const planned = cloneConfig(config);
  if (planned.taskType === 'SEQ_CLS' || planned.taskType === 'TOKEN_CLS')
    planned.modulesToSave = [...(planned.modulesToSave ?? []), ...CLASSIFIER_HEAD_NAMES];
  const entries = describeTree(model);
  let targets: ReturnType<typeof planTargets>['targets'];
  try {
    resolveTargetModules(planned, entries, {
      modelType: opts.modelType !== undefined ? opts.modelType : modelTypeOf(model),
      outputEmbeddings: outputEmbeddingsOf(model),
    });
    targets = planTargets(planned, entries).targets;
  } catch {
    return;
  }
  /** name, shape, and which axis is the rank */
  const expected: [string, number[], 0 | 1][] = [];
  for (const t of targets) {
    let layer = model.getSubmodule(t.name);
    if (layer instanceof LoraLayer) layer = layer.baseLayer;
    const key = `${PREFIX}${t.name}`;
    if (layer instanceof Linear) {
      expected.push([`${key}.lora_A.weight`, [t.r, layer.inFeatures], 0], [`${key}.lora_B.weight`, [layer.outFeatures, t.r], 1]);
    } else if (layer instanceof Embedding) {
      expected.push([`${key}.lora_embedding_A`, [t.r, layer.numEmbeddings], 0], [`${key}.lora_embedding_B`, [layer.embeddingDim, t.r], 1]);
    }
  }
  const missing = expected.filter(([k]) => !file.has(k)).map(([k]) => k);
  if (missing.length > 0) {
    throw new Error(
      `${where}/${ADAPTER_WEIGHTS_NAME} lacks ${missing.length} of the adapter's LoRA tensors that ${ADAPTER_CONFIG_NAME} (r ${config.r}, target_modules ${shortName(JSON.stringify(config.targetModules))}) asks for: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
    );
  }
  for (const [key, shape, rankAxis] of expected) {
    const info = file.info(key);
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16' && info.dtype !== 'F64') {
      throw new Error(`${where}/${ADAPTER_WEIGHTS_NAME}: tensor "${key}" is ${info.dtype}: LoRA weights must be F32, F16, BF16 or F64`);
    }
    if (info.shape.join() === shape.join()) continue;
    const got = `[${info.shape.join(', ')}]`;
    const modelAxis = 1 - rankAxis;
    if (info.shape.length === 2 && info.shape[modelAxis] === shape[modelAxis]) {
      throw new Error(
        `${where}/${ADAPTER_WEIGHTS_NAME}: tensor "${key}" has shape ${got} but ${ADAPTER_CONFIG_NAME} gives this module rank ${shape[rankAxis]} (r, rank_pattern): the config does not match the weights`,
      );
    }
    throw new Error(
      `${where}/${ADAPTER_WEIGHTS_NAME}: tensor "${key}" has shape ${got} but this model needs [${shape.join(', ')}]: the adapter was made for a model of another size`,
    );
  }
}

/** Largest adapter_config.json read (PEFT writes about 1 KiB). */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

async function readText(opener: FileOpener, fileName: string): Promise<string> {
  const source = await opener.open(fileName);
  try {
    if (source.size > MAX_CONFIG_BYTES) throw new Error(`it is ${source.size} bytes: at most ${MAX_CONFIG_BYTES} are read`);
    return new TextDecoder().decode(await source.read(0, source.size));
  } finally {
    await source.close?.();
  }
}

/**
 * Loads an adapter folder written by Python PEFT or by `saveAdapterTo`: onto a plain model (returns a
 * new PeftModel) or as another adapter of a PeftModel (PEFT's load_adapter). Every adapter tensor
 * must be in the file with the model's shape; tensors the model has no place for are an error
 * (the adapter was made for another base model).
 */
export async function loadAdapterFrom<M extends Module>(
  model: M | PeftModel<M>,
  opener: FileOpener,
  opts: LoadAdapterOptions = {},
): Promise<PeftModel<M>> {
  const where = opener.name;
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(await readText(opener, ADAPTER_CONFIG_NAME));
  } catch (error) {
    throw new Error(`${where}: cannot read ${ADAPTER_CONFIG_NAME}: ${(error as Error).message}`);
  }
  const config = fromPeftConfigDict(rawConfig, `${where}/${ADAPTER_CONFIG_NAME}`);
  config.inferenceMode = !opts.isTrainable;
  const adapter = opts.adapterName ?? 'default';
  const base: Module = model instanceof PeftModel ? model.model : model;
  warnOnMismatch(config, base, `${where}/${ADAPTER_CONFIG_NAME}`, opts);
  const source = await opener.open(ADAPTER_WEIGHTS_NAME);
  const file = await openSafetensors(source);
  let peft: PeftModel<M> | null = null;
  const fresh = !(model instanceof PeftModel);
  try {
    checkAdapterHeader(config, base, file, where, opts);
    const adapterOpts = { modelType: opts.modelType, generator: opts.generator };
    try {
      if (model instanceof PeftModel) {
        peft = model;
        peft.addAdapter(adapter, config, adapterOpts);
      } else peft = getPeftModel(model, config, { ...adapterOpts, adapterName: adapter });
    } catch (error) {
      const base = config.baseModelNameOrPath ? ` (it was trained on ${config.baseModelNameOrPath})` : '';
      throw new Error(
        `${where}: the adapter that ${ADAPTER_CONFIG_NAME} describes does not fit this model${base}: ${(error as Error).message}`,
      );
    }
    const expected = adapterStateDict(peft, { adapterName: adapter, saveEmbeddingLayers: false });
    const params = new Map(peft.namedParameters());
    const names = file.names();
    const unknown: string[] = [];
    const targets = new Map<string, Tensor>();
    for (const key of names) {
      const t = expected.get(key) ?? params.get(key);
      if (t) targets.set(key, t);
      else unknown.push(key);
    }
    if (unknown.length > 0) {
      const base = config.baseModelNameOrPath ? `, trained on ${config.baseModelNameOrPath}` : '';
      throw new Error(
        `${where}/${ADAPTER_WEIGHTS_NAME} has ${unknown.length} tensors this model has no place for (was the adapter made for another base model${base}, or does ${ADAPTER_CONFIG_NAME} target fewer modules than it holds?): ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}`,
      );
    }
    const missing = [...expected.keys()].filter((k) => !file.has(k));
    if (missing.length > 0) {
      throw new Error(
        `${where}/${ADAPTER_WEIGHTS_NAME} lacks ${missing.length} of the adapter's ${expected.size} tensors: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      );
    }
    const ordered = [...targets].sort(([a], [b]) => Number(!expected.has(a)) - Number(!expected.has(b)));
    for (const [key, t] of ordered) {
      const info = file.info(key);
      if (info.shape.join() !== t.shape.join()) {
        throw new Error(
          `${where}/${ADAPTER_WEIGHTS_NAME}: tensor "${key}" has shape [${info.shape.join(', ')}] but this model needs [${t.shape.join(', ')}]: the adapter was made for a model of another size`,
        );
      }
    }
    for (const [key, t] of targets) {
      const loaded = await file.readTensor(key, { dtype: t.dtype });
      if (loaded.data.length > 0) t.backend.write(t.buffer('loadAdapter'), loaded.data);
    }
    // PEFT's load_adapter: a model loaded for inference is put in evaluation mode (no dropout).
    if (!opts.isTrainable) peft.eval();
  } catch (error) {
    if (peft) {
      if (fresh) peft.unload();
      else if (peft.peftConfig.has(adapter)) peft.deleteAdapter(adapter);
    }
    throw error;
  } finally {
    await file.close();
  }
  return peft;
}

export interface SaveMergedOptions {
  /** config.json contents; default the model's `config.raw` (what @peft/models keeps). */
  config?: Record<string, unknown>;
  /** Largest shard (bytes or "5GB"); default 5GB as transformers. */
  maxShardBytes?: number | string;
}

/**
 * The wrapped model's tensors with the active adapters merged, under the base model's own names
 * (`…query_key_value.weight`), computed one at a time when written; the PeftModel is not changed.
 */
export function mergedTensors(peft: PeftModel): NamedLazyTensorToWrite[] {
  const layers = peft.loraLayers();
  const wrappers = peft.savedModules();
  const out: NamedLazyTensorToWrite[] = [];
  const names = new Map<Tensor, string>();
  for (const [name, t] of peft.model.namedParameters()) names.set(t, name);
  for (const [path, layer] of layers) {
    const owner = names.get(layer.weight);
    if (owner !== `${path}.base_layer.weight`) {
      throw new Error(
        `saveMerged: the weight of "${path}" is shared with "${owner}" (tied embeddings): merging LoRA into it would change both; untie them first`,
      );
    }
  }
  for (const [name, t] of peft.model.namedParameters()) {
    const layer = layers.find(([p]) => name.startsWith(`${p}.`));
    const wrapper = wrappers.find(([p]) => name.startsWith(`${p}.`));
    if (layer) {
      const [p, l] = layer;
      const rest = name.slice(p.length + 1);
      if (!rest.startsWith('base_layer.')) continue;
      const out_name = `${p}.${rest.slice('base_layer.'.length)}`;
      if (rest === 'base_layer.weight' && !l.merged && l.activeAdapters.some((a) => l.adapterNames().includes(a)) && !l.disabled) {
        out.push({
          name: out_name,
          dtype: t.dtype,
          shape: t.shape,
          data: async () => {
            const m = l.mergedWeight(l.activeAdapters);
            const c = m.dtype === t.dtype ? m : noGrad(() => cast(m, t.dtype));
            try {
              return await c.raw();
            } finally {
              m.dispose();
              c.dispose();
            }
          },
        });
      } else out.push({ name: out_name, dtype: t.dtype, shape: t.shape, data: () => t.raw() });
    } else if (wrapper) {
      const [p, w] = wrapper;
      const rest = name.slice(p.length + 1);
      const prefix = w.activeAdapter !== null && !w.disabled ? `modules_to_save.${w.activeAdapter}.` : 'original_module.';
      if (rest.startsWith(prefix))
        out.push({ name: `${p}.${rest.slice(prefix.length)}`, dtype: t.dtype, shape: t.shape, data: () => t.raw() });
    } else out.push({ name, dtype: t.dtype, shape: t.shape, data: () => t.raw() });
  }
  return out;
}

/** Writes a Hugging Face model folder (config.json + model.safetensors or shards with an index) with the adapters merged. */
export async function saveMergedTo(peft: PeftModel, sink: FileSink, opts: SaveMergedOptions = {}): Promise<void> {
  const config = opts.config ?? (peft.model as unknown as { config?: { raw?: Record<string, unknown> } }).config?.raw;
  if (!config) throw new Error('saveMerged: the model has no config.raw: pass the config.json object as the config option');
  const tensors = mergedTensors(peft);
  const plan = planShards(tensors, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_SIZE, { prefix: 'model' });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const shard of plan.shards) {
    const list = shard.names.map((n) => byName.get(n)!);
    await sink.writeFile(shard.fileName, (s) => writeSafetensorsTo(s, list, { format: 'pt' }, `${sink.name}/${shard.fileName}`));
  }
  if (plan.sharded) await sink.writeFile(plan.indexFileName, plan.indexJson);
  await sink.writeFile('config.json', `${JSON.stringify(config, null, 2)}\n`);
}
