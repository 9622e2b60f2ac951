// Hostile adapter_config.json files and adapters that do not match their model: each is rejected
// (or warned about) at once, with an error naming the file, the field and the value.
import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryInfo } from '../memory.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { Generator } from '../random/generator.js';
import { bytesReader } from '../safetensors/sharded-reader.js';
import { getPeftModel, type LoadAdapterOptions, loadAdapterFrom, memorySink, saveAdapterTo } from './index.js';
import { ToyLlama } from './toy.test-util.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

const llama = (seed = 2) => new ToyLlama(13, 6, 2, backend, new Generator(seed));
const encoder = new TextEncoder();

/** A saved q_proj/v_proj adapter (r 2) of the toy Llama: its files by name. */
async function savedAdapter(config: Parameters<typeof getPeftModel>[1] = { targetModules: ['q_proj', 'v_proj'], r: 2 }) {
  const p = getPeftModel(llama(), config);
  const sink = memorySink('adapter');
  await saveAdapterTo(p, sink, { baseModelNameOrPath: 'meta-llama/toy-llama' });
  p.dispose();
  return sink.files;
}

/** The files with adapter_config.json changed by `edit` (or replaced by `text`). */
function withConfig(files: Map<string, Uint8Array>, edit: ((c: Record<string, unknown>) => void) | string): Map<string, Uint8Array> {
  const out = new Map(files);
  if (typeof edit === 'string') out.set('adapter_config.json', encoder.encode(edit));
  else {
    const c = JSON.parse(new TextDecoder().decode(files.get('adapter_config.json')!));
    edit(c);
    out.set('adapter_config.json', encoder.encode(JSON.stringify(c)));
  }
  return out;
}

/** Loads onto a fresh toy Llama; returns the error (or null) and the time it took. */
async function load(files: Map<string, Uint8Array>, opts: LoadAdapterOptions = {}, model: Module = llama()) {
  const started = performance.now();
  let error: Error | null = null;
  try {
    const p = await loadAdapterFrom(model, bytesReader(files, 'adapter'), opts);
    p.dispose();
  } catch (e) {
    error = e as Error;
    model.dispose();
  }
  return { error, ms: performance.now() - started };
}

describe('adapter_config.json patterns', () => {
  it('catastrophic patterns in every pattern field return at once (Python re.fullmatch semantics, linear time)', async () => {
    const files = await savedAdapter();
    const hostile = '(.+)+Z';
    const cases: [string, (c: Record<string, unknown>) => void][] = [
      ['target_modules', (c) => (c.target_modules = `${hostile}|.*\\.(q|v)_proj`)],
      ['exclude_modules', (c) => (c.exclude_modules = '(a|a)*Z')],
      ['modules_to_save', (c) => (c.modules_to_save = [hostile])],
      ['rank_pattern', (c) => (c.rank_pattern = { [hostile]: 4 })],
      ['alpha_pattern', (c) => (c.alpha_pattern = { '(\\w|\\w\\w)*!': 4 })],
    ];
    for (const [field, edit] of cases) {
      const { error, ms } = await load(withConfig(files, edit));
      expect(error, field).toBeNull();
      // Before: the JavaScript engine backtracked 2^30 and more paths per module name (never returned).
      expect(ms, field).toBeLessThan(1000);
    }
    // A catastrophic target that matches nothing is "not found", quickly.
    const { error, ms } = await load(withConfig(files, (c) => (c.target_modules = hostile)));
    expect(error?.message).toContain('target modules "(.+)+Z" not found in the base model');
    expect(ms).toBeLessThan(1000);
  });

  it('rejects patterns outside the supported subset, naming adapter_config.json, the field and the pattern', async () => {
    const files = await savedAdapter();
    const cases: [(c: Record<string, unknown>) => void, string][] = [
      [
        (c) => (c.target_modules = '.*(?=q_proj)q_proj'),
        'adapter/adapter_config.json: target_modules ".*(?=q_proj)q_proj" uses a lookahead',
      ],
      [(c) => (c.exclude_modules = '(q)\\1'), 'adapter_config.json: exclude_modules "(q)\\\\1" uses a backreference'],
      [(c) => (c.modules_to_save = ['(?i)score']), 'adapter_config.json: modules_to_save entry "(?i)score" uses inline flags'],
      [(c) => (c.rank_pattern = { 'q_proj(': 4 }), 'adapter_config.json: rank_pattern key "q_proj(" has an unclosed "("'],
      [(c) => (c.alpha_pattern = { 'a++': 4 }), 'adapter_config.json: alpha_pattern key "a++" uses a possessive quantifier'],
      [
        (c) => {
          c.layers_to_transform = [0];
          c.layers_pattern = '(?<=x)layers';
        },
        'adapter_config.json: layers_pattern "(?<=x)layers" uses a lookbehind',
      ],
    ];
    for (const [edit, message] of cases) {
      const { error } = await load(withConfig(files, edit));
      expect(error?.message).toContain(message);
      expect(error?.message).toContain('module-name patterns support');
      expect(error?.constructor).toBe(Error);
    }
  });
});

