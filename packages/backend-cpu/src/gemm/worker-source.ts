/**
 * Source of the GEMM worker, run as a classic script: in Node by `new Worker(src, { eval: true })`
 * (CommonJS, `require` available), in browsers from a Blob URL. Kept as a string so that the package
 * needs no separate worker file, bundler support or build step.
 *
 * Protocol (Int32 slots of the control block in the shared memory, see wasm-engine.ts):
 *   GEN     job generation; bumped (and notified) by the host for every threaded job
 *   CNT     (gen & 0x7ff) << 20 | tasks still to hand out; a task is taken by compare-exchange,
 *           so a worker that woke late for an older generation can never take a newer job's task
 *   DONE    tasks finished in the current job; the one that finishes the last task notifies
 *   NTASKS  tasks in the current job (read only after a task was taken, hence stable)
 *   QUIT    non-zero: leave the loop
 *   READY   workers started; WTASKS tasks run by workers (statistics, tests)
 *   PACK+i  byte offset of participant i's packing area
 * The job description itself is at JOB (bytes) and is read by the wasm `task` export.
 */
export const CTL = { GEN: 0, CNT: 1, DONE: 2, NTASKS: 3, QUIT: 4, READY: 5, WTASKS: 6, PACK: 16 } as const;

export const WORKER_SOURCE = `'use strict';
const GEN = ${CTL.GEN}, CNT = ${CTL.CNT}, DONE = ${CTL.DONE}, NTASKS = ${CTL.NTASKS}, QUIT = ${CTL.QUIT}, READY = ${CTL.READY}, WTASKS = ${CTL.WTASKS}, PACK = ${CTL.PACK};
function start(d) {
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory } });
  const task = inst.exports.task;
  const c = new Int32Array(d.memory.buffer, d.ctl, 64);
  const id = d.id, job = d.job;
  function work(gen) {
    const g = gen & 0x7ff;
    for (;;) {
      const w = Atomics.load(c, CNT);
      if ((w >>> 20) !== g || (w & 0xfffff) === 0) return;
      if (Atomics.compareExchange(c, CNT, w, w - 1) !== w) continue;
      const n = c[NTASKS];
      task(job, n - (w & 0xfffff), c[PACK + id]);
      Atomics.add(c, WTASKS, 1);
      if (Atomics.add(c, DONE, 1) + 1 === n) Atomics.notify(c, DONE);
    }
  }
  let gen = Atomics.load(c, GEN);
  Atomics.add(c, READY, 1);
  for (;;) {
    if (Atomics.load(c, QUIT) !== 0) break;
    work(gen);
    Atomics.wait(c, GEN, gen);
    gen = Atomics.load(c, GEN);
  }
  if (typeof close === 'function') close();
}
if (typeof require === 'function' && typeof process === 'object') {
  const { parentPort } = require('node:worker_threads');
  parentPort.once('message', start);
} else {
  self.onmessage = (e) => { self.onmessage = null; start(e.data); };
}
`;
