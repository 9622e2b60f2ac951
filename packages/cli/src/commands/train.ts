import { UsageError } from '../args.js';
import { type BundledFixtures, bundledFixtures } from '../presets.js';
import { unknownMessage } from '../suggest.js';
import { bc5cdrMain } from './bc5cdr.js';
import { livedoorMain } from './livedoor.js';

export const TRAIN_HELP = `peft train <livedoor|bc5cdr> --model <dir> --data <path> [options]

LoRA-trains a local Hugging Face model on one of the two studies' tasks, keeps the epoch with the
best validation score, evaluates the test split and writes a run folder (log.csv, val-metrics.json,
test-metrics.json, config.json, checkpoints/, the adapter in PEFT format).

  livedoor   Study A: livedoor news classification (9 categories), LoRA + last-token head;
             --data is ldcc-20140209.tar.gz or its text/ folder; --sweep runs the lr × template grid
  bc5cdr     Study B: BC5CDR NER by generation; --data is the folder with CDR_*Set.PubTator.txt
             (or BioC XML, or the BIO files); tagging or extraction, per-label or all labels

Inside the repository, --model and --data may be left out: the bundled tiny model and fixture
corpus are used (seconds on a CPU). A model of hidden size ≤ 256 gets the tiny preset's settings,
any other the study's (one line says which; --preset tiny|study chooses).

Under \`mpirun -np N\` it trains data-parallel over the N processes (--batch-size is per process,
rank 0 writes the run folder); the CLI README's "Several processes (MPI)" has the commands.

\`peft train livedoor --help\` and \`peft train bc5cdr --help\` list every option.
Ctrl-C stops after the current step, writing a checkpoint (a second Ctrl-C quits at once);
--resume continues the run. One run at a time per run folder (run.lock names the process).
`;

/** Each study's command, its usage line, and the bundled tiny model and fixture corpus it runs without --model / --data. */
const STUDIES = {
  livedoor: {
    main: livedoorMain,
    usage: 'peft train livedoor --model <dir> --data <path> [options]',
    bundled: (b: BundledFixtures) => ({ tinyModel: b.tinyGptNeox, fixtureData: b.livedoor }),
  },
  bc5cdr: {
    main: bc5cdrMain,
    usage: 'peft train bc5cdr --model <dir> --data <dir> [options]',
    bundled: (b: BundledFixtures) => ({ tinyModel: b.tinyLlama, fixtureData: b.bc5cdr }),
  },
} as const;

/** Runs a study recipe from the command line; a signal (Ctrl-C) stops it at a step boundary with a checkpoint. */
export async function trainCommand(argv: string[], out: (s: string) => void, signal?: AbortSignal): Promise<void> {
  const [recipe, ...rest] = argv;
  if (recipe === undefined || recipe === '--help' || recipe === '-h') {
    out(TRAIN_HELP);
    if (recipe === undefined) throw new UsageError('which study? livedoor or bc5cdr');
    return;
  }
  if (!Object.hasOwn(STUDIES, recipe))
    throw new UsageError(`${unknownMessage('study', recipe, Object.keys(STUDIES))} Run \`peft train --help\`.`);
  const study = STUDIES[recipe as keyof typeof STUDIES];
  // In a checkout of the repository the bundled tiny models are the default, as in the examples
  // (but each run gets its own folder, as any CLI run).
  const bundled = bundledFixtures();
  await study.main(rest, { usage: study.usage, ...(bundled ? study.bundled(bundled) : {}) }, { log: (line) => out(line), signal });
}
