#!/usr/bin/env node
import { stopOnSignals } from './interrupt.js';
import { main } from './main.js';

// Ctrl-C: the first stops after the current step with a checkpoint, a second quits at once (interrupt.ts).
process.exitCode = await main(process.argv.slice(2), undefined, stopOnSignals());
