import { join } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import { type Backend, bytesReader, Generator, getPeftModel, loadAdapterFrom, loraConfig, memorySink, type PeftModel } from '@peft/core';
import { documentsToSentences, type NerMethod, nerOutput, type Sentence } from '@peft/datasets';
import { readPubTator } from '@peft/datasets/node';
import type { CausalLM, Tokenizer } from '@peft/models';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { train } from '@peft/trainer';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { inProcessRanks } from '../ranks.testkit.js';
import {
  GenerativeNerTask,
  type GenerativeNerTaskOptions,
  mergeNerPredictions,
  type NerData,
  type NerPrediction,
  nerInstructionText,
  parseNerOutput,
  scoreNer,
} from './ner.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const TINY = join(ROOT, 'fixtures', 'models', 'tiny-llama');
const CORPUS = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr');

const MESNA: Sentence = {
  id: 'mesna',
  tokens: ['Mesna', 'significantly', 'reduces', 'IFO', "'s", 'genotoxicity'],
  spans: [
    { type: 'Chemical', start: 0, end: 1 },
    { type: 'Chemical', start: 3, end: 4 },
    { type: 'Disease', start: 5, end: 6 },
  ],
};
const LABELS = ['Disease', 'Chemical'];

describe('parsing and scoring (no model)', () => {
  it('reads every output format of the study back to the gold spans', () => {
    const cases: [NerMethod, string | undefined, string][] = [
      ['tagging', 'Disease', " Mesna significantly reduces IFO 's @@genotoxicity##"],
      ['tagging', 'Chemical', " @@Mesna## significantly reduces @@IFO## 's genotoxicity"],
      [
        'tagging',
        undefined,
        " [Chemical]Mesna[/Chemical] significantly reduces [Chemical]IFO[/Chemical] 's [Disease]genotoxicity[/Disease]",
      ],
      ['extraction', 'Disease', ' genotoxicity'],
      ['extraction', 'Chemical', ' Mesna, IFO'],
      ['extraction', undefined, ' Disease: genotoxicity; Chemical: Mesna, IFO'],
    ];
    for (const [method, label, output] of cases) {
      const expected = MESNA.spans.filter((s) => label === undefined || s.type === label).sort((a, b) => a.start - b.start);
      const parsed = parseNerOutput(output, MESNA.tokens, method, label, LABELS);
      expect(parsed.spans, `${method} ${label}`).toEqual(expected);
      expect(parsed.unaligned).toBe(0);
      // The training target is exactly this text (after the space that follows "Answer:").
      expect(nerOutput(MESNA, { method, label })).toBe(output.slice(1));
    }
    // Garbage never throws; entities that are not in the sentence count as unaligned.
    expect(parseNerOutput('@@aspirin## and @@Mesna', MESNA.tokens, 'tagging', 'Chemical', LABELS).spans).toEqual([]);
    expect(parseNerOutput('aspirin, Mesna', MESNA.tokens, 'extraction', 'Chemical', LABELS)).toMatchObject({
      spans: [{ type: 'Chemical', start: 0, end: 1 }],
      unaligned: 1,
    });
  });

  it('scores exact span and type, micro over types and per type', () => {
    const p: NerPrediction = {
      id: 'mesna',
      tokens: MESNA.tokens,
      gold: MESNA.spans,
      // One right Chemical, one Chemical with the wrong extent, the Disease typed as Chemical.
      pred: [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Chemical', start: 2, end: 4 },
        { type: 'Chemical', start: 5, end: 6 },
      ],
      outputs: {},
      unaligned: 2,
    };
    const s = scoreNer([p], LABELS);
    expect(s.tp).toBe(1);
    expect(s.precision).toBeCloseTo(1 / 3, 12);
    expect(s.recall).toBeCloseTo(1 / 3, 12);
    expect(s.f1).toBeCloseTo(1 / 3, 12);
    expect(s.perType.Chemical).toMatchObject({ tp: 1, support: 2, predicted: 3 });
    expect(s.perType.Chemical!.f1).toBeCloseTo(0.4, 12);
    expect(s.perType.Disease).toMatchObject({ tp: 0, support: 1, predicted: 0, f1: 0 });
    expect(s.unaligned).toBe(2);
    expect(scoreNer([], LABELS)).toMatchObject({ precision: 0, recall: 0, f1: 0, sentences: 0 });
  });

  it('merges per-label runs with priority Disease > Chemical', () => {
    const base = { id: 's', tokens: ['a', 'b', 'c', 'd'], outputs: {}, unaligned: 0 };
    const disease: NerPrediction = {
      ...base,
      gold: [{ type: 'Disease', start: 1, end: 3 }],
      pred: [{ type: 'Disease', start: 1, end: 3 }],
      outputs: { Disease: 'a @@b c## d' },
    };
    const chemical: NerPrediction = {
      ...base,
      gold: [{ type: 'Chemical', start: 0, end: 1 }],
      pred: [
        { type: 'Chemical', start: 0, end: 1 },
        { type: 'Chemical', start: 2, end: 4 },
      ],
      outputs: { Chemical: '@@a## b @@c d##' },
      unaligned: 1,
    };
    const [merged] = mergeNerPredictions([[disease], [chemical]]);
    expect(merged!.pred).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Disease', start: 1, end: 3 },
    ]);
    expect(merged!.gold).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Disease', start: 1, end: 3 },
    ]);
    expect(merged!.outputs).toEqual({ Disease: 'a @@b c## d', Chemical: '@@a## b @@c d##' });
    expect(merged!.unaligned).toBe(1);
    expect(scoreNer([merged!], LABELS).f1).toBe(1);
    expect(() => mergeNerPredictions([[disease], []])).toThrow(/different sentence counts \(1, 0\)/);
  });

  it("uses the study's instruction for per-label tagging and its own wording elsewhere", () => {
    expect(nerInstructionText('tagging', 'Chemical', LABELS)).toBe(true);
    expect(nerInstructionText('extraction', 'Chemical', LABELS)).toMatch(/list the Chemical entities/);
    expect(nerInstructionText('extraction', undefined, LABELS)).toMatch(/"Disease: …; Chemical: …"/);
    expect(nerInstructionText('tagging', undefined, LABELS)).toMatch(/\[Type\] and \[\/Type\]/);
  });
});

