import { join } from 'node:path';
import type { Communicator, LocalCommunicator as LocalCommunicatorClass, MpiCommunicator } from '@peft/distributed';
import { LocalCommunicator } from '@peft/distributed';
import type { TrainCommunicator } from '@peft/trainer';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { processLines } from './commands/study-command.js';
import {
  batchLine,
  cpuThreadsPerProcess,
  deviceOptions,
  fromRoot,
  globalBatch,
  type JobCommunicator,
  type ProcessGroup,
  processGroup,
  RootFailedError,
  rankLine,
  SINGLE_PROCESS,
} from './distributed.js';
import { main } from './main.js';
import { inProcessRanks } from './ranks.testkit.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const LLAMA_7B = join(ROOT, 'fixtures', 'configs', 'llama-2-7b');
const OPEN_MPI_RANK_1 = {
  OMPI_COMM_WORLD_SIZE: '2',
  OMPI_COMM_WORLD_RANK: '1',
  OMPI_COMM_WORLD_LOCAL_RANK: '1',
  OMPI_COMM_WORLD_LOCAL_SIZE: '2',
};
afterEach(() => vi.unstubAllEnvs());

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    errors.push(String(s));
    return true;
  });
  try {
    const code = await main(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n'), err: errors.join('') };
  } finally {
    write.mockRestore();
  }
}

describe('the MPI job this process belongs to', () => {
  it("reads Open MPI's, MPICH's and PMIx's variables through @peft/distributed", async () => {
    expect(await processGroup({})).toEqual(SINGLE_PROCESS);
    expect(await processGroup(OPEN_MPI_RANK_1)).toEqual({ launched: true, launcher: 'openmpi', rank: 1, size: 2, localRank: 1 });
    expect(await processGroup({ PMI_SIZE: '4', PMI_RANK: '3', MPI_LOCALRANKID: '1', MPI_LOCALNRANKS: '2' })).toEqual({
      launched: true,
      launcher: 'mpich',
      rank: 3,
      size: 4,
      localRank: 1,
    });
    // A PMIx launcher that gives no size or local rank: rank 0 of a job of unknown size on its first device.
    expect(await processGroup({ PMIX_RANK: '0' })).toEqual({ launched: true, launcher: 'pmix', rank: 0, size: null, localRank: 0 });
    await expect(processGroup({ OMPI_COMM_WORLD_SIZE: 'two' })).rejects.toThrow('OMPI_COMM_WORLD_SIZE is "two"');
  });

  it('without @peft/distributed: a launched process is an error saying how to install it, any other a job of one', async () => {
    expect(await processGroup({ PATH: '/bin' }, null)).toEqual(SINGLE_PROCESS);
    await expect(processGroup({ PMI_SIZE: '2' }, null)).rejects.toThrow(
      /an MPI launcher started this process \(PMI_SIZE=2\), but @peft\/distributed is not installed where @peft\/cli can import it; .*@peft\/distributed/,
    );
  });

  it('picks the GPU of the local rank unless --device says, and says that WebGPU cannot pick one', () => {
    const rank1: ProcessGroup = { launched: true, launcher: 'openmpi', rank: 1, size: 2, localRank: 1 };
    expect(deviceOptions('cuda', rank1)).toEqual({ options: { deviceIndex: 1 }, device: 1, note: null });
    expect(deviceOptions('cuda', rank1, 3).options).toEqual({ deviceIndex: 3 });
    expect(deviceOptions('cuda', SINGLE_PROCESS).options).toEqual({ deviceIndex: 0 });
    expect(deviceOptions('webgpu', SINGLE_PROCESS)).toEqual({ options: {}, device: null, note: null });
    expect(deviceOptions('webgpu', rank1).note).toMatch(/^webgpu: every process uses the default adapter/);
    expect(deviceOptions('cpu', rank1)).toEqual({ options: {}, device: null, note: null });
    expect(() => deviceOptions('cpu', SINGLE_PROCESS, 1)).toThrow('--device 1: the cpu backend has no devices to choose from (cuda has)');
    expect(() => deviceOptions('cuda', SINGLE_PROCESS, -1)).toThrow('--device -1 is not a device index: expected an integer ≥ 0');
  });

  it("shares the machine's cores among the job's processes on it for the CPU backend's default threads", async () => {
    expect(await cpuThreadsPerProcess(2, OPEN_MPI_RANK_1)).toBe(1);
    expect(await cpuThreadsPerProcess(16, { ...OPEN_MPI_RANK_1, OMPI_COMM_WORLD_LOCAL_SIZE: '4', OMPI_COMM_WORLD_SIZE: '8' })).toBe(4);
    expect(await cpuThreadsPerProcess(2, { ...OPEN_MPI_RANK_1, OMPI_COMM_WORLD_LOCAL_SIZE: '3', OMPI_COMM_WORLD_SIZE: '3' })).toBe(1);
    // One process on the machine, no launcher, or no package: the backend's own default.
    expect(
      await cpuThreadsPerProcess(8, { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_LOCAL_SIZE: '1' }),
    ).toBeNull();
    expect(await cpuThreadsPerProcess(8, {})).toBeNull();
    expect(await cpuThreadsPerProcess(8, OPEN_MPI_RANK_1, null)).toBeNull();
  });

  it('--batch-size is per rank: the global batch is size × ranks', () => {
    const two: ProcessGroup = { launched: true, launcher: 'openmpi', rank: 0, size: 2, localRank: 0 };
    expect(globalBatch(8, two)).toBe(16);
    expect(batchLine(8, two)).toBe('batch size 8 per rank × 2 ranks = 16 per update');
    expect(batchLine(8, SINGLE_PROCESS)).toBe('batch size 8');
    expect(batchLine(8, { ...two, size: null })).toMatch(/^batch size 8 per rank × the job's ranks/);
    expect(rankLine(two)).toBe('rank 0 of 2 (openmpi), local rank 0');
    expect(rankLine(SINGLE_PROCESS)).toBeNull();
    expect(processLines(SINGLE_PROCESS, { backend: 'cuda', batchSize: 8 })).toEqual([]);
    expect(processLines({ ...two, size: 1 }, { backend: 'cuda', batchSize: 8 })).toEqual([
      'rank 0 of 1 (openmpi), local rank 0',
      'batch size 8 per rank × 1 rank = 8 per update',
      'cuda device 0 (the local rank)',
    ]);
  });
});

describe('peft info and peft train under mpirun', () => {
  it('peft info prints the batch per process and the global batch under a launcher or with --ranks, the plain batch otherwise', async () => {
    const plain = await run(['info', LLAMA_7B, '--batch', '4']);
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/\n {2}batch 4$/);
    expect(plain.out).not.toContain('per process');
    const planned = await run(['info', LLAMA_7B, '--batch', '4', '--ranks', '3', '--lora-dropout', '0.05']);
    expect(planned.out).toContain('  batch 4 per process × 3 processes = 12 global');
    expect(planned.out).toMatch(/GiB per process\n/);
    expect(planned.out).toContain('LoRA r=8 alpha=8 dropout=0.05 on');
    for (const [name, value] of Object.entries(OPEN_MPI_RANK_1)) vi.stubEnv(name, value);
    expect((await run(['info', LLAMA_7B])).out).toContain('  batch 8 per process × 2 processes = 16 global');
    vi.unstubAllEnvs();
    expect((await run(['info', LLAMA_7B, '--ranks', '0'])).code).toBe(2);
    expect((await run(['info', LLAMA_7B, '--lora-dropout', '1'])).err).toContain('--lora-dropout 1 must be in [0, 1)');
  });
});

