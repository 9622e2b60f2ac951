export { type HeadBatch, lastTokenIndex, type Rows } from './batch.js';
export {
  type CausalLMBatch,
  CausalLMHead,
  type CausalLMHeadOutput,
  type CausalLMInputPadding,
  type CausalLMTensorInputs,
} from './causal-lm-head.js';
export type { GenerateOptions, Prompts, TokenDecoder } from './generate.js';
export {
  adapterLabels,
  loadPeftSequenceClassifierFrom,
  loadSequenceClassifierFrom,
  type PeftSequenceClassifierFromPretrainedOptions,
  readAdapterConfig,
  type SequenceClassifierFromPretrainedOptions,
} from './pretrained.js';
export {
  normalizeId2Label,
  SequenceClassifier,
  type SequenceClassifierInput,
  type SequenceClassifierOptions,
  type SequenceClassifierOutput,
  type SequenceClassifierTensorInputs,
  sequenceClassificationArchitecture,
} from './sequence-classifier.js';
export { type HostInput, IGNORE_INDEX, type InputPadding, type ModelInputs, supportsTensorLoss } from './tensor-input.js';
export { TokenClassifier, type TokenClassifierInput, type TokenClassifierOptions, type TokenClassifierOutput } from './token-classifier.js';