describe('adapter_config.json fields', () => {
  it('rejects a config that is not an object', async () => {
    const files = await savedAdapter();
    for (const [text, got] of [
      ['null', 'null'],
      ['[]', 'an array'],
      ['7', 'number'],
    ]) {
      const { error } = await load(withConfig(files, text as string));
      expect(error?.message).toBe(`adapter/adapter_config.json must hold a JSON object (PEFT's adapter config), got ${got}`);
    }
    const { error } = await load(withConfig(files, '{"r": '));
    expect(error?.message).toMatch(/^adapter: cannot read adapter_config\.json: /);
  });

  it('bounds the file and its lists before matching them against every module', async () => {
    const files = await savedAdapter();
    const big = await load(withConfig(files, (c) => (c.padding = 'x'.repeat(17 * 2 ** 20))));
    expect(big.error?.message).toMatch(/^adapter: cannot read adapter_config\.json: it is 178\d{5} bytes: at most 16777216 are read$/);
    const many = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`m${i}`, 2]));
    const cases: [(c: Record<string, unknown>) => void, string][] = [
      [(c) => (c.rank_pattern = many), 'adapter/adapter_config.json: rank_pattern has 1001 patterns: at most 1000 are supported'],
      [(c) => (c.alpha_pattern = many), 'adapter/adapter_config.json: alpha_pattern has 1001 patterns: at most 1000 are supported'],
      [
        (c) => (c.modules_to_save = Object.keys(many)),
        'adapter/adapter_config.json: modules_to_save lists 1001 modules: at most 1000 are supported',
      ],
      [
        (c) => (c.target_modules = Array.from({ length: 100_001 }, (_, i) => `t${i}`)),
        'adapter/adapter_config.json: target_modules lists 100001 names: at most 100000 are supported',
      ],
    ];
    for (const [edit, message] of cases) {
      const { error, ms } = await load(withConfig(files, edit));
      expect(error?.message).toBe(message);
      expect(ms).toBeLessThan(1000);
    }
  });

  it('validates every field it uses, naming the field, the value and what is expected', async () => {
    const files = await savedAdapter();
    const cases: [string, unknown, string][] = [
      ['r', 0, 'r is 0: expected a positive integer rank of at most 65536'],
      ['r', 1e9, 'r is 1000000000: expected a positive integer rank of at most 65536'],
      ['r', '8', 'r is "8": expected a positive integer'],
      ['r', 2.5, 'r is 2.5: expected a positive integer'],
      ['lora_alpha', '16', 'lora_alpha is "16": expected a finite number'],
      ['lora_alpha', null, 'lora_alpha is null: expected a finite number'],
      ['lora_dropout', 1, 'lora_dropout is 1: expected a probability in [0, 1)'],
      ['lora_dropout', -0.1, 'lora_dropout is -0.1: expected a probability in [0, 1)'],
      ['target_modules', 5, 'target_modules is 5: expected a list of non-empty module names, a regex string, or null'],
      ['target_modules', ['q_proj', 3], 'target_modules is ["q_proj",3]'],
      ['target_modules', '', 'target_modules is "": expected a non-empty regex'],
      ['exclude_modules', {}, 'exclude_modules is {}: expected a list'],
      ['bias', 'some', 'bias is "some": expected "none", "all" or "lora_only"'],
      ['task_type', 'CLASSIFY', 'task_type is "CLASSIFY": expected one of SEQ_CLS'],
      ['peft_type', 'IA3', 'has peft_type "IA3": only "LORA" adapters are supported'],
      ['use_dora', 'yes', 'use_dora is "yes": expected true or false'],
      ['use_rslora', 1, 'use_rslora is 1: expected true or false'],
      ['inference_mode', 'no', 'inference_mode is "no": expected true or false'],
      ['rank_pattern', [1], 'rank_pattern is [1]: expected an object mapping module-name patterns to numbers'],
      ['rank_pattern', { q_proj: 0 }, 'rank_pattern["q_proj"] is 0: expected a positive integer rank'],
      ['rank_pattern', { q_proj: 1e12 }, 'rank_pattern["q_proj"] is 1000000000000: expected a positive integer rank of at most 65536'],
      ['alpha_pattern', { q_proj: 'x' }, 'alpha_pattern["q_proj"] is "x": expected a finite number'],
      ['fan_in_fan_out', true, 'fan_in_fan_out is true: not supported'],
      ['init_lora_weights', 'pissa', 'init_lora_weights is "pissa": expected true, false or "gaussian" (other PEFT inits'],
      ['init_lora_weights', 3, 'init_lora_weights is 3: expected true, false or "gaussian"'],
      ['modules_to_save', 'score', 'modules_to_save is "score": expected a list of non-empty module names or null'],
      ['layers_to_transform', [-1], 'layers_to_transform is [-1]: expected a non-negative layer index'],
      ['layers_to_transform', 'all', 'layers_to_transform is "all"'],
      ['layers_pattern', 5, 'layers_pattern is 5: expected a module-list name'],
      ['base_model_name_or_path', 5, 'base_model_name_or_path is 5: expected a string or null'],
      ['revision', [], 'revision is []: expected a string or null'],
    ];
    for (const [field, value, message] of cases) {
      const { error, ms } = await load(withConfig(files, (c) => (c[field] = value)));
      expect(error?.message, `${field} ${JSON.stringify(value)}`).toContain(`adapter/adapter_config.json`);
      expect(error?.message, `${field} ${JSON.stringify(value)}`).toContain(message);
      expect(error?.constructor, field).toBe(Error);
      expect(ms).toBeLessThan(500);
    }
  });
});

