// Study A's command line (livedoor news, 9 categories, LoRA + last-token head): `peft train livedoor`
// and the livedoor example share it. The example passes its bundled tiny model and fixture corpus
// as defaults; the CLI requires --model and --data.
import { parseArgs } from 'node:util';
import type { DType } from '@peft/core';
import type { LivedoorTemplate } from '@peft/datasets';
import { UsageError } from '../args.js';
import { folderName, lrName, type Preset, TINY_HIDDEN_SIZE } from '../presets.js';
import { graphLines } from '../recipes/common.js';
import { type LivedoorOptions, type LivedoorResult, runLivedoor } from '../recipes/livedoor.js';
import * as study from './study-command.js';

// The run-folder and preset API the examples and other programs use (this module is re-exported whole).
export { choosePreset, type Preset, type PresetName, TINY_HIDDEN_SIZE } from '../presets.js';
export { LOCK_FILE, lockRunFolder, openRunFolder, RunFolderInUseError, type RunLock, type RunLockHolder } from '../runfolder.js';

/** What runs when --model / --data are absent (the example's bundled tiny model and corpus), and the usage line. */
export type LivedoorCommandDefaults = study.StudyCommandDefaults;

/**
 * Settings of the default run on the tiny model (everything else is the study's: r 32, α 16,
 * dropout 0.1, AdamW with weight decay 0.01, 1 warm-up epoch, template 2, gradient checkpointing).
 * A 2-layer, 64-wide random GPT-NeoX needs a larger learning rate and more updates per epoch than
 * a 3.6B model to learn the 9 categories from 108 articles, and 64 tokens (title and the first
 * lines) are enough to tell them apart: validation macro-F1 goes from ~0.10 untrained to ~0.7.
 */
export const LIVEDOOR_TINY_DEFAULTS = {
  lr: 1e-2,
  epochs: 10,
  batchSize: 8,
  maxLength: 64,
} as const;

/** The study's settings (used with --model). */
export const LIVEDOOR_STUDY_DEFAULTS = {
  lr: 5e-4,
  epochs: 10,
  batchSize: 32,
  maxLength: 512,
} as const;

export function livedoorHelp(defaults: LivedoorCommandDefaults): string {
  return `Study A: livedoor news classification with a LoRA-tuned decoder LLM.

Usage: ${defaults.usage}
${defaults.tinyModel ? '\nWith no options: the bundled tiny GPT-NeoX on the fixture corpus on the CPU.\n' : ''}
Data and model
  --model <dir>            local Hugging Face model folder (gpt_neox or llama), e.g. rinna/japanese-gpt-neox-3.6b
  --data <path>            ldcc-20140209.tar.gz, or its extracted text/ folder (or that folder's parent)
  --out <dir>              run folder (default ${
    defaults.replaceDefaultTinyRun && defaults.tinyModel ? `${livedoorDefaultOut(defaults.tinyModel, false)} without --model, else ` : ''
  }runs/<model>-livedoor-lora-r32-lr<lr>-t<template>-<UTC time>;
                           with --resume and no --out, the newest run of those settings)
  --backend <name>         cpu (default), webgpu or cuda (when its package is installed)
  --dtype <dtype>          backbone storage dtype (default bfloat16 for a 16-bit checkpoint, as the study)
  --threads <n>            CPU backend worker threads (default: every core; under mpirun, the cores
                           divided among the processes on the machine)
  --device <n>             GPU index for cuda (default: the local rank under mpirun, else 0)

Training (the study's values unless noted)
  --preset <tiny|study>    default settings: tiny for a model of hidden size ≤ ${TINY_HIDDEN_SIZE} (the bundled tiny
                           GPT-NeoX), study otherwise; options given override single values
  --template <0|1|2>       input template (default 2: "{title}\\n{body}")
  --lr <x>                 peak learning rate (default 5e-4; tiny preset ${LIVEDOOR_TINY_DEFAULTS.lr})
  --epochs <n>             default 10
  --batch-size <n>         examples per update and process (default 32; tiny preset ${LIVEDOOR_TINY_DEFAULTS.batchSize});
${study.HELP_BATCH_PER_RANK}
  --micro-batch-size <n>   examples per forward pass (gradient accumulation; default the batch size)
  --max-length <n>         tokens per article, longer ones truncated (default 512; tiny preset ${LIVEDOOR_TINY_DEFAULTS.maxLength})
  --seed <n>               split, initial weights, dropout and data order (default 42)
  --lora-dropout <p>       lora_dropout, in [0, 1) (default 0.1); masks are drawn per example, so they do
                           not depend on the batch size, micro-batches or processes
  --no-gradient-checkpointing   keep activations (faster, more memory)
${study.HELP_LOG_EVERY}
${study.HELP_GRAPH}
  --sweep                  the study's grid: lr ∈ {1e-4, 3e-4, 5e-4, 1e-3} × template ∈ {0, 1, 2},
                           selected by validation macro-F1
  --resume                 continue an interrupted run (or sweep) in --out
${study.HELP_OVERWRITE}

${study.HELP_CTRL_C}`;
}

const OPTIONS = {
  ...study.OPTIONS,
  template: { type: 'string' },
  sweep: { type: 'boolean' },
} as const;

export type LivedoorCommandLine = Omit<LivedoorOptions, 'out'> & { out?: string; help: boolean; overwrite: boolean; preset: Preset };

