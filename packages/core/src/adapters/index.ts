export { Identity, ModuleDict, ParameterDict } from './containers.js';
export {
  countLoraParameters,
  countLoraParametersOf,
  describeModel,
  type LoraCountOptions,
  type LoraCounts,
  type ModuleShape,
} from './count.js';
export { DoraEmbeddingVariant, DoraLinearVariant, DoraMagnitude } from './dora/layer.js';
export {
  fromPeftConfigDict,
  type InitLoraWeights,
  type LoraBias,
  type LoraConfig,
  type LoraConfigInput,
  labelMaps,
  loraConfig,
  loraScaling,
  PEFT_VERSION,
  type PeftConfigExtra,
  type TaskType,
  toPeftConfigDict,
  toPeftConfigJson,
} from './lora/config.js';
export { LoraEmbedding, LoraLayer, LoraLinear, type LoraVariant, type UpdateLayerOptions } from './lora/layer.js';
export { type AdapterOptions, describeTree, inputEmbeddingsOf, LoraModel, modelTypeOf, outputEmbeddingsOf } from './lora/model.js';
export { type Cloneable, cloneModule, ModulesToSaveWrapper } from './modules-to-save.js';
export {
  type GetPeftModelOptions,
  getPeftModel,
  type ParameterCounts,
  type PeftForward,
  PeftModel,
  trainableLine,
} from './peft-model.js';
export { pythonJsonDumps } from './python-json.js';
export {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  type AdapterStateOptions,
  adapterStateDict,
  type FileSink,
  type LoadAdapterOptions,
  labelsOf,
  loadAdapterFrom,
  memorySink,
  mergedTensors,
  nameOrPathOf,
  type SaveAdapterOptions,
  type SaveMergedOptions,
  saveAdapterTo,
  saveMergedTo,
} from './save-load.js';
export {
  ALL_LINEAR,
  CLASSIFIER_HEAD_NAMES,
  checkTargetModule,
  DEFAULT_LORA_TARGET_MODULES,
  EMBEDDING_LAYER_NAMES,
  type ModuleEntry,
  minimalTargetModules,
  patternValue,
  planTargets,
  resolveTargetModules,
} from './targets.js';
export { assignInPlace } from './util.js';
