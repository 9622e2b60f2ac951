// What the two study commands (`peft train livedoor`, `peft train bc5cdr`, and the examples that
// share them) have in common: the options both take, reading numbers and choices from the command
// line, the preset line, and the run around the recipe (run folder named, locked and released).
import { type ProgressOptions, type TrainCommunicator, TrainingAbortedError } from '@peft/trainer';
import { UsageError } from '../args.js';
import {
  batchLine,
  deviceOptions,
  fromRoot,
  type JobCommunicator,
  openCommunicator,
  type ProcessGroup,
  processGroup,
  ReportedByRankZero,
  rankLine,
} from '../distributed.js';
import { choosePreset, defaultRunFolder, type Preset } from '../presets.js';
import { fromUser } from '../recipes/paths.js';
import { openRunFolder, type RunLock, runCommandLine } from '../runfolder.js';

/** The options both studies take (each adds its own). */
export const OPTIONS = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  lr: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'micro-batch-size': { type: 'string' },
  'max-length': { type: 'string' },
  seed: { type: 'string' },
  'lora-dropout': { type: 'string' },
  'log-every': { type: 'string' },
  graph: { type: 'string' },
  'no-gradient-checkpointing': { type: 'boolean' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  preset: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The help lines of --overwrite, which every study takes. */
export const HELP_OVERWRITE = `  --overwrite              replace a previous run in --out (without it, or --resume, a folder that
                           holds one is an error and is left as it is)`;

/** The help lines after --batch-size: what it means under mpirun (as transformers' per_device_train_batch_size). */
export const HELP_BATCH_PER_RANK = `                           under mpirun -np N each of the N processes takes this many, so an
                           update sees N × this (as transformers' per_device_train_batch_size)`;

/** The help line of --log-every, which every study takes. */
export const HELP_LOG_EVERY = `  --log-every <n>          a training row in log.csv every n updates (default 10)`;

/** The help lines of --graph, which every study takes. */
export const HELP_GRAPH = `  --graph <auto|on|off>    CUDA graphs: each micro-batch shape, the gradient norm and the update
                           captured once and replayed (default auto: where the backend can, eager
                           after a failed capture; on: a failed capture is an error; off: eager)`;

/** --graph's value as TrainOptions.graph (undefined when absent); `on` needs the cuda backend, the one that captures graphs. */
export function graphMode(v: string | undefined, backend: string): boolean | 'auto' | undefined {
  const mode = oneOf(v, 'graph', ['auto', 'on', 'off'] as const);
  if (mode === 'on' && backend !== 'cuda') {
    throw new UsageError(`--graph on: the ${backend} backend cannot capture graphs (only --backend cuda can); use --graph auto or off`);
  }
  return mode === undefined ? undefined : mode === 'auto' ? 'auto' : mode === 'on';
}

/** The help's closing paragraph. */
export const HELP_CTRL_C = `Ctrl-C stops after the current step, writing a checkpoint (a second Ctrl-C quits at once, keeping
the last one); --resume continues it. One run at a time per run folder (its lock file is run.lock).
`;

/** What the example or the CLI passes: the usage line, and what runs when --model / --data are absent. */
export interface StudyCommandDefaults {
  usage: string;
  tinyModel?: string;
  fixtureData?: string;
  /**
   * Replace the previous tiny run in the default folder instead of refusing (the example's
   * no-argument run, meant to be run again and again). An explicit --out is always guarded.
   */
  replaceDefaultTinyRun?: boolean;
}

/**
 * The command line's values (`parse` calls node:util's parseArgs on the arguments): a leading `--`
 * (`pnpm … start -- --model …` passes it on) dropped, a parse error as a UsageError that points at
 * --help, and the paths taken from the user's folder (a package script runs in the repository root).
 */
export function args<V extends { model?: string; data?: string; out?: string }>(argv: readonly string[], parse: (args: string[]) => V): V {
  const rest = argv[0] === '--' ? argv.slice(1) : [...argv];
  let values: V;
  try {
    values = parse(rest);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}. Run with --help for the options.`);
  }
  return { ...values, model: fromUser(values.model), data: fromUser(values.data), out: fromUser(values.out) };
}

/**
 * The command line's values (see `args`), whether the bundled tiny model runs (no --model, and the
 * example or the repository has one; otherwise --model is required, named as `model` says), the
 * model folder and the preset that applies.
 */
export function commandLine<V extends { model?: string; data?: string; out?: string; preset?: string; help?: boolean }>(
  argv: readonly string[],
  defaults: StudyCommandDefaults,
  parse: (args: string[]) => V,
  model: string,
): { values: V; bundled: boolean; modelDir: string; preset: Preset } {
  const values = args(argv, parse);
  const bundled = values.model === undefined && defaults.tinyModel !== undefined;
  if (values.model === undefined && !bundled && !values.help) throw new UsageError(`--model <${model}> is required`);
  const modelDir = values.model ?? defaults.tinyModel ?? '';
  return { values, bundled, modelDir, preset: choosePreset(values.preset, modelDir, bundled) };
}

/** A number option's value (undefined when absent). */
export function number(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} ${JSON.stringify(v)} is not a number`);
  return n;
}

