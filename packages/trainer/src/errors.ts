/** Thrown when a step's loss or gradient norm is NaN or infinite; the update of that step is not applied. */
export class TrainingDivergedError extends Error {
  override readonly name = 'TrainingDivergedError';
  constructor(
    message: string,
    /** Epoch (1-based) and step within it (1-based) of the bad step. */
    readonly epoch: number,
    readonly stepInEpoch: number,
    /** Optimizer updates completed before the bad step. */
    readonly step: number,
    readonly loss: number,
    readonly gradNorm: number,
    /** The newest checkpoint on disk (kept), or null when the run writes none. */
    readonly checkpoint: string | null,
  ) {
    super(message);
  }
}

/** Thrown when the run's AbortSignal fires; the state at the last finished step is checkpointed first. */
export class TrainingAbortedError extends Error {
  override readonly name = 'TrainingAbortedError';
  constructor(
    message: string,
    readonly step: number,
    readonly checkpoint: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Thrown when a checkpoint cannot be trusted for a resume: a file missing or damaged, or a state field out of place. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    message: string,
    /** The file at fault. */
    readonly file: string,
  ) {
    super(message);
  }
}
