import { shortValue } from '../../short-value.js';
import { checkModulePattern, ModulePatternError } from '../module-pattern.js';
import { pythonJsonDumps } from '../python-json.js';

/** The PEFT release whose `adapter_config.json` field set and defaults we write (and whose semantics we follow). */
export const PEFT_VERSION = '0.18.1';

export type LoraBias = 'none' | 'all' | 'lora_only';
/** `true`: PEFT's default (Kaiming-uniform A, zero B; for Embedding zero A, normal B); 'gaussian': A ~ N(0, 1/r²); false: no LoRA init (random A and B). */
export type InitLoraWeights = boolean | 'gaussian';
export type TaskType = 'SEQ_CLS' | 'SEQ_2_SEQ_LM' | 'CAUSAL_LM' | 'TOKEN_CLS' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION';

/**
 * LoRA settings with PEFT's `LoraConfig` fields in camelCase. Every field is optional; defaults are PEFT's.
 */
export interface LoraConfigInput {
  /** Rank. Default 8. */
  r?: number;
  /** Scaling numerator: the update is scaled by loraAlpha / r (or loraAlpha / √r with useRslora). Default 8. */
  loraAlpha?: number;
  /** Dropout on the adapter's input (Linear targets). Default 0. */
  loraDropout?: number;
  /**
   * Modules to adapt: a list of names (a module matches when its dotted path equals an entry or
   * ends with "." + entry), a regular expression (a string; must match the whole path), or
   * "all-linear" (every Linear except the output head). Default: PEFT's defaults for the model type.
   */
  targetModules?: readonly string[] | string | null;
  /** Modules never adapted: names/suffixes like targetModules, or a regex string. */
  excludeModules?: readonly string[] | string | null;
  /** Which biases train: 'none', 'all' (every bias in the model), 'lora_only' (biases of adapted layers). */
  bias?: LoraBias;
  /** Rank-stabilised scaling loraAlpha / √r. */
  useRslora?: boolean;
  initLoraWeights?: InitLoraWeights;
  /** Per-module rank: keys are regexes matched against the end of the module path. */
  rankPattern?: Record<string, number>;
  /** Per-module alpha, keys as in rankPattern. */
  alphaPattern?: Record<string, number>;
  /** Only adapt layers with these indices (the number after the layers' ModuleList name). */
  layersToTransform?: readonly number[] | number | null;
  /** Name(s) of the ModuleList that holds the layers (e.g. "layers"); default any. */
  layersPattern?: readonly string[] | string | null;
  /** Modules trained fully and saved with the adapter (a classification head such as "score"). */
  modulesToSave?: readonly string[] | null;
  /** Weight-decomposed LoRA (DoRA): a trainable magnitude per output row (Linear) or per feature (Embedding). */
  useDora?: boolean;
  /** PEFT's task type; SEQ_CLS and TOKEN_CLS add "classifier" and "score" to modulesToSave as PEFT does. */
  taskType?: TaskType | null;
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  /** Adapter weights frozen (loading for inference). */
  inferenceMode?: boolean;
  /** Only false is supported (PEFT's default). */
  fanInFanOut?: boolean;
  /** Only false is supported (PEFT's default). */
  loraBias?: boolean;
}

/** A validated config with every field filled. */
export interface LoraConfig {
  readonly peftType: 'LORA';
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  bias: LoraBias;
  useRslora: boolean;
  initLoraWeights: InitLoraWeights;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  layersToTransform: number[] | number | null;
  layersPattern: string[] | string | null;
  modulesToSave: string[] | null;
  useDora: boolean;
  taskType: TaskType | null;
  baseModelNameOrPath: string | null;
  revision: string | null;
  inferenceMode: boolean;
  fanInFanOut: false;
  loraBias: false;
}

const TASK_TYPES: readonly TaskType[] = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'];

function fail(field: string, value: unknown, expected: string): never {
  throw new Error(`LoraConfig: ${field} is ${JSON.stringify(value)}: ${expected}`);
}

function positiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(field, v, 'expected a positive integer (r must be at least 1)');
  if (v > MAX_LORA_RANK) fail(field, v, `expected a rank of at most ${MAX_LORA_RANK}`);
  return v;
}

function finite(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(field, v, 'expected a finite number');
  return v;
}

function stringsOrString(field: string, v: unknown): string[] | string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') {
    if (v === '') fail(field, v, 'expected a non-empty regex, a list of names, or null');
    checkRegex(field, v);
    return v;
  }
  if (Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '')) return [...new Set(v as string[])];
  fail(field, v, 'expected a list of non-empty module names, a regex string, or null');
}

