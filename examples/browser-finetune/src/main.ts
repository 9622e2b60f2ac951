// The page: pick a model folder and a labelled text file (or keep the bundled ones) and a backend
// (WebGPU, or the CPU through WebAssembly where WebGPU is missing); see what will train and how
// long it should take; train, watch the loss, stop at any step; download the adapter and try the
// classifier on a sentence. `document.body.dataset` says where the page is (state: checking,
// loading, idle, training, done, stopped, error; backend: webgpu or cpu; webgpu: yes or no), and
// `window.peftResult` holds the numbers, for the end-to-end test.
import { type CpuBackend, createCpuBackend } from '@peft/backend-cpu';
import { createWebGpuBackend, isCpuAdapter, type WebGpuBackend } from '@peft/backend-webgpu';
import { type Backend, bytesReader, type FileOpener, filesReader } from '@peft/core';
import { LossChart } from './chart.js';
import { type LabelledData, parseLabelledText } from './data.js';
import { ClassifierSession, DEFAULT_OPTIONS, type FinetuneResult, type ModelSummary, TINY_MODEL_FILES } from './finetune.js';

declare global {
  interface Window {
    peftResult?: Omit<FinetuneResult, 'files'> & { files: string[] };
    peftSummary?: ModelSummary & { stepSeconds: number; measuredBatch: number; backendDescription: string };
  }
}

type BackendKind = 'webgpu' | 'cpu';
type State = 'checking' | 'loading' | 'idle' | 'training' | 'done' | 'stopped' | 'error';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const trainButton = $<HTMLButtonElement>('train');
const stopButton = $<HTMLButtonElement>('stop');
const status = $<HTMLSpanElement>('status');
const progress = $<HTMLProgressElement>('progress');
const progressText = $<HTMLSpanElement>('progress-text');
const eta = $<HTMLSpanElement>('eta');
const backendSelect = $<HTMLSelectElement>('backend');
const backendNote = $<HTMLDivElement>('backend-note');
const estimate = $<HTMLParagraphElement>('estimate');
const numbers = {
  steps: $<HTMLInputElement>('steps'),
  batch: $<HTMLInputElement>('batch'),
  lr: $<HTMLInputElement>('lr'),
  rank: $<HTMLInputElement>('rank'),
};

// ?steps=12&batch=4&lr=0.003&rank=8&backend=cpu preset the fields (the end-to-end test uses this).
const query = new URLSearchParams(location.search);
for (const [key, input] of Object.entries(numbers)) {
  const v = query.get(key);
  if (v !== null) input.value = v;
}

function setState(state: State, text: string): void {
  document.body.dataset.state = state;
  status.textContent = text;
}

function checked(name: string): string {
  return (document.querySelector(`input[name="${name}"]:checked`) as HTMLInputElement).value;
}

/** A field's value as a positive number (whole when `whole`), or an error naming the field. */
function fieldNumber(input: HTMLInputElement, what: string, whole: boolean): number {
  const v = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(v) || v <= 0) {
    throw new Error(`${what} must be a positive number, got ${JSON.stringify(input.value)}`);
  }
  return whole ? Math.max(1, Math.round(v)) : v;
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return '? s';
  if (s < 1) return `${Math.max(1, Math.round(s * 1000))} ms`;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

// --- WebGPU or the CPU -------------------------------------------------------------------------

/** How to get WebGPU, browser by browser (shown when the page falls back to the CPU). */
const ENABLE_WEBGPU: readonly string[] = [
  'Chrome and Edge (113 or newer) have WebGPU on Windows, macOS and ChromeOS. On Linux open chrome://flags, turn on ' +
    '“Unsafe WebGPU Support” (#enable-unsafe-webgpu) and “Vulkan” (#enable-vulkan) and relaunch, or start the browser ' +
    'with --enable-unsafe-webgpu --enable-features=Vulkan.',
  'Safari has WebGPU from Safari 26; on older macOS use Safari Technology Preview and turn on WebGPU under Develop → Feature Flags.',
  'Firefox has WebGPU from 141 on Windows; elsewhere use Firefox Nightly and set dom.webgpu.enabled to true in about:config.',
  'A browser that has WebGPU but finds no adapter has its GPU or driver blocklisted: chrome://gpu says which.',
];

