/**
 * Whether this process was started by an MPI launcher, read from the variables each launcher
 * sets: Open MPI's mpirun (OMPI_COMM_WORLD_*), MPICH's Hydra (PMI_*, MPI_LOCALRANKID), PMIx
 * launchers (PMIX_RANK: Open MPI 5, srun --mpi=pmix) and Slurm's srun (SLURM_LOCALID for the
 * local rank). Reads nothing but the given variables; loads no library.
 */

export type MpiLauncher = 'openmpi' | 'mpich' | 'pmix' | 'pmi';

export interface MpiEnvironment {
  /** True when an MPI launcher started this process (mpirun, mpiexec, srun with PMI/PMIx). */
  launched: boolean;
  /** Which family of variables said so; null when not launched. */
  launcher: MpiLauncher | null;
  /** This process's rank in the job, when the launcher says it (else known after MPI_Init). */
  rank: number | null;
  /** Processes in the job, when the launcher says it. */
  size: number | null;
  /** This process's rank among the processes on its machine: pick the GPU with it. */
  localRank: number | null;
  /** Processes on this machine, when the launcher says it. */
  localSize: number | null;
}

function readInt(env: NodeJS.ProcessEnv, name: string, min: number): number | null {
  const text = env[name];
  if (text === undefined || text === '') return null;
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(value) || value < min)
    throw new Error(`the MPI launcher variable ${name} is "${text}": expected an integer ≥ ${min}`);
  return value;
}

function firstInt(env: NodeJS.ProcessEnv, names: string[], min: number): number | null {
  for (const name of names) {
    const value = readInt(env, name, min);
    if (value !== null) return value;
  }
  return null;
}

/**
 * The MPI job this process belongs to, from `env` (process.env by default). Throws when a
 * launcher variable holds something other than a number, or a rank is not below its size.
 */
export function detectMpiEnvironment(env: NodeJS.ProcessEnv = process.env): MpiEnvironment {
  let launcher: MpiLauncher | null = null;
  if (env.OMPI_COMM_WORLD_SIZE !== undefined || env.OMPI_COMM_WORLD_RANK !== undefined) launcher = 'openmpi';
  else if (env.PMI_SIZE !== undefined && env.MPI_LOCALRANKID !== undefined) launcher = 'mpich';
  else if (env.PMIX_RANK !== undefined) launcher = 'pmix';
  else if (env.PMI_SIZE !== undefined || env.PMI_RANK !== undefined) launcher = 'pmi';
  if (!launcher) return { launched: false, launcher: null, rank: null, size: null, localRank: null, localSize: null };

  const rank = firstInt(env, ['OMPI_COMM_WORLD_RANK', 'PMIX_RANK', 'PMI_RANK'], 0);
  const size = firstInt(env, ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'SLURM_NTASKS'], 1);
  const localRank = firstInt(env, ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'PMI_LOCAL_RANK', 'SLURM_LOCALID'], 0);
  const localSize = firstInt(env, ['OMPI_COMM_WORLD_LOCAL_SIZE', 'MPI_LOCALNRANKS', 'PMI_LOCAL_SIZE'], 1);
  if (rank !== null && size !== null && rank >= size)
    throw new Error(`the MPI launcher says rank ${rank} of a job of ${size} processes: a rank must be below the size`);
  if (localRank !== null && localSize !== null && localRank >= localSize)
    throw new Error(`the MPI launcher says local rank ${localRank} of ${localSize} processes on this machine: it must be below`);
  return { launched: true, launcher, rank, size, localRank, localSize };
}
