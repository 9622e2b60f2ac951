// What the two study recipes (livedoor, bc5cdr) share: option checks that name the study, the
// storage dtype rule, the model-folder check, the backend they run on (and whether it is theirs to
// destroy), the run store, the stream their messages go to, and the files written beside an
// adapter and at the end of a run.
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { createCpuBackend } from '@peft/backend-cpu';
import type { Backend, DType, FileSink } from '@peft/core';
import type { ModelConfig } from '@peft/models';
import { loadConfig } from '@peft/models/node';
import type { ProgressOptions, RunStore, TrainCommunicator, TrainResult } from '@peft/trainer';
import { nodeRunStore } from '@peft/trainer/node';
import { createBackend } from '../backends.js';
import { cpuThreadsPerProcess, deviceOptions, processGroup, SINGLE_PROCESS } from '../distributed.js';
import { CURVES_FILE, type CurvesOptions, writeCurves } from './curves.js';

/** Option checks whose errors start with the study's name (`livedoor: lr must be a number > 0, got -1`). */
export class StudyChecks {
  constructor(readonly study: string) {}

  fail(message: string): never {
    throw new Error(`${this.study}: ${message}`);
  }

  positiveInt(name: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(`${name} must be a positive integer, got ${String(v)}`);
    return v;
  }

  positive(name: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`${name} must be a number > 0, got ${String(v)}`);
    return v;
  }

  /** lora_dropout: a probability below 1. */
  dropout(name: string, v: number): number {
    if (!(v >= 0 && v < 1)) this.fail(`${name} must be in [0, 1), got ${v}`);
    return v;
  }

  oneOf<T extends string>(name: string, v: T, allowed: readonly T[]): T {
    if (!allowed.includes(v)) this.fail(`${name} "${v}" is unknown: use ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}`);
    return v;
  }

  /**
   * The studies' dtype rule: the one asked for when the backend stores it; otherwise bfloat16 for a
   * 16-bit checkpoint (Llama-2 ships float16) on a backend that stores it, and float32 for a float32 one.
   */
  dtype(config: ModelConfig, backend: Backend, requested?: DType): DType {
    if (requested) {
      if (!backend.dtypes.includes(requested))
        this.fail(`backend "${backend.name}" does not store ${requested}: it stores ${backend.dtypes.join(', ')}`);
      return requested;
    }
    if (config.torchDtype === null || config.torchDtype === 'float32') return 'float32';
    return backend.dtypes.includes('bfloat16') ? 'bfloat16' : 'float32';
  }

  /** The model folder's config.json, after checking that the folder is one (before any weights are read). */
  async modelConfig(modelDir: string): Promise<ModelConfig> {
    const kind = await pathKind(modelDir);
    if (kind !== 'dir') {
      this.fail(
        `model folder ${modelDir} ${kind === 'file' ? 'is a file' : 'does not exist'}: pass a local Hugging Face model folder (config.json, weights, tokenizer files)`,
      );
    }
    // The models package's own error for a missing config.json or an unsupported model_type.
    return loadConfig(modelDir);
  }
}

/** Whether a path is a folder, a file, or absent. */
export async function pathKind(path: string): Promise<'dir' | 'file' | null> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return null;
  }
}

/** The options both recipes take for the backend they run on. */
export interface BackendChoice {
  /** A backend name ('cpu', the default; 'webgpu', 'cuda' when their package is installed) or a Backend instance (yours to destroy). */
  backend?: string | Backend;
  /** GEMM worker threads of the CPU backend made for 'cpu' (default: every core; under mpirun the cores divided among the machine's processes). */
  threads?: number;
  /** The GPU a 'cuda' backend made here uses (default: the local rank under an MPI launcher, else 0). */
  device?: number;
}

/**
 * Runs `use` on the chosen backend; one made here from a name is destroyed afterwards, a given
 * instance is left to its owner. A GPU backend made here takes its device from `device` or, under
 * an MPI launcher, from the process's local rank.
 */
