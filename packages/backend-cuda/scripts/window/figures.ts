/**
 * The figures file of one GPU-window stage (scripts/gpu-window.mjs names it in
 * $PEFT_GPU_WINDOW_FIGURES): a JSON object that the stage's processes merge what they measured
 * into as soon as they have it, so that a stage killed at its time-out still leaves the figures
 * it got. Without the variable, recording does nothing.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export function figuresPath(): string | undefined {
  return process.env.PEFT_GPU_WINDOW_FIGURES || undefined;
}

/** Reads the figures recorded so far ({} when none). */
export function readFigures(path = figuresPath()): Record<string, unknown> {
  if (!path) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Merges `patch` into the figures file (top-level keys replaced), written to a temporary file and renamed into place. */
export function recordFigures(patch: Record<string, unknown>, path = figuresPath()): void {
  if (!path) return;
  const next = { ...readFigures(path), ...patch };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Appends `item` to the array under `key` in the figures file. */
export function appendFigure(key: string, item: unknown, path = figuresPath()): void {
  if (!path) return;
  const list = readFigures(path)[key];
  recordFigures({ [key]: [...(Array.isArray(list) ? list : []), item] }, path);
}

/**
 * PEFT_GPU_WINDOW_HANG=<stage>: the stage named <stage> (scripts/gpu-window.mjs passes each
 * stage's name in PEFT_GPU_WINDOW_STAGE) hangs on purpose, so that its time-out has to end it.
 */
export async function hangIfAsked(): Promise<void> {
  const stage = process.env.PEFT_GPU_WINDOW_STAGE;
  if (!stage || process.env.PEFT_GPU_WINDOW_HANG !== stage) return;
  console.log(`${stage}: PEFT_GPU_WINDOW_HANG=${stage}: hanging until the time-out ends this process`);
  await new Promise(() => setInterval(() => {}, 60_000));
}
