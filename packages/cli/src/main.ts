import { TrainingAbortedError } from '@peft/trainer';
import { UsageError } from './args.js';
import { BENCH_HELP, benchCommand } from './commands/bench.js';
import { EVAL_HELP, evalCommand } from './commands/evaluate.js';
import { INFO_HELP, infoCommand } from './commands/info.js';
import { MERGE_HELP, mergeCommand } from './commands/merge.js';
import { PREDICT_HELP, predictCommand } from './commands/predict.js';
import { TRAIN_HELP, trainCommand } from './commands/train.js';
import { ReportedByRankZero } from './distributed.js';
import { cliVersion, unknownMessage } from './suggest.js';

type Command = { help: string; run: (argv: string[], out: (s: string) => void, signal?: AbortSignal) => Promise<void> };

export const COMMANDS: Record<string, Command> = {
  train: { help: TRAIN_HELP, run: trainCommand },
  eval: { help: EVAL_HELP, run: evalCommand },
  predict: { help: PREDICT_HELP, run: predictCommand },
  info: { help: INFO_HELP, run: infoCommand },
  merge: { help: MERGE_HELP, run: mergeCommand },
  bench: { help: BENCH_HELP, run: benchCommand },
};

export function usage(): string {
  const first = (help: string) => help.split('\n')[0];
  return `peft: LoRA fine-tuning of Hugging Face decoder models in TypeScript

Usage: peft <command> [options]      (peft <command> --help for its options)
       peft --version

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${first(c.help)}`)
  .join('\n')}

Models are local Hugging Face folders (config.json, *.safetensors or pytorch_model.bin, tokenizer
files); nothing is downloaded. --backend picks cpu (default), webgpu or cuda.
`;
}

/** Runs the CLI; returns the exit code. */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(`${s}\n`),
  signal?: AbortSignal,
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return name ? 0 : 1;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    out(cliVersion());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`peft: ${unknownMessage('command', name, Object.keys(COMMANDS))}\n`);
    return 2;
  }
  try {
    await command.run(rest, out, signal);
    return 0;
  } catch (error) {
    if (error instanceof ReportedByRankZero) return error.exitCode;
    process.stderr.write(`peft ${name}: ${(error as Error).message}\n`);
    if (error instanceof TrainingAbortedError) {
      process.stderr.write('Run the same command with --resume (and the same --out) to continue.\n');
      return 130;
    }
    if (!(error instanceof UsageError) && process.env.PEFT_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}
