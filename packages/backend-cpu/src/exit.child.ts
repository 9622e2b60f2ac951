// Runs a job on a 2-thread backend's worker pool and never destroys the backend: the process
// must still exit by itself (parallel.test.ts).
import { createCpuBackend } from './backend.js';

const be = createCpuBackend({ threads: 2 });
const n = 1 << 20;
const a = be.alloc('float32', n);
const o = be.alloc('float32', n);
const flat = { shape: [n], strides: [1], offset: 0 };
be.binary('add', o, a, flat, a, flat);
console.log('ran');
