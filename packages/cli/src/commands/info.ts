import { bytesPerElement, countLoraParameters, type DType, loraConfig } from '@peft/core';
import { describeParameters, type ModelConfig, outputHeadName } from '@peft/models';
import { loadConfig } from '@peft/models/node';
import { int, list, num, parse, str, UsageError } from '../args.js';
import { processGroup } from '../distributed.js';

export const INFO_HELP = `peft info <model dir> [options]

Architecture, parameter counts, the trainable parameters of a LoRA config and a memory estimate,
from config.json alone (no weights are read).

Options:
  --r <n>                LoRA rank (default 8)
  --alpha <n>            lora_alpha (default 8)
  --target-modules <a,b> targets: names, suffixes, or all-linear (default: PEFT's for the model type)
  --dtype <d>            weights' storage dtype for the estimate (default: config.json's torch_dtype)
  --lora-dropout <p>     lora_dropout, shown with the LoRA config (default 0; it changes no count)
  --batch <n>            batch size per process, for the activation estimate (default 8); peft train's
                         --batch-size is per process too
  --ranks <n>            processes training together (default: the job's size under mpirun, else 1):
                         the global batch is the batch × this
  --seq <n>              sequence length for the activation estimate (default 512)
`;

export interface InfoReport {
  config: ModelConfig;
  baseParams: number;
  lora: ReturnType<typeof countLoraParameters>;
  memory: { weights: number; adapterAndOptimizer: number; activations: number; total: number };
  /** The batch per process (what the memory estimate is for), and the processes (null: one, no launcher). */
  batch: { perRank: number; ranks: number | null };
  loraDropout: number;
}

/** Counts and memory from a config (see INFO_HELP). */
export function infoReport(
  config: ModelConfig,
  opts: {
    r?: number;
    alpha?: number;
    loraDropout?: number;
    targetModules?: string[] | string;
    dtype?: DType;
    batch?: number;
    seq?: number;
    ranks?: number | null;
  } = {},
): InfoReport {
  const shapes = describeParameters(config);
  const cfg = loraConfig({
    r: opts.r ?? 8,
    loraAlpha: opts.alpha ?? 8,
    loraDropout: opts.loraDropout ?? 0,
    ...(opts.targetModules ? { targetModules: opts.targetModules } : {}),
  });
  // "all-linear" leaves the output head out, as PEFT and getPeftModel do.
  const lora = countLoraParameters(shapes, cfg, { modelType: config.modelType, outputEmbeddings: outputHeadName(config) });
  const dtype = opts.dtype ?? config.torchDtype ?? 'float32';
  const weights = lora.base * bytesPerElement(dtype);
  // Trainable tensors in float32: weight, gradient, two AdamW moments.
  const adapterAndOptimizer = lora.trainable * 16;
  // Gradient checkpointing keeps each layer's input; one layer is recomputed at a time. A layer's
  // recomputed activations are about 16 hidden-sized tensors plus the MLP's 3 intermediate ones
  // per token, and the logits of the LM head in float32.
  const b = opts.batch ?? 8;
  const t = opts.seq ?? 512;
  const act = bytesPerElement(dtype);
  const activations =
    b *
    t *
    (config.numLayers * config.hiddenSize * act + (16 * config.hiddenSize + 3 * config.intermediateSize) * act + config.vocabSize * 4);
  return {
    config,
    baseParams: lora.base,
    lora,
    memory: { weights, adapterAndOptimizer, activations, total: weights + adapterAndOptimizer + activations },
    batch: { perRank: b, ranks: opts.ranks ?? null },
    loraDropout: cfg.loraDropout,
  };
}

const GiB = 1024 ** 3;

