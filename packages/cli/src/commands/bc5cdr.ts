// Study B's command line (BC5CDR NER by LoRA-tuned generation): `peft train bc5cdr` and the
// bc5cdr-ner example share it. The example passes its bundled tiny Llama and fixture corpus as
// defaults; the CLI requires --model and --data.
import { parseArgs } from 'node:util';
import type { DType } from '@peft/core';
import { UsageError } from '../args.js';
import { folderName, lrName, type Preset, TINY_HIDDEN_SIZE } from '../presets.js';
import { BC5CDR_LAYER_SETS, type Bc5cdrLayers, type Bc5cdrOptions, type Bc5cdrResult, runBc5cdr } from '../recipes/bc5cdr.js';
import { graphLines } from '../recipes/common.js';
import * as study from './study-command.js';

/** What runs when --model / --data are absent (the example's bundled tiny model and corpus), and the usage line. */
export type Bc5cdrCommandDefaults = study.StudyCommandDefaults;

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

/** The study's settings (the recipe's defaults), for the preset line and the run names. */
export const BC5CDR_STUDY_DEFAULTS = {
  r: 128,
  lr: 1e-4,
  epochs: 3,
  batchSize: 8,
  maxLength: 256,
  gradientCheckpointing: true,
} as const;

export function bc5cdrHelp(defaults: Bc5cdrCommandDefaults): string {
  return `Study B: BC5CDR NER by generation with a LoRA-tuned causal LM.

Usage: ${defaults.usage}
${defaults.tinyModel ? '\nWith no options: the bundled tiny Llama and fixture abstracts on the CPU (a smoke run).\n' : ''}
Data and model
  --model <dir>            local Hugging Face model folder (Llama-2-7B for the study)
  --data <dir>             BC5CDR folder: CDR_{Training,Development,Test}Set.PubTator.txt,
                           or the .BioC.xml files, or BIO files (CDR_*Set.BIO.tsv, train/devel/test.tsv)
  --out <dir>              run folder (default ${
    defaults.replaceDefaultTinyRun && defaults.tinyModel
      ? `${bc5cdrDefaultOut({ modelDir: defaults.tinyModel, r: BC5CDR_TINY_DEFAULTS.r }, true)} without --model, else `
      : ''
  }runs/<model>-bc5cdr-<method>-<labels>-<types>-<input|prompt>-<layers>-lora-r<r>-lr<lr>-<UTC time>;
                           with --resume and no --out, the newest run of those settings)
  --backend <name>         cpu (default), webgpu or cuda (when its package is installed)
  --dtype <dtype>          base weights' storage dtype (default bfloat16 for a 16-bit checkpoint)
  --threads <n>            CPU backend worker threads (default: every core; under mpirun, the cores
                           divided among the processes on the machine)
  --device <n>             GPU index for cuda (default: the local rank under mpirun, else 0)

The study's switches
  --preset <tiny|study>    default settings: tiny for a model of hidden size ≤ ${TINY_HIDDEN_SIZE} (the bundled tiny
                           Llama), study otherwise; options given override single values
  --method <m>             tagging (default) | extraction                       (finding 2)
  --labels <l>             per-label (default: one adapter per type, merged
                           Disease > Chemical) | all (one adapter, both types)  (finding 2)
  --types <t>              Disease,Chemical (default) or one of them; Chemical is finding 1's setting
  --prompt                 put the instruction before "Input:" (default: input only) (finding 1)
  --layers <set>           q | qk | qkv | qkvo | all (default all: q,k,v,o, up, down,
                           gate, embed_tokens, lm_head), or module names "q_proj,v_proj" (finding 3)
  --r <n>                  LoRA rank (default 128; the study's grid: 2, 4, 8, 64, 128)
  --alpha <a>              lora_alpha (default 2·r)
  --lora-dropout <p>       lora_dropout, in [0, 1) (default 0.05; --dropout is the same option); masks
                           are drawn per example, so they do not depend on the batch size, micro-batches
                           or processes

Training
  --lr <x>                 peak learning rate, linear decay (default 1e-4)
  --epochs <n>             default 3
  --batch-size <n>         examples per update and process (default 8);
${study.HELP_BATCH_PER_RANK}
  --micro-batch-size <n>   examples per forward pass (gradient accumulation)
  --max-length <n>         tokens per training example (default 256)
  --eval-batch-size <n>    sentences per generation batch (default 16)
  --seed <n>               default 42
  --limit <n>              first n sentences of each split (a quick check)
  --no-gradient-checkpointing   keep activations (faster, more memory)
${study.HELP_LOG_EVERY}
${study.HELP_GRAPH}
  --evaluate-untrained     also score the adapter before training (epoch 0)
  --resume                 continue an interrupted run in --out
${study.HELP_OVERWRITE}

The tiny preset's defaults: r ${BC5CDR_TINY_DEFAULTS.r}, lr ${BC5CDR_TINY_DEFAULTS.lr}, ${BC5CDR_TINY_DEFAULTS.epochs} epochs, batch ${BC5CDR_TINY_DEFAULTS.batchSize}, max length ${BC5CDR_TINY_DEFAULTS.maxLength}, no gradient checkpointing.
${study.HELP_CTRL_C}`;
}

