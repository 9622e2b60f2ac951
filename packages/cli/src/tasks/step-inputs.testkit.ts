// Test helpers (not exported): the two studies' tasks on the tiny fixtures, trained by train()
// with or without their step hooks, for the step-inputs tests on the CPU and the CUDA emulator.
import { join } from 'node:path';
import { type Backend, Generator, getPeftModel, loraConfig } from '@peft/core';
import { documentsToSentences } from '@peft/datasets';
import { readPubTator } from '@peft/datasets/node';
import { SequenceClassifier } from '@peft/heads';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { type StepInfo, type TrainResult, type TrainTask, train } from '@peft/trainer';
import { ClassificationTask } from './classification.js';
import { GenerativeNerTask } from './ner.js';

const ROOT = join(import.meta.dirname, '..', '..', '..', '..');
const MODELS = join(ROOT, 'fixtures', 'models');

export type StudyTask = ClassificationTask | GenerativeNerTask;

export interface RunOptions {
  /** train()'s graph option. Default false. */
  graph?: boolean;
  /** Force `shapes.fixed` on, so that an eager run does the padded sums a graphed one does. */
  pad?: boolean;
  /** Give train() the task's stepInputs / stepLoss; false: only `loss`. Default true. */
  hooks?: boolean;
}

/** The task as train() sees it (see `RunOptions`), with a constant evaluation: generation is not compared here. */
function asTrained(study: StudyTask, o: RunOptions, counts: { stepLoss: number; loss: number }): TrainTask<unknown> {
  const task = study as unknown as Required<TrainTask<unknown>>;
  const hooks: Partial<TrainTask<unknown>> =
    o.hooks === false
      ? {}
      : {
          stepInputs: (batch, shapes, ctx) => task.stepInputs(batch, o.pad ? { ...shapes, fixed: true } : shapes, ctx),
          stepLoss: (inputs, ctx) => {
            counts.stepLoss++;
            return task.stepLoss(inputs, ctx);
          },
        };
  return {
    trainSize: task.trainSize,
    trainable: () => task.trainable(),
    batch: (indices) => task.batch(indices),
    loss: (batch, ctx) => {
      counts.loss++;
      return task.loss(batch, ctx);
    },
    ...(study instanceof GenerativeNerTask ? { weight: (batch: unknown) => task.weight(batch) } : {}),
    tokens: (batch) => task.tokens(batch),
    ...hooks,
    setTraining: (training) => task.setTraining(training),
    evaluate: async () => ({ score: 0, metrics: {} }),
  };
}

export interface RunResult {
  result: TrainResult;
  losses: number[];
  /** The trainable tensors after training, in `trainable()` order. */
  weights: Float32Array[];
  /** How often train() called each loss. */
  counts: { stepLoss: number; loss: number };
}

/** Trains a fresh task from `make` for 2 epochs of 2 updates (micro-batches of 2) and disposes it. */
export async function run(make: (backend: Backend) => Promise<StudyTask>, backend: Backend, o: RunOptions = {}): Promise<RunResult> {
  const task = await make(backend);
  const steps: StepInfo[] = [];
  const counts = { stepLoss: 0, loss: 0 };
  try {
    const result = await train(asTrained(task, o, counts), {
      epochs: 2,
      batchSize: 4,
      microBatchSize: 2,
      lr: 5e-3,
      evaluateUntrained: false,
      evaluateTest: false,
      progress: false,
      graph: o.graph ?? false,
      onStep: (s) => void steps.push(s),
    });
    const weights: Float32Array[] = [];
    for (const [, t] of task.trainable()) weights.push(Float32Array.from(await t.data()));
    return { result, losses: steps.map((s) => s.loss), weights, counts };
  } finally {
    task.peft.dispose();
  }
}

/** Study A on the tiny GPT-NeoX: 8 texts of several lengths, LoRA with `dropout` and the score head. */
export async function classification(backend: Backend, dropout = 0): Promise<ClassificationTask> {
  const dir = join(MODELS, 'tiny-gpt-neox');
  const model = await loadModel(dir, { backend });
  model.gradientCheckpointing = true;
  const head = new SequenceClassifier(model, { numLabels: 3, generator: new Generator(1) });
  const config = loraConfig({ r: 4, loraAlpha: 8, loraDropout: dropout, modulesToSave: ['score'], taskType: 'SEQ_CLS' });
  const peft = getPeftModel(head, config, { modelType: 'gpt_neox', generator: new Generator(2) });
  const texts = ['サッカーの試合', '新しいスマートフォンが発売された', '映画の公開初日に行列ができた', '野球の選手が記録を更新した'];
  const train = Array.from({ length: 8 }, (_, i) => ({ text: texts[i % 4]!.repeat(1 + (i % 3)), label: i % 3 }));
  const data = { train, validation: train.slice(0, 1), test: train.slice(0, 1) };
  return new ClassificationTask({ peft, tokenizer: await loadTokenizer(dir), data, labels: ['a', 'b', 'c'], maxLength: 48 });
}

/** Study B on the tiny Llama: 8 BC5CDR sentences, per-label tagging, LoRA with `dropout` on q, v and lm_head. */
export async function ner(backend: Backend, dropout = 0): Promise<GenerativeNerTask> {
  const dir = join(MODELS, 'tiny-llama');
  const corpus = join(ROOT, 'packages', 'datasets', 'fixtures', 'bc5cdr', 'CDR_TrainingSet.PubTator.txt');
  const sentences = documentsToSentences((await readPubTator(corpus)).documents).sentences.slice(0, 8);
  const model = await loadModel(dir, { backend });
  model.gradientCheckpointing = true;
  const config = loraConfig({ r: 4, loraAlpha: 8, loraDropout: dropout, targetModules: ['q_proj', 'v_proj', 'lm_head'] });
  const peft = getPeftModel(model, config, { generator: new Generator(7) });
  const data = { train: sentences, validation: sentences.slice(0, 1), test: sentences.slice(0, 1) };
  const tokenizer = await loadTokenizer(dir);
  return new GenerativeNerTask({ peft, tokenizer, data, method: 'tagging', labels: ['Chemical'], perLabel: true, maxLength: 96 });
}
