import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { Generator } from '../random/generator.js';
import { bytesReader } from '../safetensors/sharded-reader.js';
import { describeFailures, runFuzz, TEXT_MUTATORS } from '../testing/fuzz.js';
import { getPeftModel, type LoraConfigInput, loadAdapterFrom, memorySink, saveAdapterTo } from './index.js';
import { ToyLlama } from './toy.test-util.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

const llama = () => new ToyLlama(13, 6, 2, backend, new Generator(2));
const encoder = new TextEncoder();

/** Real adapters of the toy Llama, saved as PEFT saves them: LoRA, DoRA, rank/alpha patterns, modules to save. */
const ADAPTERS: Record<string, LoraConfigInput> = {
  lora: { targetModules: ['q_proj', 'v_proj'], r: 2, loraAlpha: 4, loraDropout: 0.05 },
  dora: { targetModules: ['q_proj', 'k_proj', 'o_proj'], r: 2, useDora: true, taskType: 'CAUSAL_LM' },
  'rank-pattern': {
    targetModules: '.*\\.(q_proj|v_proj|up_proj)',
    r: 2,
    rankPattern: { 'layers\\.0\\..*q_proj': 3 },
    alphaPattern: { up_proj: 8 },
    excludeModules: ['layers.1.self_attn.v_proj'],
  },
  'modules-to-save': { targetModules: ['q_proj'], r: 1, modulesToSave: ['lm_head'], bias: 'none', useRslora: true },
};

/** Hand-made hostile configs (the audit's findings), on top of the mutated ones. */
function hostile(config: Record<string, unknown>): { name: string; bytes: Uint8Array }[] {
  const edit = (name: string, change: Record<string, unknown>) => ({
    name,
    bytes: encoder.encode(JSON.stringify({ ...config, ...change })),
  });
  return [
    { name: 'null', bytes: encoder.encode('null') },
    edit('catastrophic target_modules', { target_modules: '(.+)+Z' }),
    edit('catastrophic exclude_modules', { exclude_modules: '(a|a)*Z' }),
    edit('catastrophic modules_to_save', { modules_to_save: ['(.+)+Z'] }),
    edit('catastrophic rank_pattern', { rank_pattern: { '(.+)+Z': 4 } }),
    edit('lookahead target_modules', { target_modules: '(?=q).*' }),
    edit('huge r', { r: 65536 }),
    edit('r 2^31', { r: 2 ** 31 }),
    edit('r 1e300', { r: 1e300 }),
    edit('rank_pattern 1e9', { rank_pattern: { q_proj: 1e9 } }),
  ];
}

describe('adapter_config.json fuzz', () => {
  for (const [kind, input] of Object.entries(ADAPTERS)) {
    it(`${kind}: each mutated adapter_config.json loads with its weights or is rejected naming adapter_config.json, in bounded time and memory`, async () => {
      const p = getPeftModel(llama(), input);
      const sink = memorySink('adapter');
      await saveAdapterTo(p, sink, { baseModelNameOrPath: 'toy/llama' });
      p.dispose();
      const seed = sink.files.get('adapter_config.json')!;
      const report = await runFuzz({
        reader: `adapter_config.json (${kind})`,
        file: 'adapter_config.json',
        seeds: [seed],
        cases: 300,
        mutators: TEXT_MUTATORS,
        extraCases: hostile(JSON.parse(new TextDecoder().decode(seed))),
        async read(bytes) {
          const files = new Map(sink.files);
          files.set('adapter_config.json', bytes);
          const model = llama();
          try {
            const loaded = await loadAdapterFrom(model, bytesReader(files, 'adapter'), { warn: () => {} });
            loaded.dispose();
          } finally {
            model.dispose();
          }
        },
      });
      expect(report.failures, describeFailures(report)).toEqual([]);
    }, 60_000);
  }
});