/** One Linear of 1024 × 1024 called q_proj, to show that a huge rank is refused before it is allocated. */
class Wide extends Module {
  constructor() {
    super();
    this.registerModule('q_proj', new Linear(1024, 1024, { backend, bias: false, init: 'zeros' }));
  }
}

describe('adapter weights checked against the config and the model before allocating', () => {
  it('a huge r in adapter_config.json fails on the weights header within milliseconds, allocating nothing', async () => {
    const p = getPeftModel(new Wide(), { targetModules: ['q_proj'], r: 2 });
    const sink = memorySink('wide');
    await saveAdapterTo(p, sink);
    p.dispose();
    const model = new Wide();
    const before = memoryInfo(backend);
    const { error, ms } = await load(
      withConfig(sink.files, (c) => (c.r = 65536)),
      {},
      model,
    );
    expect(error?.message).toBe(
      'adapter/adapter_model.safetensors: tensor "base_model.model.q_proj.lora_A.weight" has shape [2, 1024] but adapter_config.json gives this module rank 65536 (r, rank_pattern): the config does not match the weights',
    );
    // Before: 2 × 65536 × 1024 float32 (512 MiB) were allocated and initialised first (about 2 s).
    expect(ms).toBeLessThan(200);
    expect(memoryInfo(backend).bytes).toBeLessThanOrEqual(before.bytes);
    // The same through rank_pattern.
    const viaPattern = await load(
      withConfig(sink.files, (c) => (c.rank_pattern = { q_proj: 60000 })),
      {},
      new Wide(),
    );
    expect(viaPattern.error?.message).toContain('gives this module rank 60000');
    expect(viaPattern.ms).toBeLessThan(200);
  });

  it('LoRA tensors of the wrong dtype or missing from the file are named before allocating', async () => {
    const files = await savedAdapter();
    const { error } = await load(withConfig(files, (c) => (c.target_modules = ['q_proj', 'v_proj', 'k_proj'])));
    expect(error?.message).toContain(
      "adapter/adapter_model.safetensors lacks 4 of the adapter's LoRA tensors that adapter_config.json (r 2, target_modules",
    );
    expect(error?.message).toContain('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight');
  });
});

