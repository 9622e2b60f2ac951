import { add, Embedding, Linear, Module, ModuleList, mul, RMSNorm, reshape, siluMul, type Tensor } from '@peft/core';
import type { ModelConfig } from '../config.js';
import {
  activation,
  type BuildOptions,
  type LayerContext,
  linearOptions,
  paramInit,
  rotaryAttention,
  runLayers,
  withRope,
} from './common.js';

export class LlamaAttention extends Module {
  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    const { hiddenSize: h, numHeads, numKvHeads, headDim } = config;
    const bias = config.attentionBias;
    this.registerModule('q_proj', new Linear(h, numHeads * headDim, linearOptions(opts, bias)));
    this.registerModule('k_proj', new Linear(h, numKvHeads * headDim, linearOptions(opts, bias)));
    this.registerModule('v_proj', new Linear(h, numKvHeads * headDim, linearOptions(opts, bias)));
    this.registerModule('o_proj', new Linear(numHeads * headDim, h, linearOptions(opts, config.attentionOutputBias)));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const { numHeads, numKvHeads, headDim } = this.config;
    const [b, t] = x.shape as [number, number];
    const proj = (name: string) => (this.getSubmodule(name) as Linear).forward(x);
    const q = reshape(proj('q_proj'), [b, t, numHeads, headDim]);
    const k = reshape(proj('k_proj'), [b, t, numKvHeads, headDim]);
    const v = reshape(proj('v_proj'), [b, t, numKvHeads, headDim]);
    return (this.getSubmodule('o_proj') as Linear).forward(rotaryAttention(this.config, q, k, v, ctx));
  }
}

export class LlamaMLP extends Module {
  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    const { hiddenSize: h, intermediateSize: m, mlpBias } = config;
    this.registerModule('gate_proj', new Linear(h, m, linearOptions(opts, mlpBias)));
    this.registerModule('up_proj', new Linear(h, m, linearOptions(opts, mlpBias)));
    this.registerModule('down_proj', new Linear(m, h, linearOptions(opts, mlpBias)));
  }

  forward(x: Tensor): Tensor {
    const gate = (this.getSubmodule('gate_proj') as Linear).forward(x);
    const up = (this.getSubmodule('up_proj') as Linear).forward(x);
    const h = this.config.hiddenAct === 'silu' ? siluMul(gate, up) : mul(activation(this.config, gate), up);
    return (this.getSubmodule('down_proj') as Linear).forward(h);
  }
}

export class LlamaDecoderLayer extends Module {
  readonly self_attn: LlamaAttention;
  readonly mlp: LlamaMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    const norm = { backend: opts.backend, dtype: opts.dtype, eps: config.normEps };
    this.self_attn = this.registerModule('self_attn', new LlamaAttention(config, opts));
    this.mlp = this.registerModule('mlp', new LlamaMLP(config, opts));
    this.input_layernorm = this.registerModule('input_layernorm', new RMSNorm(config.hiddenSize, norm));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new RMSNorm(config.hiddenSize, norm));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), ctx));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

/**
 * The names and shapes of LlamaModel's parameters for a config, in `namedParameters()` order,
 * without building it: what a checkpoint is checked against before any memory is allocated.
 */
export function llamaParameterShapes(config: ModelConfig): Array<[string, number[]]> {
  const { hiddenSize: h, intermediateSize: m, numHeads, numKvHeads, headDim } = config;
  const out: Array<[string, number[]]> = [['embed_tokens.weight', [config.vocabSize, h]]];
  const linear = (name: string, inF: number, outF: number, bias: boolean) => {
    out.push([`${name}.weight`, [outF, inF]]);
    if (bias) out.push([`${name}.bias`, [outF]]);
  };
  for (let i = 0; i < config.numLayers; i++) {
    const p = `layers.${i}`;
    linear(`${p}.self_attn.q_proj`, h, numHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.k_proj`, h, numKvHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.v_proj`, h, numKvHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.o_proj`, numHeads * headDim, h, config.attentionOutputBias);
    linear(`${p}.mlp.gate_proj`, h, m, config.mlpBias);
    linear(`${p}.mlp.up_proj`, h, m, config.mlpBias);
    linear(`${p}.mlp.down_proj`, m, h, config.mlpBias);
    out.push([`${p}.input_layernorm.weight`, [h]], [`${p}.post_attention_layernorm.weight`, [h]]);
  }
  out.push(['norm.weight', [h]]);
  return out;
}

/** LlamaModel (and MistralModel, Qwen2Model: the same tree): embed_tokens, layers and the final RMSNorm. */
export class LlamaModel extends Module {
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;
  gradientCheckpointing = false;

  constructor(
    readonly config: ModelConfig,
    opts: BuildOptions,
  ) {
    super();
    this.registerModule(
      'embed_tokens',
      new Embedding(config.vocabSize, config.hiddenSize, {
        backend: opts.backend,
        dtype: opts.dtype,
        init: paramInit(opts),
        generator: opts.generator,
      }),
    );
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: config.numLayers }, () => new LlamaDecoderLayer(config, opts))),
    );
    this.norm = this.registerModule(
      'norm',
      new RMSNorm(config.hiddenSize, { backend: opts.backend, dtype: opts.dtype, eps: config.normEps }),
    );
  }

  forward(ids: Tensor, ctx: LayerContext): Tensor {
    let h = (this.getSubmodule('embed_tokens') as Embedding).forward(ids);
    h = runLayers(this.layers, h, withRope(this.config, ctx, h.backend, h.dtype, ids.shape[1]!), this.gradientCheckpointing);
    return this.norm.forward(h);
  }
}
