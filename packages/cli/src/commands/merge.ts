import type { Backend } from '@peft/core';
import { loadAdapter, saveMerged } from '@peft/core/node';
import { loadModel } from '@peft/models/node';
import { parse, str } from '../args.js';
import { createBackend } from '../backends.js';

export const MERGE_HELP = `peft merge --model <dir> --adapter <dir> --out <dir> [--backend cpu]

Folds a LoRA adapter (ours or Python PEFT's) into the base weights and writes a complete
Hugging Face folder (config.json + safetensors) that loadModel and transformers both read.
The tokenizer files are not copied: copy them from the model folder if you need them.
`;

export async function mergeAdapter(opts: { model: string; adapter: string; out: string; backend: Backend }): Promise<void> {
  const model = await loadModel(opts.model, { backend: opts.backend });
  try {
    const peft = await loadAdapter(model, opts.adapter);
    await saveMerged(peft, opts.out);
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
    await mergeAdapter({ model, adapter, out: dir, backend });
    out(`merged ${adapter} into ${model}: wrote ${dir}`);
  } finally {
    backend.destroy();
  }
}
