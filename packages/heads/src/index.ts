export { type HeadBatch, lastTokenIndex, type Rows } from './batch.js';
export { type CausalLMBatch, CausalLMHead } from './causal-lm-head.js';
export type { GenerateOptions, Prompts, TokenDecoder } from './generate.js';
export { SequenceClassifier, type SequenceClassifierOptions } from './sequence-classifier.js';
export { TokenClassifier, type TokenClassifierOptions } from './token-classifier.js';
