export { Module, ModuleList } from './module.js';
export { Linear, type LinearOptions } from './linear.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { LayerNorm, type LayerNormOptions } from './layer-norm.js';
export { RMSNorm, type RMSNormOptions } from './rms-norm.js';
export { Dropout } from './dropout.js';
export { type ParamOptions, uniformParam, normalParam, constantParam } from './init.js';
