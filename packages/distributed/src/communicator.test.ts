import { describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUT_SECONDS, LocalCommunicator, resolveTimeout } from './communicator.js';
import { MpiUnavailable, mpiAvailability } from './library.js';
import { communicatorFromEnvironment } from './mpi-communicator.js';

describe('resolveTimeout', () => {
  it('takes the option, else PEFT_MPI_TIMEOUT, else 120 s', () => {
    expect(DEFAULT_TIMEOUT_SECONDS).toBe(120);
    expect(resolveTimeout(undefined, {})).toBe(120);
    expect(resolveTimeout(undefined, { PEFT_MPI_TIMEOUT: '30' })).toBe(30);
    expect(resolveTimeout(2.5, { PEFT_MPI_TIMEOUT: '30' })).toBe(2.5);
  });

  it('names a bad value', () => {
    expect(() => resolveTimeout(undefined, { PEFT_MPI_TIMEOUT: 'soon' })).toThrow(
      'PEFT_MPI_TIMEOUT is "soon": expected a number of seconds > 0',
    );
    expect(() => resolveTimeout(0, {})).toThrow('communicator option timeoutSeconds is 0: expected a number of seconds > 0');
  });
});

describe('LocalCommunicator', () => {
  it('is rank 0 of 1 and returns its inputs', async () => {
    const comm = new LocalCommunicator({ timeoutSeconds: 7 });
    expect([comm.rank, comm.size, comm.localRank, comm.isRoot, comm.timeoutSeconds]).toEqual([0, 1, 0, true, 7]);
    const grads = Float32Array.of(1.5, -2);
    expect(Array.from(await comm.allReduce(grads, 'mean'))).toEqual([1.5, -2]);
    expect(await comm.broadcast(Uint8Array.of(1, 2), 0)).toEqual(Uint8Array.of(1, 2));
    expect(await comm.allGatherObjects({ f1: 0.5 })).toEqual([{ f1: 0.5 }]);
    expect(await comm.allGatherBytes(Uint8Array.of(9))).toEqual([Uint8Array.of(9)]);
    await comm.barrier();
    await comm.finalize();
  });

  it('checks arguments as the MPI communicator does', async () => {
    const comm = new LocalCommunicator();
    await expect(comm.allReduce([1, 2] as unknown as Float32Array)).rejects.toThrow(
      'allReduce: expected a Float32Array, got Array (stage other dtypes through a Float32Array)',
    );
    await expect(comm.allReduce(new Float32Array(1), 'max' as 'sum')).rejects.toThrow('allReduce: op is "max": expected "sum" or "mean"');
    await expect(comm.broadcast(new Uint8Array(1), 1)).rejects.toThrow('broadcast: root is 1: expected a rank 0..0');
    await expect(comm.allGatherObjects(undefined)).rejects.toThrow('allGatherObjects: the value (undefined) cannot be written as JSON');
    await expect(comm.allGatherObjects({ n: 1n })).rejects.toThrow('allGatherObjects: the value cannot be written as JSON');
  });

  it('is what communicatorFromEnvironment gives outside an MPI launcher', async () => {
    const comm = await communicatorFromEnvironment({ env: { PATH: '/usr/bin' } });
    expect(comm).toBeInstanceOf(LocalCommunicator);
  });
});

describe('communicatorFromEnvironment under a launcher', () => {
  it('rejects with MpiUnavailable naming the library when it cannot be loaded', async () => {
    const saved = process.env.PEFT_MPI_LIBRARY;
    process.env.PEFT_MPI_LIBRARY = '/nonexistent/openmpi/lib/libmpi.so.40';
    try {
      const launched = { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' };
      const error = await communicatorFromEnvironment({ env: launched }).catch((err: Error) => err);
      expect(error).toBeInstanceOf(MpiUnavailable);
      expect((error as Error).message).toBe(
        "no MPI library: PEFT_MPI_LIBRARY names /nonexistent/openmpi/lib/libmpi.so.40, which could not be loaded. Point it at Open MPI's libmpi.so.40 or MPICH's libmpi.so.12, or unset it to search the usual places",
      );
      expect(mpiAvailability()).toEqual({ available: false, reason: (error as Error).message });
    } finally {
      if (saved === undefined) delete process.env.PEFT_MPI_LIBRARY;
      else process.env.PEFT_MPI_LIBRARY = saved;
    }
  });
});
