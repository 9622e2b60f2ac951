import { describe, expect, it } from 'vitest';
import { parseSize, planShards } from './shards.js';

const GB = 1e9;
/** An F32 tensor of `gb` gigabytes (by shape only: planning never touches data). */
const gbTensor = (name: string, gb: number) => ({ name, dtype: 'F32' as const, shape: [(gb * GB) / 4] });

describe('planShards', () => {
  it('splits like huggingface_hub: in order, a new shard when the next tensor would tip over', () => {
    // The example from split_state_dict_into_shards_factory's docstring: limit 10GB,
    // sizes [6, 6, 2, 6, 2, 2] GB shard as [6], [6+2], [6+2+2].
    const sizes = [6, 6, 2, 6, 2, 2];
    const plan = planShards(
      sizes.map((gb, i) => gbTensor(`t${i}`, gb)),
      '10GB',
    );
    expect(plan.sharded).toBe(true);
    expect(plan.shards).toEqual([
      { fileName: 'model-00001-of-00003.safetensors', names: ['t0'], byteLength: 6 * GB },
      { fileName: 'model-00002-of-00003.safetensors', names: ['t1', 't2'], byteLength: 8 * GB },
      { fileName: 'model-00003-of-00003.safetensors', names: ['t3', 't4', 't5'], byteLength: 10 * GB },
    ]);
    expect(plan.totalSize).toBe(24 * GB);
    expect(plan.index.metadata).toEqual({ total_size: 24 * GB });
    expect(plan.index.weight_map.t4).toBe('model-00003-of-00003.safetensors');
  });

  it('gives a tensor bigger than the limit a shard of its own', () => {
    const plan = planShards([gbTensor('a', 1), gbTensor('huge', 3), gbTensor('b', 1)], 2 * GB);
    expect(plan.shards.map((s) => s.names)).toEqual([['huge'], ['a', 'b']]);
    expect(plan.shards.map((s) => s.fileName)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  });

  it('names a single shard <prefix>.safetensors and marks it unsharded', () => {
    const plan = planShards([{ name: 'w', dtype: 'bfloat16', shape: [4, 4] }], '5GB', { prefix: 'adapter_model' });
    expect(plan.sharded).toBe(false);
    expect(plan.shards).toEqual([{ fileName: 'adapter_model.safetensors', names: ['w'], byteLength: 32 }]);
    expect(plan.indexFileName).toBe('adapter_model.safetensors.index.json');
  });

  it("writes the index text exactly as transformers does (json.dumps(indent=2, sort_keys=True) + '\\n')", () => {
    const plan = planShards(
      [
        { name: 'embed.weight', dtype: 'F32', shape: [3, 2] },
        { name: '10', dtype: 'F32', shape: [1] },
        { name: 'lm_head.weight', dtype: 'F32', shape: [2, 3] },
        { name: 'norm.é', dtype: 'F32', shape: [1] },
      ],
      28,
      { indexMetadata: { total_parameters: 14 } },
    );
    // Produced by Python: json.dumps({...}, indent=2, sort_keys=True) + "\n"
    expect(plan.indexJson).toBe(
      '{\n  "metadata": {\n    "total_parameters": 14,\n    "total_size": 56\n  },\n  "weight_map": {\n    "10": "model-00001-of-00002.safetensors",\n    "embed.weight": "model-00001-of-00002.safetensors",\n    "lm_head.weight": "model-00002-of-00002.safetensors",\n    "norm.\\u00e9": "model-00002-of-00002.safetensors"\n  }\n}\n',
    );
  });

  it('parses sizes in decimal units and rejects nonsense', () => {
    expect(parseSize('5GB')).toBe(5_000_000_000);
    expect(parseSize(' 1.5 mb')).toBe(1_500_000);
    expect(() => parseSize('5GiB')).toThrow('size "5GiB" is not understood: write a number and a unit (TB, GB, MB, KB), e.g. "5GB"');
    expect(() => planShards([], 0)).toThrow('planShards: maxShardBytes must be a positive number of bytes, got 0');
    expect(() => planShards([gbTensor('a', 1), gbTensor('a', 1)], '5GB')).toThrow('planShards: tensor "a" is given twice');
  });
});
