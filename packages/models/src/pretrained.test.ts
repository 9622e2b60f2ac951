import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { Embedding, Linear, Module } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import { openWeights } from './load.js';
import { AutoModelForCausalLM, AutoTokenizer, loadModel, loadTokenizer } from './node/index.js';
import { loadWeightsInto } from './pretrained.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'models');
const backend = createCpuBackend();
afterAll(() => backend.destroy());

describe('AutoModelForCausalLM / AutoTokenizer', () => {
  it('load what loadModel and loadTokenizer load; the model records the folder it came from', async () => {
    const dir = join(FIXTURES, 'tiny-llama');
    const model = await AutoModelForCausalLM.fromPretrained(dir, { backend });
    expect(model.nameOrPath).toBe(dir);
    const plain = await loadModel(dir, { backend });
    expect(plain.nameOrPath).toBeNull();
    const a = [...model.namedParameters()];
    const b = [...plain.namedParameters()];
    expect(a.map(([n]) => n)).toEqual(b.map(([n]) => n));
    expect(Array.from(await a[3]![1].data())).toEqual(Array.from(await b[3]![1].data()));
    expect(a.every(([, t]) => !t.requiresGrad)).toBe(true);
    const tok = await AutoTokenizer.fromPretrained(dir);
    expect(tok.encode('hello world')).toEqual((await loadTokenizer(dir)).encode('hello world'));
    model.dispose();
    plain.dispose();
  });
});

describe('loadWeightsInto', () => {
  it('reads a checkpoint into any tree by name; optional, ignored, missing, extra and misshapen tensors', async () => {
    const dir = join(FIXTURES, 'tiny-gpt-neox');
    const tree = new Module();
    tree.registerModule('embed_out', new Linear(64, 600, { backend, bias: false, init: 'zeros' }));
    tree.registerModule('extra', new Linear(2, 2, { backend, bias: false, init: 'zeros' }));
    const weights = await openWeights(nodeDirReader(dir));
    try {
      const notBase = (n: string) => !n.startsWith('gpt_neox.');
      await expect(loadWeightsInto(dir, weights, tree.namedParameters(), { ignore: notBase })).rejects.toThrow(
        "is missing 1 of the model's 2 tensors: extra.weight",
      );
      await expect(loadWeightsInto(dir, weights, tree.namedParameters(), { optional: (n) => n === 'extra.weight' })).rejects.toThrow(
        'tensors that this model does not: gpt_neox.embed_in.weight',
      );
      const out = await loadWeightsInto(dir, weights, tree.namedParameters(), {
        optional: (n) => n === 'extra.weight',
        ignore: (n) => n.startsWith('gpt_neox.'),
      });
      expect(out.notInCheckpoint).toEqual(['extra.weight']);
      const model = await loadModel(dir, { backend });
      expect(Array.from(await tree.getParameter('embed_out.weight').data())).toEqual(Array.from(await model.lmHead.weight.data()));
      model.dispose();
      const small = new Module();
      small.registerModule('embed_out', new Linear(64, 3, { backend, bias: false }));
      await expect(loadWeightsInto(dir, weights, small.namedParameters(), { ignore: (n) => n.startsWith('gpt_neox.') })).rejects.toThrow(
        'tensor "embed_out.weight" has shape [600, 64], the model needs [3, 64]',
      );
      small.dispose();
    } finally {
      await weights.close();
      tree.dispose();
    }
  });

  it('checks every tensor of the checkpoint before writing any: a misshapen one leaves the others untouched', async () => {
    const dir = join(FIXTURES, 'tiny-gpt-neox');
    const tree = new Module();
    // embed_in fits the checkpoint; embed_out, registered after it, does not.
    tree.registerModule('gpt_neox', new Module()).registerModule('embed_in', new Embedding(600, 64, { backend, init: 'zeros' }));
    tree.registerModule('embed_out', new Linear(64, 3, { backend, bias: false, init: 'zeros' }));
    const weights = await openWeights(nodeDirReader(dir));
    try {
      await expect(
        loadWeightsInto(dir, weights, tree.namedParameters(), {
          ignore: (n) => n.startsWith('gpt_neox.') && n !== 'gpt_neox.embed_in.weight',
        }),
      ).rejects.toThrow('tensor "embed_out.weight" has shape [600, 64], the model needs [3, 64]');
      const embed = (await tree.getParameter('gpt_neox.embed_in.weight').data()) as Float32Array;
      expect(embed.every((v) => v === 0)).toBe(true);
    } finally {
      await weights.close();
      tree.dispose();
    }
  });
});