/** Largest rank accepted: far above any practical adapter, low enough that a typo cannot allocate terabytes. */
export const MAX_LORA_RANK = 65536;

function checkRegex(field: string, pattern: string): void {
  try {
    checkModulePattern(pattern);
  } catch (error) {
    if (!(error instanceof ModulePatternError)) throw error;
    throw new Error(`LoraConfig: ${field} ${error.message}; ${SUPPORTED_PATTERNS}`);
  }
}

/** What a module-name pattern may use (module-pattern.ts), for errors. */
export const SUPPORTED_PATTERNS =
  'module-name patterns support literals, ".", classes ([a-z_], \\d, \\w, \\s), groups, "|", quantifiers (* + ? {m,n}) and anchors; not backreferences, lookarounds, inline flags, atomic groups or possessive quantifiers';

function pattern(field: string, v: unknown, check: (f: string, x: unknown) => number): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(field, v, 'expected an object mapping module-name patterns to numbers');
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    checkRegex(`${field} key`, k);
    out[k] = check(`${field}[${JSON.stringify(k)}]`, x);
  }
  return out;
}

/** Fills PEFT's defaults and validates; errors name the field, the value and what is expected. */
export function loraConfig(input: LoraConfigInput = {}): LoraConfig {
  const known = new Set([
    'r',
    'loraAlpha',
    'loraDropout',
    'targetModules',
    'excludeModules',
    'bias',
    'useRslora',
    'initLoraWeights',
    'rankPattern',
    'alphaPattern',
    'layersToTransform',
    'layersPattern',
    'modulesToSave',
    'useDora',
    'taskType',
    'baseModelNameOrPath',
    'revision',
    'inferenceMode',
    'fanInFanOut',
    'loraBias',
    'peftType',
  ]);
  for (const k of Object.keys(input)) {
    if (!known.has(k))
      throw new Error(`LoraConfig: unknown field "${k}"; fields are camelCase versions of PEFT's (e.g. loraAlpha for lora_alpha)`);
  }
  const r = positiveInt('r', input.r ?? 8);
  const loraAlpha = finite('loraAlpha', input.loraAlpha ?? 8);
  const loraDropout = finite('loraDropout', input.loraDropout ?? 0);
  if (loraDropout < 0 || loraDropout >= 1) fail('loraDropout', loraDropout, 'expected a probability in [0, 1)');
  const bias = input.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') fail('bias', bias, 'expected "none", "all" or "lora_only"');
  const init = input.initLoraWeights ?? true;
  if (init !== true && init !== false && init !== 'gaussian') {
    fail(
      'initLoraWeights',
      init,
      'expected true (Kaiming-uniform A, zero B), "gaussian" or false; other PEFT inits (pissa, olora, loftq, eva, corda) are not supported',
    );
  }
  const targetModules = stringsOrString('targetModules', input.targetModules);
  let layersToTransform: number[] | number | null = null;
  const ltt = input.layersToTransform;
  if (ltt !== undefined && ltt !== null) {
    if (typeof ltt === 'number') layersToTransform = ltt;
    else if (Array.isArray(ltt) && ltt.every((i) => Number.isInteger(i) && i >= 0)) layersToTransform = [...ltt];
    if (
      layersToTransform === null ||
      (typeof layersToTransform === 'number' && !(Number.isInteger(layersToTransform) && layersToTransform >= 0))
    ) {
      fail('layersToTransform', ltt, 'expected a non-negative layer index or a list of them');
    }
  }
  const lp = input.layersPattern;
  let layersPattern: string[] | string | null = null;
  if (lp !== undefined && lp !== null) {
    if (typeof lp === 'string' || (Array.isArray(lp) && lp.every((s) => typeof s === 'string')))
      layersPattern = typeof lp === 'string' ? lp : [...lp];
    else fail('layersPattern', lp, 'expected a string or a list of strings');
  }
  if (typeof targetModules === 'string' && targetModules.toLowerCase() !== 'all-linear') {
    if (layersToTransform !== null) fail('layersToTransform', ltt, 'cannot be used when targetModules is a regex string (as in PEFT)');
    if (layersPattern !== null) fail('layersPattern', lp, 'cannot be used when targetModules is a regex string (as in PEFT)');
  }
  if (layersPattern !== null && (layersToTransform === null || (Array.isArray(layersToTransform) && layersToTransform.length === 0))) {
    fail('layersPattern', lp, 'needs layersToTransform too (as in PEFT)');
  }
  const mts = input.modulesToSave;
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.every((s) => typeof s === 'string' && s !== ''))) {
    fail('modulesToSave', mts, 'expected a list of module names or null');
  }
  for (const m of mts ?? []) checkRegex('modulesToSave entry', m);
  for (const p of layersPattern === null ? [] : typeof layersPattern === 'string' ? [layersPattern] : layersPattern) {
    checkRegex('layersPattern', p);
  }
  const taskType = input.taskType ?? null;
  if (taskType !== null && !TASK_TYPES.includes(taskType)) fail('taskType', taskType, `expected one of ${TASK_TYPES.join(', ')} or null`);
  if (input.fanInFanOut) fail('fanInFanOut', true, 'only false is supported (weights are stored [out, in] as torch.nn.Linear)');
  if (input.loraBias) fail('loraBias', true, 'only false is supported');
  for (const f of ['useRslora', 'useDora', 'inferenceMode'] as const) {
    if (input[f] !== undefined && typeof input[f] !== 'boolean') fail(f, input[f], 'expected true or false');
  }
  return {
    peftType: 'LORA',
    r,
    loraAlpha,
    loraDropout,
    targetModules,
    excludeModules: stringsOrString('excludeModules', input.excludeModules),
    bias,
    useRslora: input.useRslora ?? false,
    initLoraWeights: init,
    rankPattern: pattern('rankPattern', input.rankPattern, positiveInt),
    alphaPattern: pattern('alphaPattern', input.alphaPattern, finite),
    layersToTransform,
    layersPattern,
    modulesToSave: mts ? [...mts] : null,
    useDora: input.useDora ?? false,
    taskType,
    baseModelNameOrPath: input.baseModelNameOrPath ?? null,
    revision: input.revision ?? null,
    inferenceMode: input.inferenceMode ?? false,
    fanInFanOut: false,
    loraBias: false,
  };
}

