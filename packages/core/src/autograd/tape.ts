import { keep, tidy } from '../memory.js';
import { add, onesLike } from '../ops/elementwise.js';
import { cast } from '../ops/shape.js';
import { formatShape, type Tensor } from '../tensor.js';

/**
 * One recorded op: which inputs want a gradient, and how to compute those gradients from the
 * gradients of its outputs. Backward closures hold only tensors saved with `save` (handles that
 * keep the storage alive even when the user disposes the original).
 */
export interface TapeNode {
  readonly op: string;
  /** Inputs in op order; null where the input does not require grad (its gradient is never computed). */
  readonly inputs: readonly (Tensor | null)[];
  /** Which inputs were leaves (made by no recorded op) when the op ran: they receive `.grad`. */
  readonly leaf: readonly boolean[];
  readonly outputs: readonly Tensor[];
  /** Returns one gradient per input (null where inputs[i] is null or the gradient is zero). */
  backward(gradOutputs: readonly (Tensor | null)[]): (Tensor | null)[];
  readonly saved: Tensor[];
  /** Run backward even when no input wants a gradient (checkpointed blocks reach parameters directly). */
  readonly opaque?: boolean;
}

class Tape {
  nodes: TapeNode[] = [];
}

let gradEnabled = true;
let tape = new Tape();

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording anything for autograd (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` with recording on, also inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Whether an op on these inputs must be recorded. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/** A handle that keeps `t`'s memory alive for backward, untouched by scopes, released when the tape is cleared. */
export function save(t: Tensor): Tensor {
  return keep(t.share());
}

/** Hands a tensor the op made itself (saved statistics) to the tape: no scope disposes it; the tape does. */
export function own(t: Tensor): Tensor {
  return keep(t);
}

/**
 * Records an op. `inputs` are the op's tensor inputs in order; only those requiring grad get
 * gradients. Marks `outputs` as requiring grad. Call only when `needsGrad(inputs)`.
 */
export function record(
  op: string,
  inputs: readonly (Tensor | null | undefined)[],
  outputs: readonly Tensor[],
  saved: Tensor[],
  backward: (gradOutputs: readonly (Tensor | null)[]) => (Tensor | null)[],
  opaque = false,
): void {
  const node: TapeNode = {
    op,
    inputs: inputs.map((t) => (t?.requiresGrad ? t : null)),
    leaf: inputs.map((t) => !t?.node),
    outputs,
    saved,
    backward,
    opaque,
  };
  for (const out of outputs) {
    out.requiresGrad = true;
    out.node = node;
  }
  tape.nodes.push(node);
}

/** Number of ops recorded and not yet consumed by `backward` or dropped by `clearTape`. */
export function tapeLength(): number {
  return tape.nodes.length;
}

/** Drops everything recorded so far and releases the tensors it saved. */
export function clearTape(): void {
  const old = tape;
  tape = new Tape();
  for (const node of old.nodes) for (const s of node.saved) s.dispose();
}

function addGrad(a: Tensor | undefined, b: Tensor, add: (x: Tensor, y: Tensor) => Tensor): Tensor {
  if (!a) return b;
  const sum = add(a, b);
  a.dispose();
  b.dispose();
  return sum;
}

/**
 * Computes gradients of `loss` (a scalar, or any tensor when `gradOutput` is given) with respect
 * to every leaf tensor that requires grad and accumulates them into `.grad`. Replays the tape in
 * reverse; ops whose inputs need no gradient compute nothing. Consumes the tape.
 */
export function backward(loss: Tensor, gradOutput?: Tensor): void {
  if (!loss.requiresGrad) {
    throw new Error(`backward: ${loss.describe()} does not require grad: no recorded op between it and a tensor with requiresGrad`);
  }
  if (!gradOutput && loss.size !== 1) {
    throw new Error(`backward: ${loss.describe()} is not a scalar: pass the gradient of the output as the second argument`);
  }
  if (gradOutput && gradOutput.shape.join() !== loss.shape.join()) {
    throw new Error(`backward: gradient shape ${formatShape(gradOutput.shape)} does not match ${loss.describe()}`);
  }
  const current = tape;
  tape = new Tape();
  try {
    noGrad(() =>
      tidy(() => {
        const grads = new Map<number, Tensor>();
        grads.set(loss.id, gradOutput ? gradOutput.share() : onesLike(loss));
        for (let i = current.nodes.length - 1; i >= 0; i--) {
          const node = current.nodes[i]!;
          const gradOuts = node.outputs.map((o) => grads.get(o.id) ?? null);
          if (gradOuts.every((g) => g === null)) continue;
          node.outputs.forEach((o, j) => {
            const g = gradOuts[j];
            if (o.retainGrad && g && !o.isDisposed) o.grad = keep(addGrad(o.grad ?? undefined, g.share(), add));
          });
          for (const o of node.outputs) grads.delete(o.id);
          if (node.opaque || node.inputs.some((t) => t !== null)) {
            const gradIns = node.backward(gradOuts);
            node.inputs.forEach((input, j) => {
              let g = gradIns[j];
              if (!input || !g) {
                g?.dispose();
                return;
              }
              if (g.shape.join() !== input.shape.join()) {
                throw new Error(`backward of ${node.op}: gradient ${formatShape(g.shape)} does not match input ${input.describe()}`);
              }
              // A gradient has its tensor's dtype, as in PyTorch: a bfloat16 activation that met a
              // float32 one (LoRA's adapter path) gets a bfloat16 gradient, and the backward pass
              // of a 16-bit model stays 16-bit instead of widening everything upstream.
              if (g.dtype !== input.dtype) {
                const narrowed = cast(g, input.dtype);
                g.dispose();
                g = narrowed;
              }
              if (!node.leaf[j]) grads.set(input.id, addGrad(grads.get(input.id), g, add));
              else input.grad = keep(addGrad(input.grad ?? undefined, g, add));
            });
          }
          for (const g of gradOuts) g?.dispose();
        }
        // Leaves that were themselves the loss, e.g. backward(param) with a parameter as output.
        for (const [id, g] of grads) {
          if (id === loss.id && !loss.node) loss.grad = keep(addGrad(loss.grad ?? undefined, g, add));
          else g.dispose();
        }
      }),
    );
  } finally {
    for (const node of current.nodes) {
      for (const s of node.saved) s.dispose();
      for (const o of node.outputs) {
        if (o.node !== node) continue;
        o.node = null;
        o.requiresGrad = false;
      }
    }
  }
}
