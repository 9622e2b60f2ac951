#!/usr/bin/env node
import { main } from './main.js';

const controller = new AbortController();
process.once('SIGINT', () => {
  process.stderr.write('\nstopping after the current step (Ctrl-C again to quit now)…\n');
  controller.abort(new Error('interrupted'));
  process.once('SIGINT', () => process.exit(130));
});
process.exitCode = await main(process.argv.slice(2), undefined, controller.signal);
