import { describe, expect, it } from 'vitest';
import { detectMpiEnvironment } from './environment.js';

describe('detectMpiEnvironment', () => {
  it('says not launched for a plain shell, a Slurm batch script or Slurm variables alone', () => {
    const none = { launched: false, launcher: null, rank: null, size: null, localRank: null, localSize: null };
    expect(detectMpiEnvironment({ PATH: '/usr/bin' })).toEqual(none);
    expect(detectMpiEnvironment({ SLURM_PROCID: '0', SLURM_NTASKS: '4', SLURM_LOCALID: '0' })).toEqual(none);
  });

  it("reads Open MPI's mpirun variables", () => {
    const env = {
      OMPI_COMM_WORLD_SIZE: '4',
      OMPI_COMM_WORLD_RANK: '3',
      OMPI_COMM_WORLD_LOCAL_RANK: '1',
      OMPI_COMM_WORLD_LOCAL_SIZE: '2',
      PMIX_RANK: '3',
    };
    expect(detectMpiEnvironment(env)).toEqual({ launched: true, launcher: 'openmpi', rank: 3, size: 4, localRank: 1, localSize: 2 });
  });

  it("reads MPICH Hydra's variables", () => {
    const env = { PMI_SIZE: '8', PMI_RANK: '5', MPI_LOCALRANKID: '1', MPI_LOCALNRANKS: '4' };
    expect(detectMpiEnvironment(env)).toEqual({ launched: true, launcher: 'mpich', rank: 5, size: 8, localRank: 1, localSize: 4 });
  });

  it('reads srun with PMIx: the rank from PMIX_RANK, size and local rank from Slurm', () => {
    const env = { PMIX_RANK: '2', SLURM_NTASKS: '4', SLURM_LOCALID: '0', SLURM_PROCID: '2' };
    expect(detectMpiEnvironment(env)).toEqual({ launched: true, launcher: 'pmix', rank: 2, size: 4, localRank: 0, localSize: null });
  });

  it('reads srun with PMI-2', () => {
    const env = { PMI_RANK: '1', PMI_SIZE: '2', SLURM_LOCALID: '1' };
    expect(detectMpiEnvironment(env)).toEqual({ launched: true, launcher: 'pmi', rank: 1, size: 2, localRank: 1, localSize: null });
  });

  it('names a launcher variable that is not a number, and a rank beyond the size', () => {
    expect(() => detectMpiEnvironment({ OMPI_COMM_WORLD_SIZE: 'two', OMPI_COMM_WORLD_RANK: '0' })).toThrow(
      'the MPI launcher variable OMPI_COMM_WORLD_SIZE is "two": expected an integer ≥ 1',
    );
    expect(() => detectMpiEnvironment({ OMPI_COMM_WORLD_SIZE: '0', OMPI_COMM_WORLD_RANK: '0' })).toThrow(
      'OMPI_COMM_WORLD_SIZE is "0": expected an integer ≥ 1',
    );
    expect(() => detectMpiEnvironment({ PMI_SIZE: '2', PMI_RANK: '2' })).toThrow(
      'the MPI launcher says rank 2 of a job of 2 processes: a rank must be below the size',
    );
    expect(() =>
      detectMpiEnvironment({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_LOCAL_RANK: '3', OMPI_COMM_WORLD_LOCAL_SIZE: '2' }),
    ).toThrow('local rank 3 of 2 processes on this machine');
  });
});
