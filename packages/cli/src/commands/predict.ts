import { readFileSync } from 'node:fs';
import { loadAdapter } from '@peft/core/node';
import { CausalLMHead } from '@peft/heads';
import { loadModel, loadTokenizer } from '@peft/models/node';
import { int, parse, str } from '../args.js';
import { createBackend } from '../backends.js';
import { loadLivedoorClassifier } from '../recipes/livedoor.js';

export const PREDICT_HELP = `peft predict <classification|ner> --model <dir> --adapter <dir> [--text <t> ...] [options]

classification  labels for texts with a classification adapter (a livedoor run's adapter/ folder);
                each text is the formatted input (e.g. "{title}\\n{body}" for template 2)
ner             the generated answer for sentences with a causal-LM adapter: the prompt is
                "Input: {sentence}\\nAnswer:" (add --instruction "<text>" for a prompted run)

Texts come from --text (repeatable) or, without it, one per line on standard input.
Options: --max-length <n> (classification, default 512), --max-new-tokens <n> (ner, default 128),
--backend <name>.
`;

export async function predictCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const [kind, ...rest] = argv;
  const { values } = parse('predict', rest, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    text: { type: 'string', multiple: true },
    instruction: { type: 'string' },
    'max-length': { type: 'string' },
    'max-new-tokens': { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
  });
  const model = str(values, 'model');
  const adapter = str(values, 'adapter');
  if (values.help || (kind !== 'classification' && kind !== 'ner') || !model || !adapter) {
    out(PREDICT_HELP);
    return;
  }
  const given = (values as Record<string, unknown>).text as string[] | undefined;
  const texts = given?.length
    ? given
    : readFileSync(0, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
  const backend = await createBackend(str(values, 'backend')!);
  try {
    if (kind === 'classification') {
      const { peft, labels, tokenizer } = await loadLivedoorClassifier(model, adapter, { backend });
      const maxLength = int(str(values, 'max-length'), 'max-length', 512);
      const enc = tokenizer.encodeBatch(texts, {
        maxLength,
        truncation: true,
        padding: 'longest',
        paddingSide: 'right',
        padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
      });
      const ids = await peft.model.predict({ inputIds: enc.inputIds, attentionMask: enc.attentionMask });
      for (const [i, id] of ids.entries()) out(`${labels[id]}\t${texts[i]!.replace(/\n/g, '\\n')}`);
      peft.dispose();
    } else {
      const causal = await loadModel(model, { backend });
      const tokenizer = await loadTokenizer(model);
      await loadAdapter(causal, adapter);
      const head = new CausalLMHead(causal);
      const instruction = str(values, 'instruction');
      const prompts = texts.map((t) => tokenizer.encode(`${instruction ? `${instruction}\n` : ''}Input: ${t}\nAnswer:`));
      const answers = await head.generateText(prompts, {
        maxNewTokens: int(str(values, 'max-new-tokens'), 'max-new-tokens', 128),
        padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
        stopStrings: ['\n'],
        tokenizer,
      });
      for (const a of answers) out(a.trim());
      head.dispose();
    }
  } finally {
    backend.destroy();
  }
}
