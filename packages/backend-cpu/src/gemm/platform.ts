/**
 * What the GEMM engines ask of the host, without importing Node modules statically (the package
 * also runs in browsers): Node builtins through `process.getBuiltinModule`, the thread count, and
 * environment variables.
 */

type Builtin = (id: string) => unknown;

interface NodeProcess {
  getBuiltinModule?: Builtin;
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
  platform?: string;
}

function nodeProcess(): NodeProcess | undefined {
  const proc = (globalThis as { process?: NodeProcess }).process;
  return proc?.versions?.node ? proc : undefined;
}

/** A Node builtin module (e.g. 'node:os'), or undefined outside Node. */
export function nodeBuiltin<T>(id: string): T | undefined {
  const proc = nodeProcess();
  if (!proc || typeof proc.getBuiltinModule !== 'function') return undefined;
  try {
    return proc.getBuiltinModule(id) as T;
  } catch {
    return undefined;
  }
}

/** Logical cores this process may use (Node), or navigator.hardwareConcurrency (browsers). */
export function hardwareThreads(): number {
  const os = nodeBuiltin<{ availableParallelism?: () => number; cpus: () => unknown[] }>('node:os');
  if (os) return os.availableParallelism?.() ?? os.cpus().length;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return nav?.hardwareConcurrency ?? 1;
}

/** An environment variable (Node only; undefined elsewhere or when empty). */
export function envVar(name: string): string | undefined {
  const v = nodeProcess()?.env?.[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Sets an environment variable of this process (seen by native libraries loaded later) unless it is set. */
export function envDefault(name: string, value: string): void {
  const env = nodeProcess()?.env;
  if (env && env[name] === undefined) env[name] = value;
}

/** `process.platform` in Node ('linux', 'darwin', 'win32', …), undefined elsewhere. */
export function nodePlatform(): string | undefined {
  return nodeProcess()?.platform;
}
