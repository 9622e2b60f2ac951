import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { backward, noGrad } from '../autograd/tape.js';
import { memoryInfo, tidy } from '../memory.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { crossEntropy } from '../ops/loss.js';
import { reshape } from '../ops/shape.js';
import { Generator } from '../random/generator.js';
import { bytesSource } from '../safetensors/byte-source.js';
import { openSafetensors } from '../safetensors/reader.js';
import { bytesReader } from '../safetensors/sharded-reader.js';
import { type Tensor, tensor } from '../tensor.js';
import {
  adapterStateDict,
  countLoraParametersOf,
  type DoraMagnitude,
  describeModel,
  getPeftModel,
  LoraEmbedding,
  LoraLinear,
  loadAdapterFrom,
  loraConfig,
  ModulesToSaveWrapper,
  memorySink,
  mergedTensors,
  minimalTargetModules,
  type PeftModel,
  saveAdapterTo,
  saveMergedTo,
  toPeftConfigJson,
  trainableLine,
} from './index.js';
import { ToyLlama, ToyNeoX } from './toy.test-util.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

const ids = (rows: number[][]) => tensor(rows.flat(), [rows.length, rows[0]!.length], { backend, dtype: 'int32' });
const neox = (seed = 1) => new ToyNeoX(11, 8, 2, backend, new Generator(seed));
const llama = (seed = 2) => new ToyLlama(13, 6, 2, backend, new Generator(seed));
const INPUT = [
  [1, 4, 7, 2],
  [9, 0, 3, 10],
];

async function run(m: { forward(x: Tensor): unknown }, rows = INPUT): Promise<Float32Array> {
  const x = ids(rows);
  const y = noGrad(() => m.forward(x) as Tensor);
  const v = (await y.data()) as Float32Array;
  y.dispose();
  x.dispose();
  return v;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Gives every B (and embedding A) random values so that adapters change the output. */
function perturb(peft: PeftModel, seed = 7): void {
  const g = new Generator(seed);
  for (const [name, t] of peft.namedParameters()) {
    if (/lora_B|lora_embedding_A/.test(name)) {
      const r = noGrad(() =>
        tensor(
          Array.from({ length: t.size }, (_, i) => Math.sin(seed * 31 + i * 1.7 + g.seed) * 0.3),
          t.shape,
          { backend },
        ),
      );
      backend.copy(t.buffer(), r.buffer(), {
        shape: t.shape,
        strides: t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1)),
        offset: 0,
      });
      r.dispose();
    }
  }
}

describe('LoraConfig', () => {
  it('fills PEFT defaults and rejects bad values with the field and the value', () => {
    const c = loraConfig();
    expect([c.r, c.loraAlpha, c.loraDropout, c.bias, c.initLoraWeights, c.targetModules, c.useDora, c.useRslora]).toEqual([
      8,
      8,
      0,
      'none',
      true,
      null,
      false,
      false,
    ]);
    expect(() => loraConfig({ r: 0 })).toThrow('LoraConfig: r is 0: expected a positive integer (r must be at least 1)');
    expect(() => loraConfig({ r: -4 })).toThrow('LoraConfig: r is -4');
    expect(() => loraConfig({ r: 2.5 })).toThrow('LoraConfig: r is 2.5');
    expect(() => loraConfig({ loraDropout: 1 })).toThrow('LoraConfig: loraDropout is 1: expected a probability in [0, 1)');
    expect(() => loraConfig({ rankPattern: { q_proj: 0 } })).toThrow('LoraConfig: rankPattern["q_proj"] is 0');
    expect(() => loraConfig({ targetModules: '(' })).toThrow('LoraConfig: targetModules "(" has an unclosed "("');
    expect(() => loraConfig({ targetModules: '.*q', layersToTransform: [0] })).toThrow(
      'cannot be used when targetModules is a regex string',
    );
    expect(() => loraConfig({ lora_alpha: 3 } as never)).toThrow('LoraConfig: unknown field "lora_alpha"');
    expect(() => loraConfig({ initLoraWeights: 'pissa' as never })).toThrow('initLoraWeights is "pissa"');
  });

  it('writes adapter_config.json as PEFT 0.18.1 does: every field, sorted, indent 2, 0.0 for a whole dropout', () => {
    const json = toPeftConfigJson(
      loraConfig({
        r: 32,
        loraAlpha: 16,
        loraDropout: 0.1,
        targetModules: ['query_key_value'],
        taskType: 'SEQ_CLS',
        modulesToSave: ['score'],
      }),
    );
    expect(
      json.startsWith('{\n  "alora_invocation_tokens": null,\n  "alpha_pattern": {},\n  "arrow_config": null,\n  "auto_mapping": null,'),
    ).toBe(true);
    expect(json).toContain('\n  "lora_dropout": 0.1,\n');
    expect(json).toContain('\n  "target_modules": [\n    "query_key_value"\n  ],\n');
    expect(json).toContain('\n  "peft_version": "0.18.1",\n');
    expect(json.endsWith('\n  "use_rslora": false\n}')).toBe(true);
    expect(Object.keys(JSON.parse(json))).toHaveLength(36);
    expect(toPeftConfigJson(loraConfig())).toContain('"lora_dropout": 0.0,');
  });
});

