// Ranks of a data-parallel job inside one test process: `size` communicators whose
// allGatherObjects meet in memory (what the tasks' evaluation and fromRoot use); the other
// collectives reject. Every rank must call allGatherObjects the same number of times.
import type { TrainCommunicator } from '@peft/trainer';

export function inProcessRanks(size: number): TrainCommunicator[] {
  const meetings: { parts: unknown[]; waiting: (() => void)[] }[] = [];
  const unused = () => Promise.reject(new Error('in-process ranks: only allGatherObjects is implemented'));
  return Array.from({ length: size }, (_, rank) => {
    let calls = 0;
    return {
      rank,
      size,
      allReduce: unused,
      broadcast: unused,
      barrier: unused,
      async allGatherObjects<T>(value: T): Promise<T[]> {
        const m = (meetings[calls] ??= { parts: new Array(size), waiting: [] });
        calls++;
        m.parts[rank] = JSON.parse(JSON.stringify(value));
        await new Promise<void>((resolve) => {
          m.waiting.push(resolve);
          if (m.waiting.length === size) for (const w of m.waiting) w();
        });
        return m.parts as T[];
      },
    };
  });
}
