export { type AssertCloseOptions, assertClose, assertEqual, formatIndex, type Tolerance } from './assert.js';
export {
  type ConformanceCase,
  type ConformanceOptions,
  conformanceCases,
  DEFAULT_TOLERANCES,
  FLOAT_DTYPES,
} from './conformance.js';
export {
  BINARY_MUTATORS,
  describeFailures,
  type FuzzFailure,
  type FuzzReport,
  FuzzRng,
  type FuzzTarget,
  fuzzCases,
  type Mutator,
  runFuzz,
  TEXT_MUTATORS,
  unclearError,
} from './fuzz.js';
export { finiteDifference, GRADCHECK_KERNELS, type GradcheckOptions, gradcheckCases } from './gradcheck.js';
export { type HostTensor, hostTensor } from './harness.js';
export { createOracleBackend } from './oracle-backend.js';
export { type ReadmeBlock, type ReadmeClaim, type ReadmeRun, type ReadmeRunOptions, readmeBlocks, runReadmeSnippet } from './readme.js';
export * as reference from './reference.js';
export { hashSeed, TestRng } from './rng.js';