/** A copy that shares no arrays or objects with `c`. */
export function cloneConfig(c: LoraConfig): LoraConfig {
  return structuredClone(c);
}

/** Scaling of the LoRA update for rank r and alpha: alpha / r, or alpha / √r with rsLoRA (PEFT's update_layer). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The dictionary PEFT 0.18.1 writes to adapter_config.json for a LoraConfig (`asdict` minus
 * runtime_config): every field, defaults included, snake_case.
 */
/** What is written beside a LoRA config's own fields in adapter_config.json. */
export interface PeftConfigExtra {
  /** PEFT's auto_mapping (the base model's transformers class when task_type is null). */
  autoMapping?: Record<string, string> | null;
  /**
   * A classifier's class names by id: written as transformers' config.json writes them,
   * `id2label` ({"0": name}) and `label2id` ({name: 0}). Python PEFT ignores the two keys when it
   * loads the file (with a warning).
   */
  id2label?: readonly string[] | null;
}

/** transformers' `id2label` / `label2id` of class names by id. */
export function labelMaps(id2label: readonly string[]): { id2label: Record<string, string>; label2id: Record<string, number> } {
  return {
    id2label: Object.fromEntries(id2label.map((name, i) => [String(i), name])),
    label2id: Object.fromEntries(id2label.map((name, i) => [name, i])),
  };
}

export function toPeftConfigDict(c: LoraConfig, extra: PeftConfigExtra = {}): Record<string, unknown> {
  return {
    ...(extra.id2label ? labelMaps(extra.id2label) : {}),
    alora_invocation_tokens: null,
    alpha_pattern: { ...c.alphaPattern },
    arrow_config: null,
    auto_mapping: extra.autoMapping ?? null,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: c.bias,
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: c.excludeModules,
    fan_in_fan_out: false,
    inference_mode: c.inferenceMode,
    init_lora_weights: c.initLoraWeights,
    layer_replication: null,
    layers_pattern: c.layersPattern,
    layers_to_transform: c.layersToTransform,
    loftq_config: {},
    lora_alpha: c.loraAlpha,
    lora_bias: false,
    lora_dropout: c.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: c.modulesToSave,
    peft_type: 'LORA',
    peft_version: PEFT_VERSION,
    qalora_group_size: 16,
    r: c.r,
    rank_pattern: { ...c.rankPattern },
    revision: c.revision,
    target_modules: c.targetModules,
    target_parameters: null,
    task_type: c.taskType,
    trainable_token_indices: null,
    use_dora: c.useDora,
    use_qalora: false,
    use_rslora: c.useRslora,
  };
}

