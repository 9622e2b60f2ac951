// The run's settings beside its adapter (peft_run.json): what `peft eval` and `peft predict` need to
// score and run the adapter exactly as the training run did, with no flags repeated.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DType, shortValue } from '@peft/core';

/** The file beside adapter_config.json that holds the run's settings. */
export const RUN_SETTINGS_FILE = 'peft_run.json';

/** Greedy decoding as the NER task runs it (`GenerativeNerTask.generate`). */
export interface DecodingSettings {
  strategy: 'greedy';
  stopStrings: string[];
  /** Tokens generated beyond the longest expected answer of a split. */
  maxNewTokensMargin: number;
}

/** Study A's adapter: a last-token sequence classifier. */
export interface LivedoorRunSettings {
  format: 1;
  study: 'livedoor';
  task: 'sequence-classification';
  /** The model folder, absolute. */
  model: string;
  modelType: string;
  /** The corpus path, absolute. */
  data: string;
  dtype: DType;
  seed: number;
  /** lora_dropout in training (absent in files from before it was recorded). */
  loraDropout?: number;
  template: 0 | 1 | 2;
  maxLength: number;
  evalBatchSize: number;
  /** Class names by id. */
  labels: string[];
  pooling: 'last-token';
}

/** Study B's adapter: NER by generation, for one entity type (per-label) or several. */
export interface Bc5cdrRunSettings {
  format: 1;
  study: 'bc5cdr';
  task: 'ner-generation';
  model: string;
  modelType: string;
  /** The folder with the corpus files, absolute. */
  data: string;
  dtype: DType;
  seed: number;
  /** lora_dropout in training (absent in files from before it was recorded). */
  loraDropout?: number;
  method: 'tagging' | 'extraction';
  /** One output per entity type (true) or one with every type. */
  perLabel: boolean;
  /** The entity types this adapter outputs. */
  types: string[];
  /** Study B's instruction before `Input:` (true), none (false), or one's own text. */
  instruction: boolean | string;
  maxLength: number;
  evalBatchSize: number;
  /** Sentences used per split (the first n); absent: all. */
  limit: { train?: number; validation?: number; test?: number };
  decoding: DecodingSettings;
}

export type RunSettings = LivedoorRunSettings | Bc5cdrRunSettings;

export function runSettingsText(settings: RunSettings): string {
  return `${JSON.stringify(settings, null, 2)}\n`;
}

/** A settings file that is present but wrong: names the file and the field. */
export class RunSettingsError extends Error {}

/** A value as an error shows it: primitives clipped, containers by kind and size (never stringified whole). */
function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return shortValue(value, { max: 60 });
}

function check(file: string, ok: boolean, field: string, expected: string, value: unknown): void {
  if (!ok) throw new RunSettingsError(`${file}: field "${field}" must be ${expected}, got ${shown(value)}`);
}

const posInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const strings = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');

