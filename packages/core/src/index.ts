export * from './adapters/index.js';
export { checkpoint } from './autograd/checkpoint.js';
export { backward, clearTape, enableGrad, isGradEnabled, noGrad, tapeLength } from './autograd/tape.js';
export * from './backend.js';
export {
  type BufferClass,
  type BufferRole,
  type CheckContext,
  checkAlloc,
  checkBuffer,
  checkBufferArg,
  checkCount,
  checkCounts,
  checkFinite,
  checkSameSize,
  checkView,
  checkWrite,
  type OwnedBuffer,
  RAW_ARRAY,
} from './backend-args.js';
export {
  type BackendParts,
  composeBackend,
  type KernelFamily,
  type KernelImpl,
  type KernelImpls,
  kernelTable,
  type MemoryParts,
} from './compose.js';
export * from './dtype.js';
export {
  BINARY_OPS,
  checkIdsInRange,
  checkTargetsInRange,
  embeddingRows,
  type KernelChecks,
  type KernelName,
  kernelChecks,
  matmulSpan,
  UNARY_OPS,
  unaryBackwardReadsY,
} from './kernel-checks.js';
export { dispose, keep, type MemoryInfo, memoryInfo, tidy } from './memory.js';
export { type DeviceDropoutExamples, type DropoutExamples, setDropoutExamples } from './nn/dropout.js';
export * from './nn/index.js';
export * as ops from './ops/index.js';
export * from './ops/index.js';
export {
  type DeviceExampleMasks,
  EXAMPLE_KEY_LIMIT,
  EXAMPLE_ROW_COUNTERS,
  type ExampleMasks,
  exampleDropout,
  exampleRowKeys,
  exampleStreamKeys,
  exampleStreamSeed,
} from './ops/random.js';
export { defaultGenerator, Generator, type GeneratorState, manualSeed } from './random/generator.js';
export { philox4x32, philoxBlocks, philoxNormal, philoxUniform, philoxWords, splitKey } from './random/philox.js';
export {
  type BackendFactory,
  type BackendImporter,
  createBackend,
  registerBackend,
  registeredBackends,
  setBackendImporter,
} from './registry.js';
export * from './safetensors/index.js';
export { type ShortValueOptions, shortValue } from './short-value.js';
export {
  type CreateOptions,
  formatShape,
  fromRaw,
  full,
  ones,
  Storage,
  scalar,
  shapeSize,
  Tensor,
  tensor,
  toBackend,
  zeros,
} from './tensor.js';
