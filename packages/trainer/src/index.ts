export { AdamW, type AdamWOptions, type AdamWParam, type AdamWParams, type AdamWState, hfNoDecay, type NoDecayRule } from './adamw.js';
export {
  CHECKPOINT_DIR,
  type CheckpointParts,
  type CheckpointState,
  checkpointName,
  listCheckpoints,
  type RunCounters,
  readLatestCheckpoint,
} from './checkpoint.js';
export { clipCoefficient, squaredNorm } from './clip.js';
export { CheckpointError, RunFolderError, TrainingAbortedError, TrainingDivergedError } from './errors.js';
export { LOG_COLUMNS, type LogRow, logCsv } from './log.js';
export type { EpochInfo, StepInfo, TrainOptions, TrainResult } from './options.js';
export { formatDuration, Progress, type ProgressOptions, type ProgressStep } from './progress.js';
export { learningRate, SCHEDULE_KINDS, type ScheduleKind, type ScheduleOptions, scheduleFactor } from './schedule.js';
export { shuffledIndices } from './shuffle.js';
export { type HostState, type HostTensor, readHostState, restore, snapshot, writeHostState } from './state.js';
export { type StepInputSpec, type StepResult, TrainingStep, type TrainingStepOptions } from './step.js';
export { type FileData, memoryRunStore, type RunStore, readJson, subStore } from './store.js';
export { type LineChartOptions, lineChartSvg, type Series } from './svg.js';
export {
  configName,
  expandGrid,
  type Grid,
  type GridValue,
  type MetricColumn,
  type RunOutcome,
  runSweep,
  type SweepConfig,
  type SweepContext,
  type SweepOptions,
  type SweepResult,
  type SweepRun,
  selectBest,
  sweepMarkdown,
  sweepSvg,
} from './sweep.js';
export { train } from './trainer.js';
export type {
  EvaluateOptions,
  Evaluation,
  LossContext,
  Split,
  StepInput,
  StepShapes,
  TrainCommunicator,
  TrainTask,
  ValidationRecord,
} from './types.js';
