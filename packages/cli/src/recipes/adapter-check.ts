// Explains an adapter that does not fit the model or the command, from adapter_config.json
// (base_model_name_or_path, task_type) and the shapes in adapter_model.safetensors, before any
// weights are read.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { openSafetensors } from '@peft/core';
import { nodeDirReader } from '@peft/core/node';
import { describeParameters, type ModelConfig } from '@peft/models';

export type AdapterTaskType = 'SEQ_CLS' | 'CAUSAL_LM';

/** A mismatch between an adapter and a model or a command, with both sides named. */
export class AdapterMismatchError extends Error {}

export interface AdapterFacts {
  baseModel: string | null;
  taskType: string | null;
  /** auto_mapping.base_model_class (Python PEFT writes it when task_type is unset), e.g. GPTNeoXForSequenceClassification. */
  baseModelClass: string | null;
}

const WHAT: Record<string, string> = {
  SEQ_CLS: 'a sequence-classification adapter (a livedoor run: peft eval livedoor, peft predict classification)',
  CAUSAL_LM: 'a causal-LM adapter (a bc5cdr run: peft eval bc5cdr, peft predict ner)',
};

/** Adapter folders one or two levels down (a run folder's adapter/, a bc5cdr run's <type>/adapter/, a sweep's <config>/adapter/). */
async function adaptersInside(dir: string): Promise<string[]> {
  const found: string[] = [];
  const has = async (d: string) => (await stat(join(d, 'adapter_config.json')).catch(() => null))?.isFile() ?? false;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.sort()) {
    if (await has(join(dir, name))) found.push(join(dir, name));
    else if (await has(join(dir, name, 'adapter'))) found.push(join(dir, name, 'adapter'));
    if (found.length >= 4) break;
  }
  return found;
}

