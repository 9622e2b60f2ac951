// Test helper (not exported): a GPT-NeoX-shaped toy and a Llama-shaped toy with HF module names.
import type { Backend } from '../backend.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { Module, ModuleList } from '../nn/module.js';
import { add, tanh } from '../ops/elementwise.js';
import { slice } from '../ops/shape.js';
import type { Generator } from '../random/generator.js';
import type { Tensor } from '../tensor.js';

const mod = <T extends Module>(m: Module, name: string) => m.getSubmodule(name) as T;

class Attention extends Module {
  constructor(hidden: number, backend: Backend, generator: Generator) {
    super();
    this.registerModule('query_key_value', new Linear(hidden, 3 * hidden, { backend, generator }));
    this.registerModule('dense', new Linear(hidden, hidden, { backend, generator }));
  }
  forward(x: Tensor): Tensor {
    const qkv = mod<Linear>(this, 'query_key_value').forward(x);
    const h = x.shape[x.rank - 1]!;
    return mod<Linear>(this, 'dense').forward(tanh(slice(qkv, x.rank - 1, h, 2 * h)));
  }
}

class Mlp extends Module {
  constructor(hidden: number, backend: Backend, generator: Generator) {
    super();
    this.registerModule('dense_h_to_4h', new Linear(hidden, 2 * hidden, { backend, generator }));
    this.registerModule('dense_4h_to_h', new Linear(2 * hidden, hidden, { backend, generator }));
  }
  forward(x: Tensor): Tensor {
    return mod<Linear>(this, 'dense_4h_to_h').forward(tanh(mod<Linear>(this, 'dense_h_to_4h').forward(x)));
  }
}

class Layer extends Module {
  constructor(hidden: number, backend: Backend, generator: Generator) {
    super();
    this.registerModule('input_layernorm', new LayerNorm(hidden, { backend }));
    this.registerModule('attention', new Attention(hidden, backend, generator));
    this.registerModule('mlp', new Mlp(hidden, backend, generator));
  }
  forward(x: Tensor): Tensor {
    const n = mod<LayerNorm>(this, 'input_layernorm').forward(x);
    return add(add(x, mod<Attention>(this, 'attention').forward(n)), mod<Mlp>(this, 'mlp').forward(n));
  }
}

class Base extends Module {
  constructor(vocab: number, hidden: number, layers: number, backend: Backend, generator: Generator) {
    super();
    this.registerModule('embed_in', new Embedding(vocab, hidden, { backend, generator }));
    this.registerModule('layers', new ModuleList(Array.from({ length: layers }, () => new Layer(hidden, backend, generator))));
    this.registerModule('final_layer_norm', new LayerNorm(hidden, { backend }));
  }
  forward(ids: Tensor): Tensor {
    let h = mod<Embedding>(this, 'embed_in').forward(ids);
    for (const layer of mod<ModuleList<Layer>>(this, 'layers')) h = layer.forward(h);
    return mod<LayerNorm>(this, 'final_layer_norm').forward(h);
  }
}

/** gpt_neox.{embed_in, layers.N.{input_layernorm, attention.{query_key_value, dense}, mlp.{…}}, final_layer_norm} + embed_out. */
export class ToyNeoX extends Module {
  readonly config = { modelType: 'gpt_neox', raw: { model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] } };
  readonly headName = 'embed_out';
  constructor(
    readonly vocab: number,
    readonly hidden: number,
    layers: number,
    backend: Backend,
    generator: Generator,
  ) {
    super();
    this.registerModule('gpt_neox', new Base(vocab, hidden, layers, backend, generator));
    this.registerModule('embed_out', new Linear(hidden, vocab, { backend, generator, bias: false }));
  }
  forward(ids: Tensor): Tensor {
    return mod<Linear>(this, 'embed_out').forward(mod<Base>(this, 'gpt_neox').forward(ids));
  }
}

/** model.{embed_tokens, layers.N.self_attn.{q,k,v,o}_proj, layers.N.mlp.{gate,up,down}_proj} + lm_head, no norms. */
export class ToyLlama extends Module {
  readonly config = { modelType: 'llama' };
  constructor(vocab: number, hidden: number, layers: number, backend: Backend, generator: Generator) {
    super();
    const model = this.registerModule('model', new Module());
    model.registerModule('embed_tokens', new Embedding(vocab, hidden, { backend, generator }));
    const list = model.registerModule('layers', new ModuleList());
    for (let i = 0; i < layers; i++) {
      const layer = new Module();
      const attn = layer.registerModule('self_attn', new Module());
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
        attn.registerModule(p, new Linear(hidden, hidden, { backend, generator, bias: false }));
      const mlp = layer.registerModule('mlp', new Module());
      mlp.registerModule('gate_proj', new Linear(hidden, 2 * hidden, { backend, generator, bias: false }));
      mlp.registerModule('up_proj', new Linear(hidden, 2 * hidden, { backend, generator, bias: false }));
      mlp.registerModule('down_proj', new Linear(2 * hidden, hidden, { backend, generator, bias: false }));
      list.push(layer);
    }
    this.registerModule('lm_head', new Linear(hidden, vocab, { backend, generator, bias: false }));
  }
  forward(ids: Tensor): Tensor {
    let h = mod<Embedding>(this, 'model.embed_tokens').forward(ids);
    const layers = mod<ModuleList>(this, 'model.layers');
    for (let i = 0; i < layers.length; i++) {
      const p = (n: string) => mod<Linear>(this, `model.layers.${i}.${n}`);
      const a = p('self_attn.o_proj').forward(
        tanh(add(add(p('self_attn.q_proj').forward(h), p('self_attn.k_proj').forward(h)), p('self_attn.v_proj').forward(h))),
      );
      h = add(h, a);
      const m = p('mlp.down_proj').forward(tanh(add(p('mlp.gate_proj').forward(h), p('mlp.up_proj').forward(h))));
      h = add(h, m);
    }
    return mod<Linear>(this, 'lm_head').forward(h);
  }
}