describe('target matching (PEFT check_target_module_exists)', () => {
  it('uses the model type defaults: gpt_neox → query_key_value, llama → q_proj, v_proj', () => {
    const a = getPeftModel(neox(), { r: 2 });
    expect(a.targetedModules()).toEqual(['gpt_neox.layers.0.attention.query_key_value', 'gpt_neox.layers.1.attention.query_key_value']);
    expect(a.peftConfig.get('default')!.targetModules).toEqual(['query_key_value']);
    const b = getPeftModel(llama(), { r: 2 });
    expect(b.targetedModules()).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    // An explicit modelType wins over the model's config.
    expect(() => getPeftModel(llama(), { r: 2 }, { modelType: 'gpt_neox' })).toThrow('LoRA: target modules ["query_key_value"] not found');
    const c = getPeftModel(new ToyLlama(5, 4, 1, backend, new Generator(0)), { r: 2 }, { modelType: 'mistral', adapterName: 'x' });
    expect([c.activeAdapter, ...c.targetedModules()]).toEqual(['x', 'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']);
    a.dispose();
    b.dispose();
    c.dispose();
  });

  it('matches exact names, suffixes and full-match regexes; excludeModules and layersToTransform narrow', () => {
    const m = neox();
    const t = (cfg: Parameters<typeof getPeftModel>[1]) => {
      const p = getPeftModel(m, cfg);
      const out = p.targetedModules();
      p.unload();
      return out;
    };
    expect(t({ targetModules: ['gpt_neox.layers.1.mlp.dense_4h_to_h', 'dense'] })).toEqual([
      'gpt_neox.layers.0.attention.dense',
      'gpt_neox.layers.1.attention.dense',
      'gpt_neox.layers.1.mlp.dense_4h_to_h',
    ]);
    expect(t({ targetModules: 'gpt_neox\\.layers\\.\\d+\\.mlp\\..*' })).toEqual([
      'gpt_neox.layers.0.mlp.dense_h_to_4h',
      'gpt_neox.layers.0.mlp.dense_4h_to_h',
      'gpt_neox.layers.1.mlp.dense_h_to_4h',
      'gpt_neox.layers.1.mlp.dense_4h_to_h',
    ]);
    // A regex must match the whole path, as re.fullmatch.
    expect(() => t({ targetModules: 'mlp' })).toThrow('not found in the base model');
    expect(t({ targetModules: ['query_key_value', 'dense'], excludeModules: ['attention.dense'] })).toEqual([
      'gpt_neox.layers.0.attention.query_key_value',
      'gpt_neox.layers.1.attention.query_key_value',
    ]);
    expect(t({ targetModules: ['query_key_value'], layersToTransform: [1] })).toEqual(['gpt_neox.layers.1.attention.query_key_value']);
    expect(t({ targetModules: ['query_key_value'], layersToTransform: 0, layersPattern: 'layers' })).toEqual([
      'gpt_neox.layers.0.attention.query_key_value',
    ]);
    // all-linear: every Linear but the output head (and the embedding, which is no Linear).
    const all = getPeftModel(m, { targetModules: 'all-linear' });
    expect(all.targetedModules()).toHaveLength(8);
    expect(all.targetedModules()).not.toContain('embed_out');
    expect(all.peftConfig.get('default')!.targetModules).toEqual(all.targetedModules());
    all.unload();
    m.dispose();
  });

  it('rankPattern and alphaPattern pick per-module rank and alpha by suffix regex; rsLoRA scales by alpha/√r', () => {
    const p = getPeftModel(llama(), {
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
      r: 4,
      loraAlpha: 8,
      rankPattern: { 'layers\\.1\\.self_attn\\.v_proj': 2, down_proj: 6 },
      alphaPattern: { q_proj: 3 },
      useRslora: true,
    });
    const layer = (n: string) => p.model.getSubmodule(n) as LoraLinear;
    expect(layer('model.layers.0.self_attn.v_proj').r.get('default')).toBe(4);
    expect(layer('model.layers.1.self_attn.v_proj').r.get('default')).toBe(2);
    expect(layer('model.layers.1.mlp.down_proj').r.get('default')).toBe(6);
    expect(layer('model.layers.1.self_attn.q_proj').scaling.get('default')).toBeCloseTo(3 / 2, 12);
    expect(layer('model.layers.1.self_attn.v_proj').scaling.get('default')).toBeCloseTo(8 / Math.SQRT2, 12);
    expect(layer('model.layers.0.mlp.down_proj').lora_A.get('default')!.weight.shape).toEqual([6, 12]);
    p.dispose();
  });

  it('condenses 20 or more target names to the separating suffixes, as PEFT', () => {
    const targets = Array.from({ length: 20 }, (_, i) => `model.layers.${i}.self_attn.q_proj`);
    const others = Array.from({ length: 20 }, (_, i) => `model.layers.${i}.self_attn.k_proj`);
    expect(minimalTargetModules(targets, others)).toEqual(['q_proj']);
  });

  it('errors: nothing matched, a non-linear target, all excluded, unknown model type', () => {
    const m = neox();
    const before = [...m.namedParameters()].map(([n]) => n);
    expect(() => getPeftModel(m, { targetModules: ['q_proj', 'v_proj'] })).toThrow(
      'LoRA: target modules ["q_proj","v_proj"] not found in the base model; its Linear and Embedding modules are named: embed_in, query_key_value, dense, dense_h_to_4h, dense_4h_to_h, embed_out',
    );
    expect(() => getPeftModel(m, { targetModules: ['attention'] })).toThrow(
      'LoRA: target module "gpt_neox.layers.0.attention" is a Attention: only Linear and Embedding modules can be adapted',
    );
    expect(() => getPeftModel(m, { targetModules: ['input_layernorm'] })).toThrow(
      'is a LayerNorm: only Linear and Embedding modules can be adapted',
    );
    expect(() => getPeftModel(m, { targetModules: ['dense'], excludeModules: 'gpt_neox\\.layers\\.\\d\\.attention\\.dense' })).toThrow(
      'LoRA: no module was targeted: targetModules ["dense"] matched only modules that excludeModules or modulesToSave exclude',
    );
    expect(() => getPeftModel(m, { r: 0 })).toThrow('LoraConfig: r is 0');
    const anon = new Linear(3, 3, { backend });
    expect(() => getPeftModel(anon, {})).toThrow('targetModules not given and the model type is unknown');
    expect(() => getPeftModel(m, {}, { modelType: 'bert2' })).toThrow('no default targetModules for model type "bert2"');
    // The model is untouched after a failed getPeftModel.
    expect([...m.namedParameters()].map(([n]) => n)).toEqual(before);
    anon.dispose();
    m.dispose();
  });
});

