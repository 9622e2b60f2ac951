// The README snippet, verbatim apart from the import paths (the README imports the packages by name).
import { createCpuBackend } from '@peft/backend-cpu';
import { backward, Generator, memoryInfo, noGrad } from '@peft/core';
import { createModel, parseConfig } from '@peft/models';
import { expect, it, vi } from 'vitest';
import { CausalLMHead, SequenceClassifier } from './index.js';

it('runs the README snippet', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const backend = createCpuBackend();
  // A tiny random GPT-NeoX; for a real checkpoint: loadModel(dir, { backend }) from '@peft/models/node'.
  const config = parseConfig({
    model_type: 'gpt_neox',
    vocab_size: 64,
    hidden_size: 32,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    intermediate_size: 64,
    rotary_pct: 0.25,
    eos_token_id: 0,
  });
  const model = createModel(config, { backend, init: 'random', generator: new Generator(0) }).freeze();

  // Study A: the hidden state at each row's last real token (right padding: sum(mask) − 1) → score.
  const classifier = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(1) });
  const batch = {
    inputIds: [
      [5, 6, 7, 1, 1],
      [8, 9, 10, 11, 12],
    ],
    attentionMask: [
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
    ],
  };
  const loss = classifier.loss(batch, [2, 0]);
  backward(loss); // only score.weight is trainable here (LoRA would add its own weights)
  const names = [...classifier.namedParameters()].map(([name]) => name);
  console.log(names[0], '…', names.at(-1), '| loss', (await loss.item()).toFixed(4), '| grad', classifier.score.weight.grad?.shape);
  console.log('predicted labels', await classifier.predict(batch));
  loss.dispose();

  // Study B: the loss only after the prompt (labels −100 there), then batched greedy generation.
  const lm = new CausalLMHead(model);
  const answerLoss = noGrad(() => lm.loss({ inputIds: [[5, 6, 7, 20, 21, 0]], labels: [[-100, -100, -100, 20, 21, 0]] }));
  console.log('answer loss', (await answerLoss.item()).toFixed(4));
  answerLoss.dispose();
  const live = memoryInfo(backend).tensors;
  const generated = await lm.generate(
    [
      [5, 6, 7],
      [8, 9],
    ],
    { maxNewTokens: 4, padTokenId: 0 },
  );
  console.log('generated', JSON.stringify(generated), '| no tensor left behind:', memoryInfo(backend).tensors === live);
  backend.destroy();

  expect(names[0]).toBe('gpt_neox.embed_in.weight');
  expect(names.at(-1)).toBe('score.weight');
  expect(classifier.score.weight.grad?.shape).toEqual([3, 32]);
  expect(model.base.getParameter('embed_in.weight').grad).toBeNull();
  expect(generated.map((row) => row.length).every((n) => n <= 4)).toBe(true);
  expect(log.mock.calls.at(-1)?.at(-1)).toBe(true);
  log.mockRestore();
});
