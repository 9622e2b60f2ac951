import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type Backend, noGrad } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import { CausalLMHead } from '@peft/heads';
import type { Span } from '@peft/metrics';
import { mergeByPriority } from '@peft/metrics';
import { loadConfig, loadModel, loadTokenizer } from '@peft/models/node';
import { int, parse, str, UsageError } from '../args.js';
import { createBackend } from '../backends.js';
import { type AdapterTaskType, checkAdapter, readAdapterFacts } from '../recipes/adapter-check.js';
import { loadLivedoorClassifier } from '../recipes/livedoor.js';
import { shownPath, userPath } from '../recipes/paths.js';
import { type RunSettings, readRunSettings, settingValue } from '../recipes/run-settings.js';
import { BC5CDR_PRIORITY, nerQueryExample, parseNerOutput } from '../tasks/ner.js';

export const PREDICT_HELP = `peft predict [classification|ner] --adapter <dir> [--text <t> ...] [options]

Runs a trained adapter with the settings of the run that made it (the adapter folder's
peft_run.json: model folder, max length, labels; for ner the method, entity types and
instruction). A flag that differs from the run's value is used, with a warning naming both.

classification  a livedoor run's adapter: each text is the formatted input (template 2 is
                "{title}\\n{body}"); prints the label, its probability and the top classes
ner             a bc5cdr run's adapter: each text is a sentence (whitespace-separated tokens);
                prints the generated answer and the entities parsed from it

Texts come from --text (repeatable) or, without it, one per line on standard input.
Options:
  --model <dir>            the base model folder (default: the run's)
  --max-length <n>         classification: tokens per text (default: the run's; 512)
  --top <n>                classification: classes listed per text (default 3)
  --max-new-tokens <n>     ner: longest answer (default: twice the sentence's tokens plus the run's margin)
  --instruction "<text>"   ner: the instruction before "Input:" (default: the run's)
  --json                   one JSON array with every text's result
  --backend <name>         cpu (default), webgpu, cuda
`;

type Kind = 'classification' | 'ner';
const TASK_TYPE: Record<Kind, AdapterTaskType> = { classification: 'SEQ_CLS', ner: 'CAUSAL_LM' };

const stderr = (line: string) => void process.stderr.write(`${line}\n`);

export interface ClassPrediction {
  text: string;
  label: string;
  /** Probability of `label` (softmax of the logits). */
  score: number;
  /** Every class's probability, by class name. */
  scores: Record<string, number>;
  /** The `top` most probable classes, most probable first. */
  top: { label: string; score: number }[];
}

export interface NerPredictionRow {
  text: string;
  /** The generated answer per query (the entity type for per-label adapters, `all` otherwise). */
  outputs: Record<string, string>;
  entities: { type: string; start: number; end: number; text: string }[];
}

export interface PredictOptions {
  kind?: Kind;
  adapter: string;
  model?: string;
  texts: readonly string[];
  maxLength?: number;
  top?: number;
  maxNewTokens?: number;
  instruction?: string;
  backend: Backend;
  warn?: (line: string) => void;
}