describe('the communicator the CLI hands the trainer', () => {
  it("@peft/distributed's communicators have the shape the trainer and the CLI use", () => {
    expectTypeOf<MpiCommunicator>().toMatchTypeOf<JobCommunicator>();
    expectTypeOf<LocalCommunicatorClass>().toMatchTypeOf<JobCommunicator>();
    expectTypeOf<Communicator>().toMatchTypeOf<TrainCommunicator>();
    const local: TrainCommunicator = new LocalCommunicator();
    expect([local.rank, local.size]).toEqual([0, 1]);
  });

  it('fromRoot runs on rank 0 only and gives its value, or its error, to every rank', async () => {
    const ranks = inProcessRanks(2);
    const calls: number[] = [];
    const values = await Promise.all(
      ranks.map((c) =>
        fromRoot(c, async () => {
          calls.push(c.rank);
          return 'runs/tiny-livedoor-20261207T180000Z';
        }),
      ),
    );
    expect(values).toEqual(['runs/tiny-livedoor-20261207T180000Z', 'runs/tiny-livedoor-20261207T180000Z']);
    expect(calls).toEqual([0]);
    const failed = await Promise.allSettled(
      inProcessRanks(2).map((c) =>
        fromRoot(c, async () => {
          throw new Error('runs/x holds a run (its log.csv)');
        }),
      ),
    );
    expect((failed[0] as PromiseRejectedResult).reason.message).toBe('runs/x holds a run (its log.csv)');
    const other = (failed[1] as PromiseRejectedResult).reason;
    expect(other).toBeInstanceOf(RootFailedError);
    expect(other.message).toBe('rank 1 of 2 stopped: rank 0 failed: runs/x holds a run (its log.csv)');
    expect(await fromRoot(undefined, async () => 3)).toBe(3);
  });
});