/** Validates parsed peft_run.json content; every field is checked before use. */
export function parseRunSettings(raw: unknown, file: string): RunSettings {
  check(file, typeof raw === 'object' && raw !== null && !Array.isArray(raw), '(top level)', 'an object', raw);
  const o = raw as Record<string, unknown>;
  check(file, o.format === 1, 'format', '1 (the only format this version reads)', o.format);
  check(file, o.study === 'livedoor' || o.study === 'bc5cdr', 'study', '"livedoor" or "bc5cdr"', o.study);
  for (const k of ['model', 'modelType', 'data'] as const)
    check(file, typeof o[k] === 'string' && o[k] !== '', k, 'a non-empty string', o[k]);
  check(file, o.dtype === 'float32' || o.dtype === 'bfloat16' || o.dtype === 'float16', 'dtype', 'float32, bfloat16 or float16', o.dtype);
  check(file, typeof o.seed === 'number' && Number.isSafeInteger(o.seed) && o.seed >= 0, 'seed', 'a non-negative integer', o.seed);
  check(file, posInt(o.maxLength), 'maxLength', 'a positive integer', o.maxLength);
  check(file, posInt(o.evalBatchSize), 'evalBatchSize', 'a positive integer', o.evalBatchSize);
  const p = o.loraDropout;
  check(file, p === undefined || (typeof p === 'number' && p >= 0 && p < 1), 'loraDropout', 'a probability in [0, 1)', p);
  if (o.study === 'livedoor') {
    check(file, o.task === 'sequence-classification', 'task', '"sequence-classification" for a livedoor run', o.task);
    check(file, o.template === 0 || o.template === 1 || o.template === 2, 'template', '0, 1 or 2', o.template);
    check(file, strings(o.labels), 'labels', 'a non-empty list of class names', o.labels);
    check(file, o.pooling === 'last-token', 'pooling', '"last-token"', o.pooling);
    return o as unknown as LivedoorRunSettings;
  }
  check(file, o.task === 'ner-generation', 'task', '"ner-generation" for a bc5cdr run', o.task);
  check(file, o.method === 'tagging' || o.method === 'extraction', 'method', '"tagging" or "extraction"', o.method);
  check(file, typeof o.perLabel === 'boolean', 'perLabel', 'true or false', o.perLabel);
  check(file, strings(o.types), 'types', 'a non-empty list of entity types', o.types);
  check(
    file,
    typeof o.instruction === 'boolean' || typeof o.instruction === 'string',
    'instruction',
    'true, false or a text',
    o.instruction,
  );
  check(file, typeof o.limit === 'object' && o.limit !== null && !Array.isArray(o.limit), 'limit', 'an object', o.limit);
  for (const [k, v] of Object.entries(o.limit as Record<string, unknown>)) {
    check(file, ['train', 'validation', 'test'].includes(k), `limit.${k}`, 'one of limit.train, limit.validation, limit.test', k);
    check(file, v === undefined || posInt(v), `limit.${k}`, 'a positive integer', v);
  }
  const d = o.decoding as Record<string, unknown> | undefined;
  check(file, typeof d === 'object' && d !== null, 'decoding', 'an object', d);
  check(file, d!.strategy === 'greedy', 'decoding.strategy', '"greedy"', d!.strategy);
  check(
    file,
    Array.isArray(d!.stopStrings) && (d!.stopStrings as unknown[]).every((s) => typeof s === 'string'),
    'decoding.stopStrings',
    'a list of strings',
    d!.stopStrings,
  );
  check(
    file,
    typeof d!.maxNewTokensMargin === 'number' && Number.isSafeInteger(d!.maxNewTokensMargin) && (d!.maxNewTokensMargin as number) >= 0,
    'decoding.maxNewTokensMargin',
    'a non-negative integer',
    d!.maxNewTokensMargin,
  );
  return o as unknown as Bc5cdrRunSettings;
}

/** The settings saved with an adapter, or null when the folder has no peft_run.json (an adapter from an older run or from Python PEFT). */
export async function readRunSettings(adapterDir: string): Promise<RunSettings | null> {
  const file = join(adapterDir, RUN_SETTINGS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RunSettingsError(`${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return runSettingsFromText(text, file);
}

/** Parses and validates peft_run.json's text; `file` names it in errors. */
export function runSettingsFromText(text: string, file: string): RunSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new RunSettingsError(`${file} is not valid JSON: write it again by training, or remove it and pass the run's settings as flags`);
  }
  return parseRunSettings(raw, file);
}

/**
 * The value to use for one setting: the flag when given, else the run's, else the default. A flag
 * that differs from the run's value gives one warning line naming the setting and both values.
 */
export function settingValue<T>(
  name: { flag: string; what: string },
  given: T | undefined,
  run: T | undefined,
  fallback: T,
  warn: (line: string) => void,
  source = RUN_SETTINGS_FILE,
): T {
  if (given === undefined) return run ?? fallback;
  if (run !== undefined && JSON.stringify(run) !== JSON.stringify(given)) {
    warn(
      `warning: --${name.flag} ${JSON.stringify(given)} overrides the run's ${name.what} ${JSON.stringify(run)} (${source}); the scores may differ from the run's`,
    );
  }
  return given;
}