describe('warnings for an adapter of another base model or task', () => {
  class Named extends ToyLlama {
    nameOrPath = '/models/other-model';
  }
  class Classifier extends Module {
    constructor() {
      super();
      this.registerModule('model', llama().getSubmodule('model'));
      this.registerModule('score', new Linear(6, 2, { backend, bias: false }));
    }
  }

  it('warns (without failing) when base_model_name_or_path names another model than the base folder', async () => {
    const files = await savedAdapter();
    const warnings: string[] = [];
    const { error } = await load(files, { warn: (m) => warnings.push(m) }, new Named(13, 6, 2, backend, new Generator(2)));
    expect(error).toBeNull();
    expect(warnings).toEqual([
      'adapter/adapter_config.json: base_model_name_or_path is "meta-llama/toy-llama" but the base model was loaded from "/models/other-model": the adapter may have been trained on another model (ignore this if the folder was renamed)',
    ]);
    // The same name in another folder is not a warning (folders get moved).
    const moved = class extends ToyLlama {
      nameOrPath = '/data/models/toy-llama/';
    };
    warnings.length = 0;
    await load(files, { warn: (m) => warnings.push(m) }, new moved(13, 6, 2, backend, new Generator(2)));
    expect(warnings).toEqual([]);
  });

  it('warns when task_type disagrees with how the adapter is loaded', async () => {
    const files = await savedAdapter({ targetModules: ['q_proj', 'v_proj'], r: 2, taskType: 'CAUSAL_LM' });
    const warnings: string[] = [];
    await load(files, { warn: (m) => warnings.push(m), taskType: 'SEQ_CLS' });
    expect(warnings).toEqual([
      'adapter/adapter_config.json: task_type is "CAUSAL_LM" but the model is loaded as "SEQ_CLS": the adapter was trained for another task',
    ]);
    warnings.length = 0;
    await load(files, { warn: (m) => warnings.push(m) }, new Classifier());
    expect(warnings).toEqual([
      'adapter/adapter_config.json: task_type is "CAUSAL_LM" but this model is a classifier (it has a classifier / score head)',
    ]);
    warnings.length = 0;
    const cls = withConfig(files, (c) => {
      c.task_type = 'SEQ_CLS';
      c.modules_to_save = null;
    });
    await load(cls, { warn: (m) => warnings.push(m) });
    expect(warnings[0]).toContain(
      'task_type is "SEQ_CLS" (a classifier with a trained classifier / score head) but this model has no such head',
    );
    warnings.length = 0;
    await load(files, { warn: (m) => warnings.push(m), taskType: 'CAUSAL_LM' });
    expect(warnings).toEqual([]);
  });
});
