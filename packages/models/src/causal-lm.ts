import { type Backend, type DType, type Generator, keep, Linear, Module, type Tensor, tidy } from '@peft/core';
import type { ModelConfig } from './config.js';
import {
  type BuildOptions,
  checkVocab,
  type ForwardInput,
  type KVCache,
  type LayerContext,
  paramInit,
  prepareInput,
} from './models/common.js';
import { GPTNeoXModel, gptNeoXParameterShapes } from './models/gpt-neox.js';
import { LlamaModel, llamaParameterShapes } from './models/llama.js';

/** The decoder without its LM head: token ids → last hidden states [batch, seq, hidden]. */
export interface BaseModel extends Module {
  gradientCheckpointing: boolean;
  forward(ids: Tensor, ctx: LayerContext): Tensor;
}

export interface CausalLMOutput {
  /** [batch, seq, vocab]. */
  logits: Tensor;
  /** Final hidden states [batch, seq, hidden], when asked for. */
  hiddenStates?: Tensor;
}

export interface CreateModelOptions {
  backend: Backend;
  /** Storage dtype of the weights; default float32. */
  dtype?: DType;
  /**
   * 'random' (default) draws weights with PyTorch's layer defaults; 'transformers' as transformers'
   * `_init_weights` does (Linear and Embedding weights N(0, initializer_range²), biases zero), so
   * a random model starts where a `from_config` one does; 'zeros' draws nothing (before loading).
   */
  init?: 'random' | 'zeros' | 'transformers';
  generator?: Generator;
}

/**
 * A decoder LM with Hugging Face's module tree and parameter names: `gpt_neox.*` + `embed_out`
 * for GPT-NeoX, `model.*` + `lm_head` for Llama.
 */
export class CausalLM extends Module {
  readonly baseName: 'gpt_neox' | 'model';
  readonly headName: 'embed_out' | 'lm_head';
  readonly backend: Backend;
  readonly dtype: DType;
  /** The folder the weights came from (transformers' `name_or_path`), set by `AutoModelFor….fromPretrained`; a saved adapter records it as base_model_name_or_path. */
  nameOrPath: string | null = null;

  constructor(
    readonly config: ModelConfig,
    opts: CreateModelOptions,
  ) {
    super();
    this.backend = opts.backend;
    this.dtype = opts.dtype ?? 'float32';
    const range = config.raw.initializer_range;
    const build: BuildOptions = {
      backend: opts.backend,
      dtype: this.dtype,
      init: opts.init ?? 'random',
      initializerRange: typeof range === 'number' && range > 0 ? range : 0.02,
      generator: opts.generator,
    };
    const neox = config.modelType === 'gpt_neox';
    this.baseName = neox ? 'gpt_neox' : 'model';
    this.headName = neox ? 'embed_out' : 'lm_head';
    const base = neox ? new GPTNeoXModel(config, build) : new LlamaModel(config, build);
    this.registerModule(this.baseName, base);
    const head = this.registerModule(
      this.headName,
      new Linear(config.hiddenSize, config.vocabSize, {
        backend: opts.backend,
        dtype: this.dtype,
        bias: false,
        init: paramInit(build),
        generator: opts.generator,
      }),
    );
    if (config.tieWordEmbeddings) {
      const untied = head.weight;
      head.registerParameter('weight', base.getParameter(neox ? 'embed_in.weight' : 'embed_tokens.weight'));
      untied.dispose();
    }
  }

  /** The base model (heads pool its hidden states). */
  get base(): BaseModel {
    return this.getSubmodule(this.baseName) as unknown as BaseModel;
  }

  get lmHead(): Linear {
    return this.getSubmodule(this.headName) as Linear;
  }

  /** Recompute each layer's forward in backward instead of keeping its activations. */
  get gradientCheckpointing(): boolean {
    return this.base.gradientCheckpointing;
  }

  set gradientCheckpointing(on: boolean) {
    this.base.gradientCheckpointing = on;
  }

  /** Final hidden states [batch, seq, hidden]. */
  hiddenStates(input: ForwardInput): Tensor {
    checkVocab(this.config, input.inputIds);
    return tidy(() => {
      const p = prepareInput(this.backend, input);
      return this.base.forward(p.ids, p.ctx);
    });
  }

  /**
   * Logits [batch, seq, vocab]. With `cache`, only the new tokens are given (their mask covers
   * cached + new tokens) and the cache grows by them.
   */
  forward(input: ForwardInput, opts: { outputHiddenStates?: boolean; cache?: KVCache } = {}): CausalLMOutput {
    checkVocab(this.config, input.inputIds);
    return tidy(() => {
      const p = prepareInput(this.backend, input, opts.cache?.length ?? 0);
      if (opts.cache) p.ctx.cache = opts.cache;
      const hidden = this.base.forward(p.ids, p.ctx);
      const logits = this.lmHead.forward(hidden);
      return opts.outputHiddenStates ? { logits, hiddenStates: hidden } : { logits };
    });
  }

  /** Parameter counts (tied weights once). */
  parameterCount(): { total: number; trainable: number } {
    let total = 0;
    let trainable = 0;
    for (const t of this.parameters()) {
      total += t.size;
      if (t.requiresGrad) trainable += t.size;
    }
    return { total, trainable };
  }
}

/**
 * The parameter names and shapes a `CausalLM` of this config has, in `namedParameters()` order
 * (a tied LM head is listed once, under the embedding's name), computed without allocating
 * anything: loading checks a checkpoint against it before building the model.
 */
export function causalLMParameterShapes(config: ModelConfig): Array<[string, number[]]> {
  const neox = config.modelType === 'gpt_neox';
  const baseName = neox ? 'gpt_neox' : 'model';
  const base = (neox ? gptNeoXParameterShapes(config) : llamaParameterShapes(config)).map(([n, shape]): [string, number[]] => [
    `${baseName}.${n}`,
    shape,
  ]);
  if (!config.tieWordEmbeddings) base.push([`${neox ? 'embed_out' : 'lm_head'}.weight`, [config.vocabSize, config.hiddenSize]]);
  return base;
}

export function createModel(config: ModelConfig, opts: CreateModelOptions): CausalLM {
  return keep(new CausalLM(config, opts));
}
