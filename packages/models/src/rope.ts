/**
 * Rotary position embedding settings from a config.json, in both forms transformers writes:
 * transformers ≥ 5 `rope_parameters: {rope_type, rope_theta, partial_rotary_factor, factor, …}`,
 * transformers 4 `rope_theta` + `rope_scaling` (Llama, Mistral, Qwen2) or `rotary_pct` +
 * `rotary_emb_base` (GPT-NeoX). The inverse frequencies and the attention scaling follow
 * transformers 5's `modeling_rope_utils.py` step by step, in float32 as it computes them.
 */

import { shortValue } from '@peft/core';

/** The rope_type values implemented (transformers' ROPE_INIT_FUNCTIONS for these models, and "default"). */
export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3', 'yarn', 'longrope'] as const;
export type RopeType = (typeof SUPPORTED_ROPE_TYPES)[number];

export interface RopeConfig {
  type: RopeType;
  /** rope_theta (GPT-NeoX: rotary_emb_base). */
  theta: number;
  /** Rotated features per head: ⌊headDim · partial_rotary_factor⌋. */
  rotaryDim: number;
  /** Scaling factor (linear, dynamic, llama3, yarn, longrope); 1 for default. */
  factor: number;
  /** max_position_embeddings (dynamic scales past it). */
  maxPositionEmbeddings: number;
  /** Pretraining context (llama3, yarn, longrope). */
  originalMaxPositionEmbeddings: number;
  /** llama3's low_freq_factor and high_freq_factor. */
  lowFreqFactor: number;
  highFreqFactor: number;
  /** yarn's beta_fast, beta_slow, truncate. */
  betaFast: number;
  betaSlow: number;
  truncate: boolean;
  /** longrope's short_factor and long_factor (rotaryDim / 2 each). */
  shortFactor: readonly number[];
  longFactor: readonly number[];
  /** cos and sin are multiplied by this (yarn, longrope; 1 otherwise). */
  attentionScaling: number;
}

const f32 = Math.fround;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const given = (v: unknown) => v !== undefined && v !== null;

/** Keys each rope_type reads besides rope_type / type, rope_theta and partial_rotary_factor (transformers 5's validation lists). */
const TYPE_KEYS: Record<RopeType, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  yarn: [
    'factor',
    'original_max_position_embeddings',
    'attention_factor',
    'beta_fast',
    'beta_slow',
    'mscale',
    'mscale_all_dim',
    'truncate',
  ],
  longrope: ['short_factor', 'long_factor', 'original_max_position_embeddings', 'attention_factor', 'factor'],
};
const REQUIRED: Record<RopeType, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor'],
  yarn: ['factor'],
  longrope: ['short_factor', 'long_factor'],
};

export interface RopeContext {
  modelType: string;
  headDim: number;
  maxPositionEmbeddings: number;
}

/** A value from config.json for a message: its JSON, cut to 120 characters. */
const shown = (v: unknown) => shortValue(v, { max: 120, count: true });

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The rope dict of a config.json as transformers 5 settles it, with checked reads: `get` reads the
 * dict, `top` the config's top level, `num` a finite number that passes `check`.
 */
interface RopeReader {
  file: string;
  ctx: RopeContext;
  neox: boolean;
  /** rope_scaling given without rope_parameters (transformers 4's form). */
  legacy: boolean;
  /** The dict's key in messages: rope_scaling or rope_parameters. */
  where: string;
  dict: Record<string, unknown>;
  get(key: string): unknown;
  top(key: string): unknown;
  num(v: unknown, name: string, check: (x: number) => boolean, what: string): number;
}

const positive = (x: number) => x > 0;
const posInt = (x: number) => Number.isInteger(x) && x > 0;

/**
 * Reads the rope settings of a config.json as transformers 5 reads them (a `rope_scaling` dict is
 * read as `rope_parameters`, and the top-level legacy keys fill what it leaves out). Settings two
 * keys give differently, and legacy configs that transformers 4 and 5 compute differently, are
 * errors that name the keys: neither reading is then safe to assume.
 */
