// Study B's command line (BC5CDR NER by LoRA-tuned generation): `peft train bc5cdr` and the
// bc5cdr-ner example share it. The example passes its bundled tiny Llama and fixture corpus as
// defaults; the CLI requires --model and --data.
import { parseArgs } from 'node:util';
import type { DType } from '@peft/core';
import { UsageError } from '../args.js';
import { BC5CDR_LAYER_SETS, type Bc5cdrLayers, type Bc5cdrOptions, type Bc5cdrResult, runBc5cdr } from '../recipes/bc5cdr.js';
import { prepareRunFolder } from '../runfolder.js';

/** What runs when --model / --data are absent (the example's bundled tiny model and corpus), and the usage line. */
export interface Bc5cdrCommandDefaults {
  usage: string;
  tinyModel?: string;
  fixtureData?: string;
  /** Replace the previous tiny run in the default folder instead of refusing (the example's no-argument run). */
  replaceDefaultTinyRun?: boolean;
}

/**
 * Settings of the default smoke run: small enough to finish in seconds on a CPU. A 2-layer, 64-wide
 * random Llama learns little NER in 10 updates; the run shows that every step works, not the study's numbers.
 */
export const BC5CDR_TINY_DEFAULTS = {
  r: 8,
  lr: 5e-3,
  epochs: 2,
  batchSize: 8,
  maxLength: 160,
  gradientCheckpointing: false,
} as const;

export function bc5cdrHelp(defaults: Bc5cdrCommandDefaults): string {
  return `Study B: BC5CDR NER by generation with a LoRA-tuned causal LM.

Usage: ${defaults.usage}
${defaults.tinyModel ? '\nWith no options: the bundled tiny Llama and fixture abstracts on the CPU (a smoke run).\n' : ''}
Data and model
  --model <dir>            local Hugging Face model folder (Llama-2-7B for the study)
  --data <dir>             BC5CDR folder: CDR_{Training,Development,Test}Set.PubTator.txt,
                           or the .BioC.xml files, or BIO files (CDR_*Set.BIO.tsv, train/devel/test.tsv)
  --out <dir>              run folder (default runs/<setting>)
  --backend <name>         cpu (default), webgpu or cuda (when its package is installed)
  --dtype <dtype>          base weights' storage dtype (default bfloat16 for a 16-bit checkpoint)
  --threads <n>            CPU backend worker threads (default: every core)

The study's switches
  --method <m>             tagging (default) | extraction                       (finding 2)
  --labels <l>             per-label (default: one adapter per type, merged
                           Disease > Chemical) | all (one adapter, both types)  (finding 2)
  --types <t>              Disease,Chemical (default) or one of them; Chemical is finding 1's setting
  --prompt                 put the instruction before "Input:" (default: input only) (finding 1)
  --layers <set>           q | qk | qkv | qkvo | all (default all: q,k,v,o, up, down,
                           gate, embed_tokens, lm_head), or module names "q_proj,v_proj" (finding 3)
  --r <n>                  LoRA rank (default 128; the study's grid: 2, 4, 8, 64, 128)
  --alpha <a>              lora_alpha (default 2·r)
  --dropout <p>            lora_dropout (default 0.05)

Training
  --lr <x>                 peak learning rate, linear decay (default 1e-4)
  --epochs <n>             default 3
  --batch-size <n>         examples per update (default 8)
  --micro-batch-size <n>   examples per forward pass (gradient accumulation)
  --max-length <n>         tokens per training example (default 256)
  --eval-batch-size <n>    sentences per generation batch (default 16)
  --seed <n>               default 42
  --limit <n>              first n sentences of each split (a quick check)
  --no-gradient-checkpointing   keep activations (faster, more memory)
  --evaluate-untrained     also score the adapter before training (epoch 0)
  --resume                 continue an interrupted run in --out
  --overwrite              replace a previous run in --out (without it, or --resume, a folder that
                           holds one is an error and is left as it is)

Without --model, the defaults are the tiny run's: r ${BC5CDR_TINY_DEFAULTS.r}, lr ${BC5CDR_TINY_DEFAULTS.lr}, ${BC5CDR_TINY_DEFAULTS.epochs} epochs, batch ${BC5CDR_TINY_DEFAULTS.batchSize}, max length ${BC5CDR_TINY_DEFAULTS.maxLength}.
Ctrl-C stops at the next step after writing a checkpoint; --resume continues it.
`;
}