/** base_model_name_or_path and task_type of adapter_config.json (null where absent). */
export async function readAdapterFacts(adapterDir: string): Promise<AdapterFacts> {
  const file = join(adapterDir, 'adapter_config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new AdapterMismatchError(`${file} cannot be read (${code ?? 'error'})`);
    const inside = await adaptersInside(adapterDir);
    throw new AdapterMismatchError(
      inside.length > 0
        ? `${adapterDir} has no adapter_config.json, so it is not an adapter folder; the adapter folder${inside.length > 1 ? 's' : ''} inside it: ${inside.join(', ')}`
        : `${file} does not exist: --adapter must be a PEFT adapter folder (adapter_config.json, adapter_model.safetensors), e.g. a run's adapter/ folder`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AdapterMismatchError(`${file} is not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AdapterMismatchError(`${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  return {
    baseModel: typeof o.base_model_name_or_path === 'string' && o.base_model_name_or_path !== '' ? o.base_model_name_or_path : null,
    taskType: typeof o.task_type === 'string' ? o.task_type : null,
    baseModelClass:
      typeof o.auto_mapping === 'object' &&
      o.auto_mapping !== null &&
      typeof (o.auto_mapping as Record<string, unknown>).base_model_class === 'string'
        ? ((o.auto_mapping as Record<string, unknown>).base_model_class as string)
        : null,
  };
}

/** An error when the adapter's task_type is not the one the command needs. */
export function checkTaskType(adapterDir: string, facts: AdapterFacts, expected: AdapterTaskType, command: string): void {
  if (facts.taskType === null || facts.taskType === expected) return;
  throw new AdapterMismatchError(
    `${join(adapterDir, 'adapter_config.json')} has task_type ${facts.taskType}${WHAT[facts.taskType] ? `, ${WHAT[facts.taskType]}` : ''}; ` +
      `${command} needs task_type ${expected}, ${WHAT[expected]}`,
  );
}

/** Whether a base model name (a hub id or a path) names this model folder. */
export function sameBaseModel(baseModel: string, modelDir: string, config?: ModelConfig): boolean {
  const strip = (p: string) => p.replace(/[\\/]+$/, '');
  const dir = resolve(modelDir);
  if (isAbsolute(baseModel) && resolve(baseModel) === dir) return true;
  if (!isAbsolute(baseModel) && resolve(baseModel) === dir) return true;
  const name = basename(strip(baseModel));
  if (name !== '' && name === basename(dir)) return true;
  const own = config?.raw._name_or_path;
  return typeof own === 'string' && own !== '' && (own === baseModel || basename(strip(own)) === name);
}

/**
 * The adapter's tensors that do not fit the model: a LoRA target the model lacks, or A/B matrices
 * whose in/out features differ from the target's, or a score head of another hidden size.
 * Returns one line per problem (at most a few), empty when every shape fits.
 */
export async function adapterShapeProblems(adapterDir: string, config: ModelConfig): Promise<string[]> {
  const modules = new Map(describeParameters(config).map((m) => [m.name, m]));
  const weights = join(adapterDir, 'adapter_model.safetensors');
  if (!(await stat(weights).catch(() => null))?.isFile()) {
    throw new AdapterMismatchError(`${weights} does not exist: an adapter folder holds adapter_config.json and adapter_model.safetensors`);
  }
  const file = await openSafetensors(await nodeDirReader(adapterDir).open('adapter_model.safetensors'));
  const problems: string[] = [];
  try {
    for (const name of file.names()) {
      const shape = file.info(name).shape;
      const lora = /^base_model\.model\.(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?\.weight$/.exec(name);
      const head = /^base_model\.model\.score\.(?:modules_to_save\.[^.]+\.)?weight$/.exec(name);
      if (lora) {
        const [, path, part] = lora as unknown as [string, string, string];
        // A classifier's backbone keeps the causal LM's module paths (gpt_neox.…, model.…).
        const m = modules.get(path);
        if (!m || m.kind === 'other') {
          problems.push(`${name} targets ${path}, which a ${config.modelType} model with ${config.numLayers} layers does not have`);
        } else if (part === 'lora_A' || part === 'lora_embedding_A') {
          if (shape[1] !== m.in) problems.push(`${name} is [${shape.join(', ')}]: ${path} has ${m.in} input features`);
        } else if (shape[0] !== m.out) {
          problems.push(`${name} is [${shape.join(', ')}]: ${path} has ${m.out} output features`);
        }
      } else if (head && shape[1] !== config.hiddenSize) {
        problems.push(`${name} is [${shape.join(', ')}]: the model's hidden size is ${config.hiddenSize}`);
      }
      if (problems.length >= 2) break;
    }
  } finally {
    await file.close();
  }
  return problems;
}

/**
 * Checks an adapter against the model folder and the command: the task type must be the command's
 * (error), a base model of another name is a warning when every shape fits and an error naming
 * both when shapes differ.
 */
export async function checkAdapter(
  adapterDir: string,
  modelDir: string,
  config: ModelConfig,
  opts: { expected: AdapterTaskType; command: string; warn: (line: string) => void },
): Promise<AdapterFacts> {
  const facts = await readAdapterFacts(adapterDir);
  checkTaskType(adapterDir, facts, opts.expected, opts.command);
  const problems = await adapterShapeProblems(adapterDir, config);
  const named = facts.baseModel !== null && !sameBaseModel(facts.baseModel, modelDir, config);
  const trained = facts.baseModel === null ? 'an unnamed base model' : `base model ${facts.baseModel}`;
  if (problems.length > 0) {
    throw new AdapterMismatchError(
      `${adapterDir} was trained on ${trained} and does not fit ${modelDir} (${config.modelType}, hidden ${config.hiddenSize}, ${config.numLayers} layers): ` +
        `${problems.join('; ')}. Pass --model <the folder it was trained on>`,
    );
  }
  if (named) {
    opts.warn(
      `warning: ${join(adapterDir, 'adapter_config.json')} names base model ${facts.baseModel}, not ${modelDir}; the shapes fit, so it is used as given`,
    );
  }
  return facts;
}