export function parseRope(raw: Record<string, unknown>, file: string, ctx: RopeContext): RopeConfig {
  const r = ropeReader(raw, file, ctx);
  const type = readRopeType(r);
  const theta = readTheta(r);
  const rotaryDim = readRotaryDim(r);
  const rope: RopeConfig = {
    type,
    theta,
    rotaryDim,
    factor: 1,
    maxPositionEmbeddings: ctx.maxPositionEmbeddings,
    originalMaxPositionEmbeddings: ctx.maxPositionEmbeddings,
    lowFreqFactor: 1,
    highFreqFactor: 1,
    betaFast: 32,
    betaSlow: 1,
    truncate: true,
    shortFactor: [],
    longFactor: [],
    attentionScaling: 1,
  };
  if (type === 'default') return rope;
  const factorGiven = r.get('factor');
  if (factorGiven !== undefined) rope.factor = r.num(factorGiven, `${r.where}.factor`, positive, 'a positive number');
  if (type === 'linear' || type === 'dynamic') return rope;

  const { topOrig, dictOrig } = readOriginalMax(r, rope);
  if (type === 'llama3') return readLlama3(r, rope);
  const attentionFactor = r.get('attention_factor');
  if (attentionFactor !== undefined) r.num(attentionFactor, `${r.where}.attention_factor`, positive, 'a positive number');
  if (type === 'yarn') return readYarn(r, rope, attentionFactor as number | undefined, dictOrig);
  return readLongrope(r, rope, { factorGiven, topOrig, attentionFactor: attentionFactor as number | undefined });
}

/** The rope dict: rope_scaling or rope_parameters (they must agree when both are given). */
function ropeReader(raw: Record<string, unknown>, file: string, ctx: RopeContext): RopeReader {
  const params = raw.rope_parameters;
  const scaling = raw.rope_scaling;
  for (const [key, v] of [
    ['rope_parameters', params],
    ['rope_scaling', scaling],
  ] as const) {
    if (given(v) && !isObject(v)) throw new Error(`${file}: ${key} is ${shown(v)}: expected an object or null`);
  }
  const p = isObject(params) && Object.keys(params).length > 0 ? params : null;
  const s = isObject(scaling) && Object.keys(scaling).length > 0 ? scaling : null;
  if (p && s && !same(p, s)) {
    throw new Error(
      `${file}: rope_parameters ${shown(p)} and rope_scaling ${shown(s)} disagree: keep one (transformers 5 writes rope_parameters)`,
    );
  }
  // transformers 5: `self.rope_parameters = rope_scaling or self.rope_parameters`.
  const dict: Record<string, unknown> = s ?? p ?? {};
  const legacy = s !== null && p === null;
  return {
    file,
    ctx,
    neox: ctx.modelType === 'gpt_neox',
    legacy,
    where: legacy ? 'rope_scaling' : 'rope_parameters',
    dict,
    get: (key) => (given(dict[key]) ? dict[key] : undefined),
    top: (key) => (given(raw[key]) ? raw[key] : undefined),
    num: (v, name, check, what) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new Error(`${file}: ${name} is ${shown(v)}: expected ${what}`);
      return v;
    },
  };
}

