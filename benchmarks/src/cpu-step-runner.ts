/**
 * The children of the CPU training-step section: where the checkout is, which CPUs a child is
 * pinned to and with what thread settings, running it with its job on stdin, and reading its answer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CpuStepResult } from './cpu-step-job.js';

/** CPUs in a Linux cpu list ("0-3,6,8-9"). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`cpu list ${JSON.stringify(list)}: cannot read ${JSON.stringify(part)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs this process may run on (Linux), else null. */
export function allowedCpus(): number[] | null {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
    return line ? parseCpuList(line[1]!) : null;
  } catch {
    return null;
  }
}

/** The command prefix that pins a child to `threads` CPUs (the first ones allowed), or none. */
export function pinPrefix(threads: number, cpus: readonly number[] | null, taskset: boolean): { prefix: string[]; note: string } {
  if (!taskset || !cpus || cpus.length === 0) return { prefix: [], note: 'not pinned (no taskset)' };
  const chosen = cpus.slice(0, Math.min(threads, cpus.length));
  const note = `taskset -c ${chosen.join(',')}${threads > cpus.length ? ` (${threads} threads on ${cpus.length} CPUs)` : ''}`;
  return { prefix: ['taskset', '-c', chosen.join(',')], note };
}

export type Side<T> = { ok: true; result: T } | { ok: false; reason: string; skipped?: boolean };

/**
 * A child's answer: the last line of stdout that starts with `{`, parsed. `{"skipped": …}` is a
 * skip (the side is unavailable); no JSON, bad JSON or a non-zero exit a failure naming the
 * command, the exit and the end of stderr.
 */
export function parseChildOutput(
  what: string,
  stdout: string,
  code: number | null,
  signal: string | null,
  stderrTail: string,
): Side<CpuStepResult> {
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.trimStart().startsWith('{'));
  let json: (Partial<CpuStepResult> & { skipped?: string }) | undefined;
  let parseError = '';
  if (line) {
    try {
      json = JSON.parse(line);
    } catch (err) {
      parseError = `: its last JSON line does not parse (${(err as Error).message})`;
    }
  }
  if (json && typeof json.skipped === 'string') return { ok: false, reason: json.skipped, skipped: true };
  const last = stderrTail.trim().split('\n').slice(-3).join(' | ');
  if (code !== 0 || !json) {
    const exit = code === null ? `was killed (${signal ?? 'signal'})` : `exited with ${code}`;
    return { ok: false, reason: `${what} ${exit}${parseError || (json ? '' : ', no JSON result')}${last ? `: ${last}` : ''}` };
  }
  for (const k of ['stepMs', 'losses'] as const) {
    if (!Array.isArray(json[k])) return { ok: false, reason: `${what}: result has no ${k} array: ${line!.slice(0, 200)}` };
  }
  for (const k of ['warmup', 'tokensPerSecond', 'buildSeconds', 'peakRssBytes'] as const) {
    if (typeof json[k] !== 'number') return { ok: false, reason: `${what}: result field ${k} is ${JSON.stringify(json[k])}, not a number` };
  }
  return { ok: true, result: json as CpuStepResult };
}

export interface ChildRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderrTail: string;
}

/** Runs a child with `input` on its stdin; its stderr passes through (indented by the child itself). */
export function runChild(
  cmd: string,
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
  timeoutMs: number,
): Promise<ChildRun> {
  return new Promise((resolve) => {
    let stdout = '';
    let tail = '';
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env, cwd });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      process.stderr.write(s);
      tail = (tail + s).slice(-2000);
    });
    child.stdin.on('error', () => {
      // a child that exits before reading its job: reported by its exit status below
    });
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderrTail: `cannot run ${cmd}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderrTail: tail });
    });
  });
}

/** The checkout holding fixtures/configs and benchmarks/python/cpu_step.py: $PEFT_REPO, or upwards from here and from the working directory. */
export function findRoot(): string {
  const ok = (d: string) => existsSync(join(d, 'fixtures', 'configs')) && existsSync(join(d, 'benchmarks', 'python', 'cpu_step.py'));
  const env = process.env.PEFT_REPO;
  if (env) {
    if (!ok(env)) throw new Error(`PEFT_REPO=${env} has no fixtures/configs and benchmarks/python/cpu_step.py`);
    return env;
  }
  for (const start of [import.meta.dirname, process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      if (ok(d)) return d;
      if (dirname(d) === d) break;
    }
  }
  throw new Error(
    `cannot find the checkout (fixtures/configs, benchmarks/python/cpu_step.py) above ${import.meta.dirname} or ${process.cwd()}: set PEFT_REPO`,
  );
}

/** `git args` in `root`: its trimmed output, or null when git fails. */
export function git(root: string, args: string[]): string | null {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Children's environment: the thread count for every OpenMP / BLAS runtime either side may load. */
export function childEnv(threads: number, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const n = String(threads);
  return { ...base, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, PYTHONUNBUFFERED: '1' };
}
