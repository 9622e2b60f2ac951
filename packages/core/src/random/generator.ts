import { philoxBlocks, splitKey } from './philox.js';

export interface GeneratorState {
  seed: number;
  offset: number;
}

type Draw = { generator: Generator; offset: number };
let recording: Draw[] | null = null;
let replaying: { draws: Draw[]; next: number } | null = null;

/**
 * A seeded source of Philox streams. Each draw of n numbers takes the next ⌈n/4⌉ counters, so a
 * run that draws the same sizes in the same order gets the same numbers, on any backend, and the
 * state (seed, offset) is all a checkpoint needs to resume.
 */
export class Generator {
  #seed: number;
  #offset = 0;

  constructor(seed = 0) {
    splitKey(seed);
    this.#seed = seed;
  }

  get seed(): number {
    return this.#seed;
  }

  get offset(): number {
    return this.#offset;
  }

  /** Reserves counters for n numbers and returns the first counter. */
  next(n: number): number {
    if (replaying) {
      const draw = replaying.draws[replaying.next++];
      if (!draw || draw.generator !== this)
        throw new Error('Generator: a recomputed block drew random numbers in a different order than its first run');
      return draw.offset;
    }
    const offset = this.#offset;
    this.#offset += Math.max(1, philoxBlocks(n));
    recording?.push({ generator: this, offset });
    return offset;
  }

  manualSeed(seed: number): this {
    splitKey(seed);
    this.#seed = seed;
    this.#offset = 0;
    return this;
  }

  state(): GeneratorState {
    return { seed: this.#seed, offset: this.#offset };
  }

  setState(state: GeneratorState): this {
    splitKey(state.seed);
    if (!Number.isSafeInteger(state.offset) || state.offset < 0)
      throw new Error(`Generator.setState: offset ${state.offset} is not a non-negative integer`);
    this.#seed = state.seed;
    this.#offset = state.offset;
    return this;
  }
}

/** The generator used when none is passed. */
export const defaultGenerator = new Generator(0);

/** Sets the default generator's seed (and restarts its stream). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

/** @internal runs fn and returns the draws it made (gradient checkpointing replays them). */
export function recordDraws<T>(fn: () => T): { result: T; draws: Draw[] } {
  const prev = recording;
  const draws: Draw[] = [];
  recording = draws;
  try {
    return { result: fn(), draws };
  } finally {
    recording = prev;
    prev?.push(...draws);
  }
}

/** @internal runs fn with every draw answered from `draws`, in order. */
export function replayDraws<T>(draws: Draw[], fn: () => T): T {
  const prev = replaying;
  replaying = { draws, next: 0 };
  try {
    return fn();
  } finally {
    replaying = prev;
  }
}
