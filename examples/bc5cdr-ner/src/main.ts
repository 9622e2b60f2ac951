// Study B end to end: biomedical NER (BC5CDR) by LoRA-tuned LLM generation. With no arguments it
// trains the bundled tiny Llama on the bundled fixture abstracts on the CPU (a smoke run of every
// step: reading, formatting, LoRA training, generation, parsing, entity-level scoring, the adapter
// folder); with --model and --data it runs the study on Llama-2-7B and the real corpus.
// The command line itself is `peft train bc5cdr`'s (packages/cli/src/commands/bc5cdr.ts).
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  BC5CDR_TINY_DEFAULTS,
  type Bc5cdrCommandDefaults,
  type Bc5cdrOptions,
  type Bc5cdrResult,
  bc5cdrDefaultOut,
  bc5cdrHelp,
  bc5cdrMain,
  parseBc5cdrCommandLine,
  runInterruptible,
  UsageError,
} from '@peft/cli';

/** The bundled tiny Llama and fixture corpus (paths from this file, so any working directory works). */
export const TINY_MODEL = fileURLToPath(new URL('../../../fixtures/models/tiny-llama', import.meta.url));
export const FIXTURE_DATA = fileURLToPath(new URL('../../../packages/datasets/fixtures/bc5cdr', import.meta.url));

const DEFAULTS: Bc5cdrCommandDefaults = {
  usage: 'pnpm --filter @peft/example-bc5cdr-ner start [-- options]',
  tinyModel: TINY_MODEL,
  fixtureData: FIXTURE_DATA,
  // With no arguments the example replaces its own previous tiny run; any other folder is guarded.
  replaceDefaultTinyRun: true,
};

export { UsageError };
export const TINY_DEFAULTS = BC5CDR_TINY_DEFAULTS;
export const HELP = bc5cdrHelp(DEFAULTS);
export const parseCommandLine = (argv: readonly string[]) => parseBc5cdrCommandLine(argv, DEFAULTS);
export const defaultOut = bc5cdrDefaultOut;

/** Runs the example; returns the recipe's result (null for --help). Errors propagate. */
export function main(
  argv: readonly string[],
  opts: { log?: (line: string) => void; progress?: Bc5cdrOptions['progress']; signal?: AbortSignal } = {},
): Promise<Bc5cdrResult | null> {
  return bc5cdrMain(argv, DEFAULTS, opts);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // As `peft train`: the first Ctrl-C (or SIGTERM) stops after the current step with a checkpoint,
  // a second one quits at once (the last checkpoint stays intact, the run folder's lock is removed).
  runInterruptible(
    'bc5cdr-ner',
    (signal) => main(process.argv.slice(2), { signal }),
    'Run the same command with --resume to continue (pnpm start -- --resume).',
  );
}