describe('LoRA layers', () => {
  it('Linear: y = W x + b + (α/r)·B·A·x with PEFT init (A ~ U(±1/√in), B = 0)', async () => {
    const base = new Linear(3, 2, { backend, generator: new Generator(3) });
    const holder = new (class extends ToyNeoX {})(4, 3, 0, backend, new Generator(0));
    holder.registerModule('embed_out', base);
    const p = getPeftModel(holder, { targetModules: ['embed_out'], r: 2, loraAlpha: 3 });
    const layer = p.model.getSubmodule('embed_out') as LoraLinear;
    expect(layer).toBeInstanceOf(LoraLinear);
    const a = layer.lora_A.get('default')!.weight;
    const b = layer.lora_B.get('default')!.weight;
    expect(Array.from(await b.data())).toEqual([0, 0, 0, 0]);
    expect(Math.max(...Array.from(await a.data(), Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(3));
    backend.write(a.buffer(), new Float32Array([1, 2, 3, -1, 0, 1]));
    backend.write(b.buffer(), new Float32Array([0.5, 1, -2, 0.25]));
    const x = tensor([1, -1, 2], [1, 3], { backend });
    const y = noGrad(() => layer.forward(x));
    const w = await base.weight.data();
    const bias = await base.bias!.data();
    // A x = [1-2+6, -1+0+2] = [5, 1]; B A x = [2.5+1, -10+0.25] = [3.5, -9.75]; scaling 3/2.
    const expected = [0, 1].map((o) => w[3 * o]! - w[3 * o + 1]! + 2 * w[3 * o + 2]! + bias[o]! + 1.5 * [3.5, -9.75][o]!);
    maxDiff(await y.data(), expected) < 1e-6 || expect.fail('LoRA linear output');
    for (const t of [x, y]) t.dispose();
    p.dispose();
  });

  it('Embedding: PEFT layout A [r, vocab], B [dim, r]; y = E[ids] + s·(Aᵀ[ids])·Bᵀ; init zero A, normal B', async () => {
    const p = getPeftModel(neox(), { targetModules: ['embed_in'], r: 3, loraAlpha: 6 });
    const layer = p.model.getSubmodule('gpt_neox.embed_in') as LoraEmbedding;
    expect(layer).toBeInstanceOf(LoraEmbedding);
    const a = layer.lora_embedding_A.get('default')!;
    const b = layer.lora_embedding_B.get('default')!;
    expect(a.shape).toEqual([3, 11]);
    expect(b.shape).toEqual([8, 3]);
    expect(new Set(await a.data())).toEqual(new Set([0]));
    expect([...p.namedParameters()].map(([n]) => n).filter((n) => n.includes('embed_in'))).toEqual([
      'base_model.model.gpt_neox.embed_in.base_layer.weight',
      'base_model.model.gpt_neox.embed_in.lora_embedding_A.default',
      'base_model.model.gpt_neox.embed_in.lora_embedding_B.default',
    ]);
    const av = Array.from({ length: 33 }, (_, i) => Math.cos(i));
    backend.write(a.buffer(), new Float32Array(av));
    const x = ids([[4, 0, 10]]);
    const y = noGrad(() => layer.forward(x));
    const e = await layer.baseLayer.weight.data();
    const bv = await b.data();
    const got = await y.data();
    [4, 0, 10].forEach((id, t) => {
      for (let d = 0; d < 8; d++) {
        let lora = 0;
        for (let k = 0; k < 3; k++) lora += av[k * 11 + id]! * bv[d * 3 + k]!;
        expect(got[t * 8 + d]).toBeCloseTo(e[id * 8 + d]! + 2 * lora, 5);
      }
    });
    for (const t of [x, y]) t.dispose();
    p.dispose();
  });

  it('freezes the base, trains the adapter, counts and prints like PEFT', () => {
    const m = neox();
    const total = m.parameters().reduce((n, t) => n + t.size, 0);
    const p = getPeftModel(m, { r: 4, loraAlpha: 8 });
    const lora = 2 * 4 * (8 + 24);
    expect(p.parameterCounts()).toEqual({ trainable: lora, total: total + lora, line: trainableLine(lora, total + lora) });
    expect(p.trainableParameters().every((t) => p.adapterParameters().has([...p.namedParameters()].find(([, x]) => x === t)![0]))).toBe(
      true,
    );
    const lines: string[] = [];
    p.printTrainableParameters((l) => lines.push(l));
    expect(lines).toEqual([
      `trainable params: 256 || all params: ${(total + 256).toLocaleString('en-US')} || trainable%: ${((100 * 256) / (total + 256)).toFixed(4)}`,
    ]);
    expect(trainableLine(329_056_256, 6_738_415_616 + 329_056_256)).toBe(
      'trainable params: 329,056,256 || all params: 7,067,471,872 || trainable%: 4.6559',
    );
    p.dispose();
  });

  it('bias "all" and "lora_only" train the biases PEFT trains; modulesToSave trains a copy of the head', () => {
    const m = neox();
    const biasesAll = [...m.namedParameters()].filter(([n]) => n.includes('bias')).reduce((n, [, t]) => n + t.size, 0);
    const p = getPeftModel(m, { r: 2, bias: 'all' });
    expect(p.parameterCounts().trainable).toBe(2 * 2 * 32 + biasesAll);
    p.unload();
    const q = getPeftModel(m, { r: 2, bias: 'lora_only' });
    expect(q.parameterCounts().trainable).toBe(2 * 2 * 32 + 2 * 24);
    q.unload();
    const s = getPeftModel(m, { r: 2, modulesToSave: ['embed_out'] });
    const w = s.model.getSubmodule('embed_out');
    expect(w).toBeInstanceOf(ModulesToSaveWrapper);
    expect(s.parameterCounts().trainable).toBe(2 * 2 * 32 + 88);
    expect([...s.namedParameters()].map(([n]) => n).filter((n) => n.includes('embed_out'))).toEqual([
      'base_model.model.embed_out.original_module.weight',
      'base_model.model.embed_out.modules_to_save.default.weight',
    ]);
    s.dispose();
  });
});

describe('merge, unmerge, several adapters, disabling', () => {
  it('merged and unmerged outputs agree within 1e-5 (LoRA on Linear and Embedding, DoRA too); unmerge restores the base', async () => {
    for (const useDora of [false, true]) {
      const m = llama(5);
      const base = await run(m);
      const p = getPeftModel(m, {
        targetModules: ['q_proj', 'v_proj', 'down_proj', 'embed_tokens', 'lm_head'],
        r: 3,
        loraAlpha: 5,
        useDora,
      });
      perturb(p);
      const adapted = await run(p);
      expect(maxDiff(adapted, base)).toBeGreaterThan(1e-2);
      p.merge();
      expect(p.loraLayers().every(([, l]) => l.merged)).toBe(true);
      expect(maxDiff(await run(p), adapted)).toBeLessThan(1e-5);
      p.unmerge();
      expect(maxDiff(await run(p), adapted)).toBeLessThan(1e-5);
      expect(maxDiff(await p.withAdaptersDisabled(() => run(p)), base)).toBeLessThan(1e-5);
      const plain = p.mergeAndUnload();
      expect(plain).toBe(m);
      expect([...plain.namedParameters()].some(([n]) => n.includes('lora'))).toBe(false);
      expect(maxDiff(await run(plain), adapted)).toBeLessThan(1e-5);
      plain.dispose();
    }
  });

  it('DoRA starts equal to the base model (magnitude = row norms) and names its magnitude like PEFT', async () => {
    const m = neox(3);
    const base = await run(m);
    const p = getPeftModel(m, { targetModules: ['query_key_value', 'embed_in'], r: 2, useDora: true, initLoraWeights: 'gaussian' });
    expect(maxDiff(await run(p), base)).toBeLessThan(1e-5);
    const names = [...p.namedParameters()].map(([n]) => n).filter((n) => n.includes('magnitude'));
    expect(names).toEqual([
      'base_model.model.gpt_neox.embed_in.lora_magnitude_vector.default.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_magnitude_vector.default.weight',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_magnitude_vector.default.weight',
    ]);
    const mag = (p.model.getSubmodule('gpt_neox.layers.0.attention.query_key_value.lora_magnitude_vector.default') as DoraMagnitude).weight;
    expect(mag.shape).toEqual([24]);
    const w = await (p.model.getSubmodule('gpt_neox.layers.0.attention.query_key_value') as LoraLinear).weight.data();
    expect((await mag.data())[5]).toBeCloseTo(Math.hypot(...w.slice(40, 48)), 5);
    expect((p.model.getSubmodule('gpt_neox.embed_in.lora_magnitude_vector.default') as DoraMagnitude).weight.shape).toEqual([8]);
    p.dispose();
  });

  it('several named adapters: add, set, delete; only the active one trains', async () => {
    const m = neox(4);
    const base = await run(m);
    const p = getPeftModel(m, { r: 2 }, { adapterName: 'a' });
    perturb(p, 1);
    const outA = await run(p);
    p.addAdapter('b', { targetModules: ['dense', 'query_key_value'], r: 3 });
    perturb(p, 2);
    expect(p.activeAdapter).toBe('a');
    const trainable = () => [...p.namedParameters()].filter(([, t]) => t.requiresGrad).map(([n]) => n);
    expect(trainable().every((n) => n.includes('.a.'))).toBe(true);
    const outA2 = await run(p);
    p.setAdapter('b');
    expect(trainable().every((n) => n.includes('.b.'))).toBe(true);
    expect(trainable()).toHaveLength(8);
    const outB = await run(p);
    expect(maxDiff(outB, outA2)).toBeGreaterThan(1e-3);
    expect(() => p.setAdapter('c')).toThrow('LoRA: no adapter "c"; adapters are a, b');
    expect(() => p.addAdapter('b', {})).toThrow('an adapter named "b" already exists');
    p.deleteAdapter('b');
    expect(p.activeAdapter).toBe('a');
    expect([...p.namedParameters()].some(([n]) => n.includes('.b.'))).toBe(false);
    // perturb(…, 2) also touched a's B again; a's output is what it is now.
    expect(maxDiff(await run(p), outA2)).toBeLessThan(1e-6);
    expect(maxDiff(await p.withAdaptersDisabled(() => run(p)), base)).toBeLessThan(1e-6);
    expect(outA.length).toBe(base.length);
    p.dispose();
  });

  it('releases what it allocates: forward/backward steps leave memory flat', async () => {
    const m = llama(9);
    const p = getPeftModel(m, { targetModules: ['q_proj', 'embed_tokens', 'lm_head'], r: 2, useDora: true, loraDropout: 0.2 });
    const step = () => {
      const x = ids(INPUT);
      const loss = tidy(() => crossEntropy(noGradReshape(p.forward(x) as Tensor), [1, 2, 3, 4, 5, 6, 7, 8]));
      backward(loss);
      loss.dispose();
      x.dispose();
      for (const t of p.trainableParameters()) {
        t.grad?.dispose();
        t.grad = null;
      }
    };
    step();
    const before = memoryInfo(backend);
    for (let i = 0; i < 3; i++) step();
    expect(memoryInfo(backend)).toEqual(before);
    p.dispose();
  });
});

function noGradReshape(t: Tensor): Tensor {
  const [b, s, v] = t.shape as [number, number, number];
  return reshape(t, [b * s, v]);
}

/** A task head over a decoder, kept as `model` (as @peft/heads does): no config of its own, class names. */
class ToyHead extends Module {
  readonly id2label = ['no', 'yes'];
  constructor(readonly model: ToyNeoX) {
    super();
    this.registerModule('gpt_neox', model.getSubmodule('gpt_neox'));
    this.registerModule('score', new Linear(8, 2, { backend, bias: false, generator: new Generator(9) }));
  }
  get nameOrPath(): string {
    return '/models/toy-neox';
  }
  forward(batch: { ids: Tensor }): { logits: Tensor } {
    return {
      logits: (this.getSubmodule('score') as Linear).forward(
        (this.getSubmodule('gpt_neox') as Module & { forward(x: Tensor): Tensor }).forward(batch.ids),
      ),
    };
  }
}

describe('task heads', () => {
  it("getPeftModel finds the model type through a head; forward keeps the head's types; the labels and base path go to adapter_config.json", async () => {
    const p = getPeftModel(new ToyHead(neox()), { taskType: 'SEQ_CLS', r: 2 });
    expect(p.targetedModules()).toEqual(['gpt_neox.layers.0.attention.query_key_value', 'gpt_neox.layers.1.attention.query_key_value']);
    const x = ids([[1, 2, 3]]);
    // Typed as ToyHead.forward: { logits } without a cast.
    const { logits } = noGrad(() => p.forward({ ids: x }));
    expect(logits.shape).toEqual([1, 3, 2]);
    const sink = memorySink('head');
    await saveAdapterTo(p, sink);
    const json = new TextDecoder().decode(sink.files.get('adapter_config.json')!);
    const config = JSON.parse(json);
    expect(config.id2label).toEqual({ 0: 'no', 1: 'yes' });
    expect(config.label2id).toEqual({ no: 0, yes: 1 });
    expect(config.base_model_name_or_path).toBe('/models/toy-neox');
    expect(config.modules_to_save).toEqual(['classifier', 'score']);
    // Sorted among PEFT's keys, as json.dumps(sort_keys=True) puts them.
    expect(json.indexOf('"id2label"')).toBeGreaterThan(json.indexOf('"fan_in_fan_out"'));
    expect(json.indexOf('"label2id"')).toBeGreaterThan(json.indexOf('"init_lora_weights"'));
    // A plain model writes neither key.
    const plain = memorySink('plain');
    const q = getPeftModel(neox(), { r: 2 });
    await saveAdapterTo(q, plain);
    expect(Object.keys(JSON.parse(new TextDecoder().decode(plain.files.get('adapter_config.json')!)))).toHaveLength(36);
    // The labels do not disturb loading.
    const again = await loadAdapterFrom(new ToyHead(neox()), bytesReader(sink.files, 'head'));
    expect(again.peftConfig.get('default')!.taskType).toBe('SEQ_CLS');
    for (const t of [x, logits]) t.dispose();
    for (const m of [p, q, again]) m.dispose();
  });
});

describe('PEFT files', () => {
  it('save → load gives identical outputs; keys as PEFT writes them; config fields PEFT writes', async () => {
    const p = getPeftModel(neox(6), {
      r: 2,
      loraAlpha: 4,
      targetModules: ['query_key_value', 'embed_in'],
      modulesToSave: ['embed_out'],
      useDora: true,
    });
    perturb(p);
    p.eval();
    const out = await run(p);
    const sink = memorySink('adapter');
    await saveAdapterTo(p, sink);
    const file = await openSafetensors(bytesSource(sink.files.get('adapter_model.safetensors')!));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.names().sort()).toEqual([
      'base_model.model.embed_out.weight',
      'base_model.model.gpt_neox.embed_in.lora_embedding_A',
      'base_model.model.gpt_neox.embed_in.lora_embedding_B',
      'base_model.model.gpt_neox.embed_in.lora_magnitude_vector',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_B.weight',
      'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_magnitude_vector',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_A.weight',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_B.weight',
      'base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_magnitude_vector',
    ]);
    const config = JSON.parse(new TextDecoder().decode(sink.files.get('adapter_config.json')!));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      peft_version: '0.18.1',
      r: 2,
      lora_alpha: 4,
      use_dora: true,
      inference_mode: true,
      modules_to_save: ['embed_out'],
    });
    expect(config.auto_mapping).toEqual({
      base_model_class: 'GPTNeoXForCausalLM',
      parent_library: 'transformers.models.gpt_neox.modeling_gpt_neox',
    });
    await file.close();

    const fresh = neox(6);
    const loaded = await loadAdapterFrom(fresh, bytesReader(sink.files, 'adapter'));
    loaded.eval();
    expect(Array.from(await run(loaded))).toEqual(Array.from(out));
    expect(loaded.parameterCounts().trainable).toBe(0);
    // As a second adapter of an existing PeftModel.
    const other = getPeftModel(neox(6), { r: 1 }, { adapterName: 'first' });
    await loadAdapterFrom(other, bytesReader(sink.files, 'adapter'), { adapterName: 'second', isTrainable: true });
    other.setAdapter('second');
    other.eval();
    expect(Array.from(await run(other))).toEqual(Array.from(out));
    expect(other.parameterCounts().trainable).toBeGreaterThan(0);
    for (const x of [p, loaded, other]) x.dispose();
  });

  it('saves the base embeddings when embed_tokens / lm_head carry LoRA, as PEFT save_embedding_layers="auto"', async () => {
    const p = getPeftModel(llama(), { targetModules: ['q_proj', 'embed_tokens'], r: 2 });
    const keys = [...adapterStateDict(p).keys()];
    expect(keys).toContain('base_model.model.model.embed_tokens.base_layer.weight');
    expect(keys).not.toContain('base_model.model.lm_head.weight');
    expect(keys.filter((k) => k.includes('lora'))).toHaveLength(6);
    const sink = memorySink('a');
    await saveAdapterTo(p, sink);
    const loaded = await loadAdapterFrom(llama(), bytesReader(sink.files, 'a'));
    expect(Array.from(await run(loaded))).toEqual(Array.from(await run(p)));
    p.dispose();
    loaded.dispose();
  });

  it('clear errors for an adapter of another base model or another size', async () => {
    const p = getPeftModel(llama(), { targetModules: ['q_proj', 'v_proj'], r: 2 });
    const sink = memorySink('llama-adapter');
    await saveAdapterTo(p, sink);
    const m = neox();
    const names = [...m.namedParameters()].map(([n]) => n);
    await expect(loadAdapterFrom(m, bytesReader(sink.files, 'llama-adapter'))).rejects.toThrow(
      'llama-adapter: the adapter that adapter_config.json describes does not fit this model: LoRA: target modules ["q_proj","v_proj"] not found in the base model',
    );
    expect([...m.namedParameters()].map(([n]) => n)).toEqual(names);
    const wider = new ToyLlama(13, 10, 2, backend, new Generator(1));
    await expect(loadAdapterFrom(wider, bytesReader(sink.files, 'llama-adapter'))).rejects.toThrow(
      'llama-adapter/adapter_model.safetensors: tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2, 6] but this model needs [2, 10]',
    );
    expect([...wider.namedParameters()].some(([n]) => n.includes('lora'))).toBe(false);
    const deeper = new ToyLlama(13, 6, 1, backend, new Generator(1));
    await expect(loadAdapterFrom(deeper, bytesReader(sink.files, 'llama-adapter'))).rejects.toThrow(
      /has 4 tensors this model has no place for \(was the adapter made for another base model, or does adapter_config\.json target fewer modules than it holds\?\): base_model\.model\.model\.layers\.1/,
    );
    for (const x of [p, m, wider, deeper]) x.dispose();
  });

  it('saveMerged writes the base names with the adapters merged, leaving the PeftModel as it was', async () => {
    const p = getPeftModel(neox(8), { r: 2, targetModules: ['query_key_value', 'embed_in'], modulesToSave: ['embed_out'] });
    perturb(p);
    const out = await run(p);
    const names = mergedTensors(p).map((t) => t.name);
    expect(names).toEqual([...neox(8).namedParameters()].map(([n]) => n));
    const sink = memorySink('merged');
    await saveMergedTo(p, sink);
    expect([...sink.files.keys()].sort()).toEqual(['config.json', 'model.safetensors']);
    const file = await openSafetensors(bytesSource(sink.files.get('model.safetensors')!));
    const fresh = neox(99);
    for (const [n, t] of fresh.namedParameters()) backend.write(t.buffer(), (await file.readTensor(n)).data);
    expect(maxDiff(await run(fresh), out)).toBeLessThan(1e-5);
    expect(p.loraLayers().every(([, l]) => !l.merged)).toBe(true);
    await file.close();
    p.dispose();
    fresh.dispose();
  });
});

