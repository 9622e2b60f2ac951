import { stat } from 'node:fs/promises';
import type { Backend } from '@peft/core';
import { loadAdapter, nodeDirReader, saveMerged } from '@peft/core/node';
import { adapterLabels, loadPeftSequenceClassifierFrom } from '@peft/heads';
import { loadConfig, loadModel } from '@peft/models/node';
import { parse, str, UsageError } from '../args.js';
import { createBackend } from '../backends.js';
import { AdapterMismatchError, checkAdapter, readAdapterFacts } from '../recipes/adapter-check.js';
import { shownPath, userPath } from '../recipes/paths.js';

export const MERGE_HELP = `peft merge --model <dir> --adapter <dir> --out <dir> [--backend cpu]

Folds a LoRA adapter (ours or Python PEFT's) into the base weights and writes a complete
Hugging Face folder (config.json + safetensors) that loadModel and transformers both read.
A sequence-classification adapter (task_type SEQ_CLS, the score head in modules_to_save) gives
a …ForSequenceClassification folder with its class names, which transformers'
AutoModelForSequenceClassification and @peft/heads' loader read.
The tokenizer files are not copied: copy them from the model folder if you need them.
Relative paths are read from the folder you run the command in (under \`pnpm peft\`, the folder
pnpm was started in). An adapter trained on another base model is refused when its shapes do not
fit (both named), and merged with a warning when only the name differs.
`;

const MERGEABLE = ['CAUSAL_LM', 'SEQ_CLS'];

/** Merges the adapter and writes the folder; returns the transformers class it holds. Paths are used as given. */
export async function mergeAdapter(opts: {
  model: string;
  adapter: string;
  out: string;
  backend: Backend;
  warn?: (line: string) => void;
}): Promise<string> {
  const warn = opts.warn ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const config = await loadConfig(opts.model);
  const facts = await readAdapterFacts(opts.adapter);
  if (facts.taskType !== null && !MERGEABLE.includes(facts.taskType)) {
    throw new AdapterMismatchError(
      `${opts.adapter}/adapter_config.json has task_type ${facts.taskType}: peft merge writes CAUSAL_LM (…ForCausalLM) and SEQ_CLS (…ForSequenceClassification, the score head from modules_to_save) folders only`,
    );
  }
  // A classifier adapter from Python PEFT may leave task_type unset: its score head tells.
  const classifier =
    facts.taskType === 'SEQ_CLS' || (facts.taskType === null && (await adapterLabels(nodeDirReader(opts.adapter))) !== null);
  if (!classifier && facts.baseModelClass?.endsWith('ForSequenceClassification')) {
    warn(
      `warning: ${opts.adapter} was made on a ${facts.baseModelClass} (auto_mapping) but holds no score head (no modules_to_save, task_type unset): ` +
        'the merged folder is the adapted backbone with the causal-LM head; the classification head is not in the adapter',
    );
  }
  await checkAdapter(opts.adapter, opts.model, config, {
    expected: classifier ? 'SEQ_CLS' : 'CAUSAL_LM',
    command: 'peft merge',
    warn,
  });
  if (classifier) {
    const peft = await loadPeftSequenceClassifierFrom(nodeDirReader(opts.adapter), nodeDirReader(opts.model), { backend: opts.backend });
    try {
      await saveMerged(peft, opts.out);
      const head = peft.model;
      return `${(head.config.raw.architectures as string[] | undefined)?.[0] ?? 'sequence classifier'}, ${head.numLabels} labels: ${head.id2label.join(', ')}`;
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
  const isDir = async (p: string) => (await stat(userPath(p)).catch(() => null))?.isDirectory() ?? false;
  if (!(await isDir(model))) throw new UsageError(`model folder ${shownPath(model)} does not exist or is not a folder`);
  if (!(await isDir(adapter))) throw new UsageError(`adapter folder ${shownPath(adapter)} does not exist or is not a folder`);
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const what = await mergeAdapter({ model: userPath(model), adapter: userPath(adapter), out: userPath(dir), backend });
    out(`merged ${adapter} into ${model}: wrote ${userPath(dir)} (${what})`);
  } finally {
    backend.destroy();
  }
}