const OPTIONS = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  threads: { type: 'string' },
  method: { type: 'string' },
  labels: { type: 'string' },
  types: { type: 'string' },
  prompt: { type: 'boolean' },
  layers: { type: 'string' },
  r: { type: 'string' },
  alpha: { type: 'string' },
  dropout: { type: 'string' },
  lr: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'micro-batch-size': { type: 'string' },
  'max-length': { type: 'string' },
  'eval-batch-size': { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' },
  'no-gradient-checkpointing': { type: 'boolean' },
  'evaluate-untrained': { type: 'boolean' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function number(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} ${JSON.stringify(v)} is not a number`);
  return n;
}

function oneOf<T extends string>(v: string | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function parseValues(argv: readonly string[]) {
  try {
    // `pnpm … start -- --model …` may pass the `--` on.
    const args = argv[0] === '--' ? argv.slice(1) : [...argv];
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(`${(error as Error).message}. Run with --help for the options.`);
  }
}

/** The recipe options a command line asks for (the tiny smoke run's settings when --model is absent). */
export function parseBc5cdrCommandLine(
  argv: readonly string[],
  defaults: Bc5cdrCommandDefaults,
): Omit<Bc5cdrOptions, 'out'> & { out?: string; help: boolean; overwrite: boolean } {
  const values = parseValues(argv);
  const tiny = values.model === undefined && defaults.tinyModel !== undefined;
  if (values.model === undefined && !tiny && !values.help) throw new UsageError('--model <Llama-2 model folder> is required');
  const layersArg = values.layers;
  let layers: Bc5cdrLayers | string[] | undefined;
  if (layersArg !== undefined) {
    layers = BC5CDR_LAYER_SETS.includes(layersArg as Bc5cdrLayers)
      ? (layersArg as Bc5cdrLayers)
      : layersArg
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
    if (Array.isArray(layers) && (layers.length === 0 || !layers.every((m) => /^[A-Za-z_][\w.]*$/.test(m)))) {
      throw new UsageError(
        `--layers ${JSON.stringify(layersArg)} is neither one of ${BC5CDR_LAYER_SETS.join(', ')} nor a list of module names`,
      );
    }
  }
  const gc = values['no-gradient-checkpointing'] ? false : values['gradient-checkpointing'] ? true : undefined;
  const options = {
    help: values.help ?? false,
    modelDir: values.model ?? defaults.tinyModel ?? '',
    data: values.data ?? (tiny ? (defaults.fixtureData ?? '') : ''),
    out: values.out,
    backend: values.backend ?? 'cpu',
    dtype: oneOf(values.dtype, 'dtype', ['float32', 'bfloat16', 'float16'] as DType[]),
    threads: number(values.threads, 'threads'),
    method: oneOf(values.method, 'method', ['tagging', 'extraction'] as const),
    labels: oneOf(values.labels, 'labels', ['per-label', 'all'] as const),
    types: values.types
      ?.split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    prompt: values.prompt ?? false,
    layers,
    r: number(values.r, 'r') ?? (tiny ? BC5CDR_TINY_DEFAULTS.r : undefined),
    alpha: number(values.alpha, 'alpha'),
    dropout: number(values.dropout, 'dropout'),
    lr: number(values.lr, 'lr') ?? (tiny ? BC5CDR_TINY_DEFAULTS.lr : undefined),
    epochs: number(values.epochs, 'epochs') ?? (tiny ? BC5CDR_TINY_DEFAULTS.epochs : undefined),
    batchSize: number(values['batch-size'], 'batch-size') ?? (tiny ? BC5CDR_TINY_DEFAULTS.batchSize : undefined),
    microBatchSize: number(values['micro-batch-size'], 'micro-batch-size'),
    maxLength: number(values['max-length'], 'max-length') ?? (tiny ? BC5CDR_TINY_DEFAULTS.maxLength : undefined),
    evalBatchSize: number(values['eval-batch-size'], 'eval-batch-size'),
    seed: number(values.seed, 'seed'),
    limit: number(values.limit, 'limit'),
    gradientCheckpointing: gc ?? (tiny ? BC5CDR_TINY_DEFAULTS.gradientCheckpointing : undefined),
    evaluateUntrained: values['evaluate-untrained'] ?? false,
    resume: values.resume ?? false,
    overwrite: values.overwrite ?? false,
  };
  if (!tiny && values.data === undefined && !options.help) {
    throw new UsageError('--model needs --data <BC5CDR folder> too (the bundled fixture abstracts go with the bundled tiny model only)');
  }
  return options;
}

/** runs/<method>-<labels>-<prompt|input>-<layers>-r<r>, the default run folder. */
export function bc5cdrDefaultOut(
  o: Pick<Bc5cdrOptions, 'method' | 'labels' | 'prompt' | 'layers' | 'r' | 'modelDir'>,
  tiny: boolean,
): string {
  const layers = o.layers === undefined ? 'all' : typeof o.layers === 'string' ? o.layers : o.layers.join('+');
  const name = [
    tiny ? 'tiny' : null,
    o.method ?? 'tagging',
    o.labels ?? 'per-label',
    o.prompt ? 'prompt' : 'input',
    layers,
    `r${o.r ?? 128}`,
  ]
    .filter(Boolean)
    .join('-');
  return `runs/${name}`;
}

/** Runs the command; returns the recipe's result (null for --help). Errors propagate. */
export async function bc5cdrMain(
  argv: readonly string[],
  defaults: Bc5cdrCommandDefaults,
  opts: { log?: (line: string) => void; progress?: Bc5cdrOptions['progress']; signal?: AbortSignal } = {},
): Promise<Bc5cdrResult | null> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const parsed = parseBc5cdrCommandLine(argv, defaults);
  if (parsed.help) {
    log(bc5cdrHelp(defaults));
    return null;
  }
  const { help: _help, overwrite, ...options } = parsed;
  const tiny = options.modelDir === defaults.tinyModel;
  const out = options.out ?? bc5cdrDefaultOut(options, tiny);
  const replace = overwrite || (tiny && options.out === undefined && defaults.replaceDefaultTinyRun === true && !options.resume);
  await prepareRunFolder(out, { resume: options.resume ?? false, overwrite: replace, log });
  if (tiny)
    log('No --model: the bundled tiny Llama on the fixture abstracts (a smoke run: a random 2-layer model does not learn NER in seconds).');
  const started = performance.now();
  const result = await runBc5cdr({ ...options, out, log, progress: opts.progress, signal: opts.signal });
  log(`finished in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
}
