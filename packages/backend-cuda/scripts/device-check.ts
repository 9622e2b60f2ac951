/**
 * The GPU machine's test run (the `conformance` stage of scripts/gpu-window.sh), bundled into one
 * file with its dependencies (but koffi) by scripts/bundle-device.mjs, because that machine has
 * Node (packed) but no package registry: the conformance suite and the gradient checks of
 * @peft/core/testing against the CPU backend, 20 LoRA training steps of the tiny models against
 * the CPU backend's losses (packages/integration/src/training-check.ts; run from the repository
 * checkout, which has fixtures/), a LoRA step replayed as a CUDA graph, then kernel timings
 * (window/suites.ts, window/timings.ts).
 *
 * Each suite runs in a child process of its own. A child reports every case as it ends; after a
 * failed case it checks that the CUDA context still works and exits when it does not, and the
 * parent starts a new child at the next case: a GPU fault fails one case, not all after it. A
 * child that dies inside a case (a crash in the driver) is handled the same way. Prints one line
 * per failure and a summary; the suites' counts, failures, loss traces and timings go to the
 * figures file ($PEFT_GPU_WINDOW_FIGURES) as each suite ends, and to $OUT/device-check.json at
 * the end when $OUT is set.
 *
 *   node device-check.mjs [--only NAME[,NAME…]] [--no-bench]
 *
 * Exit status 0 = all passed, 1 = failures, 2 = CUDA unavailable (the reason is printed).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCudaBackend, isAvailable } from '../src/index.js';
import { hangIfAsked, recordFigures } from './window/figures.js';
import { type CheckCase, SUITES, type Suite, selectCases } from './window/suites.js';

/** What a child tells the parent, through the IPC channel. */
type Report =
  | { type: 'begin'; total: number }
  | { type: 'start'; index: number; name: string }
  | { type: 'case'; index: number; name: string; ok: boolean; error?: string; seconds: number; figures?: Record<string, unknown> }
  | { type: 'end' };

/** Exit status of a child whose CUDA context stopped working after a failed case. */
const CONTEXT_LOST = 3;
/** New children per suite at most: a GPU that faults on every case should not hold the window. */
const MAX_RESTARTS = 8;

export interface SuiteResult {
  title: string;
  passed: number;
  failures: { name: string; error: string }[];
  seconds: number;
  restarts: number;
  figures: Record<string, Record<string, unknown>>;
}

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    'no-bench': { type: 'boolean' },
    suite: { type: 'string' },
    from: { type: 'string' },
  },
});
const only = args.only ? args.only.split(',').filter(Boolean) : [];

/** Whether a fresh backend can still allocate, fill and read back: false after a sticky GPU fault. */
async function contextWorks(): Promise<boolean> {
  try {
    const b = createCudaBackend();
    const t = b.alloc('float32', 4);
    b.fill(t, 1);
    const v = await b.read(t);
    b.destroy();
    return v[0] === 1;
  } catch {
    return false;
  }
}

/** The child: runs the cases of `suite` from index `from`, reporting each. */
async function child(suite: Suite, from: number): Promise<never> {
  // Awaited: a message still queued when the process exits is lost.
  const send = (r: Report) => new Promise<void>((resolve) => (process.send ? process.send(r, undefined, {}, () => resolve()) : resolve()));
  const cases: CheckCase[] = selectCases(suite, only);
  await send({ type: 'begin', total: cases.length });
  for (let i = from; i < cases.length; i++) {
    const c = cases[i]!;
    await send({ type: 'start', index: i, name: c.name });
    // PEFT_DEVICE_CHECK_CRASH=<part of a case name>: the process dies in that case, as in a crash of the driver (tests the restart).
    const crash = process.env.PEFT_DEVICE_CHECK_CRASH;
    if (crash && c.name.includes(crash)) process.kill(process.pid, 'SIGKILL');
    const t0 = performance.now();
    try {
      const r = await c.run();
      const figures = r && typeof r === 'object' ? (r as Record<string, unknown>) : undefined;
      await send({ type: 'case', index: i, name: c.name, ok: true, seconds: (performance.now() - t0) / 1000, figures });
    } catch (err) {
      const e = err as Error & { figures?: Record<string, unknown> };
      await send({
        type: 'case',
        index: i,
        name: c.name,
        ok: false,
        error: e.message,
        seconds: (performance.now() - t0) / 1000,
        figures: e.figures,
      });
      if (!(await contextWorks())) process.exit(CONTEXT_LOST);
    }
  }
  await send({ type: 'end' });
  process.exit(0);
}

/** One child process for `suite` from case `from`; resolves with its reports and how it ended. */
function runChild(suite: Suite, from: number, onReport: (r: Report) => void): Promise<{ ended: boolean; how: string }> {
  const extra = [...(args.only ? ['--only', args.only] : []), '--suite', suite.name, '--from', String(from)];
  // On the emulator the timings run dry (kernels skipped): their figures are the host's, not a GPU's.
  const dry = suite.name === 'timings' && process.env.PEFT_GPU_WINDOW_EMULATE === '1' ? { PEFT_CUDA_EMU_DRY: '1' } : {};
  const proc = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...extra], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...dry },
  });
  let ended = false;
  proc.on('message', (m: Report) => {
    if (m.type === 'end') ended = true;
    onReport(m);
  });
  return new Promise((resolve) => {
    proc.on('error', (err) => resolve({ ended: false, how: `could not start: ${err.message}` }));
    proc.on('close', (code, signal) => {
      const how = code === CONTEXT_LOST ? 'the CUDA context stopped working' : `the process ended (${signal ?? `exit code ${code}`})`;
      resolve({ ended, how });
    });
  });
}

