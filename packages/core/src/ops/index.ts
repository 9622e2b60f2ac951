export { reshape, permute, transpose, slice, split, concat, expand, sumTo, cast, clone, detach } from './shape.js';
export {
  add, sub, mul, div, maximum, minimum, affine, scale, neg, unary, exp, log, sqrt, rsqrt, square, abs, silu, sigmoid, tanh, relu, onesLike,
} from './elementwise.js';
export { sum, mean, max, argmax } from './reduce.js';
export { matmul, linear, type MatmulOptions } from './matmul.js';
export { embedding, gatherRows } from './embedding.js';
export { layerNorm, rmsNorm } from './norms.js';
export { rotary, type RotaryOptions } from './rotary.js';
export { attention, type AttentionOptions } from './attention.js';
export { gelu, siluMul } from './activations.js';
export { crossEntropy, type CrossEntropyOptions } from './loss.js';
export { rand, randn, dropout, type RandomOptions } from './random.js';
export { adamwStep } from './optim.js';
