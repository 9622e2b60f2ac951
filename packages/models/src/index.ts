export { type ModelConfig, parseConfig, SUPPORTED_MODEL_TYPES } from './config.js';
export { CausalLM, createModel, type BaseModel, type CausalLMOutput, type CreateModelOptions } from './causal-lm.js';
export { type ForwardInput, KVCache, type LayerContext, prepareInput } from './models/common.js';
export { GPTNeoXAttention, GPTNeoXLayer, GPTNeoXMLP, GPTNeoXModel } from './models/gpt-neox.js';
export { LlamaAttention, LlamaDecoderLayer, LlamaMLP, LlamaModel } from './models/llama.js';
export {
  type LoadOptions,
  type WeightFormat,
  type WeightReader,
  SAFETENSORS_FORMAT,
  chooseDtype,
  loadModelFrom,
  openWeights,
  readConfig,
  registerWeightFormat,
} from './load.js';
