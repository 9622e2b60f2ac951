import { anyStops, peers, rankShare, type StepTotals, stepTotals } from './data-parallel.js';
import { elapsed, now, type Run, yieldToEventLoop } from './run.js';
import { checkpoint } from './run-folder.js';
import { learningRate } from './schedule.js';
import { shuffledIndices } from './shuffle.js';
import { aborted, diverged } from './stop.js';

/**
 * One optimizer step's batch after the backward passes of its micro-batches: the step runner holds
 * the loss and the gradients, each micro-batch's already multiplied by its share wᵢ / weight.
 */
interface Accumulated {
  /** The step's weight: Σ wᵢ over its micro-batches (their examples, or `TrainTask.weight`), on every rank. */
  weight: number;
  /** Examples in the step, on every rank. */
  examples: number;
  /** Tokens in the step on every rank, for tokens/s. */
  tokens: number;
}

/** What one applied update reports to the logs. */
interface StepOutcome {
  loss: number;
  gradNorm: number;
  coef: number;
  lr: number;
  tokens: number;
  seconds: number;
}

/** The step's example indices cut into micro-batches of `microBatchSize`. */
function microBatches(indices: readonly number[], size: number): number[][] {
  const chunks: number[][] = [];
  for (let i = 0; i < indices.length; i += size) chunks.push(indices.slice(i, i + size));
  return chunks;
}

/** Forward and backward over the step's micro-batches, each loss scaled by its share of the step's weight. */
async function accumulate<B>(run: Run<B>, epoch: number, indices: readonly number[]): Promise<Accumulated> {
  const { task } = run;
  const comm = peers(run);
  // Over several processes this rank takes its part of the global batch, and the shares are of the global weight.
  const mine = comm ? rankShare(indices, comm.size, comm.rank) : indices;
  const chunks = microBatches(mine, run.o.microBatchSize);
  const batches: B[] = [];
  for (const c of chunks) batches.push(await task.batch(c));
  const weights = batches.map((b, i) => (task.weight ? task.weight(b) : chunks[i]!.length));
  const tokens = batches.map((b, i) => (task.tokens ? task.tokens(b) : chunks[i]!.length));
  const local: StepTotals = {
    weight: weights.reduce((a, b) => a + b, 0),
    examples: mine.length,
    tokens: tokens.reduce((a, b) => a + b, 0),
  };
  const valid = weights.every((w) => Number.isFinite(w) && w >= 0);
  if (!comm && (!valid || !(local.weight > 0))) {
    throw new Error(`train: micro-batch weights must be finite, >= 0 and not all 0, got [${weights.join(', ')}]`);
  }
  // A rank with a bad weight sends NaN, so that every rank stops here rather than wait for it.
  const totals = comm ? await stepTotals(comm, valid ? local : { ...local, weight: Number.NaN }) : local;
  if (!valid) throw new Error(`train: rank ${comm!.rank}: micro-batch weights must be finite and >= 0, got [${weights.join(', ')}]`);
  if (!(totals.weight > 0))
    throw new Error(
      `train: the micro-batch weights of every rank sum to ${totals.weight}: each must be finite and >= 0, and not all 0 (this rank's: [${weights.join(', ')}])`,
    );
  try {
    // A rank whose share of the last batch is empty adds nothing.
    for (const [i, b] of batches.entries()) {
      run.steps.micro(b, weights[i]! / totals.weight, { epoch, step: run.state.step, microStep: i });
    }
    return { weight: totals.weight, examples: totals.examples, tokens: totals.tokens };
  } catch (error) {
    run.steps.clear();
    throw error;
  }
}

/**
 * The one place between "gradients accumulated" and "norm, clip, update". A single process has
 * nothing to do. Over several processes the accumulated gradient of every trainable tensor and the
 * loss (each micro-batch's already divided by the weight summed over the processes) are summed
 * over them, so that every rank holds the gradients and loss of the global batch: the norm, the
 * clipping and the check for a non-finite loss or norm then see the same values on every rank,
 * and every rank applies the same update.
 */
async function synchronize(run: Run<unknown>): Promise<void> {
  const comm = peers(run);
  if (!comm) return;
  try {
    await run.steps.allReduce(comm);
  } catch (error) {
    run.steps.clear();
    throw error;
  }
}

/**
 * One optimizer update: accumulate, synchronize, then the shared update (`update.ts`, through the
 * step runner: captured graphs where the backend has them). The loss, gradient norm and clipping
 * factor are read back first: when the loss or the norm is not finite the run stops
 * (`TrainingDivergedError`) before anything is applied.
 */
