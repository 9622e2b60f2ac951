/**
 * The CPU training-step section of `pnpm bench` (`--backend cpu-step`): LoRA training steps of
 * @peft/backend-cpu beside PyTorch + transformers + peft on the same machine, in one run.
 *
 *   neox     GPT-NeoX ~110M (fixtures/configs/gpt-neox-110m), last-token classifier (9 labels),
 *            LoRA r 32 α 16 dropout 0.1 on query_key_value, `score` trained; batch 8 × 128
 *   neox-gc  the same with gradient checkpointing
 *   llama    Llama ~100M (fixtures/configs/llama-100m), LoRA r 16 α 32 dropout 0.05 on every
 *            linear layer, causal-LM loss on the second half of each sequence; batch 8 × 128
 *
 * Every run is a child process (ours: cpu-step-child.ts, PyTorch: benchmarks/python/cpu_step.py)
 * given the same job, so peak RSS is each side's own; per config and thread count the children
 * alternate ours, PyTorch, ours, PyTorch…, pinned with taskset to as many CPUs as threads when
 * taskset is there. Tokens/s is the median over the timed steps of all of a side's runs.
 * Results go to benchmarks/results/cpu-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { type CpuStepConfig, makeJob, selectConfigs } from './cpu-step-config.js';
import type { CpuStepResult } from './cpu-step-job.js';
import {
  type Cell,
  type CpuStepReport,
  mergeProfiles,
  printRun,
  printSummary,
  type ReportHeader,
  ratios,
  reportJson,
  summarize,
} from './cpu-step-report.js';
import { allowedCpus, childEnv, findRoot, git, parseChildOutput, pinPrefix, runChild, type Side } from './cpu-step-runner.js';
import { findPython } from './python-env.js';

export { CPU_STEP_CONFIGS, type CpuStepConfig, type JobSettings, makeJob, selectConfigs, tokenIds } from './cpu-step-config.js';
export {
  buildProfileTable,
  type Cell,
  type CpuStepReport,
  comparisonTable,
  fmt,
  formatTable,
  mergeProfiles,
  profileTables,
  type Ratios,
  ratios,
  type SideSummary,
  summarize,
} from './cpu-step-report.js';
export {
  allowedCpus,
  type ChildRun,
  childEnv,
  findRoot,
  parseChildOutput,
  parseCpuList,
  pinPrefix,
  runChild,
  type Side,
} from './cpu-step-runner.js';

export interface CpuStepSuiteOptions {
  /** Shapes or config ids (neox = neox and neox-gc; neox-gc; llama); empty or absent: all. */
  only?: string[];
  /** Thread counts, each run for every config (default 1,2; --short: 1). */
  threads?: number[];
  /** Children per side per config and thread count, alternating (default 2; --short: 1). */
  rounds?: number;
  warmup?: number;
  steps?: number;
  batch?: number;
  seq?: number;
  /** num_hidden_layers override, both sides. */
  layers?: number;
  /** The tiny shapes, few steps. */
  short?: boolean;
  /** Results file name suffix instead of the date. */
  out?: string;
  python?: string;
  noPython?: boolean;
  /** Time each of our kernels and print their shares. */
  profile?: boolean;
  /** Our GEMM engine: createCpuBackend's `gemm` option (auto, blas, wasm, js), where the backend has it. */
  gemm?: string;
  seed?: number;
  root?: string;
}

/** The options with their defaults, checked, and what the machine offers (allowed CPUs, taskset). */
interface Settings {
  configs: CpuStepConfig[];
  root: string;
  short: boolean;
  threadsList: number[];
  rounds: number;
  warmup: number;
  steps: number;
  seed: number;
  cpus: number[] | null;
  taskset: boolean;
  childTimeoutMs: number;
  /** The load average before the first child. */
  load0: number[];
}