/** The recipe options a command line asks for (the tiny run's settings when --model is absent). */
export function parseLivedoorCommandLine(argv: readonly string[], defaults: LivedoorCommandDefaults): LivedoorCommandLine {
  const parse = (args: string[]) => parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  const { values, bundled: tiny, modelDir, preset } = study.commandLine(argv, defaults, parse, 'Hugging Face model folder');
  const d = preset.name === 'tiny' ? LIVEDOOR_TINY_DEFAULTS : LIVEDOOR_STUDY_DEFAULTS;
  const template = study.oneOf<LivedoorTemplate>(study.number(values.template, 'template'), 'template', [0, 1, 2]);
  const dtype = study.oneOf<DType>(values.dtype, 'dtype', ['float32', 'bfloat16', 'float16']);
  if (!tiny && values.data === undefined && !values.help) {
    throw new UsageError(
      '--model needs --data <ldcc-20140209.tar.gz or text/> too (the fixture corpus goes with the bundled tiny model only)',
    );
  }
  const loraDropout = study.number(values['lora-dropout'], 'lora-dropout');
  return {
    help: values.help ?? false,
    preset,
    modelDir,
    data: values.data ?? defaults.fixtureData ?? '',
    out: values.out,
    backend: values.backend ?? 'cpu',
    dtype,
    threads: study.number(values.threads, 'threads'),
    device: study.number(values.device, 'device'),
    template,
    lr: study.number(values.lr, 'lr') ?? d.lr,
    epochs: study.number(values.epochs, 'epochs') ?? d.epochs,
    batchSize: study.number(values['batch-size'], 'batch-size') ?? d.batchSize,
    microBatchSize: study.number(values['micro-batch-size'], 'micro-batch-size'),
    maxLength: study.number(values['max-length'], 'max-length') ?? d.maxLength,
    seed: study.number(values.seed, 'seed'),
    lora: loraDropout === undefined ? undefined : { dropout: loraDropout },
    gradientCheckpointing: values['no-gradient-checkpointing'] ? false : undefined,
    logEverySteps: study.number(values['log-every'], 'log-every'),
    graph: study.graphMode(values.graph, values.backend ?? 'cpu'),
    sweep: values.sweep ?? false,
    resume: values.resume ?? false,
    overwrite: values.overwrite ?? false,
  };
}

/** runs/<model folder name>[-sweep]: the examples' no-argument run folder (replaced by each such run). */
export function livedoorDefaultOut(modelDir: string, sweep: boolean): string {
  return `runs/${folderName(modelDir)}${sweep ? '-sweep' : ''}`;
}

/**
 * The settings part of a default run folder's name: model folder, study, method and rank, learning
 * rate and template (a sweep: its grid), e.g. `japanese-gpt-neox-3.6b-livedoor-lora-r32-lr5e-4-t2`.
 */
export function livedoorRunName(o: Pick<LivedoorOptions, 'modelDir' | 'lr' | 'template' | 'sweep' | 'lora'>): string {
  const r = `lora-r${o.lora?.r ?? 32}`;
  const settings = o.sweep ? ['sweep'] : [`lr${lrName(o.lr ?? LIVEDOOR_STUDY_DEFAULTS.lr)}`, `t${o.template ?? 2}`];
  return [folderName(o.modelDir), 'livedoor', r, ...settings].join('-');
}

/** One line: which preset applies, its values in this run, and how to change them. */
export function livedoorPresetLine(preset: Preset, o: Pick<LivedoorOptions, 'lr' | 'epochs' | 'batchSize' | 'maxLength'>): string {
  return study.presetLine(preset, `lr ${o.lr}, batch size ${o.batchSize}, max length ${o.maxLength}, epochs ${o.epochs}`, [
    'lr',
    'batch-size',
    'max-length',
    'epochs',
  ]);
}

/** What to print after a run: the study's table, then where the results are. */
export function livedoorReport(result: LivedoorResult, seconds: number): string[] {
  const lines = ['', result.table.trimEnd(), ''];
  const v = (x: number) => (x * 100).toFixed(2);
  lines.push(
    `selected: template ${result.template}, lr ${result.lr}, epoch ${result.best.epoch} (validation macro-F1 ${v(result.best.score)}; untrained ${v(result.untrained.score)})`,
  );
  const perLabel = result.test.report as Record<string, { support?: number }>;
  const present = result.labels.filter((l) => (perLabel[l]?.support ?? 0) > 0).length;
  if (present < result.labels.length) {
    lines.push(
      `note: the test split has ${result.splitSizes.test} articles from ${present} of the ${result.labels.length} categories; macro averages run over all ${result.labels.length} labels with zero_division 0 (the study's definition), so an absent category counts as 0 and F1 cannot exceed ${v(present / result.labels.length)} here.`,
    );
  }
  if (result.runDir) lines.push(`run folder: ${result.runDir}`);
  if (result.adapterDir) lines.push(`adapter (PEFT format, score head in modules_to_save, labels.json): ${result.adapterDir}`);
  if (result.curves) lines.push(`curves (training loss, validation macro-F1): ${result.curves}`);
  lines.push(...graphLines([result.train]));
  lines.push(`finished in ${seconds.toFixed(1)} s`);
  return lines;
}

const LIVEDOOR: study.Study<Omit<LivedoorOptions, 'out'>, LivedoorResult> = {
  parse: parseLivedoorCommandLine,
  help: livedoorHelp,
  defaultOut: (o) => livedoorDefaultOut(o.modelDir, o.sweep === true),
  runName: livedoorRunName,
  tinyNote: (o) => `No --model: the bundled tiny GPT-NeoX on the fixture corpus (9 categories × 15 articles) on the ${o.backend} backend.`,
  presetLine: livedoorPresetLine,
  recipe: runLivedoor,
  report: livedoorReport,
};

/** Runs the command; returns the recipe's result (null for --help). Errors propagate. */
export const livedoorMain = study.main(LIVEDOOR);
