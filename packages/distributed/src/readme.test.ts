// Runs the README's snippet as it is written there (against the sources) and checks what it prints:
// a job of one process, over MPI where a library is installed ("singleton" start, no mpirun), on a
// LocalCommunicator otherwise.
import { join } from 'node:path';
import { runReadmeSnippet } from '@peft/core/testing';
import { expect, it } from 'vitest';
import { mpiAvailability } from './library.js';
import { createCommunicator, type MpiCommunicator } from './mpi-communicator.js';

it('runs the README snippet', async () => {
  const available = mpiAvailability().available;
  const run = await runReadmeSnippet(join(import.meta.dirname, '..', 'README.md'), { bindings: ['comm', 'grads'] });
  const comm = run.bindings.comm as { constructor: { name: string } };
  expect(comm.constructor.name).toBe(available ? 'MpiCommunicator' : 'LocalCommunicator');
  expect(Array.from(run.bindings.grads as Float32Array)).toEqual([1, 10]);
  expect(run.lines).toEqual([`MPI available: ${available}`, 'rank 0 of 1: mean gradient 1,10, 1 metric reports']);
  if (available) {
    // MPI starts once per process: after the snippet's finalize() it cannot start again.
    await expect(createCommunicator()).rejects.toThrow(
      'createCommunicator: MPI was already initialised in this process, and MPI allows that once: pass the communicator created first around',
    );
    const comm = run.bindings.comm as MpiCommunicator;
    await expect(comm.barrier()).rejects.toThrow('rank 0 of 1: barrier: this communicator was finalized');
  }
});