function settingsOf(opts: CpuStepSuiteOptions): Settings {
  const configs = selectConfigs(opts.only);
  const root = opts.root ?? findRoot();
  const short = opts.short ?? false;
  const threadsList = opts.threads ?? (short ? [1] : [1, 2]);
  for (const t of threadsList) if (!(Number.isInteger(t) && t > 0)) throw new Error(`--threads ${t}: needs positive integers`);
  const rounds = opts.rounds ?? (short ? 1 : 2);
  if (!(Number.isInteger(rounds) && rounds > 0)) throw new Error(`--rounds ${rounds}: needs a positive integer`);
  const warmup = opts.warmup ?? 1;
  const steps = opts.steps ?? 2;
  const seed = opts.seed ?? 0;
  const cpus = allowedCpus();
  const taskset = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
  const childTimeoutMs = (short ? 5 : 60) * 60_000;
  const load0 = os.loadavg();
  return { configs, root, short, threadsList, rounds, warmup, steps, seed, cpus, taskset, childTimeoutMs, load0 };
}

/** The PyTorch side's interpreter, or why it is skipped; prints which. */
async function pythonOf(opts: CpuStepSuiteOptions, s: Settings): Promise<CpuStepReport['python']> {
  let python: CpuStepReport['python'];
  if (opts.noPython) python = { skipped: '--no-python' };
  else {
    const found = await findPython({ python: opts.python, root: s.root, install: !s.short });
    python = found.ok ? { executable: found.python, how: found.how } : { skipped: found.reason };
  }
  if ('skipped' in python) console.log(`PyTorch + PEFT: skipped — ${python.skipped}`);
  else console.log(`PyTorch + PEFT: ${python.executable} (from ${python.how})`);
  return python;
}

/** What every cell's children share; `pythonSkip` is set once the PyTorch side says it cannot run. */
interface SuiteRun {
  opts: CpuStepSuiteOptions;
  s: Settings;
  python: CpuStepReport['python'];
  pythonSkip: string | null;
  oursCmd: string[];
  pyScript: string;
}

/** One config at one thread count: its rounds of children, ours then PyTorch, summarized. */
async function runCell(run: SuiteRun, c: CpuStepConfig, threads: number): Promise<Cell> {
  const { opts, python } = run;
  const { root, short, warmup, steps, seed, rounds, cpus, taskset, childTimeoutMs } = run.s;
  const job = makeJob(root, c, {
    short,
    batch: opts.batch,
    seq: opts.seq,
    layers: opts.layers,
    warmup,
    steps,
    threads,
    profile: false,
    seed,
  });
  const input = JSON.stringify(job);
  const oursInput = JSON.stringify({ ...job, ...(opts.profile ? { profile: true } : {}), ...(opts.gemm ? { gemm: opts.gemm } : {}) });
  const [batch, seq] = [job.ids.length, job.ids[0]!.length];
  const layers = job.config.num_hidden_layers as number;
  const pin = pinPrefix(threads, cpus, taskset);
  const env = childEnv(threads);
  console.log(
    `\n${c.title}${short ? ' (tiny)' : ''}: fixtures/configs/${c.dir}, ${layers} layers, batch ${batch} × ${seq}, LoRA r ${c.r} α ${c.alpha} dropout ${c.dropout} on ${c.targets.join(', ')}${c.gradientCheckpointing ? ', gradient checkpointing' : ''}; ${threads} thread${threads > 1 ? 's' : ''}, ${pin.note}`,
  );
  const ours: Side<CpuStepResult>[] = [];
  const pytorch: Side<CpuStepResult>[] = [];
  for (let round = 1; round <= rounds; round++) {
    const [cmd, ...args] = [...pin.prefix, ...run.oursCmd];
    const o = await runChild(cmd!, args, oursInput, env, root, childTimeoutMs);
    const side = parseChildOutput('ours (cpu-step-child.ts)', o.stdout, o.code, o.signal, o.stderrTail);
    ours.push(side);
    printRun(`ours    run ${round}`, side);
    if (run.pythonSkip === null && !('skipped' in python)) {
      const [pcmd, ...pargs] = [...pin.prefix, python.executable, run.pyScript];
      const p = await runChild(pcmd!, pargs, input, env, root, childTimeoutMs);
      const pside = parseChildOutput(`${python.executable} cpu_step.py`, p.stdout, p.code, p.signal, p.stderrTail);
      pytorch.push(pside);
      printRun(`PyTorch run ${round}`, pside);
      if (!pside.ok && pside.skipped) {
        run.pythonSkip = pside.reason;
        console.log(`  PyTorch + PEFT: skipped from here on — ${pside.reason}`);
      }
    }
  }
  const tokens = batch * seq;
  const oursOk = ours.flatMap((s) => (s.ok ? [s.result] : []));
  const pyOk = pytorch.flatMap((s) => (s.ok ? [s.result] : []));
  const oursSummary = summarize(oursOk, tokens);
  const pySummary = summarize(pyOk, tokens);
  if (ours.some((s) => !s.ok)) process.exitCode = 1;
  return {
    config: c,
    threads,
    batch,
    seq,
    layers,
    pin: pin.note,
    ours: { runs: ours, summary: oursSummary },
    pytorch: { runs: pytorch, summary: pySummary, ...(run.pythonSkip !== null && pyOk.length === 0 ? { skipped: run.pythonSkip } : {}) },
    ratios: ratios(oursSummary, pySummary),
    profile: mergeProfiles(oursOk.flatMap((r) => (r.profile ? [r.profile] : []))),
    buildProfile: mergeProfiles(oursOk.flatMap((r) => (r.buildProfile ? [r.buildProfile] : []))),
  };
}