/** adapter_config.json text, byte for byte as PEFT writes it (json.dumps(indent=2, sort_keys=True)). */
export function toPeftConfigJson(c: LoraConfig, extra: PeftConfigExtra = {}): string {
  return pythonJsonDumps(toPeftConfigDict(c, extra), new Set(['lora_dropout']));
}

/** Fields PEFT writes that we accept only at their inactive value; anything else is an error naming the field. */
const INACTIVE: Record<string, (v: unknown) => boolean> = {
  alora_invocation_tokens: (v) => v === null || v === undefined,
  arrow_config: (v) => v === null || v === undefined,
  corda_config: (v) => v === null || v === undefined,
  eva_config: (v) => v === null || v === undefined,
  layer_replication: (v) => v === null || v === undefined,
  megatron_config: (v) => v === null || v === undefined,
  target_parameters: (v) => v === null || v === undefined || (Array.isArray(v) && v.length === 0),
  trainable_token_indices: (v) => v === null || v === undefined,
  use_qalora: (v) => !v,
  lora_bias: (v) => !v,
  fan_in_fan_out: (v) => !v,
  use_bdlora: (v) => v === null || v === undefined,
  velora_config: (v) => v === null || v === undefined,
  monteclora_config: (v) => v === null || v === undefined,
  kasa_config: (v) => v === null || v === undefined,
  lora_ga_config: (v) => v === null || v === undefined,
};

/** A short JSON rendering of a value for an error message (never more than ~120 characters). */
const shown = (v: unknown) => shortValue(v, { max: 120 });

/** Most names in target_modules / exclude_modules (each is compared with every module path). */
const MAX_NAMES = 100_000;
/** Most patterns in rank_pattern, alpha_pattern, modules_to_save (each is a regex run on every module path). */
const MAX_PATTERNS = 1000;

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '');

/**
 * Checks the type and range of every adapter_config.json field we use, before any is used;
 * errors name the file, the field (as the file spells it), the value and what is expected.
 */
