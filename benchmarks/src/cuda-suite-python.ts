/**
 * The PyTorch + PEFT side of the CUDA section: benchmarks/python/peft_step.py run with the same
 * config, batch, sequence length, LoRA and steps as ours, on the same GPU after ours was freed.
 */
import { spawn } from 'node:child_process';
import { join, relative } from 'node:path';
import type { CudaBenchConfig } from './cuda-suite.js';
import { fmt, mfu, type PythonResult, peakBf16Flops, type Row, type Side } from './cuda-suite-report.js';

const PYTHON_TIMEOUT_MS = 30 * 60_000;
/** What is left for the rest of the run after PyTorch is stopped for the stage's deadline. */
const DEADLINE_MARGIN_MS = 10_000;

/**
 * How long the Python process may run: 30 minutes, or less when the GPU window gave this process
 * a deadline ($PEFT_GPU_WINDOW_DEADLINE, epoch milliseconds), so that PyTorch is stopped in time
 * for our figures and the table to be written.
 */
export function pythonTimeoutMs(now = Date.now(), deadline = process.env.PEFT_GPU_WINDOW_DEADLINE): number {
  const d = Number(deadline);
  return deadline && Number.isFinite(d) ? Math.min(PYTHON_TIMEOUT_MS, d - now - DEADLINE_MARGIN_MS) : PYTHON_TIMEOUT_MS;
}

/** Runs `python peft_step.py …`, its stderr passed through; the last JSON line of its stdout. */
function runPython(python: string, script: string, args: string[]): Promise<Side<PythonResult>> {
  const limit = pythonTimeoutMs();
  if (limit <= 0) return Promise.resolve({ ok: false, reason: 'no time left before the GPU window stage ends' });
  return new Promise((resolve) => {
    let stdout = '';
    let tail = '';
    const child = spawn(python, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      process.stderr.write(s);
      tail = (tail + s).slice(-2000);
    });
    // A 7B build and 13 steps take a few minutes at most; a hung process must not hold the run.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limit);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `cannot run ${python}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      let json: (PythonResult & { skipped?: string }) | undefined;
      try {
        json = line ? JSON.parse(line) : undefined;
      } catch {
        json = undefined;
      }
      if (timedOut)
        resolve({ ok: false, reason: `${python} ${relative(process.cwd(), script)} stopped after ${(limit / 1000).toFixed(0)} s` });
      else if (json?.skipped) resolve({ ok: false, reason: json.skipped });
      else if (json && code === 0) resolve({ ok: true, result: json });
      else {
        const last = tail.trim().split('\n').slice(-3).join(' | ');
        resolve({
          ok: false,
          reason: `${python} ${relative(process.cwd(), script)} exited with ${code ?? signal}${last ? `: ${last}` : ''}`,
        });
      }
    });
  });
}

/** What the PyTorch run of one config is given. */
export interface PytorchRun {
  python: string;
  script: string;
  root: string;
  batch: number;
  seq: number;
  warmup: number;
  steps: number;
  /** num_hidden_layers override. */
  layers?: number;
}

/** peft_step.py for config `c`: its result with MFU, or why it was skipped; prints one line either way. */
export async function runPytorch(s: PytorchRun, c: CudaBenchConfig): Promise<Row['pytorch']> {
  const args = [
    '--config',
    join(s.root, 'fixtures', 'configs', c.dir, 'config.json'),
    '--batch',
    String(s.batch),
    '--seq',
    String(s.seq),
    '--r',
    String(c.r),
    '--alpha',
    String(c.alpha),
    '--targets',
    c.targets.join(','),
    '--warmup',
    String(s.warmup),
    '--steps',
    String(s.steps),
    ...(s.layers !== undefined ? ['--layers', String(s.layers)] : []),
  ];
  const p = await runPython(s.python, s.script, args);
  if (!p.ok) {
    console.log(`  PyTorch + PEFT: skipped — ${p.reason}`);
    return p;
  }
  const peak = peakBf16Flops(String(p.result.device));
  console.log(
    `  PyTorch + PEFT: ${fmt.tps(p.result.tokensPerSecond)} tokens/s, ${p.result.medianStepMs.toFixed(1)} ms/step, peak ${fmt.bytes(p.result.peakBytes)}, losses ${fmt.losses(p.result.losses)}`,
  );
  return { ok: true, result: { ...p.result, mfu: mfu(p.result.parameters, p.result.tokensPerSecond, peak?.flops ?? null, true) } };
}
