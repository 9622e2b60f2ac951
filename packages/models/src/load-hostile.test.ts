import { readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { openSafetensors, serializeSafetensors } from '@peft/core';
import { fileSource } from '@peft/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLM, causalLMParameterShapes } from './causal-lm.js';
import { parseConfig } from './config.js';
import { copyOf, editConfig, FIXTURES, removeScratch, scratchDir } from './fixture-folders.testkit.js';
import { loadModel } from './node/index.js';

// Hostile model folders: each must be refused with an error naming the file, quickly, and before
// the model's memory is allocated.

const backend = createCpuBackend();
afterAll(() => {
  backend.destroy();
  removeScratch();
});

/** Runs `load`, expecting a rejection; returns its message, the time taken and the new array-buffer memory. */
async function refused(load: () => Promise<unknown>): Promise<{ message: string; ms: number; bytes: number }> {
  const buffersBefore = process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let peak = 0;
  // Sampled while the load runs: allocations made and freed before the rejection count too.
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - buffersBefore);
  }, 1);
  try {
    await load();
  } catch (error) {
    expect((error as Error).constructor).toBe(Error);
    return {
      message: (error as Error).message,
      ms: performance.now() - started,
      bytes: Math.max(peak, process.memoryUsage().arrayBuffers - buffersBefore),
    };
  } finally {
    clearInterval(timer);
  }
  throw new Error('the load was accepted');
}

const SECRET = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';

