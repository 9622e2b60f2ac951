// Study A end to end: livedoor news classification (9 categories) with a LoRA-tuned decoder LLM
// and a last-token head. With no arguments it trains the bundled tiny GPT-NeoX on the fixture
// corpus on the CPU (about half a minute) and prints the study's table; with --model and --data it
// runs the study on a real checkpoint and the real corpus, and --sweep runs its lr × template grid.
// The command line itself is `peft train livedoor`'s (packages/cli/src/commands/livedoor.ts).
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  LIVEDOOR_STUDY_DEFAULTS,
  LIVEDOOR_TINY_DEFAULTS,
  type LivedoorCommandDefaults,
  type LivedoorCommandLine,
  type LivedoorOptions,
  type LivedoorResult,
  livedoorDefaultOut,
  livedoorHelp,
  livedoorMain,
  livedoorReport,
  parseLivedoorCommandLine,
  runInterruptible,
  UsageError,
} from '@peft/cli';

/** The bundled tiny GPT-NeoX and fixture corpus (paths from this file, so any working directory works). */
export const TINY_MODEL = fileURLToPath(new URL('../../../fixtures/models/tiny-gpt-neox', import.meta.url));
export const FIXTURE_DATA = fileURLToPath(new URL('../../../packages/datasets/fixtures/livedoor/ldcc-fixture.tar.gz', import.meta.url));

const DEFAULTS: LivedoorCommandDefaults = {
  usage: 'pnpm --filter @peft/example-livedoor-classification start [-- options]',
  tinyModel: TINY_MODEL,
  fixtureData: FIXTURE_DATA,
  // `pnpm start` with no arguments replaces its own previous tiny run in runs/tiny-gpt-neox;
  // any other run folder (--out, --model) needs --resume or --overwrite when it holds a run.
  replaceDefaultTinyRun: true,
};

export { UsageError };
export const TINY_DEFAULTS = LIVEDOOR_TINY_DEFAULTS;
export const STUDY_DEFAULTS = LIVEDOOR_STUDY_DEFAULTS;
export const HELP = livedoorHelp(DEFAULTS);
export type CommandLine = LivedoorCommandLine;
export const parseCommandLine = (argv: readonly string[]): CommandLine => parseLivedoorCommandLine(argv, DEFAULTS);
export const defaultOut = livedoorDefaultOut;
export const report = livedoorReport;

/** Runs the example; returns the recipe's result (null for --help). Errors propagate. */
export function main(
  argv: readonly string[],
  opts: { log?: (line: string) => void; progress?: LivedoorOptions['progress']; signal?: AbortSignal } = {},
): Promise<LivedoorResult | null> {
  return livedoorMain(argv, DEFAULTS, opts);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // As `peft train`: the first Ctrl-C (or SIGTERM) stops after the current step with a checkpoint,
  // a second one quits at once (the last checkpoint stays intact, the run folder's lock is removed).
  runInterruptible(
    'livedoor-classification',
    (signal) => main(process.argv.slice(2), { signal }),
    'Run the same command with --resume to continue (pnpm start -- --resume).',
  );
}
