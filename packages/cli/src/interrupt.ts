// Ctrl-C for every program that trains (`peft` and the examples): the first SIGINT (or SIGTERM)
// asks the run to stop; the training loop yields to the event loop before every step and checks
// the signal between evaluation batches, so it writes a checkpoint and stops within one step. A
// second signal quits at once (exit 130): checkpoints are written atomically, so the last complete
// one stays intact, and the run folder's lock is removed by its 'exit' handler.
import { TrainingAbortedError } from '@peft/trainer';
import { UsageError } from './args.js';
import { ReportedByRankZero } from './distributed.js';

/** Installs the SIGINT / SIGTERM handlers and returns the signal they abort. */
export function stopOnSignals(write: (text: string) => void = (t) => process.stderr.write(t)): AbortSignal {
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      write(`\n${signal} again: quitting now (the last checkpoint is kept)\n`);
      process.exit(130);
    }
    write(`\n${signal}: stopping after the current step or evaluation batch, with a checkpoint (Ctrl-C again to quit now)…\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return controller.signal;
}

/** The exit code for how a run ended: 0, 2 for a usage error, 130 when interrupted, else 1. */
export function exitCodeOf(error: unknown): number {
  if (error === undefined) return 0;
  if (error instanceof ReportedByRankZero) return error.exitCode;
  return error instanceof UsageError ? 2 : error instanceof TrainingAbortedError ? 130 : 1;
}

/**
 * Runs a program's main under `stopOnSignals` and sets `process.exitCode` (see `exitCodeOf`);
 * an error is printed as `<name>: <message>`, and an interrupted run says how to continue.
 */
export function runInterruptible(name: string, run: (signal: AbortSignal) => Promise<unknown>, resumeHint: string): void {
  const signal = stopOnSignals();
  run(signal).then(
    () => {
      process.exitCode = 0;
    },
    (error: unknown) => {
      process.exitCode = exitCodeOf(error);
      // A rank other than 0 of an MPI job that stopped with the others: rank 0 says how to resume.
      if (error instanceof ReportedByRankZero) return;
      process.stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
      if (error instanceof TrainingAbortedError) process.stderr.write(`${resumeHint}\n`);
    },
  );
}
