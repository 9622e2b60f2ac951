import type { DType } from '@peft/core';
import { shortValue } from '@peft/core';
import { parseRope, type RopeConfig } from './rope.js';

/** What the models read from a Hugging Face `config.json`, normalised across architectures. */
export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Rotated features per head (GPT-NeoX: ⌊headDim · partial_rotary_factor⌋; the others: headDim). */
  rotaryDim: number;
  /** rope_theta (GPT-NeoX: rotary_emb_base). */
  ropeTheta: number;
  /** The linear rope factor (1 for the other rope types). */
  ropeScale: number;
  /** Every rope setting (rope_type and its parameters), from rope_parameters or the legacy keys. */
  rope: RopeConfig;
  /**
   * Per layer, the sliding attention window (a query sees the keys at most window − 1 tokens
   * back), or null for full causal attention: Mistral's sliding_window, Qwen2's layer_types.
   */
  slidingWindows: (number | null)[];
  normEps: number;
  hiddenAct: 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'silu';
  /** GPT-NeoX: attention and MLP read the same input and add to it. */
  parallelResidual: boolean;
  /** Biases of the query, key and value projections. */
  attentionBias: boolean;
  /** Bias of the attention output projection (o_proj, dense). */
  attentionOutputBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  torchDtype: DType | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  /** The parsed config.json as it was, for saving back. */
  raw: Record<string, unknown>;
}

export const SUPPORTED_MODEL_TYPES = ['gpt_neox', 'llama', 'mistral', 'qwen2'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

function field<T>(raw: Record<string, unknown>, file: string, key: string, check: (v: unknown) => v is T, what: string, fallback?: T): T {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new Error(`${file}: field "${key}" is missing: expected ${what}`);
  }
  if (!check(v)) throw new Error(`${file}: field "${key}" is ${show(v)}: expected ${what}`);
  return v;
}

/** A config value for an error message: as JSON when short, else cut (strings) or summarised (arrays, objects). */
function show(v: unknown): string {
  if (typeof v === 'string') return shortValue(v, { as: 'string', max: 40, markOutside: true, count: true });
  if (v === null || typeof v !== 'object') return String(v);
  const size = Array.isArray(v) ? v.length : Object.keys(v).length;
  if (size <= 16) {
    try {
      const text = JSON.stringify(v);
      if (text.length <= 120) return text;
    } catch {
      // A value built in code (circular, BigInt): summarised below.
    }
  }
  return Array.isArray(v) ? `an array of ${size} item${size === 1 ? '' : 's'}` : `an object with ${size} key${size === 1 ? '' : 's'}`;
}

/** An integer field within [min, max] (sizes the model and its arrays: absurd values are refused here). */
function intField(raw: Record<string, unknown>, file: string, key: string, min: number, max: number, fallback?: number): number {
  return field(
    raw,
    file,
    key,
    (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max,
    min === 1 ? `a positive integer (at most ${max})` : `an integer from ${min} to ${max}`,
    fallback,
  );
}

/**
 * Bounds on the sizes config.json gives. They are far above any released model of these
 * architectures (Llama 3.1 405B: hidden 16384, 126 layers, vocab 128256, intermediate 53248) and
 * keep every tensor within what a typed array holds.
 */
export const CONFIG_LIMITS = {
  hiddenSize: 1 << 17,
  numHeads: 1 << 14,
  headDim: 1 << 14,
  numLayers: 10_000,
  vocabSize: 1 << 24,
  intermediateSize: 1 << 20,
  maxPositionEmbeddings: 2 ** 30,
  /** Elements of one weight matrix: the longest typed array (2^32 − 1). */
  tensorElements: 2 ** 32 - 1,
} as const;

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';
const isEps = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1;
const isTokenId = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v);

function tokenId(raw: Record<string, unknown>, file: string, key: string): number | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (isTokenId(v)) return v as number;
  if (Array.isArray(v) && v.length <= 4096 && v.every(isTokenId)) return v.length > 0 ? (v[0] as number) : null;
  throw new Error(`${file}: field "${key}" is ${show(v)}: expected a token id (an integer), a list of token ids, or null`);
}

const TORCH_DTYPES: Record<string, DType | null> = {
  float32: 'float32',
  float16: 'float16',
  bfloat16: 'bfloat16',
  // Loaded as the default, float32.
  float64: null,
  auto: null,
};

function torchDtype(raw: Record<string, unknown>, file: string): DType | null {
  const key = raw.torch_dtype !== undefined && raw.torch_dtype !== null ? 'torch_dtype' : 'dtype';
  const v = raw[key];
  if (v === undefined || v === null) return null;
  const name = typeof v === 'string' ? v.replace(/^torch\./, '') : null;
  if (name === null || !(name in TORCH_DTYPES)) {
    throw new Error(`${file}: field "${key}" is ${show(v)}: expected one of ${Object.keys(TORCH_DTYPES).join(', ')}`);
  }
  return TORCH_DTYPES[name] ?? null;
}

