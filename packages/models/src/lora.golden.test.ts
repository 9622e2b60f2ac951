import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import {
  adapterStateDict,
  backward,
  crossEntropy,
  fromPeftConfigDict,
  gatherRows,
  getPeftModel,
  Linear,
  Module,
  noGrad,
  type PeftModel,
  reshape,
  type Tensor,
  tensor,
  tidy,
  toPeftConfigJson,
} from '@peft/core';
import { loadAdapter, loadSafetensors, saveAdapter, saveMerged } from '@peft/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import type { CausalLM } from './causal-lm.js';
import type { ForwardInput } from './models/common.js';
import { loadModel } from './node/index.js';

/**
 * LoRA on the tiny checkpoints against PyTorch: fixtures/adapters/* were written by
 * packages/core/scripts/make-lora-goldens.py with Python PEFT's file conventions, with the logits
 * and adapter gradients torch computes for them.
 */
const ROOT = join(import.meta.dirname, '..', '..', '..', 'fixtures');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

interface Golden {
  model: string;
  inputIds: number[][];
  attentionMask: number[][];
  targeted: string[];
  loss: number;
  labels?: number[];
  targets?: number[][];
}

const adapterDir = (name: string) => join(ROOT, 'adapters', name);
const golden = (name: string): Golden => JSON.parse(readFileSync(join(adapterDir(name), 'golden.json'), 'utf8'));

async function expected(name: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await loadSafetensors(join(adapterDir(name), 'expected.safetensors'));
  return new Map([...tensors].map(([k, t]) => [k, t.data as Float32Array]));
}

/** GPTNeoXForSequenceClassification over a loaded CausalLM: gpt_neox + score (no bias), last real token pooled (Study A). */
class NeoXForSequenceClassification extends Module {
  readonly config: { modelType: string };
  constructor(
    readonly causal: CausalLM,
    labels: number,
  ) {
    super();
    this.config = { modelType: causal.config.modelType };
    this.registerModule('gpt_neox', causal.base);
    this.registerModule('score', new Linear(causal.config.hiddenSize, labels, { backend, bias: false }));
  }
  forward(input: ForwardInput & { attentionMask: number[][] }): Tensor {
    return tidy(() => {
      const hidden = this.causal.hiddenStates(input);
      const [b, t, h] = hidden.shape as [number, number, number];
      const last = input.attentionMask.map((row, i) => i * t + row.reduce((n, x) => n + x, 0) - 1);
      const pooled = gatherRows(reshape(hidden, [b * t, h]), tensor(last, [b], { backend, dtype: 'int32' }));
      return (this.getSubmodule('score') as Linear).forward(pooled);
    });
  }
}

function logitsOf(peft: PeftModel, g: Golden): Tensor {
  const input = { inputIds: g.inputIds, attentionMask: g.attentionMask };
  const out = peft.forward(input) as Tensor | { logits: Tensor };
  return 'logits' in out ? out.logits : out;
}

/** Max |a − b| over real tokens (all rows for sequence classification). */
function maxError(got: Float32Array, want: Float32Array, g: Golden, perToken: boolean): number {
  let worst = 0;
  if (!perToken) {
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    return worst;
  }
  const seq = g.attentionMask[0]!.length;
  const vocab = want.length / (g.attentionMask.length * seq);
  g.attentionMask.forEach((row, b) => {
    row.forEach((m, t) => {
      if (!m) return;
      for (let v = 0; v < vocab; v++) {
        const i = (b * seq + t) * vocab + v;
        worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      }
    });
  });
  return worst;
}

function lossOf(peft: PeftModel, g: Golden): Tensor {
  return tidy(() => {
    const logits = logitsOf(peft, g);
    if (g.labels) return crossEntropy(logits, g.labels);
    const [b, t, v] = logits.shape as [number, number, number];
    return crossEntropy(reshape(logits, [b * t, v]), g.targets!.flat());
  });
}

