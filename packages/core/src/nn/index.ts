export { Dropout } from './dropout.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { constantParam, normalParam, type ParamOptions, uniformParam } from './init.js';
export { LayerNorm, type LayerNormOptions } from './layer-norm.js';
export { Linear, type LinearOptions } from './linear.js';
export { Module, ModuleList } from './module.js';
export { RMSNorm, type RMSNormOptions } from './rms-norm.js';