/** Softmax of one row of logits, in float64, stable for large values. */
export function softmax(row: ArrayLike<number>): number[] {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  const e = Array.from(row, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

async function kindOf(o: PredictOptions, settings: RunSettings | null): Promise<Kind> {
  const fromSettings: Kind | undefined = settings ? (settings.study === 'livedoor' ? 'classification' : 'ner') : undefined;
  if (fromSettings && o.kind && o.kind !== fromSettings) {
    throw new UsageError(`${o.adapter} is a ${settings!.study} run's adapter (peft_run.json): use \`peft predict ${fromSettings}\``);
  }
  if (o.kind ?? fromSettings) return (o.kind ?? fromSettings)!;
  const facts = await readAdapterFacts(o.adapter);
  if (facts.taskType === 'SEQ_CLS') return 'classification';
  if (facts.taskType === 'CAUSAL_LM') return 'ner';
  throw new UsageError(`${o.adapter} has no peft_run.json and its task_type is ${facts.taskType ?? 'unset'}: say classification or ner`);
}

/** Labels with probabilities for classification adapters; answers and parsed entities for NER adapters. */
export async function predictTexts(
  o: PredictOptions,
): Promise<{ kind: 'classification'; rows: ClassPrediction[] } | { kind: 'ner'; rows: NerPredictionRow[] }> {
  const warn = o.warn ?? stderr;
  if (!(await stat(o.adapter).catch(() => null))?.isDirectory())
    throw new UsageError(`adapter folder ${o.adapter} does not exist or is not a folder`);
  const settings = await readRunSettings(o.adapter);
  const kind = await kindOf(o, settings);
  const model = o.model ?? settings?.model;
  if (!model) throw new UsageError(`${o.adapter} has no peft_run.json to take the model folder from: pass --model <base model folder>`);
  if (settings && o.model && o.model !== settings.model)
    warn(`warning: --model ${o.model} overrides the run's model folder ${settings.model} (peft_run.json)`);
  const config = await loadConfig(model);
  await checkAdapter(o.adapter, model, config, { expected: TASK_TYPE[kind], command: `peft predict ${kind}`, warn });
  if (kind === 'classification') {
    const run = settings?.study === 'livedoor' ? settings : undefined;
    if (!run && o.maxLength === undefined)
      warn(`warning: ${o.adapter} has no peft_run.json: truncating to 512 tokens; pass the run's --max-length if it differs`);
    const maxLength = settingValue({ flag: 'max-length', what: 'max length' }, o.maxLength, run?.maxLength, 512, warn);
    const batchSize = run?.evalBatchSize ?? 16;
    const { peft, labels, tokenizer } = await loadLivedoorClassifier(model, o.adapter, { backend: o.backend, dtype: run?.dtype });
    try {
      const top = Math.min(o.top ?? 3, labels.length);
      const rows: ClassPrediction[] = [];
      for (let at = 0; at < o.texts.length; at += batchSize) {
        const chunk = o.texts.slice(at, at + batchSize);
        const enc = tokenizer.encodeBatch([...chunk], {
          maxLength,
          truncation: true,
          padding: 'longest',
          paddingSide: 'right',
          padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
        });
        const logits = noGrad(() => peft.model.forward({ inputIds: enc.inputIds, attentionMask: enc.attentionMask }).logits);
        const flat = await logits.data().finally(() => logits.dispose());
        chunk.forEach((text, r) => {
          const p = softmax(flat.subarray(r * labels.length, (r + 1) * labels.length));
          const order = p.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
          rows.push({
            text,
            label: labels[order[0]!]!,
            score: p[order[0]!]!,
            scores: Object.fromEntries(labels.map((l, i) => [l, p[i]!])),
            top: order.slice(0, top).map((i) => ({ label: labels[i]!, score: p[i]! })),
          });
        });
      }
      return { kind, rows };
    } finally {
      peft.dispose();
    }
  }
  const run = settings?.study === 'bc5cdr' ? settings : undefined;
  if (!run) warn(`warning: ${o.adapter} has no peft_run.json: prompting as per-label tagging of Chemical without an instruction`);
  const method = run?.method ?? 'tagging';
  const types = run?.types ?? ['Chemical'];
  const perLabel = run?.perLabel ?? true;
  const instruction = settingValue(
    { flag: 'instruction', what: 'instruction' },
    o.instruction,
    run?.instruction,
    false as boolean | string,
    warn,
  );
  const margin = run?.decoding.maxNewTokensMargin ?? 8;
  const causal = await loadModel(model, { backend: o.backend, dtype: run?.dtype });
  try {
    const tokenizer = await loadTokenizer(model);
    const peft = await loadAdapter(causal, o.adapter);
    peft.eval();
    const head = new CausalLMHead(causal);
    const queryLabels = perLabel ? types : [undefined];
    const rows: NerPredictionRow[] = [];
    for (const text of o.texts) {
      const tokens = text.split(/\s+/).filter(Boolean);
      const sentence = { id: '', tokens, spans: [] };
      const outputs: Record<string, string> = {};
      const spans: Span[] = [];
      for (const label of queryLabels) {
        const prompt = nerQueryExample(sentence, label, { method, labels: types, instruction }).prompt;
        const maxNewTokens = o.maxNewTokens ?? 2 * tokenizer.encode(tokens.join(' '), { addSpecialTokens: false }).length + margin;
        const [answer] = await head.generateText([tokenizer.encode(prompt)], {
          maxNewTokens,
          eosTokenId: tokenizer.eosTokenId ?? undefined,
          padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
          stopStrings: run?.decoding.stopStrings ?? ['\n'],
          tokenizer,
        });
        const out = (answer ?? '').trim();
        outputs[label ?? 'all'] = out;
        spans.push(...parseNerOutput(out, tokens, method, label, types).spans.filter((s) => types.includes(s.type)));
      }
      const merged = mergeByPriority(spans, BC5CDR_PRIORITY);
      rows.push({ text, outputs, entities: merged.map((s) => ({ ...s, text: tokens.slice(s.start, s.end).join(' ') })) });
    }
    return { kind, rows };
  } finally {
    causal.dispose();
  }
}

const oneLine = (t: string) => t.replace(/\n/g, '\\n');

export async function predictCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values, positionals } = parse('predict', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    text: { type: 'string', multiple: true },
    instruction: { type: 'string' },
    'max-length': { type: 'string' },
    'max-new-tokens': { type: 'string' },
    top: { type: 'string' },
    json: { type: 'boolean' },
    backend: { type: 'string', default: 'cpu' },
  });
  const [kind, ...extra] = positionals;
  const adapterArg = str(values, 'adapter');
  if (values.help || !adapterArg) {
    out(PREDICT_HELP);
    if (!values.help) throw new UsageError('--adapter <adapter folder> is required');
    return;
  }
  if (kind !== undefined && kind !== 'classification' && kind !== 'ner')
    throw new UsageError(`${JSON.stringify(kind)} is not classification or ner`);
  if (extra.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: texts go in --text "<text>" or on standard input`);
  const positive = (name: string) => {
    const v = str(values, name);
    if (v === undefined) return undefined;
    const n = int(v, name);
    if (n < 1) throw new UsageError(`--${name} ${v} must be a positive integer`);
    return n;
  };
  const adapter = userPath(adapterArg);
  if (!(await stat(adapter).catch(() => null))?.isDirectory())
    throw new UsageError(`adapter folder ${shownPath(adapterArg)} does not exist or is not a folder`);
  const modelArg = str(values, 'model');
  const given = (values as Record<string, unknown>).text as string[] | undefined;
  const texts = given?.length
    ? given
    : readFileSync(0, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
  if (texts.length === 0) throw new UsageError('no texts: pass --text "<text>" (repeatable) or one text per line on standard input');
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const result = await predictTexts({
      kind: kind as Kind | undefined,
      adapter,
      model: modelArg === undefined ? undefined : userPath(modelArg),
      texts,
      maxLength: positive('max-length'),
      top: positive('top'),
      maxNewTokens: positive('max-new-tokens'),
      instruction: str(values, 'instruction'),
      backend,
    });
    if (values.json) {
      out(JSON.stringify(result.rows, null, 2));
      return;
    }
    if (result.kind === 'classification') {
      for (const r of result.rows) {
        out(`${r.label}\t${r.score.toFixed(4)}\t${r.top.map((t) => `${t.label} ${t.score.toFixed(4)}`).join(', ')}\t${oneLine(r.text)}`);
      }
    } else {
      for (const r of result.rows) {
        const answers = Object.values(r.outputs).map(oneLine).join(' | ');
        const entities = r.entities.length ? r.entities.map((e) => `${e.type}: ${e.text}`).join('; ') : 'no entities';
        out(`${answers}\t${entities}`);
      }
    }
  } finally {
    backend.destroy();
  }
}