interface GpuCheck {
  ok: boolean;
  /** The adapter (when ok) or why there is none. */
  text: string;
}

async function checkWebGpu(): Promise<GpuCheck> {
  if (!window.isSecureContext) {
    return { ok: false, text: 'WebGPU needs a secure context and this page has none: open it over https or from localhost' };
  }
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { ok: false, text: 'This browser has no WebGPU (navigator.gpu is missing, or WebGPU is turned off)' };
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, text: 'This browser has WebGPU but found no GPU adapter' };
    const info = adapter.info;
    const name = [info?.vendor, info?.architecture, info?.description].filter((s) => s).join(' ');
    return { ok: true, text: name || 'a GPU adapter' };
  } catch (err) {
    return { ok: false, text: `Asking WebGPU for an adapter failed (${(err as Error).message})` };
  }
}

let gpuCheck: GpuCheck = { ok: false, text: 'not checked yet' };
let backend: Backend | null = null;

function describeBackend(b: Backend): string {
  if (b.name === 'cpu') {
    const engine = (b as CpuBackend).gemmEngine;
    return `CPU, WebAssembly (matrix products on ${engine.name} x${engine.threads} thread${engine.threads > 1 ? 's' : ''})`;
  }
  const soft = isCpuAdapter((b as WebGpuBackend).device) ? ', a software adapter running on the CPU' : '';
  return `WebGPU (${gpuCheck.text}${soft})`;
}

/** The backend of the chosen kind, made once and kept until the choice changes. */
async function backendFor(kind: BackendKind): Promise<Backend> {
  if (backend?.name === kind) return backend;
  backend?.destroy();
  backend = null;
  if (kind === 'webgpu') {
    try {
      backend = await createWebGpuBackend();
      return backend;
    } catch (err) {
      fallBackToCpu(`WebGPU could not start (${(err as Error).message.split('. ')[0]})`);
    }
  }
  backend = createCpuBackend();
  return backend;
}

function fallBackToCpu(why: string): void {
  backendSelect.value = 'cpu';
  (backendSelect.querySelector('option[value="webgpu"]') as HTMLOptionElement).disabled = true;
  const what = document.createElement('p');
  what.textContent = `${why}. Training runs on the CPU (WebAssembly) instead: the same training, only slower.`;
  const how = document.createElement('p');
  how.textContent = 'To train on the GPU:';
  const list = document.createElement('ul');
  list.append(
    ...ENABLE_WEBGPU.map((line) => {
      const item = document.createElement('li');
      item.textContent = line;
      return item;
    }),
  );
  backendNote.replaceChildren(what, how, list);
  backendNote.hidden = false;
}

// --- the model, the data and the classifier built on them --------------------------------------

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

async function labelledData(): Promise<LabelledData> {
  if (checked('data') === 'file') {
    const file = $<HTMLInputElement>('data-file').files?.[0];
    if (!file) throw new Error('pick a labelled text file first (one "label<TAB>text" per line)');
    return parseLabelledText(await file.text(), file.name);
  }
  const res = await fetch(new URL('headlines.tsv', document.baseURI));
  if (!res.ok) throw new Error(`fetching the bundled headlines: HTTP ${res.status}`);
  return parseLabelledText(await res.text(), 'headlines.tsv');
}

let session: ClassifierSession | null = null;
/** Seconds of one step measured on a batch of `measuredBatch`, for the time estimate. */
let stepSeconds = Number.NaN;
let measuredBatch = 1;

