export { gelu, siluMul } from './activations.js';
export { type AttentionOptions, attention } from './attention.js';
export {
  abs,
  add,
  affine,
  div,
  exp,
  log,
  maximum,
  minimum,
  mul,
  neg,
  onesLike,
  relu,
  rsqrt,
  scale,
  sigmoid,
  silu,
  sqrt,
  square,
  sub,
  tanh,
  unary,
} from './elementwise.js';
export { embedding, gatherRows } from './embedding.js';
export { type CrossEntropyOptions, crossEntropy } from './loss.js';
export { linear, linearSum, type MatmulOptions, matmul } from './matmul.js';
export { layerNorm, rmsNorm } from './norms.js';
export { adamwStep } from './optim.js';
export { dropout, type RandomOptions, rand, randn } from './random.js';
export { argmax, max, mean, sum } from './reduce.js';
export { type RotaryOptions, rotary } from './rotary.js';
export { cast, clone, concat, detach, expand, permute, reshape, slice, split, sumTo, transpose } from './shape.js';
