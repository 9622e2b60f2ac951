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

/**
 * Thrown when a file of the run folder cannot be written, read, moved or removed: the file, the
 * cause in words (disk full, read-only, ...), the code of the file system call, and for a checkpoint
 * or artifact write, which checkpoint is still intact.
 */
export class RunFolderError extends Error {
  override readonly name = 'RunFolderError';
  constructor(
    message: string,
    /** The file or folder at fault. */
    readonly file: string,
    /** The file system error code (ENOSPC, EROFS, EACCES, ...), or "unknown". */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CAUSES: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EFBIG: 'the file is larger than the file system allows',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of its path is a file, not a folder',
  ENOENT: 'it does not exist',
  EMFILE: 'too many files are open in this process',
  ENFILE: 'too many files are open on this system',
  EIO: 'the disk reported an input/output error',
  ENAMETOOLONG: 'its name is too long',
  EBUSY: 'it is in use',
};

/** The code of a file system error (`error.code`), or undefined for any other error. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** A file system error code in words: "the disk is full". */
export function causeInWords(code: string): string {
  return CAUSES[code] ?? `the file system refused (${code})`;
}

/** What the user can do about a failed write with this code, as a clause: "free some space". */
export function remedyFor(code: string): string {
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return 'free some space on the disk';
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return 'make the run folder writable';
  if (code === 'EISDIR' || code === 'ENOTDIR') return 'move the file or folder in the way out of the run folder';
  return 'fix the cause';
}