function showSummary(s: ModelSummary, backendText: string): void {
  const pct = (100 * s.trainable) / s.total;
  const targetNames = [...new Set(s.targets.map((t) => t.split('.').at(-1)))].join(', ');
  const rows: [string, string][] = [
    ['architecture', `${s.architecture} (${s.modelType})`],
    ['layers', String(s.layers)],
    ['hidden size', `${s.hiddenSize} (${s.heads} attention heads, vocabulary ${s.vocabSize.toLocaleString('en')})`],
    ['parameters', `${s.total.toLocaleString('en')} in all`],
    [
      'trainable with LoRA',
      `${s.trainable.toLocaleString('en')} (${pct < 0.1 ? pct.toPrecision(2) : pct.toFixed(2)}%): LoRA and the score head`,
    ],
    [
      'adapter',
      `LoRA r ${s.r}, alpha ${s.loraAlpha}, dropout ${s.loraDropout} on ${targetNames} (${s.targets.length} modules); ` +
        `trained in full: ${s.modulesToSave.join(', ')} (${s.labels.length} classes)`,
    ],
    ['data', `${s.trainSize} lines to train on, ${s.testSize} held out; classes ${s.labels.join(', ')}`],
    ['backend', backendText],
  ];
  const body = $<HTMLTableSectionElement>('summary-rows');
  body.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = v;
      td.dataset.field = k;
      tr.append(th, td);
      return tr;
    }),
  );
  $('summary').hidden = false;
}

/** "one step ≈ … → about N s for S steps", from the measured step scaled to the batch size in the field. */
function showEstimate(): void {
  if (!Number.isFinite(stepSeconds)) {
    estimate.textContent = 'Time: measuring one step…';
    return;
  }
  try {
    const steps = fieldNumber(numbers.steps, 'steps', true);
    const batch = fieldNumber(numbers.batch, 'batch', true);
    const perStep = (stepSeconds * batch) / measuredBatch;
    estimate.textContent =
      `Time: one step of ${batch} takes about ${seconds(perStep)} here (measured on a batch of ${measuredBatch}), ` +
      `so ${steps} steps should take about ${seconds(perStep * steps)}. The estimate is refined while training.`;
  } catch (err) {
    estimate.textContent = `Time: ${(err as Error).message}`;
  }
}

/** Builds the classifier for the current choices (model, data, LoRA r, backend), shows what it is and times a step. */
async function prepare(): Promise<void> {
  trainButton.disabled = true;
  session?.dispose();
  session = null;
  $('try').hidden = true; // a new classifier has not trained yet (the downloads of the last run stay)
  setState('loading', 'loading the model…');
  const kind = backendSelect.value as BackendKind;
  const b = await backendFor(kind);
  document.body.dataset.backend = b.name;
  const { opener, name } = await modelOpener();
  const data = await labelledData();
  const r = fieldNumber(numbers.rank, 'LoRA r', true);
  session = await ClassifierSession.create(
    b,
    opener,
    data,
    {
      ...DEFAULT_OPTIONS,
      steps: fieldNumber(numbers.steps, 'steps', true),
      batchSize: fieldNumber(numbers.batch, 'batch', true),
      lr: fieldNumber(numbers.lr, 'learning rate', false),
      r,
      loraAlpha: 2 * r,
      modelName: name,
    },
    { onStatus: (s) => setState('loading', s) },
  );
  const backendText = describeBackend(b);
  showSummary(session.summary, backendText);
  stepSeconds = Number.NaN;
  showEstimate();
  setState('loading', `timing one training step on ${b.name}…`);
  measuredBatch = Math.min(session.options.batchSize, session.summary.trainSize); // the rows measureStep times
  stepSeconds = await session.measureStep();
  showEstimate();
  window.peftSummary = { ...session.summary, stepSeconds, measuredBatch, backendDescription: backendText };
  trainButton.disabled = false;
  setState('idle', `ready to train on ${b.name === 'cpu' ? 'the CPU' : 'WebGPU'}`);
}