/** A choice option's value (undefined when absent). */
export function oneOf<T extends string | number>(v: string | number | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  return v as T;
}

/** One line: which preset applies, its values in this run (`lr 0.01, epochs 10`), and which options change them. */
export function presetLine(preset: Preset, values: string, flags: readonly string[]): string {
  const other = preset.name === 'tiny' ? 'study' : 'tiny';
  return `preset ${preset.name} (${preset.reason}): ${values}; ${flags.map((f) => `--${f}`).join(', ')} override one, --preset ${other} switches`;
}

/** A study command's parsed line: the recipe's options, and what the command itself uses. */
export type CommandLine<O> = O & { out?: string; help: boolean; overwrite: boolean; preset: Preset };

/** What the examples and the CLI pass besides the arguments. */
export interface StudyMainOptions {
  /** Where the command's lines go (default standard output). */
  log?: (line: string) => void;
  /** The training progress bar; false for silence. */
  progress?: ProgressOptions | false;
  /** Stops training at the next step boundary, with a checkpoint (Ctrl-C). */
  signal?: AbortSignal;
}

type RecipeOptions = { modelDir: string; backend?: unknown; resume?: boolean; batchSize?: number; device?: number };

/** What the recipe gets besides its options: the run folder, where lines go, and the job's communicator when it has several processes. */
type RecipeRun = StudyMainOptions & { out: string; communicator?: TrainCommunicator };

/** How one study runs from its command line. */
export interface Study<O extends RecipeOptions, R> {
  parse: (argv: readonly string[], defaults: StudyCommandDefaults) => CommandLine<O>;
  help: (defaults: StudyCommandDefaults) => string;
  /** The examples' fixed no-argument run folder. */
  defaultOut: (options: O) => string;
  /** The settings part of a new run folder's name (runs/<name>-<UTC time>). */
  runName: (options: O) => string;
  /** Printed when the bundled tiny model runs (no --model). */
  tinyNote: (options: O) => string;
  presetLine: (preset: Preset, options: O) => string;
  recipe: (options: O & RecipeRun) => Promise<R>;
  /** Lines printed after the run. */
  report: (result: R, seconds: number) => string[];
}

/**
 * Runs a study command: its help, or the recipe in its run folder (--out; the examples' fixed one
 * without --model; else a new runs/<settings>-<UTC time>, with --resume the newest such), locked
 * for the run and released after it, between the preset line and the report. Returns the recipe's
 * result (null for --help). Errors propagate.
 *
 * Under an MPI launcher (mpirun -np N) every process runs this: MPI starts here, rank 0 names and
 * locks the run folder and tells the others its name, the recipe trains data-parallel over the
 * communicator, and only rank 0 writes files and prints; the others print only errors.
 */