/** transformers' defaults where config.json leaves a key out, per model type. */
const DEFAULTS: Record<ModelType, { maxPositionEmbeddings: number; hiddenAct: string }> = {
  gpt_neox: { maxPositionEmbeddings: 2048, hiddenAct: 'gelu' },
  llama: { maxPositionEmbeddings: 2048, hiddenAct: 'silu' },
  mistral: { maxPositionEmbeddings: 4096 * 32, hiddenAct: 'silu' },
  qwen2: { maxPositionEmbeddings: 32768, hiddenAct: 'silu' },
};

/** Per-layer sliding windows as transformers' Mistral and Qwen2 set them (null: full attention). */
function slidingWindows(raw: Record<string, unknown>, file: string, modelType: ModelType, numLayers: number): (number | null)[] {
  const full = Array<number | null>(numLayers).fill(null);
  if (modelType === 'mistral') {
    // MistralConfig's sliding_window defaults to 4096 when the key is absent; null turns it off.
    const w = 'sliding_window' in raw ? raw.sliding_window : 4096;
    if (w === null) return full;
    if (!isPosInt(w)) throw new Error(`${file}: field "sliding_window" is ${show(w)}: expected a positive integer or null`);
    return full.fill(w);
  }
  if (modelType !== 'qwen2') return full;
  const use = field(raw, file, 'use_sliding_window', isBool, 'true or false', false);
  // Qwen2Config: sliding_window = sliding_window if use_sliding_window else None (default 4096).
  const w = use ? ('sliding_window' in raw ? raw.sliding_window : 4096) : null;
  if (w !== null && !isPosInt(w)) throw new Error(`${file}: field "sliding_window" is ${show(w)}: expected a positive integer or null`);
  let types: unknown = raw.layer_types;
  if (types === undefined || types === null) {
    const maxWindowLayers = field(
      raw,
      file,
      'max_window_layers',
      (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0,
      'an integer ≥ 0',
      28,
    );
    types = Array.from({ length: numLayers }, (_, i) => (w !== null && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
  }
  if (!Array.isArray(types) || types.length !== numLayers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
    throw new Error(
      `${file}: field "layer_types" is ${show(types)}: expected ${numLayers} entries (num_hidden_layers), each "full_attention" or "sliding_attention"`,
    );
  }
  return types.map((t) => (t === 'sliding_attention' ? (w as number | null) : null));
}

/** Parses and validates a config.json object; `file` names it in errors. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${file} must hold a JSON object of model settings, got ${show(raw)}`);
  }
  const modelType = raw.model_type;
  if (modelType === undefined) {
    throw new Error(
      `${file} has no "model_type": expected one of ${SUPPORTED_MODEL_TYPES.join(', ')} (is this a Hugging Face model folder?)`,
    );
  }
  if (!SUPPORTED_MODEL_TYPES.includes(modelType as ModelType)) {
    throw new Error(`${file} has model_type ${show(modelType)}: supported are ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const L = CONFIG_LIMITS;
  const type = modelType as ModelType;
  const neox = type === 'gpt_neox';
  const defaults = DEFAULTS[type];
  const hiddenSize = intField(raw, file, 'hidden_size', 1, L.hiddenSize);
  const numHeads = intField(raw, file, 'num_attention_heads', 1, L.numHeads);
  const numLayers = intField(raw, file, 'num_hidden_layers', 1, L.numLayers);
  const vocabSize = intField(raw, file, 'vocab_size', 1, L.vocabSize);
  const intermediateSize = intField(raw, file, 'intermediate_size', 1, L.intermediateSize);
  const givenHeadDim = raw.head_dim === undefined || raw.head_dim === null ? null : intField(raw, file, 'head_dim', 1, L.headDim);
  if ((givenHeadDim === null || neox) && hiddenSize % numHeads !== 0) {
    throw new Error(
      `${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}: each head needs hidden_size / num_attention_heads features`,
    );
  }
  if (neox && givenHeadDim !== null && givenHeadDim !== hiddenSize / numHeads) {
    throw new Error(
      `${file}: head_dim ${givenHeadDim} is not hidden_size / num_attention_heads (${hiddenSize / numHeads}), which transformers' gpt_neox always uses`,
    );
  }
  const headDim = givenHeadDim ?? hiddenSize / numHeads;
  const hiddenAct = field(raw, file, 'hidden_act', isStr, 'an activation name', defaults.hiddenAct);
  if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu'].includes(hiddenAct)) {
    throw new Error(`${file}: hidden_act ${show(hiddenAct)} is not supported: supported are gelu, gelu_new, gelu_pytorch_tanh, silu`);
  }
  const maxPositionEmbeddings = intField(raw, file, 'max_position_embeddings', 1, L.maxPositionEmbeddings, defaults.maxPositionEmbeddings);
  const range = raw.initializer_range;
  if (range !== undefined && range !== null && !(typeof range === 'number' && Number.isFinite(range) && range >= 0 && range <= 1)) {
    throw new Error(`${file}: field "initializer_range" is ${show(range)}: expected a number from 0 to 1`);
  }
  const rope = boundedMessage(() => parseRope(raw, file, { modelType: type, headDim, maxPositionEmbeddings }));
  const common = {
    modelType: type,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    headDim,
    rope,
    rotaryDim: rope.rotaryDim,
    ropeTheta: rope.theta,
    ropeScale: rope.type === 'linear' ? rope.factor : 1,
    slidingWindows: slidingWindows(raw, file, type, numLayers),
    hiddenAct: hiddenAct as ModelConfig['hiddenAct'],
    maxPositionEmbeddings,
    tieWordEmbeddings: field(raw, file, 'tie_word_embeddings', isBool, 'true or false', false),
    torchDtype: torchDtype(raw, file),
    bosTokenId: tokenId(raw, file, 'bos_token_id'),
    eosTokenId: tokenId(raw, file, 'eos_token_id'),
    padTokenId: tokenId(raw, file, 'pad_token_id'),
    raw,
  } as const;
  let config: ModelConfig;
  if (neox) {
    const bias = field(raw, file, 'attention_bias', isBool, 'true or false', true);
    field(raw, file, 'hidden_dropout', (v): v is number => typeof v === 'number' && v >= 0 && v < 1, 'a probability in [0, 1)', 0);
    config = {
      ...common,
      numKvHeads: numHeads,
      normEps: field(raw, file, 'layer_norm_eps', isEps, 'a number in [0, 1)', 1e-5),
      parallelResidual: field(raw, file, 'use_parallel_residual', isBool, 'true or false', true),
      attentionBias: bias,
      attentionOutputBias: bias,
      mlpBias: true,
    };
  } else {
    // transformers' defaults for a missing num_key_value_heads: Llama all heads, Mistral 8, Qwen2 32.
    const kvDefault = type === 'mistral' ? 8 : type === 'qwen2' ? 32 : numHeads;
    const numKvHeads = intField(raw, file, 'num_key_value_heads', 1, L.numHeads, kvDefault);
    if (numHeads % numKvHeads !== 0)
      throw new Error(
        `${file}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}: each key/value head serves a whole group of query heads`,
      );
    // Llama reads attention_bias and mlp_bias; Mistral has no biases; Qwen2 has q, k and v biases only.
    const llamaBias = type === 'llama' ? field(raw, file, 'attention_bias', isBool, 'true or false', false) : false;
    config = {
      ...common,
      numKvHeads,
      normEps: field(raw, file, 'rms_norm_eps', isEps, 'a number in [0, 1)', 1e-6),
      parallelResidual: false,
      attentionBias: type === 'qwen2' ? true : llamaBias,
      attentionOutputBias: llamaBias,
      mlpBias: type === 'llama' ? field(raw, file, 'mlp_bias', isBool, 'true or false', false) : false,
    };
  }
  checkTensorSizes(config, file);
  return config;
}

/** Longest error message passed on from the rope settings' reader, which quotes the values it refuses. */
const MAX_MESSAGE = 1000;

/**
 * Runs `read`, cutting an over-long error message (a rope dict with thousands of factors is
 * quoted whole) to its start, which names the key, and its end, which says what was expected.
 */
function boundedMessage<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof Error) || error.message.length <= MAX_MESSAGE) throw error;
    const m = error.message;
    throw new Error(`${m.slice(0, 600)} … (${m.length - 900} characters cut) … ${m.slice(-300)}`);
  }
}

/** Refuses a config whose weight matrices would not fit one typed array each. */
function checkTensorSizes(c: ModelConfig, file: string): void {
  const attention = Math.max(c.numHeads, c.modelType === 'gpt_neox' ? 3 * c.numHeads : c.numHeads) * c.headDim;
  const sizes: Array<[string, number]> = [
    ['vocab_size × hidden_size (the embedding)', c.vocabSize * c.hiddenSize],
    ['intermediate_size × hidden_size (an MLP projection)', c.intermediateSize * c.hiddenSize],
    ['the attention projection (heads × head_dim × hidden_size)', attention * c.hiddenSize],
  ];
  for (const [what, elements] of sizes) {
    if (elements > CONFIG_LIMITS.tensorElements) {
      throw new Error(
        `${file}: ${what} is ${elements} elements, more than one tensor can hold (${CONFIG_LIMITS.tensorElements}): hidden_size ${c.hiddenSize}, vocab_size ${c.vocabSize}, intermediate_size ${c.intermediateSize}, num_attention_heads ${c.numHeads}, head_dim ${c.headDim}`,
      );
    }
  }
}