export function formatInfo(r: InfoReport, dir: string): string {
  const c = r.config;
  const lines = [
    `${dir}: ${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, MLP ${c.intermediateSize}, heads ${c.numHeads}` +
      (c.numKvHeads !== c.numHeads ? ` (${c.numKvHeads} key/value)` : '') +
      `, head dim ${c.headDim}, vocabulary ${c.vocabSize}`,
    `  rotary: ${c.rotaryDim} of ${c.headDim} features, base ${c.ropeTheta}${c.rope.type !== 'default' ? `, ${c.rope.type} scaling ${c.rope.factor}` : ''}; ` +
      `${c.modelType === 'gpt_neox' ? `${c.parallelResidual ? 'parallel' : 'sequential'} residual; ` : ''}${c.hiddenAct}; ` +
      `tied embeddings: ${c.tieWordEmbeddings ? 'yes' : 'no'}; torch_dtype ${c.torchDtype ?? 'unset'}`,
    `  parameters: ${r.baseParams.toLocaleString('en-US')}`,
    `  LoRA r=${r.lora.config.r} alpha=${r.lora.config.loraAlpha}${r.loraDropout > 0 ? ` dropout=${r.loraDropout}` : ''} on ${r.lora.targets.length} modules (${summariseTargets(r.lora.targets.map((t) => t.name))})`,
    `  ${r.lora.line}`,
    `  memory estimate: weights ${(r.memory.weights / GiB).toFixed(2)} GiB + LoRA with gradients and AdamW ${(r.memory.adapterAndOptimizer / GiB).toFixed(2)} GiB` +
      ` + activations ${(r.memory.activations / GiB).toFixed(2)} GiB (checkpointed) = ${(r.memory.total / GiB).toFixed(2)} GiB` +
      (r.batch.ranks === null ? '' : ' per process'),
    `  ${batchText(r.batch)}`,
  ];
  return lines.join('\n');
}

/** "batch 8" for one process; "batch 8 per process × 2 processes = 16 global" for several. */
function batchText(b: InfoReport['batch']): string {
  if (b.ranks === null) return `batch ${b.perRank}`;
  return `batch ${b.perRank} per process × ${b.ranks} process${b.ranks === 1 ? '' : 'es'} = ${b.perRank * b.ranks} global`;
}

function summariseTargets(names: string[]): string {
  const suffixes = [...new Set(names.map((n) => n.split('.').at(-1)!))];
  return suffixes.join(', ');
}

export async function infoCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values, positionals } = parse('info', argv, {
    r: { type: 'string' },
    alpha: { type: 'string' },
    'target-modules': { type: 'string' },
    dtype: { type: 'string' },
    'lora-dropout': { type: 'string' },
    batch: { type: 'string' },
    ranks: { type: 'string' },
    seq: { type: 'string' },
  });
  if (values.help || positionals.length !== 1) {
    out(INFO_HELP);
    return;
  }
  const dir = positionals[0]!;
  const ranks = str(values, 'ranks') === undefined ? null : int(str(values, 'ranks'), 'ranks');
  if (ranks !== null && ranks < 1) throw new UsageError(`--ranks ${ranks} must be a number of processes ≥ 1`);
  const loraDropout = num(str(values, 'lora-dropout'), 'lora-dropout', 0);
  if (!(loraDropout >= 0 && loraDropout < 1)) throw new UsageError(`--lora-dropout ${loraDropout} must be in [0, 1)`);
  const group = ranks === null ? await processGroup() : null;
  const config = await loadConfig(dir);
  const targets = list(str(values, 'target-modules'));
  const report = infoReport(config, {
    r: int(str(values, 'r'), 'r', 8),
    alpha: num(str(values, 'alpha'), 'alpha', 8),
    targetModules: targets?.length === 1 && targets[0] === 'all-linear' ? 'all-linear' : targets,
    dtype: str(values, 'dtype') as DType | undefined,
    batch: int(str(values, 'batch'), 'batch', 8),
    seq: int(str(values, 'seq'), 'seq', 512),
    loraDropout,
    ranks: ranks ?? (group?.launched ? group.size : null),
  });
  out(formatInfo(report, dir));
}
