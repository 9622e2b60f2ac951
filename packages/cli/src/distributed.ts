// The CLI under an MPI launcher (mpirun, mpiexec, srun): which process of the job this is, which
// device it uses, and what the batch size means. @peft/distributed is an optional peer dependency,
// imported only here and only when needed; without it, a process that no launcher started is a
// job of one.
import type { TrainCommunicator } from '@peft/trainer';
import { installAdvice } from './backends.js';

/** The launcher's view of this process, as @peft/distributed's `detectMpiEnvironment` gives it. */
export interface MpiEnvironmentLike {
  launched: boolean;
  launcher: string | null;
  rank: number | null;
  size: number | null;
  localRank: number | null;
}

export type DetectMpi = (env: NodeJS.ProcessEnv) => MpiEnvironmentLike & { localSize?: number | null };

/** This process's place in its job. */
export interface ProcessGroup {
  /** True when an MPI launcher started this process. */
  launched: boolean;
  /** Which launcher's variables said so (openmpi, mpich, pmix, pmi); null when not launched. */
  launcher: string | null;
  rank: number;
  /** Processes in the job; null when the launcher does not say (known once MPI starts). */
  size: number | null;
  /** Rank among the processes on this machine: the GPU it uses unless --device says otherwise. */
  localRank: number;
}

/** A process that no launcher started. */
export const SINGLE_PROCESS: ProcessGroup = { launched: false, launcher: null, rank: 0, size: 1, localRank: 0 };

/** Variables that any of the launchers @peft/distributed knows sets; read only when that package is missing. */
const LAUNCHER_VARIABLES = ['OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_RANK', 'PMI_SIZE', 'PMI_RANK', 'PMIX_RANK'];

/** @peft/distributed's detectMpiEnvironment, or null when the package is not installed. */
async function importDetect(): Promise<DetectMpi | null> {
  try {
    return (await import('@peft/distributed')).detectMpiEnvironment;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes("'@peft/distributed'")) return null;
    throw error;
  }
}

/**
 * The job this process belongs to, from the launcher's variables in `env`. `detect` defaults to
 * @peft/distributed's; when that package is not installed, a process a launcher started is an error
 * that says how to install it, and any other is a job of one.
 */
export async function processGroup(env: NodeJS.ProcessEnv = process.env, detect?: DetectMpi | null): Promise<ProcessGroup> {
  const find = detect === undefined ? await importDetect() : detect;
  if (!find) {
    const set = LAUNCHER_VARIABLES.find((name) => env[name] !== undefined);
    if (set === undefined) return SINGLE_PROCESS;
    throw new Error(
      `an MPI launcher started this process (${set}=${env[set]}), but @peft/distributed is not installed where @peft/cli can import it; ${installAdvice('@peft/distributed')}`,
    );
  }
  const e = find(env);
  if (!e.launched) return SINGLE_PROCESS;
  return { launched: true, launcher: e.launcher, rank: e.rank ?? 0, size: e.size, localRank: e.localRank ?? 0 };
}

/**
 * The device options of a backend for this process: CUDA's device ordinal is `given`, else the
 * local rank (rank k of a machine on its k-th GPU). The CPU backend has no device. WebGPU cannot
 * choose an adapter by index: every rank gets the default adapter, and `note` says so when a
 * launcher started several processes.
 */
export function deviceOptions(
  backend: string,
  group: ProcessGroup,
  given?: number,
): { options: Record<string, unknown>; device: number | null; note: string | null } {
  if (given !== undefined && (!Number.isSafeInteger(given) || given < 0))
    throw new Error(`--device ${given} is not a device index: expected an integer ≥ 0`);
  if (backend === 'cuda') {
    const device = given ?? group.localRank;
    return { options: { deviceIndex: device }, device, note: null };
  }
  if (backend === 'webgpu') {
    const note =
      given !== undefined || (group.launched && group.size !== 1)
        ? 'webgpu: every process uses the default adapter (WebGPU offers no adapter index, so --device and the local rank do not choose one)'
        : null;
    return { options: {}, device: null, note };
  }
  if (given !== undefined) throw new Error(`--device ${given}: the ${backend} backend has no devices to choose from (cuda has)`);
  return { options: {}, device: null, note: null };
}

/**
 * The CPU backend's default threads for a process of an MPI job: the machine's cores shared
 * among the job's processes on it (each process would otherwise start a GEMM thread per core,
 * and N processes on one machine would run N threads per core). Null for a process no launcher
 * started, or when the launcher does not say how many processes share the machine.
 */
