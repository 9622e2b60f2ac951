import type { DType } from '@peft/core';
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
  if (!check(v)) throw new Error(`${file}: field "${key}" is ${JSON.stringify(v)}: expected ${what}`);
  return v;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';

function tokenId(raw: Record<string, unknown>, key: string): number | null {
  const v = raw[key];
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return null;
}

function torchDtype(raw: Record<string, unknown>): DType | null {
  const v = raw.torch_dtype ?? raw.dtype;
  if (v === 'float32') return 'float32';
  if (v === 'float16') return 'float16';
  if (v === 'bfloat16') return 'bfloat16';
  return null;
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
    if (!isPosInt(w)) throw new Error(`${file}: field "sliding_window" is ${JSON.stringify(w)}: expected a positive integer or null`);
    return full.fill(w);
  }
  if (modelType !== 'qwen2') return full;
  const use = field(raw, file, 'use_sliding_window', isBool, 'true or false', false);
  // Qwen2Config: sliding_window = sliding_window if use_sliding_window else None (default 4096).
  const w = use ? ('sliding_window' in raw ? raw.sliding_window : 4096) : null;
  if (w !== null && !isPosInt(w))
    throw new Error(`${file}: field "sliding_window" is ${JSON.stringify(w)}: expected a positive integer or null`);
  let types: unknown = raw.layer_types;
  if (types === undefined || types === null) {
    const maxWindowLayers = field(
      raw,
      file,
      'max_window_layers',
      (v): v is number => Number.isInteger(v) && (v as number) >= 0,
      'an integer ≥ 0',
      28,
    );
    types = Array.from({ length: numLayers }, (_, i) => (w !== null && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
  }
  if (!Array.isArray(types) || types.length !== numLayers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
    throw new Error(
      `${file}: field "layer_types" is ${JSON.stringify(types)}: expected ${numLayers} entries (num_hidden_layers), each "full_attention" or "sliding_attention"`,
    );
  }
  return types.map((t) => (t === 'sliding_attention' ? (w as number | null) : null));
}

/** Parses and validates a config.json object; `file` names it in errors. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  const modelType = raw.model_type;
  if (!SUPPORTED_MODEL_TYPES.includes(modelType as ModelType)) {
    throw new Error(`${file} has model_type ${JSON.stringify(modelType)}: supported are ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const type = modelType as ModelType;
  const neox = type === 'gpt_neox';
  const defaults = DEFAULTS[type];
  const hiddenSize = field(raw, file, 'hidden_size', isPosInt, 'a positive integer');
  const numHeads = field(raw, file, 'num_attention_heads', isPosInt, 'a positive integer');
  const numLayers = field(raw, file, 'num_hidden_layers', isPosInt, 'a positive integer');
  const vocabSize = field(raw, file, 'vocab_size', isPosInt, 'a positive integer');
  const intermediateSize = field(raw, file, 'intermediate_size', isPosInt, 'a positive integer');
  const givenHeadDim =
    raw.head_dim === undefined || raw.head_dim === null ? null : field(raw, file, 'head_dim', isPosInt, 'a positive integer');
  if ((givenHeadDim === null || neox) && hiddenSize % numHeads !== 0) {
    throw new Error(`${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  }
  if (neox && givenHeadDim !== null && givenHeadDim !== hiddenSize / numHeads) {
    throw new Error(
      `${file}: head_dim ${givenHeadDim} is not hidden_size / num_attention_heads (${hiddenSize / numHeads}), which transformers' gpt_neox always uses`,
    );
  }
  const headDim = givenHeadDim ?? hiddenSize / numHeads;
  const hiddenAct = field(raw, file, 'hidden_act', isStr, 'an activation name', defaults.hiddenAct);
  if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu'].includes(hiddenAct)) {
    throw new Error(`${file}: hidden_act "${hiddenAct}" is not supported: supported are gelu, gelu_new, gelu_pytorch_tanh, silu`);
  }
  const maxPositionEmbeddings = field(raw, file, 'max_position_embeddings', isPosInt, 'a positive integer', defaults.maxPositionEmbeddings);
  const rope = parseRope(raw, file, { modelType: type, headDim, maxPositionEmbeddings });
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
    torchDtype: torchDtype(raw),
    bosTokenId: tokenId(raw, 'bos_token_id'),
    eosTokenId: tokenId(raw, 'eos_token_id'),
    padTokenId: tokenId(raw, 'pad_token_id'),
    raw,
  } as const;
  if (neox) {
    const bias = field(raw, file, 'attention_bias', isBool, 'true or false', true);
    return {
      ...common,
      numKvHeads: numHeads,
      normEps: field(raw, file, 'layer_norm_eps', isNum, 'a number', 1e-5),
      parallelResidual: field(raw, file, 'use_parallel_residual', isBool, 'true or false', true),
      attentionBias: bias,
      attentionOutputBias: bias,
      mlpBias: true,
    };
  }
  // transformers' defaults for a missing num_key_value_heads: Llama all heads, Mistral 8, Qwen2 32.
  const kvDefault = type === 'mistral' ? 8 : type === 'qwen2' ? 32 : numHeads;
  const numKvHeads = field(raw, file, 'num_key_value_heads', isPosInt, 'a positive integer', kvDefault);
  if (numHeads % numKvHeads !== 0)
    throw new Error(`${file}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  // Llama reads attention_bias and mlp_bias; Mistral has no biases; Qwen2 has q, k and v biases only.
  const llamaBias = type === 'llama' ? field(raw, file, 'attention_bias', isBool, 'true or false', false) : false;
  return {
    ...common,
    numKvHeads,
    normEps: field(raw, file, 'rms_norm_eps', isNum, 'a number', 1e-6),
    parallelResidual: false,
    attentionBias: type === 'qwen2' ? true : llamaBias,
    attentionOutputBias: llamaBias,
    mlpBias: type === 'llama' ? field(raw, file, 'mlp_bias', isBool, 'true or false', false) : false,
  };
}
