export * from './adapters/index.js';
export { checkpoint } from './autograd/checkpoint.js';
export { backward, clearTape, enableGrad, isGradEnabled, noGrad, tapeLength } from './autograd/tape.js';
export * from './backend.js';
export { type BufferRole, checkBufferArg, checkCounts, checkFinite, checkSameSize, type OwnedBuffer } from './backend-args.js';
export * from './dtype.js';
export { dispose, keep, type MemoryInfo, memoryInfo, tidy } from './memory.js';
export * from './nn/index.js';
export * as ops from './ops/index.js';
export * from './ops/index.js';
export { defaultGenerator, Generator, type GeneratorState, manualSeed } from './random/generator.js';
export { philox4x32, philoxBlocks, philoxNormal, philoxUniform, philoxWords, splitKey } from './random/philox.js';
export { type BackendFactory, createBackend, registerBackend, registeredBackends } from './registry.js';
export * from './safetensors/index.js';
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
