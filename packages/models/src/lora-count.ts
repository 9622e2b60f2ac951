import type { ModuleShape } from '@peft/core';
import type { ModelConfig } from './config.js';

/**
 * The module tree of `createModel(config)` as shapes, without building it: what
 * `countLoraParameters` needs to count a LoRA config on, say, Llama-2-7B from its config.json alone.
 * Paths and order are those of the real model's `namedModules()`.
 */
export function describeParameters(config: ModelConfig): ModuleShape[] {
  const { hiddenSize: h, intermediateSize: m, vocabSize: v, numLayers, numHeads, numKvHeads, headDim } = config;
  const out: ModuleShape[] = [{ name: '', kind: 'other', params: 0 }];
  const other = (name: string, params = 0, biasParams = 0) => out.push({ name, kind: 'other', params, biasParams });
  const linear = (name: string, i: number, o: number, bias: boolean, tied = false) =>
    out.push({ name, kind: 'linear', in: i, out: o, bias, tied });
  if (config.modelType === 'gpt_neox') {
    other('gpt_neox');
    out.push({ name: 'gpt_neox.embed_in', kind: 'embedding', in: v, out: h });
    other('gpt_neox.emb_dropout');
    other('gpt_neox.layers');
    for (let i = 0; i < numLayers; i++) {
      const p = `gpt_neox.layers.${i}`;
      other(p);
      other(`${p}.input_layernorm`, 2 * h, h);
      other(`${p}.post_attention_layernorm`, 2 * h, h);
      other(`${p}.post_attention_dropout`);
      other(`${p}.post_mlp_dropout`);
      other(`${p}.attention`);
      linear(`${p}.attention.query_key_value`, h, 3 * h, config.attentionBias);
      linear(`${p}.attention.dense`, h, h, config.attentionOutputBias);
      other(`${p}.mlp`);
      linear(`${p}.mlp.dense_h_to_4h`, h, m, true);
      linear(`${p}.mlp.dense_4h_to_h`, m, h, true);
    }
    other('gpt_neox.final_layer_norm', 2 * h, h);
    linear('embed_out', h, v, false, config.tieWordEmbeddings);
    return out;
  }
  other('model');
  out.push({ name: 'model.embed_tokens', kind: 'embedding', in: v, out: h });
  other('model.layers');
  for (let i = 0; i < numLayers; i++) {
    const p = `model.layers.${i}`;
    other(p);
    other(`${p}.self_attn`);
    linear(`${p}.self_attn.q_proj`, h, numHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.k_proj`, h, numKvHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.v_proj`, h, numKvHeads * headDim, config.attentionBias);
    linear(`${p}.self_attn.o_proj`, numHeads * headDim, h, config.attentionOutputBias);
    other(`${p}.mlp`);
    linear(`${p}.mlp.gate_proj`, h, m, config.mlpBias);
    linear(`${p}.mlp.up_proj`, h, m, config.mlpBias);
    linear(`${p}.mlp.down_proj`, m, h, config.mlpBias);
    other(`${p}.input_layernorm`, h);
    other(`${p}.post_attention_layernorm`, h);
  }
  other('model.norm', h);
  linear('lm_head', h, v, false, config.tieWordEmbeddings);
  return out;
}

/** The output head's path (what "all-linear" leaves out): embed_out for GPT-NeoX, lm_head for Llama. */
export function outputHeadName(config: ModelConfig): string {
  return config.modelType === 'gpt_neox' ? 'embed_out' : 'lm_head';
}
