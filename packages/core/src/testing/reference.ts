/**
 * The oracle: naive float64 implementations of every kernel of the `Backend` interface on plain
 * host arrays. Written for obviousness, not speed: loops follow the doc comments in
 * `backend.ts` literally, backward kernels are derived independently of the usual fused
 * formulas (explicit Jacobians for the norms and the attention softmax), and nothing here shares
 * code with any backend. Inputs are the values a backend would load (already rounded to their
 * storage dtype by the caller); outputs are exact float64 results before any storage rounding.
 * The one concession to speed (every backend's conformance run computes these): the explicit
 * Jacobian loops take their loop-invariant factors and row operands from values computed once
 * per row, which gives bit for bit the same results as writing each entry out in full.
 */

export * from './reference/activations.js';
export * from './reference/adamw.js';
export * from './reference/attention.js';
export * from './reference/elementwise.js';
export * from './reference/embedding.js';
export * from './reference/loss.js';
export * from './reference/matmul.js';
export * from './reference/norms.js';
export * from './reference/random.js';
export * from './reference/rotary.js';
export * from './reference/views.js';
