export {
  type BaseModel,
  CausalLM,
  type CausalLMOutput,
  type CreateModelOptions,
  causalLMParameterShapes,
  createModel,
} from './causal-lm.js';
export { type ModelConfig, parseConfig, SUPPORTED_MODEL_TYPES } from './config.js';
export {
  checkCheckpoint,
  chooseDtype,
  type LoadOptions,
  loadModelFrom,
  openWeights,
  readConfig,
  SAFETENSORS_FORMAT,
  type WeightFormat,
  type WeightReader,
} from './load.js';
export { describeParameters, outputHeadName } from './lora-count.js';
export { type ForwardInput, KVCache, type LayerContext, prepareInput, ropeTables } from './models/common.js';
export { GPTNeoXAttention, GPTNeoXLayer, GPTNeoXMLP, GPTNeoXModel } from './models/gpt-neox.js';
export { LlamaAttention, LlamaDecoderLayer, LlamaMLP, LlamaModel } from './models/llama.js';
export { causalLMFromPretrained, type LoadWeightsOptions, loadWeightsInto } from './pretrained.js';
export * from './tokenizer/index.js';
export { openTorchBin, TorchBinFile, type TorchBinTensorInfo, type TorchDType } from './weights/torch-bin.js';
export { TORCH_BIN_FORMAT } from './weights/torch-bin-format.js';
export { openShardedTorchBin, openTorchBinCheckpoint, ShardedTorchBin } from './weights/torch-bin-sharded.js';