const OPTIONS = {
  ...study.OPTIONS,
  method: { type: 'string' },
  labels: { type: 'string' },
  types: { type: 'string' },
  prompt: { type: 'boolean' },
  layers: { type: 'string' },
  r: { type: 'string' },
  alpha: { type: 'string' },
  dropout: { type: 'string' },
  'eval-batch-size': { type: 'string' },
  limit: { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' },
  'evaluate-untrained': { type: 'boolean' },
} as const;

/** The recipe options of a command line, and what the command itself uses. */
export type Bc5cdrCommandLine = Omit<Bc5cdrOptions, 'out'> & { out?: string; help: boolean; overwrite: boolean; preset: Preset };

/** The recipe options a command line asks for (the tiny smoke run's settings when --model is absent). */
export function parseBc5cdrCommandLine(argv: readonly string[], defaults: Bc5cdrCommandDefaults): Bc5cdrCommandLine {
  const parse = (args: string[]) => parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  const { values, bundled, modelDir, preset } = study.commandLine(argv, defaults, parse, 'Llama-2 model folder');
  const tiny = preset.name === 'tiny';
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
    preset,
    modelDir,
    data: values.data ?? (bundled ? (defaults.fixtureData ?? '') : ''),
    out: values.out,
    backend: values.backend ?? 'cpu',
    dtype: study.oneOf(values.dtype, 'dtype', ['float32', 'bfloat16', 'float16'] as DType[]),
    threads: study.number(values.threads, 'threads'),
    device: study.number(values.device, 'device'),
    method: study.oneOf(values.method, 'method', ['tagging', 'extraction'] as const),
    labels: study.oneOf(values.labels, 'labels', ['per-label', 'all'] as const),
    types: values.types
      ?.split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    prompt: values.prompt ?? false,
    layers,
    r: study.number(values.r, 'r') ?? (tiny ? BC5CDR_TINY_DEFAULTS.r : undefined),
    alpha: study.number(values.alpha, 'alpha'),
    dropout: loraDropout(values['lora-dropout'], values.dropout),
    lr: study.number(values.lr, 'lr') ?? (tiny ? BC5CDR_TINY_DEFAULTS.lr : undefined),
    epochs: study.number(values.epochs, 'epochs') ?? (tiny ? BC5CDR_TINY_DEFAULTS.epochs : undefined),
    batchSize: study.number(values['batch-size'], 'batch-size') ?? (tiny ? BC5CDR_TINY_DEFAULTS.batchSize : undefined),
    microBatchSize: study.number(values['micro-batch-size'], 'micro-batch-size'),
    maxLength: study.number(values['max-length'], 'max-length') ?? (tiny ? BC5CDR_TINY_DEFAULTS.maxLength : undefined),
    evalBatchSize: study.number(values['eval-batch-size'], 'eval-batch-size'),
    seed: study.number(values.seed, 'seed'),
    limit: study.number(values.limit, 'limit'),
    logEverySteps: study.number(values['log-every'], 'log-every'),
    graph: study.graphMode(values.graph, values.backend ?? 'cpu'),
    gradientCheckpointing: gc ?? (tiny ? BC5CDR_TINY_DEFAULTS.gradientCheckpointing : undefined),
    evaluateUntrained: values['evaluate-untrained'] ?? false,
    resume: values.resume ?? false,
    overwrite: values.overwrite ?? false,
  };
  if (!bundled && values.data === undefined && !options.help) {
    throw new UsageError('--model needs --data <BC5CDR folder> too (the bundled fixture abstracts go with the bundled tiny model only)');
  }
  return options;
}