/** Runs `prepare` after any running one; an error shows in the status line. */
let preparing: Promise<void> = Promise.resolve();
let prepareGeneration = 0;
function requestPrepare(): Promise<void> {
  const generation = ++prepareGeneration;
  preparing = preparing
    .then(() => (generation === prepareGeneration ? prepare() : undefined))
    .catch((err: Error) => {
      console.error(err);
      session?.dispose();
      session = null;
      trainButton.disabled = false; // Train tries again (and shows the error again if it persists)
      setState('error', `error: ${err.message}`);
    });
  return preparing;
}

// --- training ----------------------------------------------------------------------------------

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

const chartSvg = $<HTMLElement>('chart') as unknown as SVGSVGElement;
let training = false;
let stopper: AbortController | null = null;

async function train(): Promise<void> {
  training = true;
  trainButton.disabled = true;
  $('result').hidden = true;
  $('try').hidden = true;
  progress.value = 0;
  progressText.textContent = '';
  eta.textContent = '';
  try {
    await preparing;
    // A classifier trains once; a new run (or one after changed settings or an error) builds a fresh one.
    if (session === null || session.trained) await requestPrepare();
    if (session === null) return; // prepare failed and said why
    const s = session;
    const steps = fieldNumber(numbers.steps, 'steps', true);
    const settings = { steps, batchSize: fieldNumber(numbers.batch, 'batch', true), lr: fieldNumber(numbers.lr, 'learning rate', false) };
    const chart = new LossChart(chartSvg, steps);
    progress.max = steps;
    progress.value = 0;
    progressText.textContent = '';
    eta.textContent = `about ${seconds((stepSeconds * settings.batchSize * steps) / measuredBatch)} left`;
    stopper = new AbortController();
    stopButton.disabled = false;
    const outcome = await s.trainSteps(
      {
        signal: stopper.signal,
        onStatus: (text) => setState('training', text),
        onStep: ({ step, loss, tokensPerSecond, secondsLeft }) => {
          progress.value = step;
          progressText.textContent = `step ${step} / ${steps} · loss ${loss.toFixed(4)} · ${tokensPerSecond.toFixed(0)} tokens/s`;
          eta.textContent = step < steps ? `about ${seconds(secondsLeft)} left` : '';
          chart.push(loss);
        },
      },
      settings,
    );
    stopButton.disabled = true;
    const ran = outcome.losses.length;
    chart.fitSteps();
    setState('training', `evaluating on ${s.summary.testSize} held-out lines…`);
    const evaluation = await s.evaluate();
    const files = await s.files();
    offerDownload('download-weights', 'adapter_model.safetensors', files.get('adapter_model.safetensors')!, 'application/octet-stream');
    offerDownload('download-config', 'adapter_config.json', files.get('adapter_config.json')!, 'application/json');
    offerDownload('download-labels', 'labels.json', files.get('labels.json')!, 'application/json');
    const memory = s.backend.memory().bytes / 2 ** 20;
    $('accuracy').textContent =
      `Test accuracy ${(100 * evaluation.accuracy).toFixed(1)}% on ${s.summary.testSize} held-out lines ` +
      `(always answering the most frequent label: ${(100 * evaluation.baseline).toFixed(1)}%). ` +
      (ran > 0
        ? `Loss ${outcome.losses[0]!.toFixed(4)} → ${outcome.losses.at(-1)!.toFixed(4)} over ${ran} steps in ${seconds(outcome.seconds)}; `
        : '') +
      `${s.summary.trainable.toLocaleString('en')} of ${s.summary.total.toLocaleString('en')} parameters trained; ` +
      `${memory.toFixed(1)} MiB of ${s.backend.name === 'cpu' ? '' : 'GPU '}memory.`;
    $('result').hidden = false;
    $('try').hidden = false;
    $<HTMLParagraphElement>('try-message').textContent = '';
    window.peftResult = {
      ...evaluation,
      labels: s.data.labels,
      losses: outcome.losses,
      stopped: outcome.stopped,
      testSize: s.summary.testSize,
      trainSize: s.summary.trainSize,
      files: [...files.keys()],
      trainable: s.summary.trainable,
      total: s.summary.total,
      deviceBytes: s.backend.memory().bytes,
    };
    eta.textContent = '';
    if (outcome.stopped) {
      setState(
        'stopped',
        ran === 0
          ? `stopped before the first step on ${s.backend.name}: the adapter below is untrained`
          : `stopped after ${ran} of ${steps} steps on ${s.backend.name}: the adapter keeps what those ${ran} steps trained (download it or try it below)`,
      );
    } else {
      setState('done', `done: ${steps} steps on ${s.backend.name}`);
    }
  } finally {
    training = false;
    stopper = null;
    stopButton.disabled = true;
    trainButton.disabled = false;
  }
}