async function load(name: string, isTrainable = false): Promise<{ peft: PeftModel; g: Golden; seqCls: boolean }> {
  const g = golden(name);
  const causal = await loadModel(join(ROOT, 'models', g.model), { backend, dtype: 'float32' });
  const seqCls = g.labels !== undefined;
  const model = seqCls ? new NeoXForSequenceClassification(causal, 3) : causal;
  const peft = await loadAdapter(model, adapterDir(name), { isTrainable });
  peft.eval();
  return { peft, g, seqCls };
}

const CASES = [
  ['tiny-gpt-neox-seq-cls', 'Study A: GPT-NeoX query_key_value (default target), r 8, α 16, score head saved fully'],
  ['tiny-llama-all', 'Study B: Llama q,k,v,o,up,down,gate + embed_tokens + lm_head (LoRA on Embedding and the head)'],
  ['tiny-llama-dora', 'DoRA + rsLoRA, rank/alpha patterns, regex target with the embedding'],
] as const;

describe('adapters written with Python PEFT conventions load and compute what PyTorch computes', () => {
  for (const [name, what] of CASES) {
    it(`${name}: ${what}: logits, loss and every adapter gradient`, async () => {
      const { peft, g, seqCls } = await load(name, true);
      expect(peft.targetedModules()).toEqual(g.targeted);
      const want = await expected(name);
      const logits = noGrad(() => logitsOf(peft, g));
      expect(maxError((await logits.data()) as Float32Array, want.get('logits')!, g, !seqCls)).toBeLessThan(1e-4);
      logits.dispose();
      const loss = lossOf(peft, g);
      expect(await loss.item()).toBeCloseTo(g.loss, 4);
      backward(loss);
      loss.dispose();
      const state = adapterStateDict(peft, { saveEmbeddingLayers: false });
      let checked = 0;
      for (const [key, t] of state) {
        const ref = want.get(`grad.${key}`);
        expect(ref, key).toBeDefined();
        expect(t.grad, key).not.toBeNull();
        const got = await t.grad!.data();
        const scale = Math.max(...Array.from(ref!, Math.abs), 1e-3);
        let worst = 0;
        for (let i = 0; i < ref!.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref![i]!));
        expect(worst / scale, key).toBeLessThan(1e-3);
        checked++;
      }
      expect(checked).toBe([...want.keys()].length - 1);
      peft.dispose();
    });
  }

  it('adapter_config.json read and written back is byte for byte the file Python wrote', () => {
    for (const [name] of CASES) {
      const text = readFileSync(join(adapterDir(name), 'adapter_config.json'), 'utf8');
      const raw = JSON.parse(text);
      expect(toPeftConfigJson(fromPeftConfigDict(raw), { autoMapping: raw.auto_mapping }), name).toBe(text);
    }
  });

  it('merged and unmerged outputs agree within 1e-5; save → load is identical; saveMerged is a folder loadModel reads', async () => {
    const { peft, g } = await load('tiny-llama-all');
    const input = { inputIds: g.inputIds, attentionMask: g.attentionMask };
    const read = async () => {
      const t = noGrad(() => logitsOf(peft, g));
      const v = (await t.data()) as Float32Array;
      t.dispose();
      return v;
    };
    const unmerged = await read();
    const dir = mkdtempSync(join(tmpdir(), 'peft-lora-'));
    try {
      await saveAdapter(peft, join(dir, 'adapter'));
      const python = new Set(Object.keys((await loadSafetensors(join(adapterDir('tiny-llama-all'), 'adapter_model.safetensors'))).tensors));
      const ours = new Set(Object.keys((await loadSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors));
      expect([...(await loadSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))).tensors.keys()].sort()).toEqual(
        [...(await loadSafetensors(join(adapterDir('tiny-llama-all'), 'adapter_model.safetensors'))).tensors.keys()].sort(),
      );
      expect(ours.size).toBe(python.size);
      // Loaded from Python's folder and saved again: the very same bytes, both files.
      for (const file of ['adapter_config.json', 'adapter_model.safetensors']) {
        expect(readFileSync(join(dir, 'adapter', file)).equals(readFileSync(join(adapterDir('tiny-llama-all'), file))), file).toBe(true);
      }
      const again = await loadAdapter(
        await loadModel(join(ROOT, 'models', 'tiny-llama'), { backend, dtype: 'float32' }),
        join(dir, 'adapter'),
      );
      const t = noGrad(() => logitsOf(again, g));
      expect(Array.from((await t.data()) as Float32Array)).toEqual(Array.from(unmerged));
      t.dispose();
      again.dispose();

      // Merging and unmerging round the base weights: done after saving (this adapter saves the base embeddings too, as PEFT does).
      peft.merge();
      expect(maxError(await read(), unmerged, g, true)).toBeLessThan(1e-5);
      peft.unmerge();
      expect(maxError(await read(), unmerged, g, true)).toBeLessThan(1e-5);
      await saveMerged(peft, join(dir, 'merged'));
      const plain = await loadModel(join(dir, 'merged'), { backend, dtype: 'float32' });
      const { logits } = plain.forward(input);
      expect(maxError((await logits.data()) as Float32Array, unmerged, g, true)).toBeLessThan(1e-4);
      logits.dispose();
      plain.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    peft.dispose();
  });

  it('a bfloat16 base trains float32 adapters (PEFT autocasts adapter weights); merging keeps the base dtype', async () => {
    const causal = await loadModel(join(ROOT, 'models', 'tiny-gpt-neox'), { backend, dtype: 'bfloat16' });
    const seq = new NeoXForSequenceClassification(causal, 3);
    const peft = getPeftModel(seq, { r: 8, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' });
    const g = golden('tiny-gpt-neox-seq-cls');
    const loss = lossOf(peft, g);
    expect(Number.isFinite(await loss.item())).toBe(true);
    backward(loss);
    loss.dispose();
    const state = adapterStateDict(peft);
    for (const [key, t] of state) {
      if (key.includes('lora_')) expect(t.dtype, key).toBe('float32');
      expect(t.grad, key).not.toBeNull();
    }
    peft.eval();
    const before = noGrad(() => logitsOf(peft, g));
    peft.merge();
    const qkv = peft.loraLayers()[0]![1];
    expect(qkv.weight.dtype).toBe('bfloat16');
    const after = noGrad(() => logitsOf(peft, g));
    expect(maxError((await after.data()) as Float32Array, (await before.data()) as Float32Array, g, false)).toBeLessThan(0.05);
    before.dispose();
    after.dispose();
    peft.dispose();
  });

  it('an adapter for another base model or size fails with a clear error', async () => {
    const neox = await loadModel(join(ROOT, 'models', 'tiny-gpt-neox'), { backend, dtype: 'float32' });
    await expect(loadAdapter(neox, adapterDir('tiny-llama-all'))).rejects.toThrow(
      /tiny-llama-all: the adapter that adapter_config.json describes does not fit this model \(it was trained on fixtures\/models\/tiny-llama\): LoRA: target modules \["q_proj",.*\] not found in the base model/,
    );
    const smaller = await loadModel(join(ROOT, 'models', 'tiny-llama-bias'), { backend, dtype: 'float32' });
    await expect(loadAdapter(smaller, adapterDir('tiny-llama-dora'))).rejects.toThrow(
      /tiny-llama-dora\/adapter_model\.safetensors: tensor "base_model\.model\.model\.embed_tokens\.lora_embedding_B" has shape \[64, 4\] but this model needs \[32, 4\]: the adapter was made for a model of another size/,
    );
    // A fresh Study A setup on the same checkpoint trains only LoRA and the head copy.
    const seq = new NeoXForSequenceClassification(neox, 9);
    const peft = getPeftModel(seq, { r: 32, loraAlpha: 16, loraDropout: 0.1, modulesToSave: ['score'], taskType: 'SEQ_CLS' });
    const h = neox.config.hiddenSize;
    expect(peft.parameterCounts().trainable).toBe(neox.config.numLayers * 32 * (h + 3 * h) + 9 * h);
    expect(peft.peftConfig.get('default')!.modulesToSave).toEqual(['score', 'classifier', 'score']);
    peft.dispose();
    smaller.dispose();
  });
});
