import { keep } from '../memory.js';
import type { Tensor } from '../tensor.js';

/**
 * Base of every layer. Parameters and submodules are registered by name in order, so
 * `namedParameters()` yields the same dotted names, in the same order, as PyTorch's
 * `named_parameters()`: own parameters first, then each child's, depth first; a tensor shared by
 * two places (tied embeddings) is listed once, under its first name.
 */
export class Module {
  training = true;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #modules = new Map<string, Module | null>();

  /** Registers (or replaces) a parameter. Parameters are never disposed by `tidy`. */
  registerParameter(name: string, t: Tensor | null): Tensor | null {
    checkName(name, 'parameter');
    if (t) keep(t);
    this.#params.set(name, t);
    return t;
  }

  /** Registers a non-trainable tensor that belongs to the module's state (not in namedParameters). */
  registerBuffer(name: string, t: Tensor): Tensor {
    checkName(name, 'buffer');
    keep(t);
    this.#buffers.set(name, t);
    return t;
  }

  registerModule<M extends Module | null>(name: string, m: M): M {
    checkName(name, 'module');
    this.#modules.set(name, m);
    return m;
  }

  /** The direct children, in registration order. */
  *children(): Generator<[string, Module]> {
    for (const [name, m] of this.#modules) if (m) yield [name, m];
  }

  /** Every module below (and including) this one with its dotted path, preorder like PyTorch's named_modules(). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    const seen = new Set<Module>();
    function* walk(m: Module, path: string): Generator<[string, Module]> {
      if (seen.has(m)) return;
      seen.add(m);
      yield [path, m];
      for (const [name, child] of m.children()) yield* walk(child, path ? `${path}.${name}` : name);
    }
    yield* walk(this, prefix);
  }

  /** Own parameters (not recursive), including null slots skipped. */
  *ownParameters(): Generator<[string, Tensor]> {
    for (const [name, t] of this.#params) if (t) yield [name, t];
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.ownParameters()) {
        if (seen.has(t)) continue;
        seen.add(t);
        yield [path ? `${path}.${name}` : name, t];
      }
    }
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, t] of m.#buffers) yield [path ? `${path}.${name}` : name, t];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  /** Parameters that require grad. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((t) => t.requiresGrad);
  }

  getParameter(path: string): Tensor {
    const dot = path.lastIndexOf('.');
    const owner = dot < 0 ? this : this.getSubmodule(path.slice(0, dot));
    const t = owner.#params.get(dot < 0 ? path : path.slice(dot + 1));
    if (!t) throw new Error(`getParameter: no parameter "${path}" in ${this.constructor.name}`);
    return t;
  }

  getSubmodule(path: string): Module {
    if (path === '') return this;
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m.#modules.get(part);
      if (!next)
        throw new Error(
          `getSubmodule: "${path}" has no part "${part}" (under ${m.constructor.name}: ${[...m.#modules.keys()].join(', ') || 'no children'})`,
        );
      m = next;
    }
    return m;
  }

  /** Replaces the module at a dotted path (adapters wrap layers this way). */
  setSubmodule(path: string, module: Module): void {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this : this.getSubmodule(path.slice(0, dot));
    const name = dot < 0 ? path : path.slice(dot + 1);
    if (!parent.#modules.has(name)) throw new Error(`setSubmodule: "${path}" does not exist`);
    parent.#modules.set(name, module);
  }

  /** Training mode (dropout active) for this module and all below it. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Marks every parameter frozen (requiresGrad = false). */
  freeze(): this {
    for (const t of this.parameters()) t.requiresGrad = false;
    return this;
  }

  /** Marks every parameter trainable (requiresGrad = true). */
  unfreeze(): this {
    for (const t of this.parameters()) t.requiresGrad = true;
    return this;
  }

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.namedParameters()) out.set(n, t);
    for (const [n, t] of this.namedBuffers()) out.set(n, t);
    return out;
  }

  /** Disposes all parameters, buffers and gradients of this module and below. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const [, t] of m.#params) t?.dispose();
      for (const [, t] of m.#buffers) t.dispose();
    }
  }
}

function checkName(name: string, what: string): void {
  if (!name || name.includes('.')) throw new Error(`register ${what}: name "${name}" must be non-empty and contain no "."`);
}

/** A list of modules named 0, 1, 2, … like torch.nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];

  constructor(items: readonly M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.getSubmodule(String(i < 0 ? this.items.length + i : i));
    return m as M;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items.map((_, i) => this.at(i))[Symbol.iterator]();
  }
}
