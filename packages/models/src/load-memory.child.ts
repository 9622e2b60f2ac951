// Run by load-memory.test.ts in its own process: loads the model folder given as argv[2] and
// prints the peak resident memory before and after (Linux /proc/self/status VmHWM), in bytes.
import { readFileSync } from 'node:fs';
import { createCpuBackend } from '@peft/backend-cpu';
import { loadModel } from './node/index.js';

function peakRss(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

const backend = createCpuBackend({ threads: 1 });
const before = peakRss();
const model = await loadModel(process.argv[2]!, { backend, dtype: 'float32' });
const after = peakRss();
const bytes = model.parameters().reduce((n, p) => n + p.size * 4, 0);
console.log(JSON.stringify({ before, after, bytes }));
model.dispose();
backend.destroy();
