import type { LoraConfig } from './lora/config.js';
import { compileModulePattern } from './module-pattern.js';

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (0.18.1): the targets used when none are given. */
export const DEFAULT_LORA_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  t5: ['q', 'v'],
  mt5: ['q', 'v'],
  bart: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
  bloom: ['query_key_value'],
  'blip-2': ['q', 'v', 'q_proj', 'v_proj'],
  opt: ['q_proj', 'v_proj'],
  gptj: ['q_proj', 'v_proj'],
  gpt_neox: ['query_key_value'],
  gpt_neo: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  'xlm-roberta': ['query', 'value'],
  electra: ['query', 'value'],
  'deberta-v2': ['query_proj', 'value_proj'],
  deberta: ['in_proj'],
  layoutlm: ['query', 'value'],
  llama: ['q_proj', 'v_proj'],
  llama4: ['q_proj', 'v_proj'],
  chatglm: ['query_key_value'],
  gpt_bigcode: ['c_attn'],
  mpt: ['Wqkv'],
  RefinedWebModel: ['query_key_value'],
  RefinedWeb: ['query_key_value'],
  falcon: ['query_key_value'],
  btlm: ['c_proj', 'c_attn'],
  codegen: ['qkv_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  stablelm: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
  gemma: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  gemma3_text: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
  rwkv: ['key', 'value', 'receptance', 'output'],
  rwkv7: ['r_proj', 'k_proj', 'v_proj', 'o_proj', 'key', 'value'],
};

export const ALL_LINEAR = 'all-linear';
/** PEFT's SEQ_CLS_HEAD_NAMES: heads that SEQ_CLS/TOKEN_CLS save fully and all-linear leaves alone. */
export const CLASSIFIER_HEAD_NAMES = ['classifier', 'score'] as const;
/** PEFT's EMBEDDING_LAYER_NAMES: targeting one of these makes save_embedding_layers="auto" save the embeddings. */
export const EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'] as const;
/** Above this many target names, PEFT condenses them to the shortest separating suffixes. */
const MIN_TARGET_MODULES_FOR_OPTIMIZATION = 20;

/** What target matching needs to know of one module of the tree. */
export interface ModuleEntry {
  /** Dotted path from the model root ("" for the root). */
  name: string;
  kind: 'linear' | 'embedding' | 'other';
  /** The class name, for error messages. */
  className?: string;
}

/**
 * Python's re.fullmatch(pattern, key), in time linear in the key (module-pattern.ts: the
 * supported subset; a pattern outside it throws a ModulePatternError naming it).
 */
export function fullMatch(pattern: string, key: string): boolean {
  return compileModulePattern(pattern).fullMatch(key);
}

/** PEFT's guard `re.match(rf"(^|.*\.){m}($|\..*)", key)`: `key` is a module to save or inside one. */
export function isModuleToSave(name: string, key: string): boolean {
  return compileModulePattern(`(?:^|.*\\.)${name}(?:$|\\..*)`).prefixMatch(key);
}

/**
 * PEFT's `re.match(rf".*\.{pattern}\.(\d+)\.", key)` group 1: the layer index after the last
 * ".<pattern>." in `key` that is followed by digits and a ".", or null.
 */
export function layerIndexAfter(pattern: string, key: string): number | null {
  const p = compileModulePattern(pattern);
  const dots: number[] = [];
  for (let i = 0; i < key.length; i++) if (key[i] === '.') dots.push(i);
  for (let x = dots.length - 1; x >= 0; x--) {
    for (let y = dots.length - 1; y > x; y--) {
      const a = dots[x] as number;
      const b = dots[y] as number;
      const digits = /^(\d+)\./.exec(key.slice(b + 1));
      if (digits && p.fullMatch(key.slice(a + 1, b))) return Number(digits[1]);
    }
  }
  return null;
}

export type MatchResult = 'target' | 'excluded' | 'unmatched';