/** rope_type (or its old name, type); every other key of the dict must be one that type reads. */
function readRopeType(r: RopeReader): RopeType {
  const { file, where } = r;
  const rt = r.get('rope_type');
  const t = r.get('type');
  if (rt !== undefined && t !== undefined && rt !== t) {
    throw new Error(`${file}: ${where}.rope_type ${shown(rt)} and ${where}.type ${shown(t)} disagree`);
  }
  const typeValue = rt ?? t ?? 'default';
  if (!SUPPORTED_ROPE_TYPES.includes(typeValue as RopeType)) {
    throw new Error(`${file}: ${where}.rope_type ${shown(typeValue)} is not supported: supported are ${SUPPORTED_ROPE_TYPES.join(', ')}`);
  }
  const type = typeValue as RopeType;
  for (const [key, v] of Object.entries(r.dict)) {
    if (!given(v)) continue;
    if (['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'].includes(key) || TYPE_KEYS[type].includes(key)) continue;
    throw new Error(
      `${file}: ${where}.${key} = ${shown(v)} is not understood with rope_type "${type}" (it reads ${['rope_theta', 'partial_rotary_factor', ...TYPE_KEYS[type]].join(', ')})`,
    );
  }
  for (const key of REQUIRED[type]) {
    if (r.get(key) === undefined) throw new Error(`${file}: ${where}.${key} is missing: rope_type "${type}" needs it`);
  }
  return type;
}

/** rope_theta: the dict's, else the top-level key of the model type, else 10000. */
function readTheta(r: RopeReader): number {
  const { file, where, neox } = r;
  const topThetaKey = neox ? 'rotary_emb_base' : 'rope_theta';
  const dictTheta = r.get('rope_theta');
  const topTheta = r.top(topThetaKey);
  if (dictTheta !== undefined && topTheta !== undefined && dictTheta !== topTheta) {
    throw new Error(`${file}: ${where}.rope_theta ${dictTheta} and ${topThetaKey} ${topTheta} disagree`);
  }
  if (r.legacy && dictTheta !== undefined && dictTheta !== (topTheta ?? 10000)) {
    throw new Error(
      `${file}: rope_scaling.rope_theta ${dictTheta}: transformers 4 ignores it (and uses ${topThetaKey} ${topTheta ?? '(absent: 10000)'}), transformers 5 uses it: move it to ${topThetaKey} or write rope_parameters`,
    );
  }
  const theta = r.num(
    dictTheta ?? topTheta ?? 10000,
    dictTheta !== undefined ? `${where}.rope_theta` : topThetaKey,
    positive,
    'a positive number',
  );
  if (neox && r.top('rope_theta') !== undefined && r.top('rope_theta') !== theta) {
    throw new Error(
      `${file}: rope_theta ${r.top('rope_theta')} is not what transformers' gpt_neox uses: it reads ${dictTheta !== undefined ? `${where}.rope_theta` : 'rotary_emb_base'} (${theta}): make them agree`,
    );
  }
  return theta;
}

/** Rotated features per head from partial_rotary_factor (GPT-NeoX: rotary_pct; others rotate all). */
function readRotaryDim(r: RopeReader): number {
  const { file, where, ctx } = r;
  const dictPrf = r.get('partial_rotary_factor');
  let prf: number;
  if (r.neox) {
    const pct = r.top('rotary_pct');
    if (dictPrf !== undefined && pct !== undefined && dictPrf !== pct) {
      throw new Error(`${file}: ${where}.partial_rotary_factor ${dictPrf} and rotary_pct ${pct} disagree`);
    }
    if (r.legacy && dictPrf !== undefined && dictPrf !== (pct ?? 0.25)) {
      throw new Error(
        `${file}: rope_scaling.partial_rotary_factor ${dictPrf}: transformers 4 ignores it (and uses rotary_pct ${pct ?? '(absent: 0.25)'}), transformers 5 uses it: set rotary_pct`,
      );
    }
    // transformers' GPT-NeoX default is a quarter of each head.
    prf = r.num(
      dictPrf ?? pct ?? 0.25,
      dictPrf !== undefined ? `${where}.partial_rotary_factor` : 'rotary_pct',
      (x) => x > 0 && x <= 1,
      'a number in (0, 1]',
    );
    const topPrf = r.top('partial_rotary_factor');
    if (topPrf !== undefined && topPrf !== prf) {
      throw new Error(
        `${file}: partial_rotary_factor ${topPrf} is not what transformers' gpt_neox uses: it reads ${dictPrf !== undefined ? `${where}.partial_rotary_factor` : 'rotary_pct'} (${prf}): make them agree`,
      );
    }
  } else {
    const topPrf = r.top('partial_rotary_factor');
    const v = dictPrf ?? topPrf;
    if (v !== undefined && v !== 1) {
      throw new Error(
        `${file}: ${dictPrf !== undefined ? `${where}.` : ''}partial_rotary_factor ${shown(v)} is not supported for ${ctx.modelType}: transformers rotates every feature of its heads (it ignores the key with the default rope and fails with the others)`,
      );
    }
    prf = 1;
  }
  const rotaryDim = Math.floor(ctx.headDim * prf);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) {
    throw new Error(
      `${file}: partial rotary factor ${prf} of head size ${ctx.headDim} gives ${rotaryDim} rotary features per head: must be even and > 0`,
    );
  }
  return rotaryDim;
}

