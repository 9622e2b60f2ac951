#!/usr/bin/env node
import { main } from './main.js';

// The first Ctrl-C (or SIGTERM) asks the run to stop: the training loop yields to the event loop
// after every step, so it writes a checkpoint and stops within one step. A second one quits at once
// (exit 130): checkpoints are written atomically, so the last complete one stays intact, and the
// run folder's lock is removed by its 'exit' handler.
const controller = new AbortController();
const stop = (signal: NodeJS.Signals) => {
  if (controller.signal.aborted) {
    process.stderr.write(`\n${signal} again: quitting now (the last checkpoint is kept)\n`);
    process.exit(130);
  }
  process.stderr.write(`\n${signal}: stopping after the current step or evaluation batch, with a checkpoint (Ctrl-C again to quit now)…\n`);
  controller.abort(new Error(`interrupted by ${signal}`));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.exitCode = await main(process.argv.slice(2), undefined, controller.signal);