/** Runs `suite` in child processes, a new one after each fault, until every case has run. */
async function runSuite(suite: Suite, progress: (r: SuiteResult) => void): Promise<SuiteResult> {
  const result: SuiteResult = { title: suite.title, passed: 0, failures: [], seconds: 0, restarts: 0, figures: {} };
  let saved = 0;
  const started = performance.now();
  let from = 0;
  let total = Number.POSITIVE_INFINITY;
  for (;;) {
    let running: { index: number; name: string } | null = null;
    let next = from;
    const { ended, how } = await runChild(suite, from, (r) => {
      if (r.type === 'begin') total = r.total;
      else if (r.type === 'start') running = r;
      else if (r.type === 'case') {
        running = null;
        next = r.index + 1;
        if (r.figures) result.figures[r.name] = r.figures;
        if (r.ok) result.passed++;
        else {
          result.failures.push({ name: r.name, error: r.error ?? '' });
          console.log(`FAIL ${suite.title} › ${r.name}\n  ${(r.error ?? '').split('\n').join('\n  ')}`);
        }
        // The counts so far, at most once a second (and at every failure): a stage stopped at its time-out keeps them.
        if (!r.ok || r.figures || performance.now() - saved > 1000) {
          result.seconds = (performance.now() - started) / 1000;
          progress(result);
          saved = performance.now();
        }
      }
    });
    if (ended) break;
    const lost = running as { index: number; name: string } | null;
    if (lost) {
      result.failures.push({ name: lost.name, error: `${how} during this case` });
      console.log(`FAIL ${suite.title} › ${lost.name}\n  ${how} during this case`);
      next = lost.index + 1;
    } else if (next === from && total === Number.POSITIVE_INFINITY) {
      result.failures.push({ name: suite.title, error: `${how} before its first case` });
      console.log(`FAIL ${suite.title}: ${how} before its first case`);
      break;
    }
    if (next >= total) break;
    if (result.restarts === MAX_RESTARTS) {
      result.failures.push({ name: suite.title, error: `gave up after ${MAX_RESTARTS} new processes; cases ${next + 1}–${total} not run` });
      break;
    }
    result.restarts++;
    console.log(`${suite.title}: ${how}; continuing in a new process at case ${next + 1} of ${total}`);
    from = next;
  }
  result.seconds = (performance.now() - started) / 1000;
  console.log(
    `${suite.title}: ${result.passed} passed, ${result.failures.length} failed in ${result.seconds.toFixed(1)} s` +
      (result.restarts ? ` (${result.restarts} new processes after faults)` : ''),
  );
  return result;
}

/** Timings of every timing case in one object, with the ratios that compare them. */
function timingFigures(r: SuiteResult | undefined): Record<string, unknown> {
  const t: Record<string, unknown> = Object.assign({}, ...Object.values(r?.figures ?? {}));
  const n = (k: string) => (typeof t[k] === 'number' ? (t[k] as number) : null);
  for (const dir of ['fwd', 'bwd']) {
    const tc = n(`attention tensor cores ${dir} ms`);
    const f32 = n(`attention float32 kernels ${dir} ms`);
    if (tc && f32) t[`attention ${dir} tensor-core speedup`] = f32 / tc;
  }
  return t;
}

async function parent(): Promise<void> {
  await hangIfAsked();
  const a = isAvailable();
  console.log(`isAvailable: ${JSON.stringify(a)}`);
  recordFigures({ availability: a });
  if (!a.available) process.exit(2);
  const results: Record<string, SuiteResult> = {};
  for (const suite of SUITES) {
    if (suite.name === 'timings' && args['no-bench']) continue;
    results[suite.name] = await runSuite(suite, (partial) => recordFigures({ suites: { ...results, [suite.name]: partial } }));
    recordFigures({ suites: results });
  }
  const timings = timingFigures(results.timings);
  for (const [k, v] of Object.entries(timings)) if (typeof v === 'number') console.log(`${k}: ${v.toFixed(2)}`);
  if (process.env.PEFT_GPU_WINDOW_EMULATE === '1' && results.timings)
    console.log('timings: dry run on the emulator (kernels skipped): host figures only');
  const passed = Object.values(results).reduce((s, r) => s + r.passed, 0);
  const failed = Object.values(results).reduce((s, r) => s + r.failures.length, 0);
  recordFigures({ suites: results, timings, passed, failed });
  if (process.env.OUT) {
    writeFileSync(join(process.env.OUT, 'device-check.json'), JSON.stringify({ availability: a, suites: results, timings }, null, 2));
  }
  console.log(`device-check: ${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

const suite = args.suite ? SUITES.find((s) => s.name === args.suite) : undefined;
if (args.suite && !suite) {
  console.error(`device-check: --suite ${args.suite}: choose from ${SUITES.map((s) => s.name).join(', ')}`);
  process.exit(1);
}
(suite ? child(suite, Number(args.from ?? 0)) : parent()).catch((err) => {
  console.error(err);
  process.exit(1);
});