export async function run<O extends RecipeOptions, R>(
  study: Study<O, R>,
  argv: readonly string[],
  defaults: StudyCommandDefaults,
  opts: StudyMainOptions = {},
): Promise<R | null> {
  const { help, overwrite, preset, out: given, ...rest } = study.parse(argv, defaults);
  const group = await processGroup();
  const options = rest as unknown as O;
  // What needs no MPI is answered before it starts (a process that starts MPI must end it).
  if (help) {
    if (group.rank === 0) (opts.log ?? ((line: string) => console.log(line)))(study.help(defaults));
    return null;
  }
  if (group.launched && group.size !== 1 && (options as { sweep?: unknown }).sweep)
    throw new UsageError(`--sweep runs one process: under mpirun -np ${group.size ?? 'N'}, train one configuration (drop --sweep)`);
  const comm = group.launched ? await openCommunicator(group) : null;
  const root = !comm || comm.rank === 0;
  const log = root ? (opts.log ?? ((line: string) => console.log(line))) : () => {};
  const resume = options.resume ?? false;
  const tiny = options.modelDir === defaults.tinyModel;
  // The examples' no-argument run keeps its fixed folder (and replaces its previous run there).
  const fixed = tiny && given === undefined && defaults.replaceDefaultTinyRun === true;
  const replace = overwrite || (fixed && !resume);
  let lock: RunLock | null = null;
  // Rank 0 picks the folder (default names hold the time) and locks it; the others get its name.
  const out = await fromRoot(comm, async () => {
    const folder = given ?? (fixed ? study.defaultOut(options) : defaultRunFolder(study.runName(options), resume));
    lock = await openRunFolder(folder, { resume, overwrite: replace, command: runCommandLine(), log });
    return folder;
  });
  try {
    if (tiny) log(study.tinyNote(options));
    log(study.presetLine(preset, options));
    for (const line of processLines(processGroupOf(group, comm), options)) log(line);
    log(`run folder: ${out}`);
    const started = performance.now();
    const communicator = comm && comm.size > 1 ? comm : undefined;
    const progress = root ? opts.progress : false;
    const result = await study.recipe({ ...options, out, log, progress, signal: opts.signal, communicator }).catch((error: unknown) => {
      // Every rank stopped at the same step; rank 0 says where its checkpoint is.
      if (!root && error instanceof TrainingAbortedError) throw new ReportedByRankZero(130, { cause: error });
      throw error;
    });
    for (const line of study.report(result, (performance.now() - started) / 1000)) log(line);
    // MPI ends only when every rank got here; after a failure the process just exits (mpirun ends the job).
    await comm?.finalize();
    return result;
  } finally {
    (lock as RunLock | null)?.release();
  }
}

/** The job as MPI reports it once started (the launcher may not say its size). */
function processGroupOf(group: ProcessGroup, comm: JobCommunicator | null): ProcessGroup {
  return comm ? { ...group, rank: comm.rank, size: comm.size, localRank: comm.localRank } : group;
}

/** A study's command as a function of its arguments (what the examples and `peft train` call). */
export function main<O extends RecipeOptions, R>(
  study: Study<O, R>,
): (argv: readonly string[], defaults: StudyCommandDefaults, opts?: StudyMainOptions) => Promise<R | null> {
  return (argv, defaults, opts = {}) => run(study, argv, defaults, opts);
}

/** Under an MPI launcher: which rank, the per-rank and global batch, and the device note; nothing otherwise. */
export function processLines(group: ProcessGroup, o: { backend?: unknown; batchSize?: number; device?: number }): string[] {
  if (!group.launched) return [];
  const lines = [rankLine(group)!];
  if (o.batchSize !== undefined) lines.push(batchLine(o.batchSize, group));
  if (typeof o.backend === 'string') {
    const { device, note } = deviceOptions(o.backend, group, o.device);
    if (device !== null) lines.push(`${o.backend} device ${device}${o.device === undefined ? ' (the local rank)' : ''}`);
    if (note) lines.push(note);
  }
  return lines;
}