/** PEFT's check_target_module_exists: exclusions, modules_to_save guard, names/suffixes/regex, layer indices. */
export function checkTargetModule(config: LoraConfig, key: string): MatchResult {
  const ex = config.excludeModules;
  if (ex) {
    if (typeof ex === 'string') {
      if (fullMatch(ex, key)) return 'excluded';
    } else if (ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`))) return 'excluded';
  }
  // Adapters never go on modules that modules_to_save trains fully.
  if (config.modulesToSave?.some((m) => isModuleToSave(m, key))) return 'excluded';
  const targets = config.targetModules;
  if (targets === null) return 'unmatched';
  if (typeof targets === 'string') return fullMatch(targets, key) ? 'target' : 'unmatched';
  if (targets.includes(key)) return 'target';
  let found = targets.some((t) => key.endsWith(`.${t}`));
  const ltt = config.layersToTransform;
  const usingIndexes = ltt !== null && (Array.isArray(ltt) ? ltt.length > 0 : true);
  if (usingIndexes && found) {
    let index: number | null = null;
    const lp = config.layersPattern;
    if (lp === null || lp.length === 0) {
      const m = /^.*\.[^.]*\.(\d+)\./.exec(key);
      if (m) index = Number(m[1]);
    } else {
      for (const p of typeof lp === 'string' ? [lp] : lp) {
        index = layerIndexAfter(p, key);
        if (index !== null) break;
      }
    }
    found = index !== null && (typeof ltt === 'number' ? index === ltt : (ltt as number[]).includes(index));
  }
  return found ? 'target' : 'unmatched';
}

/** PEFT's get_pattern_key: the first rank/alpha pattern key whose regex matches the end of the module path. */
export function patternValue(pattern: Record<string, number>, key: string, fallback: number): number {
  for (const [p, v] of Object.entries(pattern)) {
    if (compileModulePattern(`(?:.*\\.)?(?:${p})`).fullMatch(key)) return v;
  }
  return fallback;
}

/** PEFT's _find_minimal_target_modules: the shortest suffixes that pick the targets and nothing else. */
export function minimalTargetModules(targets: readonly string[], others: readonly string[]): string[] {
  const targetSet = new Set(targets);
  const suffixes = (s: string): string[] => {
    const parts = s.split('.');
    return parts.map((_, i) => parts.slice(i).join('.')).reverse();
  };
  const otherSuffixes = new Set(others.flatMap(suffixes));
  const required = new Set<string>();
  const items = [...targetSet].map((t) => [t, suffixes(t)] as const);
  items.sort((a, b) => compareLists(a[1], b[1]));
  for (const [item, sfx] of items) {
    for (const s of sfx) {
      if (required.has(s) || otherSuffixes.has(s)) continue;
      if (![...required].some((req) => item.endsWith(`.${req}`))) {
        required.add(s);
        break;
      }
    }
  }
  return required.size === 0 ? [...targetSet] : [...required];
}

function compareLists(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

export interface ResolveOptions {
  /** model_type of the base model, for the default targets. */
  modelType?: string | null;
  /** Path of the output head (excluded by all-linear as PEFT excludes get_output_embeddings()). */
  outputEmbeddings?: string | null;
}

/**
 * Fills `config.targetModules` as PEFT does before injecting: the model type's defaults when none
 * are given, the list of Linear modules (minus the output head, or minus a classifier head for
 * SEQ_CLS models without one) for "all-linear", and condensation of long lists. Mutates and
 * returns `config`.
 */
export function resolveTargetModules(config: LoraConfig, modules: readonly ModuleEntry[], opts: ResolveOptions): LoraConfig {
  if (config.targetModules === null) {
    const defaults = opts.modelType ? DEFAULT_LORA_TARGET_MODULES[opts.modelType] : undefined;
    if (!defaults) {
      throw new Error(
        opts.modelType
          ? `LoRA: no default targetModules for model type "${opts.modelType}": pass targetModules (names such as ["q_proj", "v_proj"], a regex, or "all-linear")`
          : 'LoRA: targetModules not given and the model type is unknown: pass targetModules, or the modelType option (or a model with config.modelType)',
      );
    }
    config.targetModules = [...defaults];
  }
  const names = modules.map((m) => m.name).filter((n) => n !== '');
  if (typeof config.targetModules === 'string' && config.targetModules.toLowerCase() === ALL_LINEAR) {
    const exclude = new Set<string>();
    if (opts.outputEmbeddings) exclude.add(opts.outputEmbeddings);
    else if (config.taskType === 'SEQ_CLS') {
      const head = CLASSIFIER_HEAD_NAMES.find((h) => modules.some((m) => m.name === h));
      if (head) exclude.add(head);
    }
    config.targetModules = modules.filter((m) => m.kind === 'linear' && m.name !== '' && !exclude.has(m.name)).map((m) => m.name);
  }
  if (Array.isArray(config.targetModules) && config.targetModules.length >= MIN_TARGET_MODULES_FOR_OPTIMIZATION) {
    const targets = config.targetModules;
    const others = names.filter((n) => !targets.includes(n) && !targets.some((t) => n.endsWith(`.${t}`)));
    const condensed = minimalTargetModules(targets, others);
    if (condensed.length < targets.length) config.targetModules = condensed;
  }
  return config;
}

export interface TargetPlan {
  /** Modules that get an adapter, in tree order, with their rank and alpha. */
  targets: { name: string; kind: 'linear' | 'embedding'; r: number; alpha: number }[];
  excluded: string[];
}

/**
 * Which modules an adapter goes on, with PEFT's errors: a target that is not a Linear or Embedding,
 * nothing matched, everything excluded. `config.targetModules` must be resolved.
 */
export function planTargets(config: LoraConfig, modules: readonly ModuleEntry[]): TargetPlan {
  const targets: TargetPlan['targets'] = [];
  const excluded: string[] = [];
  const unmatched: string[] = [];
  for (const m of modules) {
    if (m.name === '') continue;
    const result = checkTargetModule(config, m.name);
    if (result === 'excluded') excluded.push(m.name);
    else if (result === 'unmatched') unmatched.push(m.name);
    else {
      if (m.kind === 'other') {
        throw new Error(
          `LoRA: target module "${m.name}" is a ${m.className ?? 'module'}: only Linear and Embedding modules can be adapted; pick its linear layers instead (targetModules ${describeTargets(config)})`,
        );
      }
      const r = patternValue(config.rankPattern, m.name, config.r);
      const alpha = patternValue(config.alphaPattern, m.name, config.loraAlpha);
      targets.push({ name: m.name, kind: m.kind, r, alpha });
    }
  }
  if (targets.length === 0) {
    const layers = config.layersToTransform !== null ? ` (with layersToTransform ${JSON.stringify(config.layersToTransform)})` : '';
    if (excluded.length > 0 && unmatched.length === 0) {
      throw new Error('LoRA: all modules were excluded: check targetModules, excludeModules and modulesToSave');
    }
    if (excluded.length > 0) {
      throw new Error(
        `LoRA: no module was targeted: targetModules ${describeTargets(config)}${layers} matched only modules that excludeModules or modulesToSave exclude`,
      );
    }
    const leaves = [...new Set(modules.filter((m) => m.kind !== 'other' && m.name !== '').map((m) => m.name.split('.').pop()!))];
    throw new Error(
      `LoRA: target modules ${describeTargets(config)} not found in the base model${layers}; its Linear and Embedding modules are named: ${leaves.join(', ') || 'none'}`,
    );
  }
  return { targets, excluded };
}

function describeTargets(config: LoraConfig): string {
  return JSON.stringify(config.targetModules);
}