/** Runs the section; returns what it wrote to the results file. */
export async function runCpuStepSuite(opts: CpuStepSuiteOptions = {}): Promise<CpuStepReport> {
  const s = settingsOf(opts);
  const { root, short, cpus, load0, warmup, steps, rounds, threadsList } = s;
  console.log(
    `CPU LoRA training step, ours (@peft/backend-cpu) vs PyTorch + transformers + peft${short ? ' (short: tiny shapes)' : ''}; ${os.cpus()[0]?.model ?? 'cpu'}, ${cpus?.length ?? os.cpus().length} CPUs allowed, load ${load0.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(
    `float32, random weights, AdamW; a step = forward + backward + AdamW + zero grad + loss read; ${warmup} warm-up + ${steps} timed steps per run, ${rounds} runs per side alternating, threads ${threadsList.join(', ')}`,
  );

  const python = await pythonOf(opts, s);

  // Written after every config and thread count, so that a run cut short keeps what it measured.
  const date = new Date().toISOString().slice(0, 10);
  const reportPath = join(root, 'benchmarks', 'results', `cpu-${opts.out ?? date}${short ? '.short' : ''}.json`);
  const status = git(root, ['status', '--porcelain', '--untracked-files=no']);
  const writeReport = (complete: boolean): CpuStepReport => {
    const header: ReportHeader = {
      commit: git(root, ['rev-parse', 'HEAD']),
      dirty: status === null ? null : status.length > 0,
      short,
      cpus,
      taskset: s.taskset,
      loadAverageBefore: load0,
      settings: { warmup, steps, rounds, threads: threadsList, seed: s.seed, gemm: opts.gemm ?? null },
      python,
    };
    const json = reportJson(complete, header, cells);
    mkdirSync(dirname(reportPath), { recursive: true });
    writeFileSync(reportPath, `${JSON.stringify(json, null, 2)}\n`);
    return json;
  };

  const run: SuiteRun = {
    opts,
    s,
    python,
    pythonSkip: 'skipped' in python ? python.skipped : null,
    oursCmd: [process.execPath, '--conditions=@peft/source', '--import', 'tsx', join(root, 'benchmarks', 'src', 'cpu-step-child.ts')],
    pyScript: join(root, 'benchmarks', 'python', 'cpu_step.py'),
  };
  const cells: Cell[] = [];
  for (const c of s.configs) {
    for (const threads of threadsList) {
      cells.push(await runCell(run, c, threads));
      writeReport(false);
    }
  }

  printSummary(cells, opts.profile ?? false);
  const json = writeReport(true);
  console.log(`\nwrote ${relative(process.cwd(), reportPath) || reportPath}`);
  return json;
}