/** A layer set's name in a folder name: the set, or the module names joined by +. */
function layersName(layers: Bc5cdrOptions['layers']): string {
  return layers === undefined ? 'all' : typeof layers === 'string' ? layers : layers.join('+');
}

/** runs/[tiny-]<method>-<labels>-<prompt|input>-<layers>-r<r>: the examples' no-argument run folder (replaced by each such run). */
export function bc5cdrDefaultOut(
  o: Pick<Bc5cdrOptions, 'method' | 'labels' | 'prompt' | 'layers' | 'r' | 'modelDir'>,
  tiny: boolean,
): string {
  const layers = layersName(o.layers);
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

/**
 * The settings part of a default run folder's name: model folder, study, method, labels, types,
 * input or prompt, layers, LoRA rank and learning rate, e.g.
 * `Llama-2-7b-hf-bc5cdr-tagging-per-label-chemical+disease-input-all-lora-r128-lr1e-4`.
 */
export function bc5cdrRunName(
  o: Pick<Bc5cdrOptions, 'modelDir' | 'method' | 'labels' | 'types' | 'prompt' | 'layers' | 'r' | 'lr'>,
): string {
  const layers = layersName(o.layers);
  const types =
    o.types && o.types.length > 0
      ? [...o.types]
          .map((t) => t.toLowerCase())
          .sort()
          .join('+')
      : 'chemical+disease';
  return [
    folderName(o.modelDir),
    'bc5cdr',
    o.method ?? 'tagging',
    o.labels ?? 'per-label',
    types,
    o.prompt ? 'prompt' : 'input',
    layers,
    `lora-r${o.r ?? BC5CDR_STUDY_DEFAULTS.r}`,
    `lr${lrName(o.lr ?? BC5CDR_STUDY_DEFAULTS.lr)}`,
  ]
    .join('-')
    .replace(/[^\w.+-]/g, '_');
}

/** One line: which preset applies, its values in this run, and how to change them. */
export function bc5cdrPresetLine(
  preset: Preset,
  o: Pick<Bc5cdrOptions, 'r' | 'lr' | 'epochs' | 'batchSize' | 'maxLength' | 'gradientCheckpointing'>,
): string {
  const d = BC5CDR_STUDY_DEFAULTS;
  return study.presetLine(
    preset,
    `r ${o.r ?? d.r}, lr ${o.lr ?? d.lr}, batch size ${o.batchSize ?? d.batchSize}, max length ${o.maxLength ?? d.maxLength}, ` +
      `epochs ${o.epochs ?? d.epochs}, gradient checkpointing ${(o.gradientCheckpointing ?? d.gradientCheckpointing) ? 'on' : 'off'}`,
    ['r', 'lr', 'batch-size', 'max-length', 'epochs'],
  );
}

const BC5CDR: study.Study<Omit<Bc5cdrOptions, 'out'>, Bc5cdrResult> = {
  parse: parseBc5cdrCommandLine,
  help: bc5cdrHelp,
  defaultOut: (o) => bc5cdrDefaultOut(o, true),
  runName: bc5cdrRunName,
  tinyNote: (o) =>
    `No --model: the bundled tiny Llama on the fixture abstracts on the ${o.backend} backend (a smoke run: a random 2-layer model does not learn NER in seconds).`,
  presetLine: bc5cdrPresetLine,
  recipe: runBc5cdr,
  report: (result, seconds) => [...graphLines(result.runs.map((r) => r.train)), `finished in ${seconds.toFixed(1)} s`],
};

/** Runs the command; returns the recipe's result (null for --help). Errors propagate. */
export const bc5cdrMain = study.main(BC5CDR);

/** --lora-dropout, or its older name --dropout; both given with different values is an error. */
function loraDropout(value: string | undefined, older: string | undefined): number | undefined {
  const p = study.number(value, 'lora-dropout');
  const q = study.number(older, 'dropout');
  if (p !== undefined && q !== undefined && p !== q)
    throw new UsageError(`--lora-dropout ${p} and --dropout ${q} disagree: --dropout is the older name of --lora-dropout, give one`);
  return p ?? q;
}
