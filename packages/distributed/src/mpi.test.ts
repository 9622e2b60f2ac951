// Two ranks on loopback, started by Open MPI's mpirun with the flags of mpirunArgs. Each test
// runs mpi-rank.testkit.ts in a scenario and checks what every rank printed and how mpirun ended.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findMpirun, mpirunArgs } from './launch.js';

const mpirun = findMpirun();
const root = join(import.meta.dirname, '..', '..', '..');
const script = join(import.meta.dirname, 'mpi-rank.testkit.ts');
const TIMEOUT = 5;
const stopped: number[] = [];

interface Job {
  code: number | null;
  signal: string | null;
  seconds: number;
  output: string;
  results: Record<string, unknown>[];
  errors: string[];
  pids: number[];
}

/** Runs the scenario on 2 ranks; resolves when mpirun exits (or is killed after `limitSeconds`). */
function job(scenario: string, limitSeconds: number): Promise<Job> {
  const args = [...mpirunArgs({ np: 2 }), 'node', '--conditions=@peft/source', '--import', 'tsx', script, scenario];
  const started = performance.now();
  const child = spawn('mpirun', args, { cwd: root, env: { ...process.env, PEFT_MPI_TIMEOUT: String(TIMEOUT) } });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const limit = setTimeout(() => child.kill('SIGKILL'), limitSeconds * 1000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      const lines = output.split('\n');
      const tagged = (tag: string) => lines.filter((l) => l.startsWith(`${tag} `)).map((l) => JSON.parse(l.slice(tag.length + 1)));
      const pids = tagged('pid') as number[];
      stopped.push(...pids);
      resolve({
        code,
        signal,
        seconds: (performance.now() - started) / 1000,
        output,
        results: tagged('result'),
        errors: tagged('error'),
        pids,
      });
    });
  });
}

afterEach(() => {
  // A rank that stopped itself with SIGSTOP must not outlive its test.
  for (const pid of stopped.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone: mpirun ended it
    }
  }
});

describe.skipIf(!mpirun)(`2 ranks under mpirun (${mpirun?.version ?? 'no mpirun on PATH: install openmpi-bin'})`, () => {
  it('all-reduces (sum, mean, odd sizes, more than one chunk), broadcasts, gathers JSON, finds length mismatches; local rank from MPI', async () => {
    const run = await job('collectives', 50);
    expect(run.errors, run.output).toEqual([]);
    expect(run.code, run.output).toBe(0);
    const byRank = run.results.sort((a, b) => (a.rank as number) - (b.rank as number));
    expect(byRank.map((r) => [r.rank, r.size, r.localRank])).toEqual([
      [0, 2, 0],
      [1, 2, 1],
    ]);
    for (const r of byRank) {
      expect(r.description).toMatch(new RegExp(`^Open MPI v\\d.+ \\(libmpi\\.so\\.40\\), rank ${r.rank} of 2, local rank ${r.rank}$`));
      expect(r.odd).toEqual({ length: 1001, mismatches: 0, head: [0, 3, 6], last: 3 * (1000 % 7) });
      expect(r.mean).toEqual({ length: 37, mismatches: 0, head: [0.5, 1, 1.5], last: 18.5 });
      expect(r.big).toEqual({ length: 4 * 2 ** 20 + 5, mismatches: 0, head: [3, 3, 3], last: 1000 });
      expect(r.broadcastBytes).toBe(true);
      expect(r.broadcastFloats).toEqual([0.25, 1.25, 2.25, 3.25, 4.25]);
      expect(r.gathered).toEqual([
        { rank: 0, accuracy: 0.5, label: 'r0' },
        { rank: 1, accuracy: 0.6, label: 'r1r1' },
      ]);
      expect(r.emptyLengths).toEqual([0, 3]);
      expect(r.mismatch).toBe(
        `rank ${r.rank} of 2: all-reduce (sum) of ${10 + (r.rank as number)} floats: the ranks passed buffers of different lengths (rank 0 10 floats, rank 1 11 floats): every rank must pass the same length`,
      );
      expect(r.after).toEqual([1]);
    }
  });

  it('a rank stopped with SIGSTOP: the other rejects after the timeout, and mpirun ends the job non-zero', async () => {
    const run = await job('stop', TIMEOUT + 25);
    expect(run.pids.length, run.output).toBe(1);
    expect(run.errors).toEqual([
      `rank 0 of 2: all-reduce (sum) of 1,234 floats got no answer from the other ranks in ${TIMEOUT} s: a rank died or stopped (or is busy elsewhere for longer). This communicator cannot be used again: exit with a non-zero code (mpirun then stops the other ranks) or call abort(); if a rank is only slow, raise timeoutSeconds or PEFT_MPI_TIMEOUT`,
    ]);
    expect(run.results).toEqual([]);
    expect(run.code, run.output).not.toBe(0);
    expect(run.code).not.toBeNull();
    expect(run.seconds).toBeGreaterThanOrEqual(TIMEOUT);
    expect(run.seconds).toBeLessThan(TIMEOUT + 20);
  });

  it('abort(5) on one rank ends every rank, and mpirun exits with 5', async () => {
    const run = await job('abort', TIMEOUT + 25);
    expect(run.pids.length, run.output).toBe(1);
    expect(run.results).toEqual([]);
    expect(run.errors).toEqual([]);
    expect(run.code, run.output).toBe(5);
    expect(run.seconds).toBeLessThan(TIMEOUT + 20);
  });

  for (const how of ['exit', 'kill'] as const) {
    it(`a rank that ${how === 'exit' ? 'exits with code 3' : 'is killed (SIGKILL)'}: mpirun ends the job with an error, no hang`, async () => {
      const run = await job(how, TIMEOUT + 25);
      expect(run.pids.length, run.output).toBe(1);
      expect(run.results).toEqual([]);
      expect(run.code, run.output).toBe(how === 'exit' ? 3 : 137);
      expect(run.seconds).toBeLessThan(TIMEOUT + 20);
    });
  }
});
