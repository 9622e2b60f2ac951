import type { Backend, BackendGraph } from '@peft/core';

/** Whether to capture: 'auto' where the backend can and the capture works, true (or fail), false (never). */
export type GraphMode = boolean | 'auto';

/** How one call of `GraphCache.run` ran: the body eagerly, recorded and launched, or a replay. */
export type RunMode = 'eager' | 'capture' | 'replay';

interface Captured {
  graph: BackendGraph;
  /** What the body returned when it was recorded: a replay does the same work, so returns the same. */
  value: unknown;
  /** Called when the graph is dropped (the keyed inputs it reads can go too). */
  onDrop?: () => void;
}

/** What `GraphCache.run` calls around a capture. */
export interface GraphHooks<T> {
  undo?: () => void;
  check?: (value: T) => void;
  onDrop?: () => void;
}

/** Checks a graph mode option. */
export function checkGraphMode(where: string, mode: unknown): GraphMode {
  if (mode !== true && mode !== false && mode !== 'auto')
    throw new Error(`${where}: graph must be true, false or 'auto', got ${JSON.stringify(mode)}`);
  return mode;
}

/**
 * Runs bodies of device work by key, eagerly or as captured graphs: the first call of a key runs
 * its body eagerly (kernels load, GEMMs are planned, optimizer moments are made), the second
 * records it with `backend.captureGraph` and launches the graph, later calls launch the graph
 * alone. A body must do the same work on every call of its key, reading only buffers that stay
 * put (inputs written before the call, persistent tensors); what it returns on the host is
 * recorded at capture and returned again by each replay. Both `TrainingStep` and `train()` run
 * their steps through this.
 *
 * With 'auto' a capture that fails (e.g. dropout drawing on the host's counter) is recorded in
 * `error` and every later call runs eagerly; with true it throws. The graphs share one memory
 * pool (`CaptureOptions.shareMemoryWith`): they run one after another, so together they hold
 * about what the largest one needs, not the sum. At most `limit` graphs are kept: the least
 * recently used one is dropped.
 */
export class GraphCache {
  readonly #backend: Backend;
  readonly #mode: GraphMode;
  readonly #where: string;
  readonly #limit: number;
  readonly #graphs = new Map<string, Captured>();
  readonly #calls = new Map<string, number>();
  #error: string | null = null;
  #captures = 0;
  #replays = 0;

  constructor(backend: Backend, mode: GraphMode, where: string, limit = 8) {
    this.#backend = backend;
    this.#mode = checkGraphMode(where, mode);
    this.#where = where;
    this.#limit = limit;
    if (mode === true && typeof backend.captureGraph !== 'function') {
      throw new Error(`${where}: graph: true, but the ${backend.name} backend cannot capture graphs (use 'auto' or false)`);
    }
  }

  /** True while calls may still be captured: the backend can, the mode allows it and no capture has failed. */
  get enabled(): boolean {
    return this.#mode !== false && this.#error === null && typeof this.#backend.captureGraph === 'function';
  }

  /** Why calls run eagerly on a backend that can capture graphs (the failed capture's error), or null. */
  get error(): string | null {
    return this.#error;
  }

  /** Graphs captured and replays launched so far. */
  get counts(): { captures: number; replays: number; kept: number } {
    return { captures: this.#captures, replays: this.#replays, kept: this.#graphs.size };
  }

  /** True when `key` has a graph: the next `run` of it is a replay. */
  has(key: string): boolean {
    return this.#graphs.has(key);
  }

  /**
   * Runs `body` for `key` (see the class). `undo` puts back what a failed recording changed on the
   * host (nothing ran on the device); `check` may refuse a recording by throwing (it then counts
   * as a failed capture); `onDrop` is called when the key's graph is dropped.
   */
  run<T>(key: string, body: () => T, hooks: GraphHooks<T> = {}): { mode: RunMode; value: T } {
    const captured = this.#graphs.get(key);
    if (captured) {
      // Most recently used last.
      this.#graphs.delete(key);
      this.#graphs.set(key, captured);
      captured.graph.launch();
      this.#replays++;
      return { mode: 'replay', value: captured.value as T };
    }
    const calls = (this.#calls.get(key) ?? 0) + 1;
    this.#calls.set(key, calls);
    if (calls >= 2 && this.enabled) {
      const value = this.#capture(key, body, hooks);
      if (value !== NOT_CAPTURED) return { mode: 'capture', value: value as T };
    }
    return { mode: 'eager', value: body() };
  }

  #capture<T>(key: string, body: () => T, hooks: GraphHooks<T>): T | typeof NOT_CAPTURED {
    let value: T | undefined;
    let graph: BackendGraph | null = null;
    try {
      // Every graph of this cache records into one memory pool: they are launched one after
      // another and keep their results in buffers allocated outside the capture.
      const live = this.#graphs.values().next().value?.graph;
      graph = this.#backend.captureGraph!(
        () => {
          value = body();
        },
        live ? { shareMemoryWith: live } : undefined,
      );
      hooks.check?.(value as T);
    } catch (e) {
      graph?.destroy();
      hooks.undo?.();
      const message = e instanceof Error ? e.message : String(e);
      if (this.#mode === true) throw new Error(`${this.#where}: capturing the step failed: ${message}`);
      this.#error = message;
      return NOT_CAPTURED;
    }
    while (this.#graphs.size >= this.#limit) this.#drop(this.#graphs.keys().next().value!);
    this.#graphs.set(key, { graph, value, onDrop: hooks.onDrop });
    this.#captures++;
    graph.launch();
    return value as T;
  }

  #drop(key: string): void {
    const c = this.#graphs.get(key);
    if (!c) return;
    this.#graphs.delete(key);
    // What the caller keeps of the recording goes first, then the graph and its memory.
    try {
      c.onDrop?.();
    } finally {
      c.graph.destroy();
    }
  }

  /** Destroys every graph (and calls their `onDrop`); later calls of a key start again with an eager run. */
  dispose(): void {
    for (const key of [...this.#graphs.keys()]) this.#drop(key);
    this.#calls.clear();
  }
}

const NOT_CAPTURED: unique symbol = Symbol('not captured');
