export type { ByteSource } from './byte-source.js';
export { blobSource, bytesSource } from './byte-source.js';
export type { SafetensorsDType } from './dtypes.js';
export {
  defaultCoreDType,
  fp8ToFloat,
  isSafetensorsDType,
  SAFETENSORS_DTYPES,
  safetensorsDTypeBits,
  toSafetensorsDType,
} from './dtypes.js';
export type { SafetensorsHeader, SafetensorsTensorInfo } from './header.js';
export { MAX_HEADER_BYTES } from './header.js';
export type { UntrustedJsonOptions } from './json.js';
export { describeJsonValue, jsonNesting, parseUntrustedJson, quoteName } from './json.js';
export type { LoadedTensor, ReadTensorOptions, TensorReader } from './reader.js';
export { openSafetensors, SafetensorsFile } from './reader.js';
export type { FileOpener, ShardedOptions, ShardedTensorInfo, ShardFile, ShardIndexData } from './sharded-reader.js';
export {
  bytesReader,
  filesReader,
  openShardedCheckpoint,
  openShardedSafetensors,
  ShardedCheckpoint,
  ShardedSafetensors,
} from './sharded-reader.js';
export type { PlannedShard, ShardIndex, ShardPlan, ShardPlanOptions } from './shards.js';
export { DEFAULT_MAX_SHARD_SIZE, parseSize, planShards } from './shards.js';
export type {
  ByteSink,
  LazyTensorsToWrite,
  LazyTensorToWrite,
  NamedLazyTensorToWrite,
  NamedTensorToWrite,
  SafetensorsLayout,
  TensorsToWrite,
  TensorToWrite,
} from './writer.js';
export { layoutSafetensors, serializeSafetensors, writeSafetensorsTo } from './writer.js';