async function trainStep<B>(run: Run<B>, epoch: number, indices: readonly number[]): Promise<StepOutcome> {
  const { o, steps } = run;
  const t0 = now();
  const acc = await accumulate(run, epoch, indices);
  await synchronize(run);
  let applied = false;
  try {
    const [loss, gradNorm, coef] = await steps.summarize();
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) return await diverged(run, epoch, loss, gradNorm);
    const lr = learningRate(o.lr, run.state.step, run.sched);
    steps.update(lr);
    applied = true;
    return { loss, gradNorm, coef, lr, tokens: acc.tokens, seconds: now() - t0 };
  } finally {
    if (!applied) steps.clear();
  }
}

/** Counts an applied update and reports it: log row every `logEverySteps`, progress, step checkpoint, `onStep`. */
async function recordStep(run: Run<unknown>, epoch: number, r: StepOutcome): Promise<void> {
  const { o, state: s, pace } = run;
  const c = s.counters;
  s.step++;
  s.stepInEpoch++;
  pace.steps++;
  pace.tokens += r.tokens;
  pace.seconds += r.seconds;
  c.lastLr = r.lr;
  c.epochLossSum += r.loss;
  c.epochSteps++;
  c.windowLossSum += r.loss;
  c.windowSteps++;
  c.windowTokens += r.tokens;
  c.windowSeconds += r.seconds;
  if (s.step % o.logEverySteps === 0) {
    s.log.push({
      epoch,
      step: s.step,
      lr: r.lr,
      loss: c.windowLossSum / c.windowSteps,
      valScore: null,
      tokensPerSecond: c.windowSeconds > 0 ? c.windowTokens / c.windowSeconds : null,
      elapsedSeconds: elapsed(run),
    });
    c.windowLossSum = c.windowSteps = c.windowTokens = c.windowSeconds = 0;
  }
  const tokensPerSecond = pace.seconds > 0 ? pace.tokens / pace.seconds : 0;
  const at = { epoch, stepInEpoch: s.stepInEpoch, stepsPerEpoch: o.stepsPerEpoch, step: s.step, totalSteps: o.totalSteps };
  run.progress?.step({
    epoch,
    epochs: o.epochs,
    stepInEpoch: s.stepInEpoch,
    stepsPerEpoch: o.stepsPerEpoch,
    step: s.step,
    totalSteps: o.totalSteps,
    loss: r.loss,
    lr: r.lr,
    tokensPerSecond,
    etaSeconds: pace.steps > 0 ? ((o.totalSteps - s.step) * pace.seconds) / pace.steps : null,
  });
  if (o.checkpointEverySteps > 0 && s.step % o.checkpointEverySteps === 0 && s.stepInEpoch < o.stepsPerEpoch) await checkpoint(run);
  await run.options.onStep?.({
    ...at,
    lr: r.lr,
    loss: r.loss,
    gradNorm: r.gradNorm,
    clipCoefficient: r.coef,
    tokens: r.tokens,
    tokensPerSecond,
    elapsedSeconds: elapsed(run),
  });
}

/**
 * The rest of epoch `epoch`'s updates (all of them, or those after a mid-epoch checkpoint), in the
 * epoch's seeded order, `batchSize × ranks` examples each (the last may be smaller); resolves to the
 * epoch's mean training loss (null when it had no update in this run).
 */
export async function runEpoch<B>(run: Run<B>, epoch: number): Promise<number | null> {
  const { o, state: s } = run;
  const signal = run.options.signal;
  run.dataRng.setState(s.epochStartRng);
  const order = shuffledIndices(o.trainSize, run.dataRng);
  const comm = peers(run);
  run.task.setTraining?.(true);
  while (s.stepInEpoch < o.stepsPerEpoch) {
    await yieldToEventLoop();
    // Over several processes every rank stops at the same boundary when any one was asked to.
    const stop = comm ? await anyStops(comm, signal?.aborted === true) : signal?.aborted === true;
    if (stop) await aborted(run, null, epoch, signal?.aborted ? signal.reason : new Error('another rank was interrupted'));
    const g = o.globalBatchSize;
    const indices = order.slice(s.stepInEpoch * g, (s.stepInEpoch + 1) * g);
    await recordStep(run, epoch, await trainStep(run, epoch, indices));
  }
  run.progress?.done();
  return s.counters.epochSteps > 0 ? s.counters.epochLossSum / s.counters.epochSteps : null;
}

/** Closes epoch `epoch` after its evaluation: the next one starts at its first step, from the generator's current state. */
export function closeEpoch(run: Run<unknown>, epoch: number): void {
  const s = run.state;
  s.epochsDone = epoch;
  s.stepInEpoch = 0;
  s.epochStartRng = run.dataRng.state();
  s.counters.epochLossSum = 0;
  s.counters.epochSteps = 0;
}