describe('counts from shapes alone', () => {
  it('agree with the adapted model for every kind of config', () => {
    const configs = [
      { r: 4 },
      { r: 3, targetModules: 'all-linear' },
      { r: 2, targetModules: ['query_key_value', 'dense', 'embed_in', 'embed_out'], useDora: true, bias: 'lora_only' as const },
      {
        r: 8,
        targetModules: ['dense_h_to_4h'],
        modulesToSave: ['embed_out'],
        bias: 'all' as const,
        rankPattern: { 'layers\\.1\\.mlp\\.dense_h_to_4h': 2 },
      },
      { r: 2, targetModules: ['dense'], taskType: 'SEQ_CLS' as const },
    ];
    for (const c of configs) {
      const m = neox();
      const counts = countLoraParametersOf(m, c);
      const p = getPeftModel(m, c);
      const real = p.parameterCounts();
      expect([counts.trainable, counts.total, counts.line]).toEqual([real.trainable, real.total, real.line]);
      expect(counts.targets.map((t) => t.name)).toEqual(p.targetedModules());
      p.dispose();
    }
    const shapes = describeModel(llama());
    expect(shapes.find((s) => s.name === 'model.layers.0.mlp.up_proj')).toMatchObject({ kind: 'linear', in: 6, out: 12, bias: false });
  });
});