export async function withBackend<T>(choice: BackendChoice, use: (backend: Backend) => Promise<T>): Promise<T> {
  const b = choice.backend ?? 'cpu';
  if (typeof b !== 'string') return use(b);
  const group = b === 'cpu' ? SINGLE_PROCESS : await processGroup();
  const { options } = deviceOptions(b, group, choice.device);
  const threads = b === 'cpu' ? (choice.threads ?? (await cpuThreadsPerProcess(availableParallelism()))) : null;
  const backend = b === 'cpu' ? createCpuBackend(threads === null ? {} : { threads }) : await createBackend(b, options);
  try {
    return await use(backend);
  } finally {
    backend.destroy();
  }
}

/**
 * A run folder that keeps nothing: what the ranks other than 0 of a data-parallel run write to
 * (rank 0 writes the real one), so that the recipes run the same code on every rank.
 */
export function discardingStore(name: string): RunStore {
  return {
    name,
    async writeFile() {},
    async readFile() {
      return null;
    },
    async list() {
      return [];
    },
    async rename() {},
    async remove() {},
  };
}

/** The run store of an `out` option and its folder (null for a store given as an object, or no `out`); on a rank other than 0 one that keeps nothing. */
export function runStoreOf(
  out: string | RunStore | undefined,
  communicator?: TrainCommunicator,
): { store: RunStore | undefined; dir: string | null } {
  if (out === undefined) return { store: undefined, dir: null };
  if (communicator && communicator.rank !== 0)
    return { store: discardingStore(typeof out === 'string' ? resolve(out) : out.name), dir: null };
  if (typeof out === 'string') return { store: nodeRunStore(resolve(out)), dir: resolve(out) };
  return { store: out, dir: null };
}

/** Where a recipe's messages go: `log` when given, else standard error (as the progress bar), none when progress is false. */
export function recipeLog(o: { log?: (line: string) => void; progress?: ProgressOptions | false }): (line: string) => void {
  if (o.log) return o.log;
  return o.progress === false ? () => {} : (line: string) => void process.stderr.write(`${line}\n`);
}

/** Writes these files beside the adapter (after PEFT's own) whenever the task saves it. */
export function saveBesideAdapter(task: { saveArtifacts(sink: FileSink): Promise<void> }, files: Record<string, string>): void {
  const save = task.saveArtifacts.bind(task);
  task.saveArtifacts = async (sink: FileSink) => {
    await save(sink);
    for (const [name, text] of Object.entries(files)) await sink.writeFile(name, text);
  };
}

/** Draws the run's curves.svg from its log; returns its path (null without a run folder or a log to draw). */
export async function drawCurves(store: RunStore | undefined, runDir: string | null, opts: CurvesOptions): Promise<string | null> {
  if (!store) return null;
  return (await writeCurves(store, opts)) && runDir ? join(runDir, CURVES_FILE) : null;
}

/** The curves.svg an earlier process drew in a run folder, or null. */
export async function curvesIn(runDir: string | null): Promise<string | null> {
  return runDir && (await pathKind(join(runDir, CURVES_FILE))) !== null ? join(runDir, CURVES_FILE) : null;
}

/** The end of a run: results.md (a title, a line on what the table shows, the table) and, when given, results.json. */
export async function writeResults(store: RunStore, md: { title: string; intro?: string; table: string }, json?: unknown): Promise<void> {
  if (json !== undefined) await store.writeFile('results.json', `${JSON.stringify(json, null, 2)}\n`);
  await store.writeFile('results.md', `# ${md.title}\n\n${md.intro ? `${md.intro}\n\n` : ''}${md.table.trimEnd()}\n`);
}

/**
 * One line on the CUDA graphs of the runs (`TrainResult.graphs`), or none where the backend has no
 * graphs: how many were captured and replayed, or why the steps ran eagerly.
 */
export function graphLines(runs: readonly (TrainResult | null | undefined)[]): string[] {
  const reports = runs.flatMap((r) => (r ? [r.graphs] : []));
  const captured = reports.reduce((n, g) => n + g.captured, 0);
  const replays = reports.reduce((n, g) => n + g.replays, 0);
  const error = reports.find((g) => g.error !== null)?.error ?? null;
  const lines: string[] = [];
  if (captured > 0) lines.push(`CUDA graphs: ${captured} captured, ${replays} replays`);
  if (error !== null) lines.push(`CUDA graphs: a capture failed, so the steps after it ran eagerly: ${error.split('\n')[0]}`);
  return lines;
}
