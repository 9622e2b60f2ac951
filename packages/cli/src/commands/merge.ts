import type { Backend } from '@peft/core';
import { loadAdapter, nodeDirReader, saveMerged } from '@peft/core/node';
import { loadPeftSequenceClassifierFrom, readAdapterConfig } from '@peft/heads';
import { loadModel } from '@peft/models/node';
import { parse, str } from '../args.js';
import { createBackend } from '../backends.js';

export const MERGE_HELP = `peft merge --model <dir> --adapter <dir> --out <dir> [--backend cpu]

Folds a LoRA adapter (ours or Python PEFT's) into the base weights and writes a complete
Hugging Face folder (config.json + safetensors) that loadModel and transformers both read.
A sequence-classification adapter (task_type SEQ_CLS, the score head in modules_to_save) gives
a …ForSequenceClassification folder with its class names, which transformers'
AutoModelForSequenceClassification and @peft/heads' loader read.
The tokenizer files are not copied: copy them from the model folder if you need them.
`;

/** Merges the adapter and writes the folder; returns the transformers class it holds. */
export async function mergeAdapter(opts: { model: string; adapter: string; out: string; backend: Backend }): Promise<string> {
  const adapterConfig = await readAdapterConfig(nodeDirReader(opts.adapter));
  if (adapterConfig.task_type === 'SEQ_CLS') {
    const peft = await loadPeftSequenceClassifierFrom(nodeDirReader(opts.adapter), nodeDirReader(opts.model), { backend: opts.backend });
    try {
      await saveMerged(peft, opts.out);
      const classifier = peft.model;
      return `${(classifier.config.raw.architectures as string[])[0]}, ${classifier.numLabels} labels: ${classifier.id2label.join(', ')}`;
    } finally {
      peft.dispose();
    }
  }
  const model = await loadModel(opts.model, { backend: opts.backend });
  try {
    const peft = await loadAdapter(model, opts.adapter);
    await saveMerged(peft, opts.out);
    const arch = model.config.raw.architectures;
    return Array.isArray(arch) && typeof arch[0] === 'string' ? arch[0] : model.config.modelType;
  } finally {
    model.dispose();
  }
}

export async function mergeCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values } = parse('merge', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    out: { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
  });
  const model = str(values, 'model');
  const adapter = str(values, 'adapter');
  const dir = str(values, 'out');
  if (values.help || !model || !adapter || !dir) {
    out(MERGE_HELP);
    return;
  }
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const what = await mergeAdapter({ model, adapter, out: dir, backend });
    out(`merged ${adapter} into ${model}: wrote ${dir} (${what})`);
  } finally {
    backend.destroy();
  }
}
