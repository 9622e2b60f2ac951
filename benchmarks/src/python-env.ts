/**
 * Finding the Python that runs the PyTorch side of the CPU step comparison, and making one when
 * there is none: `--python PATH`, else $PEFT_BENCH_PYTHON, else `<repo>/.venv-bench` (made with
 * `python3 -m venv` and `pip install torch transformers peft` when a run may install).
 *
 * pip is pointed at the indexes that `pip config list` names: where only extra indexes are
 * configured (a machine whose default index is unreachable), the first becomes `--index-url`
 * and the rest `--extra-index-url`, so pip never waits on the default index. Without such a
 * configuration pip runs with its own defaults.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const VENV_DIR = '.venv-bench';
export const PYTHON_PACKAGES = ['torch', 'transformers', 'peft'] as const;

export interface PipConfig {
  indexUrl: string | null;
  extraIndexUrls: string[];
  findLinks: string[];
}

/** Unquotes a value as `pip config list` prints it (Python's repr of a string). */
function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && (t[0] === "'" || t[0] === '"') && t.at(-1) === t[0]) {
    return t.slice(1, -1).replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\'/g, "'").replace(/\\\\/g, '\\');
  }
  return t;
}

/**
 * The index settings in `pip config list` output. Keys are `<section>.<name>` (`global.`,
 * `install.`, or `:env:.` for PIP_* variables); for each name the highest-precedence section
 * wins: `:env:`, then `install`, then `global`. Multi-valued settings are whitespace-separated.
 */
export function parsePipConfig(text: string): PipConfig {
  const rank = (section: string) => (section === ':env:' ? 3 : section === 'install' ? 2 : section === 'global' ? 1 : 0);
  const best = new Map<string, { rank: number; values: string[] }>();
  for (const line of text.split('\n')) {
    const m = /^\s*([^=\s]+)\.([a-z-]+)\s*=(.*)$/.exec(line);
    if (!m) continue;
    const [, section, name, value] = m as unknown as [string, string, string, string];
    const r = rank(section);
    if (r === 0) continue;
    const values = unquote(value)
      .split(/\s+/)
      .filter((v) => v.length > 0);
    const prev = best.get(name);
    if (!prev || r > prev.rank) best.set(name, { rank: r, values });
  }
  return {
    indexUrl: best.get('index-url')?.values[0] ?? null,
    extraIndexUrls: best.get('extra-index-url')?.values ?? [],
    findLinks: best.get('find-links')?.values ?? [],
  };
}

/**
 * Index arguments for `pip install`: none when an index is configured or nothing is (pip's own
 * defaults apply); with only extra indexes, the first as `--index-url`, the rest as
 * `--extra-index-url`. find-links pip reads from its configuration itself.
 */
export function pipIndexArgs(config: PipConfig): string[] {
  if (config.indexUrl || config.extraIndexUrls.length === 0) return [];
  const [first, ...rest] = config.extraIndexUrls;
  return ['--index-url', first!, ...rest.flatMap((u) => ['--extra-index-url', u])];
}

export function venvPython(root: string): string {
  return process.platform === 'win32' ? join(root, VENV_DIR, 'Scripts', 'python.exe') : join(root, VENV_DIR, 'bin', 'python');
}

/** Whether `python` can find torch, transformers and peft (without importing them: fast). */
export function hasPackages(python: string): boolean {
  const code = `import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in ${JSON.stringify(PYTHON_PACKAGES)}) else 1)`;
  const r = spawnSync(python, ['-c', code], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

export type PythonChoice =
  | { ok: true; python: string; how: string }
  | {
      ok: false;
      reason: string;
    };

export interface FindPythonOptions {
  /** --python PATH. */
  python?: string;
  root: string;
  /** Create or complete `<root>/.venv-bench` when nothing else is found (full runs; --short does not). */
  install: boolean;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

/** Runs a command with its output on our stderr; resolves to its exit status or the error. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, error: err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ? { code: null, error: `killed by ${signal}` } : { code });
    });
  });
}

/** The Python for the PyTorch side, or why there is none. */
export async function findPython(o: FindPythonOptions): Promise<PythonChoice> {
  const env = o.env ?? process.env;
  const log = o.log ?? ((line: string) => console.log(line));
  if (o.python) return { ok: true, python: o.python, how: '--python' };
  if (env.PEFT_BENCH_PYTHON) return { ok: true, python: env.PEFT_BENCH_PYTHON, how: 'PEFT_BENCH_PYTHON' };
  const venv = venvPython(o.root);
  if (existsSync(venv) && hasPackages(venv)) return { ok: true, python: venv, how: VENV_DIR };
  if (!o.install) {
    return {
      ok: false,
      reason: `no Python given (--python PATH or PEFT_BENCH_PYTHON) and no ${VENV_DIR} with ${PYTHON_PACKAGES.join(', ')}; a run without --short creates it`,
    };
  }
  const started = performance.now();
  if (!existsSync(venv)) {
    log(`  creating ${VENV_DIR} with python3 -m venv …`);
    const r = await run('python3', ['-m', 'venv', join(o.root, VENV_DIR)], 10 * 60_000);
    if (r.code !== 0 || !existsSync(venv)) {
      return { ok: false, reason: `python3 -m venv ${VENV_DIR} failed (${r.error ?? `exit ${r.code}`})` };
    }
  }
  const listed = spawnSync(venv, ['-m', 'pip', 'config', 'list'], { encoding: 'utf8', timeout: 60_000 });
  const indexArgs = pipIndexArgs(parsePipConfig(listed.status === 0 ? listed.stdout : ''));
  const args = ['-m', 'pip', 'install', '--disable-pip-version-check', ...indexArgs, ...PYTHON_PACKAGES];
  log(`  ${VENV_DIR}/bin/python ${args.join(' ')} …`);
  const r = await run(venv, args, 60 * 60_000);
  if (r.code !== 0)
    return { ok: false, reason: `pip install ${PYTHON_PACKAGES.join(' ')} into ${VENV_DIR} failed (${r.error ?? `exit ${r.code}`})` };
  if (!hasPackages(venv)) return { ok: false, reason: `${VENV_DIR} still lacks one of ${PYTHON_PACKAGES.join(', ')} after pip install` };
  log(`  ${VENV_DIR} ready in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return { ok: true, python: venv, how: `${VENV_DIR} (created)` };
}