/**
 * original_max_position_embeddings (llama3, yarn, longrope) into `rope`: transformers 5 prefers
 * the top-level key, then the dict's, then max_position_embeddings. Returns both keys as given.
 */
function readOriginalMax(r: RopeReader, rope: RopeConfig): { topOrig: unknown; dictOrig: unknown } {
  const { file, where } = r;
  const topOrig = r.top('original_max_position_embeddings');
  const dictOrig = r.get('original_max_position_embeddings');
  if (topOrig !== undefined && dictOrig !== undefined && topOrig !== dictOrig) {
    throw new Error(
      `${file}: original_max_position_embeddings ${topOrig} and ${where}.original_max_position_embeddings ${dictOrig} disagree (transformers 5 uses the first, 4 the second)`,
    );
  }
  const origKey = topOrig !== undefined ? 'original_max_position_embeddings' : `${where}.original_max_position_embeddings`;
  rope.originalMaxPositionEmbeddings = r.num(topOrig ?? dictOrig ?? r.ctx.maxPositionEmbeddings, origKey, posInt, 'a positive integer');
  return { topOrig, dictOrig };
}

/** llama3: low_freq_factor and high_freq_factor (above it). */
function readLlama3(r: RopeReader, rope: RopeConfig): RopeConfig {
  rope.lowFreqFactor = r.num(r.get('low_freq_factor'), `${r.where}.low_freq_factor`, positive, 'a positive number');
  rope.highFreqFactor = r.num(
    r.get('high_freq_factor'),
    `${r.where}.high_freq_factor`,
    (x) => x > rope.lowFreqFactor,
    `a number above low_freq_factor ${rope.lowFreqFactor}`,
  );
  return rope;
}

/** yarn: beta_fast, beta_slow, truncate, and the attention scaling (attention_factor or from mscale). */
function readYarn(r: RopeReader, rope: RopeConfig, attentionFactor: number | undefined, dictOrig: unknown): RopeConfig {
  const { file, where, ctx } = r;
  const orig = rope.originalMaxPositionEmbeddings;
  if (r.legacy && (dictOrig ?? ctx.maxPositionEmbeddings) !== orig) {
    throw new Error(
      `${file}: rope_scaling (yarn) without original_max_position_embeddings: transformers 4 uses max_position_embeddings ${ctx.maxPositionEmbeddings}, transformers 5 the top-level original_max_position_embeddings ${orig}: put it in rope_scaling`,
    );
  }
  const optional = (key: string, fallback: number) => {
    const v = r.get(key);
    return v === undefined ? fallback : r.num(v, `${where}.${key}`, (x) => Number.isFinite(x), 'a number');
  };
  // transformers: `rope_parameters.get("beta_fast") or 32` (0 counts as absent).
  rope.betaFast = optional('beta_fast', 32) || 32;
  rope.betaSlow = optional('beta_slow', 1) || 1;
  const truncate = r.get('truncate');
  if (truncate !== undefined && typeof truncate !== 'boolean')
    throw new Error(`${file}: ${where}.truncate is ${shown(truncate)}: expected true or false`);
  rope.truncate = truncate ?? true;
  const mscale = optional('mscale', 0);
  const mscaleAllDim = optional('mscale_all_dim', 0);
  const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  rope.attentionScaling =
    attentionFactor ??
    (mscale && mscaleAllDim ? getMscale(rope.factor, mscale) / getMscale(rope.factor, mscaleAllDim) : getMscale(rope.factor));
  return rope;
}

