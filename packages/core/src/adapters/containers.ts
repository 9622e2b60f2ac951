import { Module } from '../nn/module.js';
import { reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor.js';

/**
 * Modules keyed by adapter name, like torch.nn.ModuleDict: registered as children so that
 * parameter names read `lora_A.<adapter>.weight`, exactly as PEFT's in-memory names.
 */
export class ModuleDict<M extends Module = Module> extends Module {
  readonly #items = new Map<string, M>();

  set(key: string, m: M): M {
    this.registerModule(key, m);
    this.#items.set(key, m);
    return m;
  }

  get(key: string): M | undefined {
    return this.#items.get(key);
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }

  /** Removes the entry (its tensors are the caller's to dispose). */
  delete(key: string): M | undefined {
    const m = this.#items.get(key);
    if (!m) return undefined;
    this.registerModule(key, null);
    this.#items.delete(key);
    return m;
  }

  keys(): string[] {
    return [...this.#items.keys()];
  }

  get size(): number {
    return this.#items.size;
  }
}

/** Parameters keyed by adapter name, like torch.nn.ParameterDict (`lora_embedding_A.<adapter>`). */
export class ParameterDict extends Module {
  readonly #items = new Map<string, Tensor>();

  set(key: string, t: Tensor): Tensor {
    this.registerParameter(key, t);
    this.#items.set(key, t);
    return t;
  }

  get(key: string): Tensor | undefined {
    return this.#items.get(key);
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }

  delete(key: string): Tensor | undefined {
    const t = this.#items.get(key);
    if (!t) return undefined;
    this.registerParameter(key, null);
    this.#items.delete(key);
    return t;
  }

  keys(): string[] {
    return [...this.#items.keys()];
  }
}

/** Passes its input through (PEFT's lora_dropout entry when the dropout probability is 0). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return reshape(x, x.shape);
  }
}
