import { type Backend, backward, crossEntropy, Generator, getPeftModel, loraConfig, memoryInfo, reshape, tidy } from '@peft/core';
import { createModel, parseConfig } from '@peft/models';
import { int, parse, str } from '../args.js';
import { createBackend } from '../backends.js';

export const BENCH_HELP = `peft bench [--backend cpu] [--config tiny|small] [--batch n] [--seq n] [--steps n]

Times LoRA training steps (forward, backward, no optimizer) of a randomly initialised model on
the chosen backend and prints tokens/s. The repository's \`pnpm bench\` compares kernels with
other libraries side by side.

  tiny   GPT-NeoX, 2 layers, hidden 64 (the bundled test model's shape)
  small  GPT-NeoX, 6 layers, hidden 512, vocabulary 8192 (~27M parameters)
`;

const CONFIGS: Record<string, Record<string, unknown>> = {
  tiny: {
    model_type: 'gpt_neox',
    vocab_size: 600,
    hidden_size: 64,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    intermediate_size: 256,
    rotary_pct: 0.25,
  },
  small: {
    model_type: 'gpt_neox',
    vocab_size: 8192,
    hidden_size: 512,
    num_attention_heads: 8,
    num_hidden_layers: 6,
    intermediate_size: 2048,
    rotary_pct: 0.25,
  },
};

export interface BenchResult {
  config: string;
  backend: string;
  batch: number;
  seq: number;
  stepMs: number;
  tokensPerSecond: number;
  trainable: number;
  total: number;
}

/** LoRA (r=8 on query_key_value) training steps of a random model; median step time. */
export async function benchTraining(
  backend: Backend,
  opts: { config: string; batch: number; seq: number; steps: number },
): Promise<BenchResult> {
  const raw = CONFIGS[opts.config];
  if (!raw) throw new Error(`--config ${opts.config}: choose one of ${Object.keys(CONFIGS).join(', ')}`);
  const config = parseConfig(raw);
  const gen = new Generator(0);
  const model = createModel(config, { backend, generator: gen });
  const peft = getPeftModel(model, loraConfig({ r: 8, loraAlpha: 16 }), { generator: gen });
  const ids = Array.from({ length: opts.batch }, (_, b) => Array.from({ length: opts.seq }, (_, t) => (b * 31 + t * 7) % config.vocabSize));
  const targets = ids.flatMap((row) => [...row.slice(1), -100]);
  const times: number[] = [];
  for (let i = 0; i < opts.steps + 1; i++) {
    const start = performance.now();
    const loss = tidy(() => {
      const { logits } = model.forward({ inputIds: ids });
      return crossEntropy(reshape(logits, [-1, config.vocabSize]), targets);
    });
    backward(loss);
    await loss.item();
    loss.dispose();
    for (const p of peft.trainableParameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    if (i > 0) times.push(performance.now() - start);
  }
  const counts = peft.parameterCounts();
  peft.dispose();
  times.sort((a, b) => a - b);
  const stepMs = times[Math.floor(times.length / 2)]!;
  if (memoryInfo(backend).tensors > 0) {
    // Everything was disposed; a leftover would be a leak worth reporting.
    throw new Error(`bench: ${memoryInfo(backend).tensors} tensors left after the run`);
  }
  return {
    config: opts.config,
    backend: backend.name,
    batch: opts.batch,
    seq: opts.seq,
    stepMs,
    tokensPerSecond: (opts.batch * opts.seq) / (stepMs / 1000),
    trainable: counts.trainable,
    total: counts.total,
  };
}

export async function benchCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values } = parse('bench', argv, {
    backend: { type: 'string', default: 'cpu' },
    config: { type: 'string', default: 'tiny' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    steps: { type: 'string' },
  });
  if (values.help) {
    out(BENCH_HELP);
    return;
  }
  const backend = await createBackend(str(values, 'backend')!);
  try {
    const r = await benchTraining(backend, {
      config: str(values, 'config')!,
      batch: int(str(values, 'batch'), 'batch', 4),
      seq: int(str(values, 'seq'), 'seq', 128),
      steps: int(str(values, 'steps'), 'steps', 5),
    });
    out(
      `LoRA training step, ${r.config} config (${r.total.toLocaleString('en-US')} parameters, ${r.trainable.toLocaleString('en-US')} trainable) on ${r.backend}: ` +
        `batch ${r.batch} × ${r.seq} tokens, ${r.stepMs.toFixed(1)} ms/step, ${Math.round(r.tokensPerSecond).toLocaleString('en-US')} tokens/s`,
    );
  } finally {
    backend.destroy();
  }
}
