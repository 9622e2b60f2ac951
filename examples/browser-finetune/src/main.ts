// The page: pick a model folder and a labelled text file (or keep the bundled ones), train, watch
// the loss, download the adapter. `document.body.dataset.state` says where it is (idle, training,
// done, error) and `window.peftResult` holds the numbers, for the end-to-end test.
import { createWebGpuBackend, webGpuAvailable } from '@peft/backend-webgpu';
import { bytesReader, type FileOpener, filesReader } from '@peft/core';
import { LossChart } from './chart.js';
import { parseLabelledText } from './data.js';
import { DEFAULT_OPTIONS, type FinetuneResult, finetune, TINY_MODEL_FILES } from './finetune.js';

declare global {
  interface Window {
    peftResult?: Omit<FinetuneResult, 'files'> & { files: string[] };
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const button = $<HTMLButtonElement>('train');
const status = $<HTMLSpanElement>('status');
const progress = $<HTMLProgressElement>('progress');
const progressText = $<HTMLSpanElement>('progress-text');
const numbers = {
  steps: $<HTMLInputElement>('steps'),
  batch: $<HTMLInputElement>('batch'),
  lr: $<HTMLInputElement>('lr'),
  rank: $<HTMLInputElement>('rank'),
};

// ?steps=12&batch=4&lr=0.003&rank=8 preset the fields (the end-to-end test uses this).
const query = new URLSearchParams(location.search);
for (const [key, input] of Object.entries(numbers)) {
  const v = query.get(key);
  if (v !== null) input.value = v;
}

function setState(state: 'checking' | 'idle' | 'training' | 'done' | 'error', text: string): void {
  document.body.dataset.state = state;
  status.textContent = text;
}

function checked(name: string): string {
  return (document.querySelector(`input[name="${name}"]:checked`) as HTMLInputElement).value;
}

async function modelOpener(): Promise<{ opener: FileOpener; name: string }> {
  if (checked('model') === 'folder') {
    const files = $<HTMLInputElement>('model-folder').files;
    if (!files || files.length === 0) throw new Error('pick a model folder first (config.json, the weights and the tokenizer files)');
    const folder = files[0]!.webkitRelativePath.split('/')[0] || 'selected folder';
    return { opener: filesReader(files, folder), name: folder };
  }
  const base = new URL('models/tiny-gpt-neox/', document.baseURI);
  const entries = await Promise.all(
    TINY_MODEL_FILES.map(async (name) => {
      const res = await fetch(new URL(name, base));
      if (!res.ok) throw new Error(`fetching ${name} of the bundled model: HTTP ${res.status}`);
      return [name, new Uint8Array(await res.arrayBuffer())] as const;
    }),
  );
  return { opener: bytesReader(new Map(entries), 'tiny-gpt-neox'), name: 'tiny-gpt-neox' };
}

async function labelledText(): Promise<{ content: string; name: string }> {
  if (checked('data') === 'file') {
    const file = $<HTMLInputElement>('data-file').files?.[0];
    if (!file) throw new Error('pick a labelled text file first (one "label<TAB>text" per line)');
    return { content: await file.text(), name: file.name };
  }
  const res = await fetch(new URL('headlines.tsv', document.baseURI));
  if (!res.ok) throw new Error(`fetching the bundled headlines: HTTP ${res.status}`);
  return { content: await res.text(), name: 'headlines.tsv' };
}

const downloads = new Map<string, { name: string; blob: Blob }>();

/** Makes button `id` save `bytes` as `name` (through a temporary link to a blob: URL). */
function offerDownload(id: string, name: string, bytes: Uint8Array, type: string): void {
  downloads.set(id, { name, blob: new Blob([bytes as Uint8Array<ArrayBuffer>], { type }) });
}

for (const id of ['download-weights', 'download-config', 'download-labels']) {
  $(id).addEventListener('click', () => {
    const file = downloads.get(id);
    if (!file) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(file.blob);
    link.download = file.name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  });
}

async function run(): Promise<void> {
  button.disabled = true;
  $('result').hidden = true;
  const number = (input: HTMLInputElement, what: string) => {
    const v = Number(input.value);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${what} must be a positive number, got ${JSON.stringify(input.value)}`);
    return v;
  };
  const backend = await createWebGpuBackend();
  try {
    setState('training', 'reading the files…');
    const steps = Math.round(number(numbers.steps, 'steps'));
    const { opener, name } = await modelOpener();
    const text = await labelledText();
    const data = parseLabelledText(text.content, text.name);
    const chart = new LossChart($<HTMLElement>('chart') as unknown as SVGSVGElement, steps);
    progress.max = steps;
    progress.value = 0;
    const result = await finetune(
      backend,
      opener,
      data,
      {
        ...DEFAULT_OPTIONS,
        steps,
        batchSize: Math.round(number(numbers.batch, 'batch')),
        lr: number(numbers.lr, 'learning rate'),
        r: Math.round(number(numbers.rank, 'LoRA r')),
        loraAlpha: 2 * Math.round(number(numbers.rank, 'LoRA r')),
        modelName: name,
      },
      {
        onStatus: (s) => setState('training', s),
        onStep: ({ step, loss, tokensPerSecond }) => {
          progress.value = step;
          progressText.textContent = `step ${step} / ${steps} · loss ${loss.toFixed(4)} · ${tokensPerSecond.toFixed(0)} tokens/s`;
          chart.push(loss);
        },
      },
    );
    offerDownload(
      'download-weights',
      'adapter_model.safetensors',
      result.files.get('adapter_model.safetensors')!,
      'application/octet-stream',
    );
    offerDownload('download-config', 'adapter_config.json', result.files.get('adapter_config.json')!, 'application/json');
    offerDownload('download-labels', 'labels.json', result.files.get('labels.json')!, 'application/json');
    $('accuracy').textContent =
      `Test accuracy ${(100 * result.accuracy).toFixed(1)}% on ${result.testSize} held-out lines ` +
      `(always answering the most frequent label: ${(100 * result.baseline).toFixed(1)}%). ` +
      `Loss ${result.losses[0]!.toFixed(4)} → ${result.losses.at(-1)!.toFixed(4)}; ` +
      `${result.trainable.toLocaleString('en')} of ${result.total.toLocaleString('en')} parameters trained; ` +
      `${(result.deviceBytes / 2 ** 20).toFixed(1)} MiB of GPU memory.`;
    $('result').hidden = false;
    window.peftResult = { ...result, files: [...result.files.keys()] };
    setState('done', `done: ${steps} steps on ${backend.name}`);
  } finally {
    backend.destroy();
    button.disabled = false;
  }
}

button.addEventListener('click', () => {
  run().catch((err: Error) => {
    console.error(err);
    setState('error', `error: ${err.message}`);
  });
});

setState('checking', 'checking WebGPU…');
const gpu = await webGpuAvailable();
if (gpu.available) {
  document.body.dataset.webgpu = 'yes';
  button.disabled = false;
  setState('idle', `ready (${gpu.reason})`);
} else {
  document.body.dataset.webgpu = 'no';
  setState('error', `WebGPU is not available here: ${gpu.reason}`);
}
