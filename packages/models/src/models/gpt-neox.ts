import { add, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, reshape, type Tensor } from '@peft/core';
import type { ModelConfig } from '../config.js';
import {
  activation,
  type BuildOptions,
  headPart,
  type LayerContext,
  linearOptions,
  paramInit,
  rotaryAttention,
  runLayers,
  withRope,
} from './common.js';

/** GPTNeoXAttention: one fused query_key_value projection laid out per head as [heads, 3, headDim]. */
export class GPTNeoXAttention extends Module {
  readonly query_key_value: Linear;
  readonly dense: Linear;

  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    const h = config.hiddenSize;
    this.query_key_value = this.registerModule('query_key_value', new Linear(h, 3 * h, linearOptions(opts, config.attentionBias)));
    this.dense = this.registerModule('dense', new Linear(h, h, linearOptions(opts, config.attentionOutputBias)));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const { numHeads, headDim } = this.config;
    const [b, t] = x.shape as [number, number];
    const qkv = reshape(this.current('query_key_value').forward(x), [b, t, numHeads, 3, headDim]);
    const a = rotaryAttention(this.config, headPart(qkv, 0), headPart(qkv, 1), headPart(qkv, 2), ctx);
    return this.current('dense').forward(a);
  }

  /** The module registered under `name` now (an adapter may have replaced it). */
  current(name: string): Linear {
    return this.getSubmodule(name) as Linear;
  }
}

export class GPTNeoXMLP extends Module {
  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    this.registerModule('dense_h_to_4h', new Linear(config.hiddenSize, config.intermediateSize, linearOptions(opts, true)));
    this.registerModule('dense_4h_to_h', new Linear(config.intermediateSize, config.hiddenSize, linearOptions(opts, true)));
  }

  forward(x: Tensor): Tensor {
    const up = (this.getSubmodule('dense_h_to_4h') as Linear).forward(x);
    return (this.getSubmodule('dense_4h_to_h') as Linear).forward(activation(this.config, up));
  }
}

export class GPTNeoXLayer extends Module {
  readonly input_layernorm: LayerNorm;
  readonly post_attention_layernorm: LayerNorm;
  readonly post_attention_dropout: Dropout;
  readonly post_mlp_dropout: Dropout;
  readonly attention: GPTNeoXAttention;
  readonly mlp: GPTNeoXMLP;

  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
    hiddenDropout: number,
  ) {
    super();
    const norm = { backend: opts.backend, dtype: opts.dtype, eps: config.normEps };
    this.input_layernorm = this.registerModule('input_layernorm', new LayerNorm(config.hiddenSize, norm));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new LayerNorm(config.hiddenSize, norm));
    this.post_attention_dropout = this.registerModule('post_attention_dropout', new Dropout(hiddenDropout, opts.generator));
    this.post_mlp_dropout = this.registerModule('post_mlp_dropout', new Dropout(hiddenDropout, opts.generator));
    this.attention = this.registerModule('attention', new GPTNeoXAttention(config, opts));
    this.mlp = this.registerModule('mlp', new GPTNeoXMLP(config, opts));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const attn = this.post_attention_dropout.forward(this.attention.forward(this.input_layernorm.forward(x), ctx));
    if (this.config.parallelResidual) {
      // x + attn(ln1(x)) + mlp(ln2(x))
      const mlp = this.post_mlp_dropout.forward(this.mlp.forward(this.post_attention_layernorm.forward(x)));
      return add(add(mlp, attn), x);
    }
    const h = add(attn, x);
    const mlp = this.post_mlp_dropout.forward(this.mlp.forward(this.post_attention_layernorm.forward(h)));
    return add(mlp, h);
  }
}

/**
 * The names and shapes of GPTNeoXModel's parameters for a config, in `namedParameters()` order,
 * without building it: what a checkpoint is checked against before any memory is allocated.
 */
export function gptNeoXParameterShapes(config: ModelConfig): Array<[string, number[]]> {
  const { hiddenSize: h, intermediateSize: m } = config;
  const out: Array<[string, number[]]> = [['embed_in.weight', [config.vocabSize, h]]];
  const linear = (name: string, inF: number, outF: number, bias: boolean) => {
    out.push([`${name}.weight`, [outF, inF]]);
    if (bias) out.push([`${name}.bias`, [outF]]);
  };
  for (let i = 0; i < config.numLayers; i++) {
    const p = `layers.${i}`;
    for (const norm of ['input_layernorm', 'post_attention_layernorm']) out.push([`${p}.${norm}.weight`, [h]], [`${p}.${norm}.bias`, [h]]);
    linear(`${p}.attention.query_key_value`, h, 3 * h, config.attentionBias);
    linear(`${p}.attention.dense`, h, h, config.attentionOutputBias);
    linear(`${p}.mlp.dense_h_to_4h`, h, m, true);
    linear(`${p}.mlp.dense_4h_to_h`, m, h, true);
  }
  out.push(['final_layer_norm.weight', [h]], ['final_layer_norm.bias', [h]]);
  return out;
}

/** GPTNeoXModel: embeddings, layers and the final norm (the base model heads pool from). */
export class GPTNeoXModel extends Module {
  readonly embed_in: Embedding;
  readonly emb_dropout: Dropout;
  readonly layers: ModuleList<GPTNeoXLayer>;
  readonly final_layer_norm: LayerNorm;
  gradientCheckpointing = false;

  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    const hiddenDropout = Number(config.raw.hidden_dropout ?? 0);
    this.embed_in = this.registerModule(
      'embed_in',
      new Embedding(config.vocabSize, config.hiddenSize, {
        backend: opts.backend,
        dtype: opts.dtype,
        init: paramInit(opts),
        generator: opts.generator,
      }),
    );
    this.emb_dropout = this.registerModule('emb_dropout', new Dropout(hiddenDropout, opts.generator));
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: config.numLayers }, () => new GPTNeoXLayer(config, opts, hiddenDropout))),
    );
    this.final_layer_norm = this.registerModule(
      'final_layer_norm',
      new LayerNorm(config.hiddenSize, { backend: opts.backend, dtype: opts.dtype, eps: config.normEps }),
    );
  }

  /** Last hidden states [batch, seq, hidden] after the final layer norm. */
  forward(ids: Tensor, ctx: LayerContext): Tensor {
    let h = this.emb_dropout.forward((this.getSubmodule('embed_in') as Embedding).forward(ids));
    h = runLayers(this.layers, h, withRope(this.config, ctx, h.backend, h.dtype, ids.shape[1]!), this.gradientCheckpointing);
    return this.final_layer_norm.forward(h);
  }
}