export async function cpuThreadsPerProcess(
  cores: number,
  env: NodeJS.ProcessEnv = process.env,
  detect?: DetectMpi | null,
): Promise<number | null> {
  const find = detect === undefined ? await importDetect() : detect;
  const e = find?.(env);
  if (!e?.launched || !e.localSize || e.localSize < 2) return null;
  return Math.max(1, Math.floor(cores / e.localSize));
}

/** Global batch: `--batch-size` is per process (as transformers' per_device_train_batch_size). */
export function globalBatch(perRank: number, group: ProcessGroup): number | null {
  return group.size === null ? null : perRank * group.size;
}

/** "batch size 8 per rank × 2 ranks = 16 per update" under a launcher, "batch size 8" otherwise. */
export function batchLine(perRank: number, group: ProcessGroup): string {
  if (!group.launched) return `batch size ${perRank}`;
  const total = globalBatch(perRank, group);
  if (total === null) return `batch size ${perRank} per rank × the job's ranks (the launcher does not say how many)`;
  return `batch size ${perRank} per rank × ${group.size} rank${group.size === 1 ? '' : 's'} = ${total} per update`;
}

/** "rank 1 of 2 (openmpi), local rank 1", or null for a process no launcher started. */
export function rankLine(group: ProcessGroup): string | null {
  if (!group.launched) return null;
  return `rank ${group.rank} of ${group.size ?? '?'} (${group.launcher}), local rank ${group.localRank}`;
}

/** The communicator of an MPI job as the CLI uses it: the trainer's view, and what ends the job. */
export interface JobCommunicator extends TrainCommunicator {
  readonly localRank: number;
  readonly description: string;
  /** Waits for every rank, then shuts MPI down: once, at the end of a run that succeeded on every rank. */
  finalize(): Promise<void>;
}

/**
 * Starts MPI in a process a launcher started (`group.launched`) and returns its communicator
 * (@peft/distributed's `createCommunicator`, imported here). Errors say what is missing: the
 * package (with the install command) or the MPI library (@peft/distributed's MpiUnavailable names
 * every place it looked).
 */
export async function openCommunicator(group: ProcessGroup): Promise<JobCommunicator> {
  let create: () => Promise<JobCommunicator>;
  try {
    create = (await import('@peft/distributed')).createCommunicator;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' || !String((error as Error).message).includes("'@peft/distributed'")) throw error;
    throw new Error(
      `this process is ${rankLine(group)}, but @peft/distributed, which trains across processes, is not installed where @peft/cli can import it; ${installAdvice('@peft/distributed')}`,
    );
  }
  try {
    return await create();
  } catch (error) {
    throw new Error(`this process is ${rankLine(group)}, but MPI cannot start: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * How a rank other than 0 ends when the run stopped on every rank in a way rank 0 reports (an
 * interrupted run: rank 0 says where its checkpoint is and how to resume): exit with `exitCode`,
 * printing nothing.
 */
export class ReportedByRankZero extends Error {
  override name = 'ReportedByRankZero';
  constructor(
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super('rank 0 reports how the run ended', options);
  }
}

/** The error of a rank other than 0 when rank 0 failed at something all of them wait for (rank 0 prints its own). */
export class RootFailedError extends Error {
  override name = 'RootFailedError';
}

/**
 * Runs `compute` on rank 0 only and returns its JSON result on every rank (the run folder's name,
 * a decision read from rank 0's disk). When it throws on rank 0 the others throw RootFailedError
 * with its message. Without a communicator, or with one process, it just runs `compute`.
 */
export async function fromRoot<T>(comm: TrainCommunicator | null | undefined, compute: () => Promise<T>): Promise<T> {
  if (!comm || comm.size === 1) return compute();
  type Outcome = { value?: T; error?: string } | null;
  if (comm.rank === 0) {
    let value: T;
    try {
      value = await compute();
    } catch (error) {
      await comm.allGatherObjects<Outcome>({ error: (error as Error).message });
      throw error;
    }
    await comm.allGatherObjects<Outcome>({ value });
    return value;
  }
  const [root] = await comm.allGatherObjects<Outcome>(null);
  if (root?.error !== undefined) throw new RootFailedError(`rank ${comm.rank} of ${comm.size} stopped: rank 0 failed: ${root.error}`);
  return root?.value as T;
}
