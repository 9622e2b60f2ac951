/** The kernel families of this backend, one object each; `backend.ts` composes them with core's `kernelTable`. */
export { activationKernels } from './activations.js';
export { adamwKernels } from './adamw.js';
export { attentionKernels } from './attention.js';
export { copyKernels } from './copy.js';
export { elementwiseKernels } from './elementwise.js';
export { embeddingKernels } from './embedding.js';
export { lossKernels } from './loss.js';
export { matmulKernels } from './matmul.js';
export { normKernels } from './norms.js';
export { randomKernels } from './random.js';
export { reduceKernels } from './reduce.js';
export { rotaryKernels } from './rotary.js';