describe('GenerativeNerTask on the tiny Llama', () => {
  let backend: Backend;
  let model: CausalLM;
  let tokenizer: Tokenizer;
  let data: NerData;

  beforeAll(async () => {
    backend = createCpuBackend();
    model = await loadModel(TINY, { backend });
    tokenizer = await loadTokenizer(TINY);
    const split = async (name: string) =>
      documentsToSentences((await readPubTator(join(CORPUS, `CDR_${name}Set.PubTator.txt`))).documents).sentences;
    data = {
      train: (await split('Training')).slice(0, 8),
      validation: (await split('Development')).slice(0, 5),
      test: (await split('Test')).slice(0, 4),
    };
  });
  afterAll(() => {
    model.dispose();
    backend.destroy();
  });

  const withTask = async <T>(
    opts: Partial<GenerativeNerTaskOptions>,
    fn: (task: GenerativeNerTask, peft: PeftModel<CausalLM>) => Promise<T>,
    targetModules: string[] = ['q_proj', 'v_proj'],
  ): Promise<T> => {
    const generator = new Generator(7);
    const peft = getPeftModel(model, loraConfig({ r: 4, loraAlpha: 8, targetModules }), { generator });
    try {
      const task = new GenerativeNerTask({
        peft,
        tokenizer,
        data,
        method: 'tagging',
        labels: ['Chemical'],
        perLabel: true,
        maxLength: 160,
        generator,
        ...opts,
      });
      return await fn(task, peft);
    } finally {
      peft.unload();
    }
  };

  it('builds Study B training text with the loss only after "Answer:"', async () => {
    await withTask({}, async (task) => {
      expect(task.trainSize).toBe(8);
      const ex = task.trainExamples[0]!;
      expect(ex.prompt).toBe('Input: Cisplatin - induced nephrotoxicity in aged rats .\nAnswer:');
      expect(ex.answer).toBe(' @@Cisplatin## - induced nephrotoxicity in aged rats .');
      const b = task.batch([0, 1]);
      const prompt = tokenizer.encode(ex.prompt);
      const answer = tokenizer.encode(ex.answer, { addSpecialTokens: false });
      expect(b.inputIds[0]!.slice(0, prompt.length)).toEqual(prompt);
      expect(b.labels[0]!.slice(0, prompt.length).every((l) => l === -100)).toBe(true);
      expect(b.labels[0]!.slice(prompt.length, prompt.length + answer.length + 1)).toEqual([...answer, tokenizer.eosTokenId]);
      expect(b.tokens).toBe(b.attentionMask.flat().reduce((a, x) => a + x, 0));
    });
    // Per-label over both types needs the instruction to tell them apart: sentences × labels examples.
    await withTask({ labels: ['Disease', 'Chemical'], instruction: true }, async (task) => {
      expect(task.trainSize).toBe(16);
      expect(task.trainExamples[0]!.prompt).toMatch(/^The task is to identify Disease entities in the input\..*\nInput: Cisplatin/s);
      expect(task.trainExamples[1]!.prompt).toMatch(/^The task is to identify Chemical entities/);
    });
    await expect(withTask({ labels: ['Disease', 'Chemical'] }, async () => 0)).rejects.toThrow(/train one task per label/);
    await withTask({ method: 'extraction', labels: ['Disease', 'Chemical'], perLabel: false }, async (task) => {
      expect(task.trainExamples[0]!.answer).toBe(' Disease: nephrotoxicity; Chemical: Cisplatin');
    });
  });

  it('draws LoRA dropout per example: one batch of 4 answers as two batches of 2 padded otherwise', async () => {
    const generator = new Generator(7);
    const peft = getPeftModel(model, loraConfig({ r: 4, loraAlpha: 8, loraDropout: 0.3, targetModules: ['q_proj', 'v_proj', 'lm_head'] }), {
      generator,
    });
    try {
      const task = new GenerativeNerTask({
        peft,
        tokenizer,
        data,
        method: 'tagging',
        labels: ['Chemical'],
        perLabel: true,
        maxLength: 160,
      });
      // LoRA B starts at zero, where dropout before A changes nothing: give it values.
      for (const [name, t] of peft.namedParameters())
        if (name.includes('lora_B'))
          backend.write(
            t.buffer(),
            Float32Array.from({ length: t.size }, (_, i) => Math.sin(i) / 4),
          );
      task.setTraining(true);
      // Per-token mean: weigh each half's loss by its answer tokens to compare with the whole batch.
      const loss = async (indices: number[], step: number) => {
        const b = task.batch(indices);
        expect(b.examples).toEqual(indices);
        const t = task.loss(b, { epoch: 1, step, microStep: 0 });
        const v = await t.item();
        t.dispose();
        return { v, answers: b.labels.flat().filter((l) => l !== -100).length, length: b.inputIds[0]!.length };
      };
      const drawn = generator.offset;
      const four = await loss([0, 1, 2, 3], 3);
      const a = await loss([2, 0], 3);
      const b = await loss([1, 3], 3);
      expect(new Set([four.length, a.length, b.length]).size).toBeGreaterThan(1);
      const mean = (a.v * a.answers + b.v * b.answers) / (a.answers + b.answers);
      expect(Math.abs(mean - four.v)).toBeLessThan(1e-5 * four.v);
      expect((await loss([0, 1, 2, 3], 4)).v).not.toBeCloseTo(four.v, 6);
      expect(generator.offset).toBe(drawn);
    } finally {
      peft.unload();
    }
  });

  it('stops generating before the next batch once the signal is aborted, throwing the reason', async () => {
    await withTask({ evalBatchSize: 2 }, async (task) => {
      const controller = new AbortController();
      const reason = new Error('ctrl-c');
      // Ctrl-C while the first of the validation split's three batches (5 sentences, 2 a batch) generates.
      const generate = vi.spyOn(task.head, 'generateText').mockImplementation(async (ids) => {
        controller.abort(reason);
        return (ids as readonly number[][]).map(() => ' none'); // the task passes rows of token ids
      });
      await expect(task.evaluate('validation', { signal: controller.signal })).rejects.toBe(reason);
      expect(generate).toHaveBeenCalledTimes(1);
      generate.mockClear();
      controller.abort(); // already aborted: nothing is generated
      await expect(task.evaluate('validation', { signal: controller.signal })).rejects.toBe(reason);
      expect(generate).not.toHaveBeenCalled();
      // Without a signal it runs to the end.
      await task.evaluate('validation');
      expect(generate).toHaveBeenCalledTimes(3);
      generate.mockRestore();
    });
  });

  it('scores F1 1 when the generations are the expected answers, in every format', async () => {
    const formats: [NerMethod, boolean][] = [
      ['tagging', true],
      ['tagging', false],
      ['extraction', true],
      ['extraction', false],
    ];
    for (const [method, perLabel] of formats) {
      await withTask({ method, perLabel, labels: perLabel ? ['Chemical'] : LABELS }, async (task) => {
        // An oracle model: the generation is the training target of the same prompt.
        const answers = new Map<string, string>();
        for (const s of data.validation) {
          const q = nerOutput(s, { method, label: perLabel ? 'Chemical' : undefined });
          answers.set(s.tokens.join(' '), ` ${q}`);
        }
        task.generate = async (prompts) => prompts.map((p) => answers.get(/Input: (.*)\nAnswer:$/s.exec(p)![1]!)!);
        const r = await task.evaluate('validation');
        expect(r.score, `${method} ${perLabel}`).toBe(1);
        expect(r.metrics).toMatchObject({ f1: 1, precision: 1, recall: 1, unaligned: 0, sentences: 5 });
      });
    }
  });

  it('over 2 ranks each generates for every other sentence and both return the scores of the whole split', async () => {
    await withTask({ method: 'extraction', perLabel: false, labels: LABELS }, async (task) => {
      // Right for sentences 0, 2 and 4, "None" for the others: a score that needs every sentence.
      const answers = new Map<string, string>();
      data.validation.forEach((s, i) => {
        answers.set(s.tokens.join(' '), i % 2 === 0 ? ` ${nerOutput(s, { method: 'extraction' })}` : ' Disease: None; Chemical: None');
      });
      const asked: string[][] = [];
      task.generate = async (prompts) => {
        asked.push(prompts.map((p) => /Input: (.*)\nAnswer:$/s.exec(p)![1]!));
        return prompts.map((p) => answers.get(/Input: (.*)\nAnswer:$/s.exec(p)![1]!)!);
      };
      const whole = await task.evaluate('validation');
      asked.length = 0;
      const [r0, r1] = await Promise.all(inProcessRanks(2).map((communicator) => task.evaluate('validation', { communicator })));
      expect(r0).toEqual(whole);
      expect(r1).toEqual(whole);
      expect((whole.metrics as { sentences: number }).sentences).toBe(5);
      const sentence = (i: number) => data.validation[i]!.tokens.join(' ');
      expect(asked).toEqual([[0, 2, 4].map(sentence), [1, 3].map(sentence)]);
      expect(task.lastPredictions.get('validation')!.map((p) => p.id)).toEqual(data.validation.map((s) => s.id));
    });
  });

  it('trains (the loss falls), generates bounded outputs and saves an adapter that loads back to the same generations', async () => {
    await withTask(
      {},
      async (task, peft) => {
        const asked: number[] = [];
        const generateText = task.head.generateText.bind(task.head);
        task.head.generateText = (prompts, o) => {
          asked.push(o.maxNewTokens);
          return generateText(prompts, o);
        };
        const losses: number[] = [];
        const result = await train(task, {
          epochs: 3,
          batchSize: 4,
          lr: 1e-2,
          progress: false,
          evaluateUntrained: false,
          onStep: ({ loss }) => {
            losses.push(loss);
          },
        });
        expect(losses).toHaveLength(6);
        expect(losses.at(-1)!).toBeLessThan(losses[0]!);
        expect(result.best.score).toBeGreaterThanOrEqual(0);
        expect(result.best.score).toBeLessThanOrEqual(1);
        const test = result.test!;
        expect(test.metrics).toMatchObject({ sentences: 4 });
        for (const k of ['precision', 'recall', 'f1']) {
          expect(test.metrics[k]).toBeGreaterThanOrEqual(0);
          expect(test.metrics[k]).toBeLessThanOrEqual(1);
        }
        const predictions = task.lastPredictions.get('test')!;
        // Generation stops at a newline and after the longest expected answer + margin.
        const limit =
          Math.max(
            ...data.test.map(
              (s) => tokenizer.encode(` ${nerOutput(s, { method: 'tagging', label: 'Chemical' })}`, { addSpecialTokens: false }).length,
            ),
          ) +
          1 +
          8;
        expect(task.maxNewTokensFor(data.test.map((s) => ` ${nerOutput(s, { method: 'tagging', label: 'Chemical' })}`))).toBe(limit);
        expect(asked.at(-1)).toBe(limit);
        for (const p of predictions) {
          expect(p.outputs.Chemical).not.toContain('\n');
          expect(p.pred.every((s) => s.type === 'Chemical' && s.start >= 0 && s.end <= p.tokens.length)).toBe(true);
        }

        const sink = memorySink('adapter');
        await task.saveArtifacts(sink);
        expect([...sink.files.keys()].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
        const config = JSON.parse(new TextDecoder().decode(sink.files.get('adapter_config.json')!));
        expect(config).toMatchObject({ r: 4, lora_alpha: 8, peft_type: 'LORA' });
        const before = await task.predict('validation');
        // The trained adapter off, the saved one loaded onto the plain model: the same generations.
        const savedFiles = new Map(sink.files);
        peft.unload();
        const loaded = await loadAdapterFrom(model, bytesReader(savedFiles, 'adapter'));
        try {
          const again = new GenerativeNerTask({
            peft: loaded,
            tokenizer,
            data,
            method: 'tagging',
            labels: ['Chemical'],
            perLabel: true,
            maxLength: 160,
          });
          const after = await again.predict('validation');
          expect(after.map((p) => p.outputs)).toEqual(before.map((p) => p.outputs));
        } finally {
          // withTask's unload of the first adapter is now a no-op; this one is removed here.
          loaded.unload();
        }
      },
      ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj', 'gate_proj', 'embed_tokens', 'lm_head'],
    );
  });
});