trainButton.addEventListener('click', () => {
  train().catch((err: Error) => {
    console.error(err);
    eta.textContent = '';
    setState('error', `error: ${err.message}`);
  });
});

stopButton.addEventListener('click', () => {
  if (!stopper) return;
  stopper.abort();
  stopButton.disabled = true;
  setState('training', 'stopping after this step…');
});

// --- try it ------------------------------------------------------------------------------------

$<HTMLFormElement>('try-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const message = $<HTMLParagraphElement>('try-message');
  const output = $<HTMLTableElement>('try-output');
  const text = $<HTMLInputElement>('try-text').value;
  if (session === null || !session.trained || training) {
    message.textContent = 'train first (or wait for training to end)';
    return;
  }
  session
    .classify(text)
    .then((classes) => {
      message.textContent = `“${text.trim()}” is most likely ${classes[0]!.label}:`;
      output.tBodies[0]!.replaceChildren(
        ...classes.map(({ label, probability }) => {
          const tr = document.createElement('tr');
          tr.dataset.label = label;
          tr.dataset.probability = String(probability);
          const name = document.createElement('td');
          name.textContent = label;
          const value = document.createElement('td');
          value.className = 'number';
          value.textContent = `${(100 * probability).toFixed(1)}%`;
          const barCell = document.createElement('td');
          const bar = document.createElement('div');
          bar.className = 'bar';
          bar.style.width = `${(100 * probability).toFixed(1)}%`;
          barCell.append(bar);
          tr.append(name, value, barCell);
          return tr;
        }),
      );
      output.hidden = false;
    })
    .catch((err: Error) => {
      output.hidden = true;
      message.textContent = `error: ${err.message}`;
    });
});

// --- start -------------------------------------------------------------------------------------

const rebuild = () => {
  if (!training) void requestPrepare();
};
document.querySelectorAll('input[name="model"], input[name="data"], #model-folder, #data-file, #rank').forEach((el) => {
  el.addEventListener('change', rebuild);
});
backendSelect.addEventListener('change', rebuild);
for (const input of [numbers.steps, numbers.batch]) input.addEventListener('input', showEstimate);

/** Empty axes (for the steps in the field) until training draws on them. */
function emptyChart(): void {
  const state = document.body.dataset.state;
  if (training || state === 'done' || state === 'stopped') return; // keep the curve of the last run
  try {
    new LossChart(chartSvg, fieldNumber(numbers.steps, 'steps', true)).placeholder('the loss of each step appears here while training');
  } catch {
    // steps is not a number yet: keep the chart as it is
  }
}
numbers.steps.addEventListener('input', emptyChart);
emptyChart();

setState('checking', 'checking WebGPU…');
gpuCheck = await checkWebGpu();
document.body.dataset.webgpu = gpuCheck.ok ? 'yes' : 'no';
if (!gpuCheck.ok) fallBackToCpu(gpuCheck.text);
else if (query.get('backend') === 'cpu') backendSelect.value = 'cpu';
void requestPrepare();
