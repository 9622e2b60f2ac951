import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryInfo } from '../memory.js';
import { Generator } from '../random/generator.js';
import { philoxUniform } from '../random/philox.js';
import { type Tensor, tensor } from '../tensor.js';
import golden from './fixtures/named-parameters.json' with { type: 'json' };
import { Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, RMSNorm } from './index.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

/** The module tree that scripts/make-goldens.py builds with torch.nn (a GPT-NeoX-shaped toy). */
class Attention extends Module {
  constructor(hidden: number, gen: Generator) {
    super();
    this.registerModule('query_key_value', new Linear(hidden, 3 * hidden, { backend, generator: gen }));
    this.registerModule('dense', new Linear(hidden, hidden, { backend, generator: gen }));
  }
}

class Layer extends Module {
  constructor(hidden: number, gen: Generator) {
    super();
    this.registerModule('input_layernorm', new LayerNorm(hidden, { backend }));
    this.registerModule('post_attention_layernorm', new LayerNorm(hidden, { backend }));
    this.registerModule('attention', new Attention(hidden, gen));
    this.registerModule('mlp_norm', new RMSNorm(hidden, { backend }));
    this.registerModule('dropout', new Dropout(0.1, gen));
  }
}

class Net extends Module {
  constructor(vocab: number, hidden: number, layers: number, tie: boolean, gen: Generator) {
    super();
    const embed = this.registerModule('embed_in', new Embedding(vocab, hidden, { backend, generator: gen }));
    this.registerModule('layers', new ModuleList(Array.from({ length: layers }, () => new Layer(hidden, gen))));
    this.registerModule('final_layer_norm', new LayerNorm(hidden, { backend }));
    const head = this.registerModule('embed_out', new Linear(hidden, vocab, { backend, bias: false, generator: gen }));
    if (tie) {
      const untied = head.weight;
      head.registerParameter('weight', embed.weight);
      untied.dispose();
    }
  }
}

describe('Module', () => {
  it('names parameters exactly as torch.nn named_parameters() does, tied weights once', () => {
    for (const [key, tie] of [
      ['untied', false],
      ['tied', true],
    ] as const) {
      const net = new Net(11, 8, 2, tie, new Generator(0));
      const names = [...net.namedParameters()].map(([n, t]) => [n, [...t.shape]]);
      expect(names).toEqual(golden[key]);
      net.dispose();
    }
  });

  it('finds, replaces and freezes submodules by dotted path', () => {
    const net = new Net(11, 8, 2, false, new Generator(0));
    const qkv = net.getSubmodule('layers.1.attention.query_key_value');
    expect(qkv).toBeInstanceOf(Linear);
    expect(() => net.getSubmodule('layers.2.attention')).toThrow(
      'getSubmodule: "layers.2.attention" has no part "2" (under ModuleList: 0, 1)',
    );
    const replacement = new Linear(8, 24, { backend, bias: false });
    net.setSubmodule('layers.1.attention.query_key_value', replacement);
    expect(net.getSubmodule('layers.1.attention.query_key_value')).toBe(replacement);
    expect([...net.namedParameters()].some(([n]) => n === 'layers.1.attention.query_key_value.bias')).toBe(false);
    net.freeze();
    expect(net.trainableParameters()).toEqual([]);
    qkv.dispose();
    net.dispose();
  });

  it('initialises Linear like PyTorch (U(±1/√in)) from the seeded generator, the same every time', async () => {
    const a = new Linear(16, 4, { backend, generator: new Generator(5) });
    const b = new Linear(16, 4, { backend, generator: new Generator(5) });
    const wa = await a.weight.data();
    expect(Array.from(wa)).toEqual(Array.from(await b.weight.data()));
    expect(Array.from(wa)).toEqual(Array.from(philoxUniform(5, 0, 64, -0.25, 0.25)));
    expect(Math.max(...wa.map(Math.abs))).toBeLessThanOrEqual(0.25);
    a.dispose();
    b.dispose();
  });

  it('LayerNorm starts at weight 1 and bias 0 and normalises rows', async () => {
    const ln = new LayerNorm(4, { backend, eps: 0 });
    const x = tensor([1, 2, 3, 4, -2, -2, 2, 2], [2, 4], { backend });
    const y = ln.forward(x);
    const s = Math.sqrt(1.25);
    const expected = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -1, -1, 1, 1];
    for (const [i, v] of (await y.data()).entries()) expect(v).toBeCloseTo(expected[i]!, 5);
    for (const t of [x, y]) t.dispose();
    ln.dispose();
  });

  it('Dropout is active in training mode only and reproducible from its generator', async () => {
    const gen = new Generator(9);
    const drop = new Dropout(0.5, gen);
    const x = tensor(new Array(64).fill(1), [64], { backend });
    const y1 = drop.forward(x);
    gen.manualSeed(9);
    const y2 = drop.forward(x);
    const v1 = Array.from(await y1.data());
    expect(v1).toEqual(Array.from(await y2.data()));
    expect(new Set(v1)).toEqual(new Set([0, 2]));
    const u = philoxUniform(9, 0, 64);
    expect(v1).toEqual(Array.from(u, (r) => (r >= 0.5 ? 2 : 0)));
    drop.eval();
    const y3 = drop.forward(x);
    expect(Array.from(await y3.data())).toEqual(new Array(64).fill(1));
    for (const t of [x, y1, y2, y3] as Tensor[]) t.dispose();
  });

  it('dispose frees every parameter', () => {
    const before = memoryInfo(backend);
    const net = new Net(11, 8, 2, true, new Generator(0));
    expect(memoryInfo(backend).tensors).toBeGreaterThan(before.tensors);
    net.dispose();
    expect(memoryInfo(backend)).toEqual(before);
  });
});
