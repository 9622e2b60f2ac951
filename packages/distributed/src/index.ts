export {
  type Communicator,
  DEFAULT_TIMEOUT_SECONDS,
  LocalCommunicator,
  MpiError,
  MpiTimeoutError,
  type ReduceOp,
} from './communicator.js';
export { detectMpiEnvironment, type MpiEnvironment, type MpiLauncher } from './environment.js';
export { findMpirun, type MpirunOptions, mpirunArgs } from './launch.js';
export { libraryCandidates, type MpiFlavour, MpiUnavailable, mpiAvailability } from './library.js';
export { type CommunicatorOptions, communicatorFromEnvironment, createCommunicator, MpiCommunicator } from './mpi-communicator.js';
