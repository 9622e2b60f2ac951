/**
 * Where libcublasLt is looked for, in order:
 * 1. the folders of LD_LIBRARY_PATH;
 * 2. CUDA_HOME / CUDA_PATH (lib64, lib, targets/x86_64-linux/lib);
 * 3. every site-packages folder of the Python found ($PEFT_BENCH_PYTHON, else python3, else
 *    python: its site.getsitepackages(), site.getusersitepackages() and the sys.path entries that
 *    end in site-packages or dist-packages), under nvidia/cu13/lib (PyTorch's CUDA 13 wheels),
 *    nvidia/cu12/lib (newer CUDA 12 wheels) and nvidia/cublas/lib (older CUDA 12 wheels);
 * 4. the same three folders under the site-packages of fixed prefixes (VIRTUAL_ENV, CONDA_PREFIX,
 *    ~/.local, /usr/local, /usr, /opt/conda), then /usr/local/cuda/lib64;
 * 5. the bare file names (the dynamic loader's own search).
 * Names: libcublasLt.so.13 (only with a CUDA 13 driver), libcublasLt.so.12, then the unversioned
 * libcublasLt.so; a newer name anywhere comes before an older one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface CublasLtSearch {
  env: Record<string, string | undefined>;
  exists: (path: string) => boolean;
  /** Lists a directory (for the python3.X folders); [] when it cannot be read. */
  list: (dir: string) => string[];
  home: string;
  /** The site-packages folders the Python on this machine reports (see pythonSitePackages); [] without one. */
  sitePackages?: string[];
}

/** The candidates to load, in order, and every folder that was looked in (for the message when none loads). */
export interface CublasLtCandidates {
  /** Existing files, then the bare names for the loader. */
  paths: string[];
  /** Every folder searched, in order. */
  searched: string[];
  /** The file names looked for, newest first. */
  names: string[];
}

const NAMES = ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'];
/** Under a site-packages folder: PyTorch's CUDA 13 wheels, newer CUDA 12 wheels, older CUDA 12 wheels. */
const WHEEL_DIRS = [
  ['nvidia', 'cu13', 'lib'],
  ['nvidia', 'cu12', 'lib'],
  ['nvidia', 'cublas', 'lib'],
];

/** The file names to try with this driver: libcublasLt.so.13 needs a CUDA 13 driver (driverVersion ≥ 13000). */
export function cublasLtNames(driverVersion: number): string[] {
  return driverVersion >= 13000 ? NAMES : NAMES.filter((n) => !n.endsWith('.13'));
}

/** The folders to search, in the order of the list at the top of this file. */
function searchDirs(search: CublasLtSearch): string[] {
  const dirs: string[] = [];
  for (const d of (search.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d);
  for (const key of ['CUDA_HOME', 'CUDA_PATH']) {
    const root = search.env[key];
    if (root) dirs.push(join(root, 'lib64'), join(root, 'lib'), join(root, 'targets', 'x86_64-linux', 'lib'));
  }
  const sites = [...(search.sitePackages ?? [])];
  const prefixes = [search.env.VIRTUAL_ENV, search.env.CONDA_PREFIX, join(search.home, '.local'), '/usr/local', '/usr', '/opt/conda'];
  for (const prefix of prefixes) {
    if (!prefix) continue;
    for (const lib of ['lib', 'lib64']) {
      const base = join(prefix, lib);
      for (const py of search.list(base).filter((n) => /^python3(\.\d+)?$/.test(n))) {
        for (const site of ['site-packages', 'dist-packages']) sites.push(join(base, py, site));
      }
    }
  }
  for (const site of sites) for (const sub of WHEEL_DIRS) dirs.push(join(site, ...sub));
  dirs.push('/usr/local/cuda/lib64');
  return [...new Set(dirs)];
}

/**
 * The paths to try, in order (see the top of this file), with the folders searched. Pure: the
 * file system, environment and Python's answer come in `search`.
 */
export function cublasLtCandidates(search: CublasLtSearch, driverVersion: number): CublasLtCandidates {
  const names = cublasLtNames(driverVersion);
  const searched = searchDirs(search);
  const paths: string[] = [];
  for (const name of names) for (const dir of searched) if (search.exists(join(dir, name))) paths.push(join(dir, name));
  for (const name of names) paths.push(name);
  return { paths: [...new Set(paths)], searched, names };
}

/** Prints, as one JSON line, the site-packages folders of the Python that runs it. */
const SITE_SCRIPT = [
  'import json, site, sys',
  'd = []',
  'try:\n    d += list(site.getsitepackages())\nexcept Exception:\n    pass',
  'try:\n    d.append(site.getusersitepackages())\nexcept Exception:\n    pass',
  "d += [p for p in sys.path if p.rstrip('/').endswith(('site-packages', 'dist-packages'))]",
  'print(json.dumps(d))',
].join('\n');

export interface PythonSites {
  /** The Python command that answered, or null when none did. */
  python: string | null;
  /** Its site-packages folders (those that exist are not checked here). */
  dirs: string[];
  /** What went wrong with each Python tried, when none answered. */
  errors: string[];
}

const sitesCache = new Map<string, PythonSites>();

/**
 * The site-packages folders of the first Python that answers: $PEFT_BENCH_PYTHON, else python3,
 * else python. Each is asked once per process (the answer is cached per command) and given
 * `timeoutMs` (default 10 s) to answer; a missing or failing Python gives no folders, never an error.
 */
export function pythonSitePackages(env: Record<string, string | undefined> = process.env, timeoutMs = 10_000): PythonSites {
  const commands = [env.PEFT_BENCH_PYTHON, 'python3', 'python'].filter((c): c is string => !!c);
  const key = commands.join('\0');
  const cached = sitesCache.get(key);
  if (cached) return cached;
  const errors: string[] = [];
  let found: PythonSites | null = null;
  for (const python of commands) {
    try {
      const out = execFileSync(python, ['-c', SITE_SCRIPT], {
        encoding: 'utf8',
        timeout: timeoutMs,
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { ...env, PYTHONWARNINGS: 'ignore' },
      });
      const line = out.trim().split('\n').pop() ?? '';
      const dirs = JSON.parse(line) as unknown;
      if (!Array.isArray(dirs) || dirs.some((d) => typeof d !== 'string'))
        throw new Error(`printed ${line.slice(0, 80)}, not a list of folders`);
      found = { python, dirs: [...new Set(dirs as string[])], errors };
      break;
    } catch (err) {
      const e = err as { code?: string; signal?: string; message: string };
      errors.push(
        `${python}: ${e.code === 'ENOENT' ? 'not found' : e.signal === 'SIGTERM' ? `no answer within ${timeoutMs / 1000} s` : e.message.split('\n')[0]}`,
      );
    }
  }
  const result = found ?? { python: null, dirs: [], errors };
  sitesCache.set(key, result);
  return result;
}

/** The real file system and environment, with the site-packages of the Python on this machine. */
export function realSearch(sitePackages: string[]): CublasLtSearch {
  return {
    env: process.env,
    exists: existsSync,
    list: (dir) => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    },
    home: homedir(),
    sitePackages,
  };
}