/**
 * longrope: short_factor and long_factor (rotaryDim / 2 positive numbers each), the factor
 * (max / original when not given) and the attention scaling; a legacy rope_scaling that
 * transformers 4 reads otherwise than 5 is an error.
 */
function readLongrope(
  r: RopeReader,
  rope: RopeConfig,
  keys: { factorGiven: unknown; topOrig: unknown; attentionFactor: number | undefined },
): RopeConfig {
  const { file, where, ctx } = r;
  const { factorGiven, topOrig, attentionFactor } = keys;
  const orig = rope.originalMaxPositionEmbeddings;
  const half = rope.rotaryDim / 2;
  for (const key of ['short_factor', 'long_factor'] as const) {
    const v = r.get(key);
    if (!Array.isArray(v) || v.length !== half || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      throw new Error(`${file}: ${where}.${key} is ${shown(v)}: expected ${half} positive numbers (rotary features / 2)`);
    }
    if (key === 'short_factor') rope.shortFactor = v as number[];
    else rope.longFactor = v as number[];
  }
  const factor = factorGiven !== undefined ? rope.factor : ctx.maxPositionEmbeddings / orig;
  rope.factor = factor;
  if (r.legacy && attentionFactor === undefined) {
    // transformers 4: original = top-level key or max_position_embeddings; factor = max / original when the top-level key is set.
    const orig4 = (topOrig as number | undefined) ?? ctx.maxPositionEmbeddings;
    const factor4 = topOrig !== undefined ? ctx.maxPositionEmbeddings / (topOrig as number) : (factorGiven as number | undefined);
    if (orig4 !== orig || factor4 !== factor) {
      throw new Error(
        `${file}: rope_scaling (longrope): transformers 4 reads original_max_position_embeddings ${orig4} and factor ${factor4}, transformers 5 ${orig} and ${factor}: write rope_parameters (transformers 5's form) to say which`,
      );
    }
  } else if (r.legacy && (topOrig ?? ctx.maxPositionEmbeddings) !== orig) {
    throw new Error(
      `${file}: rope_scaling (longrope): transformers 4 switches to long_factor past ${topOrig ?? ctx.maxPositionEmbeddings} tokens, transformers 5 past ${orig}: write rope_parameters (transformers 5's form) to say which`,
    );
  }
  rope.attentionScaling = attentionFactor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
  return rope;
}

/** base^(−2i/dim) for i < dim/2, in float32 as transformers computes it. */
function defaultInvFreq(base: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f32(1 / f32(base ** f32((2 * i) / dim)));
  return out;
}

/** dynamic: the base transformers uses for a batch whose largest position is seqLen − 1. */
export function dynamicBase(rope: RopeConfig, seqLen: number): number {
  const dim = rope.rotaryDim;
  if (seqLen <= rope.maxPositionEmbeddings) return rope.theta;
  // transformers: base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2)), float32 tensors.
  const ratio = f32(f32(f32(f32(rope.factor) * seqLen) / rope.maxPositionEmbeddings) - f32(rope.factor - 1));
  return f32(f32(rope.theta) * f32(ratio ** f32(dim / (dim - 2))));
}

