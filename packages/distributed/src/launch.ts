/**
 * The mpirun command line that starts Node processes as one job, with the Open MPI flags that
 * matter for Node: `--bind-to none` (Open MPI pins each rank to one core by default when there
 * are ≤ 2 ranks, and to a socket beyond; Node's worker threads, which backend-cpu's GEMMs use,
 * would then share that core), `--oversubscribe` (more ranks than cores, as on a small CI machine)
 * and `--allow-run-as-root` only when running as root (containers, CI).
 */
import { execFileSync } from 'node:child_process';

export interface MpirunOptions {
  /** Number of processes. */
  np: number;
  /** Machines to run on: `["a", "b"]` or `["a:2", "b:2"]` (slots per machine); default this one. */
  hosts?: string[];
  /** A hostfile instead of `hosts`. */
  hostfile?: string;
  /** Allow more ranks than cores (default true). */
  oversubscribe?: boolean;
  /** Extra `--mca` parameters, e.g. `{ btl_tcp_if_include: 'eth0' }` to pick the network. */
  mca?: Record<string, string>;
  /** Environment variables forwarded to every rank (`-x NAME`), for hosts that do not inherit ours. */
  forward?: string[];
}

/** Open MPI's mpirun arguments (before the program) for `options`. */
export function mpirunArgs(options: MpirunOptions): string[] {
  if (!Number.isInteger(options.np) || options.np < 1)
    throw new Error(`mpirunArgs: np is ${options.np}: expected a number of processes ≥ 1`);
  const args = ['-np', String(options.np), '--bind-to', 'none'];
  if (options.oversubscribe ?? true) args.push('--oversubscribe');
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--allow-run-as-root');
  if (options.hosts?.length) args.push('--host', options.hosts.join(','));
  if (options.hostfile) args.push('--hostfile', options.hostfile);
  for (const [key, value] of Object.entries(options.mca ?? {})) args.push('--mca', key, value);
  for (const name of options.forward ?? []) args.push('-x', name);
  return args;
}

/** The mpirun on PATH and its version line, or null when there is none. */
export function findMpirun(): { path: string; version: string } | null {
  try {
    const version = execFileSync('mpirun', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const path = execFileSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).trim();
    return { path, version: version.split('\n')[0].trim() };
  } catch {
    return null;
  }
}
