import type { Backend } from '@peft/core';
import { formatLivedoor, type LivedoorTemplate, splitLivedoor } from '@peft/datasets';
import { readLivedoor } from '@peft/datasets/node';
import { int, parse, str, UsageError } from '../args.js';
import { createBackend } from '../backends.js';
import { loadLivedoorClassifier } from '../recipes/livedoor.js';
import { ClassificationTask } from '../tasks/classification.js';

export const EVAL_HELP = `peft eval livedoor --model <dir> --adapter <dir> --data <path> [options]

Scores a trained classification adapter (the adapter/ folder of a livedoor run, with labels.json)
on the validation or test split: accuracy and macro precision / recall / F1 (scikit-learn
semantics, zero_division 0). The split is recomputed from the corpus with the run's seed.
BC5CDR runs are scored as part of \`peft train bc5cdr\` (predictions/*.json in the run folder).

Options:
  --split <validation|test>  default test
  --template <0|1|2>         the run's input template (default 2)
  --seed <n>                 the run's split seed (default 42)
  --max-length <n>           tokens per article (default 512)
  --backend <name>           cpu (default), webgpu, cuda
`;

export interface EvalOptions {
  model: string;
  adapter: string;
  data: string;
  split: 'validation' | 'test';
  template: LivedoorTemplate;
  seed: number;
  maxLength: number;
  backend: Backend;
}

/** Metrics of a livedoor adapter on one split. */
export async function evaluateLivedoor(o: EvalOptions) {
  const { peft, labels, tokenizer } = await loadLivedoorClassifier(o.model, o.adapter, { backend: o.backend });
  try {
    const corpus = await readLivedoor(o.data);
    if (corpus.labels.join() !== labels.join()) {
      throw new Error(`${o.adapter}/labels.json has [${labels.join(', ')}] but ${o.data} has categories [${corpus.labels.join(', ')}]`);
    }
    const split = splitLivedoor(corpus.examples, { seed: o.seed });
    const texts = (xs: typeof split.test) => xs.map((e) => ({ text: formatLivedoor(e, o.template), label: e.label }));
    const task = new ClassificationTask({
      peft,
      tokenizer,
      labels,
      maxLength: o.maxLength,
      data: { train: texts(split.train), validation: texts(split.validation), test: texts(split.test) },
    });
    task.setTraining(false);
    return await task.evaluate(o.split);
  } finally {
    peft.dispose();
  }
}

export async function evalCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const [recipe, ...rest] = argv;
  const { values } = parse('eval', rest, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string', default: 'test' },
    template: { type: 'string' },
    seed: { type: 'string' },
    'max-length': { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
  });
  const model = str(values, 'model');
  const adapter = str(values, 'adapter');
  const data = str(values, 'data');
  if (values.help || recipe !== 'livedoor' || !model || !adapter || !data) {
    out(EVAL_HELP);
    return;
  }
  const split = str(values, 'split');
  if (split !== 'validation' && split !== 'test') throw new UsageError(`--split ${split} is not validation or test`);
  const template = int(str(values, 'template'), 'template', 2);
  if (template !== 0 && template !== 1 && template !== 2) throw new UsageError(`--template ${template} is not one of 0, 1, 2`);
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const ev = await evaluateLivedoor({
      model,
      adapter,
      data,
      split,
      template,
      seed: int(str(values, 'seed'), 'seed', 42),
      maxLength: int(str(values, 'max-length'), 'max-length', 512),
      backend,
    });
    const m = ev.metrics as { accuracy: number; precision: number; recall: number; f1: number };
    const pct = (x: number) => (100 * x).toFixed(2);
    out(
      `| split | accuracy | precision | recall | F1 |\n|---|---|---|---|---|\n| ${split} | ${pct(m.accuracy)} | ${pct(m.precision)} | ${pct(m.recall)} | ${pct(m.f1)} |`,
    );
  } finally {
    backend.destroy();
  }
}
