// A training run for the kill-during-write test (../kill.test.ts): trains the toy blob task on the
// CPU backend into a run folder with a checkpoint after every step (./kill-run.ts), resuming from
// the newest one when there is one. Each file is written in two halves with a pause between, and each step pauses, so that the parent
// can SIGKILL it while a temporary file is half written, or between writes.
//
//   node --conditions=@peft/source --import tsx kill-train.ts <run folder>
import { createCpuBackend } from '@peft/backend-cpu';
import { nodeRunStore } from '../node/index.js';
import { collectBytes, type RunStore } from '../store.js';
import { train } from '../trainer.js';
import { killRunOptions, killRunTask } from './kill-run.js';

const dir = process.argv[2];
if (!dir) throw new Error('kill-train: give the run folder as the first argument');

// log.csv's tokens/s and elapsed seconds measure the wall clock: stopped, every run writes the same bytes.
performance.now = () => 0;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The run folder, each file streamed in 2 chunks 15 ms apart (as a large tensor file takes time). */
function slow(store: RunStore): RunStore {
  return {
    ...store,
    name: store.name,
    async writeFile(path, data) {
      const bytes = await collectBytes(data);
      await store.writeFile(path, async (sink) => {
        const half = bytes.length >> 1;
        await sink.write(bytes.subarray(0, half));
        await sleep(15);
        await sink.write(bytes.subarray(half));
      });
    },
  };
}

const backend = createCpuBackend({ threads: 1 });
const task = killRunTask(backend);
const result = await train(task, { ...killRunOptions, out: slow(nodeRunStore(dir)), resume: true, onStep: () => sleep(40) });
process.stdout.write(`${JSON.stringify({ resumedFrom: result.resumedFrom, steps: result.steps, test: result.test })}\n`);
task.dispose();
backend.destroy();