function checkPeftConfigFields(raw: Record<string, unknown>, file: string): void {
  const bad = (field: string, expected: string): never => {
    throw new Error(`${file}: ${field} is ${shown(raw[field])}: expected ${expected}`);
  };
  const has = (field: string) => raw[field] !== undefined && raw[field] !== null;
  const pattern = (field: string, p: string) => {
    try {
      checkModulePattern(p);
    } catch (error) {
      if (!(error instanceof ModulePatternError)) throw error;
      throw new Error(`${file}: ${field} ${error.message}; ${SUPPORTED_PATTERNS}`);
    }
  };
  const rank = (field: string, v: unknown) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_LORA_RANK
      ? undefined
      : `${field} is ${shown(v)}: expected a positive integer rank of at most ${MAX_LORA_RANK}`;
  if (raw.r !== undefined) {
    const why = rank('r', raw.r);
    if (why) throw new Error(`${file}: ${why}`);
  }
  if (raw.lora_alpha !== undefined && (typeof raw.lora_alpha !== 'number' || !Number.isFinite(raw.lora_alpha)))
    bad('lora_alpha', 'a finite number');
  if (
    raw.lora_dropout !== undefined &&
    (typeof raw.lora_dropout !== 'number' || !Number.isFinite(raw.lora_dropout) || raw.lora_dropout < 0 || raw.lora_dropout >= 1)
  )
    bad('lora_dropout', 'a probability in [0, 1)');
  for (const field of ['target_modules', 'exclude_modules']) {
    const v = raw[field];
    if (!has(field)) continue;
    if (typeof v === 'string') {
      if (v === '') bad(field, 'a non-empty regex, a list of module names, or null');
      if (v.toLowerCase() !== 'all-linear') pattern(field, v);
    } else if (!isStringList(v)) bad(field, 'a list of non-empty module names, a regex string, or null');
    else if (v.length > MAX_NAMES) throw new Error(`${file}: ${field} lists ${v.length} names: at most ${MAX_NAMES} are supported`);
  }
  if (raw.bias !== undefined && raw.bias !== 'none' && raw.bias !== 'all' && raw.bias !== 'lora_only')
    bad('bias', '"none", "all" or "lora_only"');
  if (has('task_type') && !TASK_TYPES.includes(raw.task_type as TaskType)) bad('task_type', `one of ${TASK_TYPES.join(', ')} or null`);
  for (const field of ['use_dora', 'use_rslora', 'inference_mode']) {
    if (has(field) && typeof raw[field] !== 'boolean') bad(field, 'true or false');
  }
  const init = raw.init_lora_weights;
  if (init !== undefined && init !== true && init !== false && init !== 'gaussian') {
    bad(
      'init_lora_weights',
      typeof init === 'string'
        ? 'true, false or "gaussian" (other PEFT inits such as pissa, olora, loftq, eva, corda are not supported)'
        : 'true, false or "gaussian"',
    );
  }
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    if (!has(field)) continue;
    const v = raw[field];
    if (typeof v !== 'object' || Array.isArray(v)) bad(field, 'an object mapping module-name patterns to numbers');
    const keys = Object.keys(v as object).length;
    if (keys > MAX_PATTERNS) throw new Error(`${file}: ${field} has ${keys} patterns: at most ${MAX_PATTERNS} are supported`);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      pattern(`${field} key`, k);
      if (field === 'rank_pattern') {
        const why = rank(`rank_pattern[${shown(k)}]`, x);
        if (why) throw new Error(`${file}: ${why}`);
      } else if (typeof x !== 'number' || !Number.isFinite(x)) {
        throw new Error(`${file}: alpha_pattern[${shown(k)}] is ${shown(x)}: expected a finite number`);
      }
    }
  }
  if (has('modules_to_save')) {
    if (!isStringList(raw.modules_to_save)) bad('modules_to_save', 'a list of non-empty module names or null');
    const n = (raw.modules_to_save as string[]).length;
    if (n > MAX_PATTERNS) throw new Error(`${file}: modules_to_save lists ${n} modules: at most ${MAX_PATTERNS} are supported`);
    for (const m of raw.modules_to_save as string[]) pattern('modules_to_save entry', m);
  }
  if (has('layers_to_transform')) {
    const v = raw.layers_to_transform;
    const index = (i: unknown) => typeof i === 'number' && Number.isInteger(i) && i >= 0;
    if (!(index(v) || (Array.isArray(v) && v.every(index))))
      bad('layers_to_transform', 'a non-negative layer index, a list of them, or null');
  }
  if (has('layers_pattern')) {
    const v = raw.layers_pattern;
    if (typeof v === 'string') pattern('layers_pattern', v);
    else if (isStringList(v)) for (const p of v) pattern('layers_pattern', p);
    else bad('layers_pattern', 'a module-list name, a list of them, or null');
  }
  for (const field of ['base_model_name_or_path', 'revision']) {
    if (has(field) && typeof raw[field] !== 'string') bad(field, 'a string or null');
  }
}

/** Reads an adapter_config.json object written by Python PEFT (any recent version) or by us. */
export function fromPeftConfigDict(raw: unknown, file = 'adapter_config.json'): LoraConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(
      `${file} must hold a JSON object (PEFT's adapter config), got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}`,
    );
  }
  const dict = raw as Record<string, unknown>;
  if (dict.peft_type !== 'LORA') {
    throw new Error(`${file} has peft_type ${shown(dict.peft_type)}: only "LORA" adapters are supported`);
  }
  for (const [k, inactive] of Object.entries(INACTIVE)) {
    if (k in dict && !inactive(dict[k])) throw new Error(`${file}: ${k} is ${shown(dict[k])}: not supported (only its default is)`);
  }
  checkPeftConfigFields(dict, file);
  try {
    return loraConfig({
      r: dict.r as number,
      loraAlpha: dict.lora_alpha as number,
      loraDropout: dict.lora_dropout as number,
      targetModules: dict.target_modules as string[] | string | null,
      excludeModules: dict.exclude_modules as string[] | string | null,
      bias: dict.bias as LoraBias,
      useRslora: (dict.use_rslora as boolean) ?? false,
      initLoraWeights: (dict.init_lora_weights ?? true) as InitLoraWeights,
      rankPattern: (dict.rank_pattern as Record<string, number>) ?? {},
      alphaPattern: (dict.alpha_pattern as Record<string, number>) ?? {},
      layersToTransform: dict.layers_to_transform as number[] | number | null,
      layersPattern: dict.layers_pattern as string[] | string | null,
      modulesToSave: dict.modules_to_save as string[] | null,
      useDora: (dict.use_dora as boolean) ?? false,
      taskType: (dict.task_type as TaskType | null) ?? null,
      baseModelNameOrPath: (dict.base_model_name_or_path as string | null) ?? null,
      revision: (dict.revision as string | null) ?? null,
      inferenceMode: (dict.inference_mode as boolean) ?? false,
    });
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
}
