import { cpSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, crossEntropy, reshape, serializeSafetensors, tidy } from '@peft/core';
import { afterAll, describe, expect, it } from 'vitest';
import { copyOf, editConfig, FIXTURES, removeScratch, scratchDir } from './fixture-folders.testkit.js';
import { loadConfig, loadModel } from './node/index.js';

const backend = createCpuBackend();
afterAll(() => {
  backend.destroy();
  removeScratch();
});

/** Rewrites model.safetensors with `edit` applied to its tensors (raw bytes, shapes, dtypes). */
async function editWeights(dir: string, edit: (t: Map<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }>) => void) {
  const { openSafetensors } = await import('@peft/core');
  const { fileSource } = await import('@peft/core/node');
  const file = join(dir, 'model.safetensors');
  const st = await openSafetensors(await fileSource(file));
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }>();
  for (const n of st.names()) tensors.set(n, { dtype: 'F32', shape: st.info(n).shape, data: await st.readRaw(n) });
  await st.close();
  edit(tensors);
  writeFileSync(file, serializeSafetensors([...tensors].map(([name, t]) => ({ name, ...t }))));
}

describe('loadModel reads a Hugging Face folder', () => {
  it('uses the Hugging Face parameter names', async () => {
    const model = await loadModel(join(FIXTURES, 'tiny-gpt-neox'), { backend });
    const names = [...model.namedParameters()].map(([n]) => n);
    expect(names.slice(0, 4)).toEqual([
      'gpt_neox.embed_in.weight',
      'gpt_neox.layers.0.input_layernorm.weight',
      'gpt_neox.layers.0.input_layernorm.bias',
      'gpt_neox.layers.0.post_attention_layernorm.weight',
    ]);
    expect(names).toContain('gpt_neox.layers.1.attention.query_key_value.weight');
    expect(names.at(-1)).toBe('embed_out.weight');
    expect(model.base.constructor.name).toBe('GPTNeoXModel');
    model.dispose();
    const llama = await loadModel(join(FIXTURES, 'tiny-llama'), { backend });
    expect([...llama.namedParameters()].map(([n]) => n)).toContain('model.layers.0.self_attn.q_proj.weight');
    expect(llama.lmHead.weight.name).toBe('lm_head.weight');
    llama.dispose();
  });

  it('keeps config.json torch_dtype unless told otherwise, and bfloat16 stays bfloat16', async () => {
    const dir = copyOf('tiny-llama');
    editConfig(dir, (c) => {
      c.torch_dtype = 'bfloat16';
    });
    const model = await loadModel(dir, { backend });
    expect(model.dtype).toBe('bfloat16');
    expect(model.lmHead.weight.dtype).toBe('bfloat16');
    model.dispose();
  });

  it('gives the same gradients with gradient checkpointing', async () => {
    const g = JSON.parse(readFileSync(join(FIXTURES, 'tiny-llama', 'golden.json'), 'utf8'));
    const grads: Float32Array[][] = [];
    for (const ckpt of [false, true]) {
      const model = (await loadModel(join(FIXTURES, 'tiny-llama'), { backend })).unfreeze();
      model.gradientCheckpointing = ckpt;
      const loss = tidy(() => {
        const { logits } = model.forward({ inputIds: g.right.inputIds, attentionMask: g.right.attentionMask });
        return crossEntropy(reshape(logits, [-1, model.config.vocabSize]), g.targets.flat());
      });
      backward(loss);
      loss.dispose();
      grads.push(await Promise.all(model.parameters().map(async (p) => (await p.grad!.data()) as Float32Array)));
      model.dispose();
    }
    for (const [i, a] of grads[0]!.entries()) expect(Array.from(grads[1]![i]!)).toEqual(Array.from(a));
  });
});

describe('loadModel names the file, the tensor and the value when input is bad', () => {
  it('a folder without config.json', async () => {
    const dir = scratchDir('peft-empty-');
    await expect(loadModel(dir, { backend })).rejects.toThrow(`${dir}: config.json not found`);
  });

  it('an unsupported model_type lists the supported ones', async () => {
    const dir = copyOf('tiny-llama');
    editConfig(dir, (c) => {
      c.model_type = 'bert';
    });
    await expect(loadConfig(dir)).rejects.toThrow(`${dir}/config.json has model_type "bert": supported are gpt_neox, llama`);
  });

  it('a config field of the wrong type', async () => {
    const dir = copyOf('tiny-llama');
    editConfig(dir, (c) => {
      c.hidden_size = '64';
    });
    await expect(loadConfig(dir)).rejects.toThrow(`${dir}/config.json: field "hidden_size" is "64": expected a positive integer`);
  });

  it('a missing tensor', async () => {
    const dir = copyOf('tiny-gpt-neox');
    await editWeights(dir, (t) => t.delete('gpt_neox.layers.1.mlp.dense_4h_to_h.bias'));
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      `${dir}: model.safetensors is missing 1 of the model's 28 tensors: gpt_neox.layers.1.mlp.dense_4h_to_h.bias`,
    );
  });

  it('an extra tensor', async () => {
    const dir = copyOf('tiny-gpt-neox');
    await editWeights(dir, (t) => t.set('gpt_neox.layers.2.attention.dense.weight', { dtype: 'F32', shape: [1], data: new Uint8Array(4) }));
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      `${dir}: model.safetensors has 1 tensors that a gpt_neox model with this config.json does not: gpt_neox.layers.2.attention.dense.weight`,
    );
  });

  it('a shape that does not match config.json', async () => {
    const dir = copyOf('tiny-gpt-neox');
    editConfig(dir, (c) => {
      c.intermediate_size = 128;
    });
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      `${dir}/model.safetensors: tensor "gpt_neox.layers.0.mlp.dense_h_to_4h.weight" has shape [256, 64], config.json gives [128, 64]`,
    );
  });

  it('a truncated shard', async () => {
    const dir = copyOf('tiny-gpt-neox-seq');
    const shard = join(dir, 'model-00002-of-00002.safetensors');
    truncateSync(shard, statSync(shard).size - 100);
    await expect(loadModel(dir, { backend })).rejects.toThrow(/model-00002-of-00002\.safetensors/);
  });

  it('a pytorch_model.bin whose pickle names a global that is not a tensor or dict', async () => {
    const dir = copyOf('tiny-llama-bias');
    cpSync(join(import.meta.dirname, 'weights', 'fixtures', 'torch-bin', 'malicious-os-system.bin'), join(dir, 'pytorch_model.bin'));
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      'pytorch_model.bin: pickle global "os.system" is not allowed: only tensors and dicts are read',
    );
  });

  it('weights that are not there at all', async () => {
    const dir = copyOf('tiny-llama');
    rmSync(join(dir, 'model.safetensors'));
    rmSync(join(dir, 'bin'), { recursive: true });
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      `${dir}: no weights found: looked for model.safetensors.index.json, model.safetensors, pytorch_model.bin.index.json, pytorch_model.bin`,
    );
  });
});

describe('a loaded model is frozen', () => {
  it('records nothing for autograd in a plain forward pass', async () => {
    const { tapeLength } = await import('@peft/core');
    const model = await loadModel(join(FIXTURES, 'tiny-llama'), { backend });
    expect(model.parameters().some((p) => p.requiresGrad)).toBe(false);
    const before = tapeLength();
    model.forward({ inputIds: [[5, 6, 7]] }).logits.dispose();
    expect(tapeLength()).toBe(before);
    model.dispose();
  });
});
