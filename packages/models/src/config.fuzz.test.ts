import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { bytesReader } from '@peft/core';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '@peft/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFrom } from './load.js';

// config.json through the real loading path: the config is validated, the checkpoint's header is
// checked against it, and only then is the model allocated and its weights read. Every mutated
// config must load or be refused with an error naming config.json, within 2 s and 256 MiB.

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());
const encoder = new TextEncoder();

const ARCHITECTURES = [
  { type: 'gpt_neox', folders: ['hf-gpt-neox-v5', 'hf-gpt-neox-v4'] },
  { type: 'llama', folders: ['hf-llama-v5', 'hf-llama-v4'] },
  { type: 'mistral', folders: ['hf-mistral-v5', 'hf-mistral-v4'] },
  { type: 'qwen2', folders: ['hf-qwen2-v5', 'hf-qwen2-v4'] },
] as const;

describe('config.json fuzz', () => {
  for (const { type, folders } of ARCHITECTURES) {
    it(`${type}: each mutated config.json loads with its checkpoint or is refused naming config.json, in bounded time and memory`, async () => {
      // The v5 and v4 folders of one architecture hold the same tensors; each config is paired with its own.
      const weights = folders.map((f) => new Uint8Array(readFileSync(join(FIXTURES, f, 'model.safetensors'))));
      const configs = folders.map((f) => new Uint8Array(readFileSync(join(FIXTURES, f, 'config.json'))));
      const raw = JSON.parse(new TextDecoder().decode(configs[0]));
      const edited = (edit: Record<string, unknown>) => encoder.encode(JSON.stringify({ ...raw, ...edit }));
      const report = await runFuzz({
        reader: `config.json (${type})`,
        file: 'config.json',
        seeds: configs,
        cases: 200,
        mutators: TEXT_MUTATORS,
        extraCases: [
          { name: 'null', bytes: encoder.encode('null') },
          { name: 'array', bytes: encoder.encode('[]') },
          { name: 'empty object', bytes: encoder.encode('{}') },
          { name: 'not JSON', bytes: encoder.encode('root:x:0:0:root:/root:/bin/bash') },
          { name: '5000 layers', bytes: edited({ num_hidden_layers: 5000 }) },
          { name: '1e6 layers', bytes: edited({ num_hidden_layers: 1_000_000 }) },
          { name: 'hidden 65536', bytes: edited({ hidden_size: 65536, head_dim: null }) },
          { name: 'vocab 2^24', bytes: edited({ vocab_size: 2 ** 24 }) },
          { name: 'intermediate 2^20', bytes: edited({ intermediate_size: 2 ** 20 }) },
          { name: 'max positions 2^30', bytes: edited({ max_position_embeddings: 2 ** 30 }) },
          { name: 'heads 2^14', bytes: edited({ num_attention_heads: 2 ** 14, num_key_value_heads: 2 ** 14 }) },
          { name: 'kv heads 3', bytes: edited({ num_key_value_heads: 3 }) },
          { name: 'tied', bytes: edited({ tie_word_embeddings: !raw.tie_word_embeddings }) },
          { name: 'bfloat16', bytes: edited({ torch_dtype: 'bfloat16', dtype: 'bfloat16' }) },
          { name: 'deep', bytes: encoder.encode(`{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`) },
        ],
        async read(bytes, file) {
          // A mutated config is paired with the checkpoint of the seed it most likely came from.
          const seed = new TextDecoder().decode(bytes).includes('rope_parameters') ? 0 : 1;
          const opener = bytesReader({ [file]: bytes, 'model.safetensors': weights[seed]! }, 'model');
          const model = await loadModelFrom(opener, { backend });
          const count = model.parameterCount().total;
          model.dispose();
          return count;
        },
      });
      expect(report.failures, describeFailures(report)).toEqual([]);
    }, 120_000);
  }
});