/**
 * The inverse frequencies (rotaryDim / 2, float32) and the cos/sin scaling transformers' rotary
 * embedding uses for a batch whose largest position id is `seqLen − 1` (dynamic and longrope
 * depend on it; transformers keeps dynamic's longest length until a batch fits the original
 * context again, here each batch is computed on its own, as a fresh model computes it).
 */
export function ropeFrequencies(rope: RopeConfig, seqLen: number): { invFreq: Float32Array; attentionScaling: number } {
  const dim = rope.rotaryDim;
  const half = dim / 2;
  switch (rope.type) {
    case 'default':
      return { invFreq: defaultInvFreq(rope.theta, dim), attentionScaling: 1 };
    case 'linear': {
      const inv = defaultInvFreq(rope.theta, dim);
      for (let i = 0; i < half; i++) inv[i] = f32(inv[i]! / f32(rope.factor));
      return { invFreq: inv, attentionScaling: 1 };
    }
    case 'dynamic':
      return { invFreq: defaultInvFreq(dynamicBase(rope, seqLen), dim), attentionScaling: 1 };
    case 'llama3': {
      const inv = defaultInvFreq(rope.theta, dim);
      const { factor, lowFreqFactor: low, highFreqFactor: high } = rope;
      const old = rope.originalMaxPositionEmbeddings;
      // Python scalars meet float32 tensors: each operation rounds to float32.
      const lowWavelen = f32(old / low);
      const highWavelen = f32(old / high);
      for (let i = 0; i < half; i++) {
        const wavelen = f32(f32(2 * Math.PI) / inv[i]!);
        const llama = wavelen > lowWavelen ? f32(inv[i]! / f32(factor)) : inv[i]!;
        const smooth = f32(f32(f32(old / wavelen) - f32(low)) / f32(high - low));
        const smoothed = f32(f32(f32(f32(1 - smooth) * llama) / f32(factor)) + f32(smooth * llama));
        inv[i] = !(wavelen < highWavelen) && !(wavelen > lowWavelen) ? smoothed : llama;
      }
      return { invFreq: inv, attentionScaling: 1 };
    }
    case 'yarn': {
      const { theta: base, factor, betaFast, betaSlow, truncate } = rope;
      const orig = rope.originalMaxPositionEmbeddings;
      const correctionDim = (rotations: number) => (dim * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) {
        const posFreq = f32(base ** f32((2 * i) / dim));
        const extrapolation = f32(1 / posFreq);
        const interpolation = f32(1 / f32(f32(factor) * posFreq));
        const ramp = Math.min(Math.max(f32(f32(i - f32(low)) / f32(high - low)), 0), 1);
        const extrapolationFactor = f32(1 - ramp);
        inv[i] = f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
      }
      return { invFreq: inv, attentionScaling: rope.attentionScaling };
    }
    case 'longrope': {
      const ext = seqLen > rope.originalMaxPositionEmbeddings ? rope.longFactor : rope.shortFactor;
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(f32(ext[i]!) * f32(rope.theta ** f32((2 * i) / dim))));
      return { invFreq: inv, attentionScaling: rope.attentionScaling };
    }
  }
}

/**
 * Whether `rotary(x, positions, { base, positionScale })` computes this rope (default, linear,
 * dynamic: base^(−2i/dim) / scale with a per-batch base); otherwise cos/sin tables are built from
 * ropeFrequencies.
 */
export function fusedRope(rope: RopeConfig, seqLen: number): { base: number; positionScale: number } | null {
  if (rope.type === 'default') return { base: rope.theta, positionScale: 1 };
  if (rope.type === 'linear') return { base: rope.theta, positionScale: rope.factor };
  if (rope.type === 'dynamic') return { base: dynamicBase(rope, seqLen), positionScale: 1 };
  return null;
}

/** Whether the rope depends on the batch's longest position (dynamic, longrope). */
export function ropeNeedsLength(rope: RopeConfig): boolean {
  return rope.type === 'dynamic' || rope.type === 'longrope';
}