describe('loading a hostile model folder', () => {
  it('a config.json with 5,000 layers is refused from the checkpoint header, before allocating (was 11 s and 827 MiB)', async () => {
    const dir = copyOf('tiny-llama');
    editConfig(dir, (c) => {
      c.num_hidden_layers = 5000;
    });
    const { message, ms, bytes } = await refused(() => loadModel(dir, { backend }));
    expect(message).toBe(
      `${dir}: model.safetensors is missing 44982 of the model's 45003 tensors: model.layers.2.self_attn.q_proj.weight, model.layers.2.self_attn.k_proj.weight, model.layers.2.self_attn.v_proj.weight, model.layers.2.self_attn.o_proj.weight, model.layers.2.mlp.gate_proj.weight, … (a llama model with this config.json, num_hidden_layers 5000, has them)`,
    );
    expect(ms).toBeLessThan(1000);
    expect(bytes).toBeLessThan(16 * 2 ** 20);
  });

  it('a config.json with a million layers is refused by the config check', async () => {
    const dir = copyOf('tiny-llama');
    editConfig(dir, (c) => {
      c.num_hidden_layers = 1_000_000;
    });
    const { message, ms, bytes } = await refused(() => loadModel(dir, { backend }));
    expect(message).toBe(`${dir}/config.json: field "num_hidden_layers" is 1000000: expected a positive integer (at most 10000)`);
    expect(ms).toBeLessThan(500);
    expect(bytes).toBeLessThan(16 * 2 ** 20);
  });

  it('hidden_size 65536 is refused without allocating (was: RangeError, Array buffer allocation failed / Invalid typed array length)', async () => {
    const dir = copyOf('tiny-gpt-neox');
    editConfig(dir, (c) => {
      c.hidden_size = 65536;
    });
    const neox = await refused(() => loadModel(dir, { backend }));
    expect(neox.message).toMatch(new RegExp(`^${dir}/config\\.json: the attention projection .* is 12884901888 elements`));
    // Within what a tensor holds, but not what the checkpoint has: refused from its header.
    editConfig(dir, (c) => {
      c.hidden_size = 16384;
      c.intermediate_size = 65536;
    });
    const wide = await refused(() => loadModel(dir, { backend }));
    expect(wide.message).toBe(
      `${dir}/model.safetensors: tensor "gpt_neox.embed_in.weight" has shape [600, 64], config.json gives [600, 16384]`,
    );
    for (const r of [neox, wide]) {
      expect(r.ms).toBeLessThan(500);
      expect(r.bytes).toBeLessThan(16 * 2 ** 20);
    }
  });

  it('a checkpoint of integer tensors is refused before allocating', async () => {
    const dir = copyOf('tiny-llama');
    const file = join(dir, 'model.safetensors');
    const st = await openSafetensors(await fileSource(file));
    const tensors = [];
    for (const name of st.names()) {
      const info = st.info(name);
      tensors.push({
        name,
        dtype: name === 'model.norm.weight' ? ('I32' as const) : info.dtype,
        shape: info.shape,
        data: await st.readRaw(name),
      });
    }
    await st.close();
    writeFileSync(file, serializeSafetensors(tensors));
    const { message } = await refused(() => loadModel(dir, { backend }));
    expect(message).toBe(
      `${dir}/model.safetensors: tensor "model.norm.weight" is stored as I32: model weights must be floating point (F64, F32, F16, BF16, F8_E4M3, F8_E5M2, F8_E4M3FNUZ, F8_E5M2FNUZ)`,
    );
  });

  it('config.json that is null, [], {}, not JSON, empty or not text: an error naming config.json that quotes nothing', async () => {
    const cases: Array<[string | Uint8Array, string]> = [
      ['null', 'config.json must hold a JSON object of model settings ({"model_type": ..., "hidden_size": ...}), got null'],
      ['[]', 'config.json must hold a JSON object of model settings ({"model_type": ..., "hidden_size": ...}), got an array'],
      ['7', 'config.json must hold a JSON object of model settings ({"model_type": ..., "hidden_size": ...}), got a number'],
      ['{}', 'config.json has no "model_type": expected one of gpt_neox, llama, mistral, qwen2 (is this a Hugging Face model folder?)'],
      [SECRET, 'config.json: the text is not valid JSON at character 0 of 80'],
      ['', 'config.json: the text is not valid JSON (the text is empty)'],
      ['{"model_type": "llama",', 'config.json: the text is not valid JSON (the text ends early, after 23 characters)'],
      [new Uint8Array([0x7b, 0xff, 0x7d]), 'config.json is not UTF-8 text: it is not a JSON model config'],
      [
        `{"a": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
        'config.json: the text nests arrays or objects more than 32 levels deep (at character 37)',
      ],
    ];
    for (const [text, expected] of cases) {
      const dir = copyOf('tiny-llama');
      writeFileSync(join(dir, 'config.json'), text);
      const { message, ms } = await refused(() => loadModel(dir, { backend }));
      expect(message.startsWith(`${dir}/${expected}`), `${message} should start with ${dir}/${expected}`).toBe(true);
      expect(message).not.toMatch(/root|daemon/);
      expect(ms).toBeLessThan(500);
    }
  });

  it('a model.safetensors linked to a text file: its bytes never reach the message', async () => {
    const dir = copyOf('tiny-llama');
    const secret = join(scratchDir('peft-secret-'), 'secret.txt');
    writeFileSync(secret, SECRET);
    rmSync(join(dir, 'model.safetensors'));
    symlinkSync(secret, join(dir, 'model.safetensors'));
    const { message } = await refused(() => loadModel(dir, { backend }));
    expect(message).toBe(
      `${dir}/model.safetensors: not a safetensors file (header length field exceeds the file size ${SECRET.length}): the file is truncated or not safetensors`,
    );
    expect(message).not.toMatch(/root|daemon|3475222254926655346/);
  });

  it('200 failed loads leave no file descriptor open (was 200 more, closed only by the garbage collector)', async () => {
    const linked = copyOf('tiny-llama');
    const secret = join(scratchDir('peft-secret-'), 'secret.txt');
    writeFileSync(secret, SECRET);
    rmSync(join(linked, 'model.safetensors'));
    symlinkSync(secret, join(linked, 'model.safetensors'));
    const misshapen = copyOf('tiny-gpt-neox-seq');
    editConfig(misshapen, (c) => {
      c.num_hidden_layers = 3;
    });
    const openFds = () => readdirSync('/proc/self/fd').length;
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      await expect(loadModel(i % 2 ? linked : misshapen, { backend })).rejects.toThrow(i % 2 ? linked : misshapen);
    }
    expect(openFds()).toBe(before);
  });

  it('an index naming a shard outside the folder, or one that is missing, is refused naming it', async () => {
    const dir = copyOf('tiny-gpt-neox-seq');
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const original = JSON.stringify(index);
    index.weight_map['gpt_neox.embed_in.weight'] = '../../etc/passwd';
    writeFileSync(indexFile, JSON.stringify(index));
    await expect(loadModel(dir, { backend })).rejects.toThrow(
      'model.safetensors.index.json: weight_map entry for tensor "gpt_neox.embed_in.weight" is "../../etc/passwd": expected the name of a file in the same folder as the index (no path)',
    );
    writeFileSync(indexFile, original);
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadModel(dir, { backend })).rejects.toThrow(/in shard "model-00002-of-00002\.safetensors", which cannot be opened/);
  });
});

describe('causalLMParameterShapes', () => {
  it('lists exactly the names and shapes a built model has, for every architecture and bias/tying variant', () => {
    const names = [
      'tiny-gpt-neox',
      'tiny-llama',
      'tiny-llama-bias',
      'hf-gpt-neox-v5',
      'hf-llama-v5',
      'hf-mistral-v5',
      'hf-qwen2-v5',
      'hf-gpt-neox-v4-linear',
    ];
    for (const name of names) {
      const config = parseConfig(JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')));
      const model = new CausalLM(config, { backend, init: 'zeros' });
      const built = [...model.namedParameters()].map(([n, t]) => [n, t.shape]);
      expect(causalLMParameterShapes(config), name).toEqual(built);
      model.dispose();
    }
  });
});
