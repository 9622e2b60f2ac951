import type { DType } from '@peft/core';

/** What the models read from a Hugging Face `config.json`, normalised across architectures. */
export interface ModelConfig {
  modelType: 'gpt_neox' | 'llama';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Rotated features per head (GPT-NeoX: ⌊headDim · rotary_pct⌋; Llama: headDim). */
  rotaryDim: number;
  ropeTheta: number;
  /** Linear rope_scaling factor (1 when absent). */
  ropeScale: number;
  normEps: number;
  hiddenAct: 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'silu';
  /** GPT-NeoX: attention and MLP read the same input and add to it. */
  parallelResidual: boolean;
  attentionBias: boolean;
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

export const SUPPORTED_MODEL_TYPES = ['gpt_neox', 'llama'] as const;

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

function ropeScale(raw: Record<string, unknown>, file: string): number {
  const s = raw.rope_scaling as Record<string, unknown> | null | undefined;
  if (!s) return 1;
  const type = s.rope_type ?? s.type;
  if (type === 'linear') return field(s, file, 'factor', isNum, 'a number (rope_scaling.factor)');
  if (type === 'default') return 1;
  throw new Error(`${file}: rope_scaling type ${JSON.stringify(type)} is not supported: supported are "linear" and none`);
}

/** Parses and validates a config.json object; `file` names it in errors. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  const modelType = raw.model_type;
  if (modelType !== 'gpt_neox' && modelType !== 'llama') {
    throw new Error(`${file} has model_type ${JSON.stringify(modelType)}: supported are ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const hiddenSize = field(raw, file, 'hidden_size', isPosInt, 'a positive integer');
  const numHeads = field(raw, file, 'num_attention_heads', isPosInt, 'a positive integer');
  const numLayers = field(raw, file, 'num_hidden_layers', isPosInt, 'a positive integer');
  const vocabSize = field(raw, file, 'vocab_size', isPosInt, 'a positive integer');
  const intermediateSize = field(raw, file, 'intermediate_size', isPosInt, 'a positive integer');
  const headDim = field(raw, file, 'head_dim', isPosInt, 'a positive integer', Math.floor(hiddenSize / numHeads));
  if (!raw.head_dim && hiddenSize % numHeads !== 0) {
    throw new Error(`${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  }
  const hiddenAct = field(raw, file, 'hidden_act', isStr, 'an activation name', modelType === 'llama' ? 'silu' : 'gelu');
  if (!['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu'].includes(hiddenAct)) {
    throw new Error(`${file}: hidden_act "${hiddenAct}" is not supported: supported are gelu, gelu_new, gelu_pytorch_tanh, silu`);
  }
  const common = {
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    headDim,
    ropeScale: ropeScale(raw, file),
    hiddenAct: hiddenAct as ModelConfig['hiddenAct'],
    maxPositionEmbeddings: field(raw, file, 'max_position_embeddings', isPosInt, 'a positive integer', 2048),
    torchDtype: torchDtype(raw),
    bosTokenId: tokenId(raw, 'bos_token_id'),
    eosTokenId: tokenId(raw, 'eos_token_id'),
    padTokenId: tokenId(raw, 'pad_token_id'),
    raw,
  } as const;
  if (modelType === 'gpt_neox') {
    const rotaryPct = field(raw, file, 'rotary_pct', isNum, 'a number in (0, 1]', 1);
    if (!(rotaryPct > 0 && rotaryPct <= 1)) throw new Error(`${file}: rotary_pct ${rotaryPct} must be in (0, 1]`);
    const rotaryDim = Math.floor(headDim * rotaryPct);
    if (rotaryDim % 2 !== 0 || rotaryDim === 0)
      throw new Error(`${file}: rotary_pct ${rotaryPct} gives ${rotaryDim} rotary features per head: must be even and > 0`);
    return {
      ...common,
      numKvHeads: numHeads,
      rotaryDim,
      ropeTheta: field(raw, file, 'rotary_emb_base', isNum, 'a number', field(raw, file, 'rope_theta', isNum, 'a number', 10000)),
      normEps: field(raw, file, 'layer_norm_eps', isNum, 'a number', 1e-5),
      parallelResidual: field(raw, file, 'use_parallel_residual', isBool, 'true or false', true),
      attentionBias: field(raw, file, 'attention_bias', isBool, 'true or false', true),
      mlpBias: true,
      tieWordEmbeddings: field(raw, file, 'tie_word_embeddings', isBool, 'true or false', false),
    };
  }
  const numKvHeads = field(raw, file, 'num_key_value_heads', isPosInt, 'a positive integer', numHeads);
  if (numHeads % numKvHeads !== 0)
    throw new Error(`${file}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  return {
    ...common,
    numKvHeads,
    rotaryDim: headDim,
    ropeTheta: field(raw, file, 'rope_theta', isNum, 'a number', 10000),
    normEps: field(raw, file, 'rms_norm_eps', isNum, 'a number', 1e-6),
    parallelResidual: false,
    attentionBias: field(raw, file, 'attention_bias', isBool, 'true or false', false),
    mlpBias: field(raw, file, 'mlp_bias', isBool, 'true or false', false),
    tieWordEmbeddings: field(raw, file, 'tie_word_embeddings', isBool, 'true or false', false),
  };
}
