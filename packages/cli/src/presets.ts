// Which settings a training command starts from (the bundled tiny models' or the studies'), the
// bundled tiny models and fixture corpora when the CLI runs inside the repository, and the
// default run folder names.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './args.js';

export type PresetName = 'tiny' | 'study';
export const PRESETS: readonly PresetName[] = ['tiny', 'study'];

/** A model is tiny (a test fixture, not a language model) at this hidden size or below. */
export const TINY_HIDDEN_SIZE = 256;

export interface Preset {
  name: PresetName;
  /** Why it applies, for the log line: "--preset tiny", "the bundled tiny model", "hidden size 64 ≤ 256". */
  reason: string;
}

/** hidden_size (or n_embd / d_model, or text_config's) from a model folder's config.json; null when it cannot be read. */
export function modelHiddenSize(modelDir: string): number | null {
  try {
    const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const text = (config.text_config ?? {}) as Record<string, unknown>;
    for (const v of [config.hidden_size, config.n_embd, config.d_model, text.hidden_size]) {
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
    }
  } catch {}
  return null;
}

/**
 * The preset a run uses: the one asked for (--preset), the tiny one for the bundled tiny model or
 * any model whose hidden size is at most TINY_HIDDEN_SIZE, the study's otherwise (also when
 * config.json cannot be read: loading the model reports that).
 */
export function choosePreset(asked: string | undefined, modelDir: string, bundledTiny: boolean): Preset {
  if (asked !== undefined) {
    if (!PRESETS.includes(asked as PresetName))
      throw new UsageError(`--preset ${JSON.stringify(asked)} is not one of ${PRESETS.join(', ')}`);
    return { name: asked as PresetName, reason: `--preset ${asked}` };
  }
  if (bundledTiny) return { name: 'tiny', reason: 'no --model: the bundled tiny model' };
  const hidden = modelHiddenSize(modelDir);
  if (hidden !== null && hidden <= TINY_HIDDEN_SIZE)
    return { name: 'tiny', reason: `${folderName(modelDir)} is tiny: hidden size ${hidden} ≤ ${TINY_HIDDEN_SIZE}` };
  return {
    name: 'study',
    reason: hidden === null ? `${folderName(modelDir)}` : `${folderName(modelDir)}: hidden size ${hidden} > ${TINY_HIDDEN_SIZE}`,
  };
}

/** The last path component of a folder ("model" for an empty one). */
export function folderName(dir: string): string {
  return (
    dir
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() || 'model'
  );
}

/** What the CLI finds in the repository it runs from: the bundled tiny models and fixture corpora. */
export interface BundledFixtures {
  root: string;
  tinyGptNeox: string;
  tinyLlama: string;
  livedoor: string;
  bc5cdr: string;
}

/**
 * The bundled tiny models and fixture corpora when this module runs from a checkout of the
 * repository (from source or its build), null from an installed package.
 */
export function bundledFixtures(from: string = dirname(fileURLToPath(import.meta.url))): BundledFixtures | null {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) {
      const f: BundledFixtures = {
        root: dir,
        tinyGptNeox: join(dir, 'fixtures', 'models', 'tiny-gpt-neox'),
        tinyLlama: join(dir, 'fixtures', 'models', 'tiny-llama'),
        livedoor: join(dir, 'packages', 'datasets', 'fixtures', 'livedoor', 'ldcc-fixture.tar.gz'),
        bc5cdr: join(dir, 'packages', 'datasets', 'fixtures', 'bc5cdr'),
      };
      const ok = [join(f.tinyGptNeox, 'config.json'), join(f.tinyLlama, 'config.json'), f.livedoor, f.bc5cdr].every((p) => existsSync(p));
      return ok ? f : null;
    }
    if (dirname(dir) === dir) return null;
  }
}

/** A learning rate as it reads in a folder name: 5e-4, 1e-2, 3e-4. */
export function lrName(lr: number): string {
  const [mantissa, exponent] = lr.toExponential().split('e');
  return `${Number(Number(mantissa).toPrecision(3))}e${Number(exponent)}`;
}

/** UTC time stamp for run names: 20261207-143512. */
export function runStamp(date: Date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
}

const STAMP = /^\d{8}-\d{6}(?:-\d+)?$/;

/**
 * The default run folder `runs/<prefix>-<stamp>` of a new run; with `resume`, the newest existing
 * one with that prefix (an error naming the pattern when there is none).
 */
export function defaultRunFolder(prefix: string, resume: boolean, root = 'runs', now: Date = new Date()): string {
  if (!resume) {
    const base = `${prefix}-${runStamp(now)}`;
    let name = base;
    for (let i = 2; existsSync(join(root, name)); i++) name = `${base}-${i}`;
    return join(root, name);
  }
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {}
  const matching = names.filter((n) => n.startsWith(`${prefix}-`) && STAMP.test(n.slice(prefix.length + 1))).sort(byStamp);
  const newest = matching.at(-1);
  if (!newest)
    throw new UsageError(
      `--resume without --out: no earlier run with these settings in ${root}/ (${prefix}-<time>); pass --out <run folder> to name the one to continue`,
    );
  return join(root, newest);
}

function byStamp(a: string, b: string): number {
  const key = (n: string) => {
    const m = /(\d{8}-\d{6})(?:-(\d+))?$/.exec(n)!;
    return `${m[1]}-${(m[2] ?? '1').padStart(6, '0')}`;
  };
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}
