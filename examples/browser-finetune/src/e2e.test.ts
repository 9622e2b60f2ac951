// End to end in a real browser: Vite builds the page and serves it on 127.0.0.1 (WebGPU needs a
// secure context, which localhost is), Debian's headless Chromium opens it through
// playwright-core. On WebGPU (SwiftShader here): the summary and time estimate before training,
// training with the estimate counting down, the adapter downloads, the classifier tried on a
// sentence. With navigator.gpu hidden: the page says how to enable WebGPU, trains on the CPU
// (WebAssembly), and a Stop click ends training within a step and keeps what trained. Skips,
// saying why, without /usr/bin/chromium (and the WebGPU part without WebGPU in it).
// BROWSER_FINETUNE_SCREENSHOTS=/tmp saves screenshots of the page there.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCpuBackend } from '@peft/backend-cpu';
import { bytesReader } from '@peft/core';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { build, type PreviewServer, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLOT } from './chart.js';
import { parseLabelledText } from './data.js';
import { ClassifierSession, TINY_MODEL_FILES } from './finetune.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = join(ROOT, '..', '..', 'fixtures', 'models', 'tiny-gpt-neox');

/** The losses of the page's first `steps` steps, computed in Node on the CPU backend (same seed, same batches). */
async function referenceLosses(steps: number): Promise<number[]> {
  const backend = createCpuBackend();
  try {
    const opener = bytesReader(new Map(TINY_MODEL_FILES.map((f) => [f, new Uint8Array(readFileSync(join(MODEL, f)))])), 'tiny-gpt-neox');
    const data = parseLabelledText(readFileSync(join(ROOT, 'public', 'headlines.tsv'), 'utf8'), 'headlines.tsv');
    const session = await ClassifierSession.create(backend, opener, data, { steps });
    const { losses } = await session.trainSteps();
    session.dispose();
    return losses;
  } finally {
    backend.destroy();
  }
}
const haveChromium = existsSync(CHROMIUM);
const SHOTS = process.env.BROWSER_FINETUNE_SCREENSHOTS;
if (!haveChromium) console.warn(`[browser-finetune] skipping the end-to-end test: ${CHROMIUM} is missing (apt-get install chromium)`);

describe.skipIf(!haveChromium)('browser-finetune end to end (headless Chromium: WebGPU, and the CPU without it)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peft-browser-finetune-'));
  let server: PreviewServer;
  let context: BrowserContext;
  let page: Page;
  let url: string;
  const pageErrors: string[] = [];

  function watch(p: Page): void {
    p.on('pageerror', (err) => {
      pageErrors.push(err.message);
      console.error(`[page] ${err.message}`);
    });
  }

  async function shot(p: Page, name: string): Promise<void> {
    if (!SHOTS) return;
    const path = join(SHOTS, `browser-finetune-${name}.png`);
    await p.screenshot({ path, fullPage: true });
    console.log(`[browser-finetune] screenshot ${path}`);
  }

  /** The summary table as { field: text }. */
  async function summary(p: Page): Promise<Record<string, string>> {
    return p.$$eval('#summary-rows td', (cells) => Object.fromEntries(cells.map((c) => [(c as HTMLElement).dataset.field, c.textContent])));
  }

  /** Downloads the adapter's weights and returns the safetensors header. */
  async function downloadedWeights(p: Page): Promise<Record<string, { dtype: string; shape: number[] }>> {
    const [weights] = await Promise.all([p.waitForEvent('download'), p.click('#download-weights')]);
    expect(weights.suggestedFilename()).toBe('adapter_model.safetensors');
    const bytes = readFileSync((await weights.path())!);
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    expect(headerLength).toBeGreaterThan(0);
    expect(8 + headerLength).toBeLessThan(bytes.byteLength);
    return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  }

  /** Classifies `text` with the Try-it box; returns the rows shown, checking that they are all classes, sorted, summing to 1. */
  async function tryIt(p: Page, text: string): Promise<{ label: string; probability: number; shown: string }[]> {
    expect(await p.isVisible('#try')).toBe(true);
    await p.fill('#try-text', text);
    await p.$eval('#try-output', (t) => {
      (t as HTMLElement).hidden = true;
    });
    await p.click('#try-run');
    await p.waitForSelector('#try-output:not([hidden])');
    const rows = await p.$$eval('#try-output tbody tr', (trs) =>
      trs.map((tr) => ({
        label: (tr as HTMLElement).dataset.label!,
        probability: Number((tr as HTMLElement).dataset.probability),
        shown: tr.children[1]!.textContent!,
      })),
    );
    expect(rows.map((r) => r.label).sort()).toEqual(['IT', 'スポーツ', '経済'].sort());
    expect(rows.reduce((a, r) => a + r.probability, 0)).toBeCloseTo(1, 5);
    for (let i = 1; i < rows.length; i++) expect(rows[i - 1]!.probability).toBeGreaterThanOrEqual(rows[i]!.probability);
    for (const r of rows) expect(r.shown).toBe(`${(100 * r.probability).toFixed(1)}%`);
    expect(await p.textContent('#try-message')).toContain(`is most likely ${rows[0]!.label}`);
    return rows;
  }

  /** The chart's points, each inside the plot area. */
  async function chartPoints(p: Page): Promise<[number, number][]> {
    const points = (await p.getAttribute('#chart polyline.loss', 'points'))!
      .trim()
      .split(/\s+/)
      .map((xy) => xy.split(',').map(Number) as [number, number]);
    for (const [x, y] of points) {
      expect(x).toBeGreaterThanOrEqual(PLOT.left);
      expect(x).toBeLessThanOrEqual(PLOT.right);
      expect(y).toBeGreaterThanOrEqual(PLOT.top);
      expect(y).toBeLessThanOrEqual(PLOT.bottom);
    }
    return points;
  }

  beforeAll(async () => {
    const configFile = join(ROOT, 'vite.config.ts');
    const outDir = join(tmp, 'dist');
    await build({ configFile, root: ROOT, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
    server = await preview({
      configFile,
      root: ROOT,
      logLevel: 'warn',
      build: { outDir },
      preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
    });
    const address = server.httpServer.address();
    if (address === null || typeof address === 'string') throw new Error(`vite preview listens on ${String(address)}`);
    url = `http://127.0.0.1:${address.port}/`;
    context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: [
        '--headless=new',
        '--no-sandbox',
        // WebGPU on Linux is behind this flag; without a GPU Chromium's Dawn picks SwiftShader (Vulkan on the CPU).
        '--enable-unsafe-webgpu',
        '--enable-features=Vulkan',
        '--disable-gpu-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    watch(page);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await new Promise<void>((resolve) => (server ? server.httpServer.close(() => resolve()) : resolve()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('on WebGPU: summary and time estimate first, then training with time left, downloads, and the classifier tried on a sentence', async (ctx) => {
    await page.goto(`${url}?steps=6&batch=4`);
    await page.waitForSelector('body[data-webgpu]');
    if ((await page.getAttribute('body', 'data-webgpu')) !== 'yes') {
      const why = await page.textContent('#backend-note');
      console.warn(`[browser-finetune] skipping the WebGPU part: ${why}`);
      ctx.skip();
    }
    await page.waitForSelector('body[data-state="idle"], body[data-state="error"]', { timeout: 60_000 });
    expect(await page.getAttribute('body', 'data-state'), `page status: ${await page.textContent('#status')}`).toBe('idle');
    expect(await page.getAttribute('body', 'data-backend')).toBe('webgpu');
    const fields = await summary(page);
    expect(fields.architecture).toBe('GPTNeoXForCausalLM (gpt_neox)');
    expect(fields.layers).toBe('2');
    expect(fields['hidden size']).toMatch(/^64 \(4 attention heads/);
    expect(fields['trainable with LoRA']).toMatch(/^4,288 \(/);
    expect(fields.adapter).toMatch(
      /^LoRA r 8, alpha 16, dropout 0\.05 on query_key_value \(2 modules\); trained in full: score \(3 classes\)/,
    );
    expect(fields.backend).toMatch(/^WebGPU \(/);
    expect(await page.textContent('#estimate')).toMatch(/so 6 steps should take about [\d.]+ (ms|s|min)\./);
    await shot(page, 'webgpu-ready');

    const started = Date.now();
    await page.click('#train');
    // The time left, extrapolated from the steps so far (here the second), while training.
    await page.waitForFunction(
      () => {
        const bar = document.getElementById('progress') as HTMLProgressElement;
        const left = document.getElementById('eta')!.textContent ?? '';
        return bar.value >= 2 && bar.value < bar.max && /^about [\d.]+ (ms|s|min) left$/.test(left);
      },
      null,
      { timeout: 60_000 },
    );
    expect(await page.isEnabled('#stop')).toBe(true);
    await shot(page, 'webgpu-training');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 75_000 });
    const status = await page.textContent('#status');
    expect(await page.getAttribute('body', 'data-state'), `page status: ${status}`).toBe('done');
    const result = await page.evaluate(() => window.peftResult!);
    console.log(
      `[browser-finetune] WebGPU: 6 steps in ${((Date.now() - started) / 1000).toFixed(1)} s: loss ${result.losses.map((l) => l.toFixed(3)).join(' ')}; ` +
        `test accuracy ${(100 * result.accuracy).toFixed(1)}% (majority ${(100 * result.baseline).toFixed(1)}%)`,
    );
    expect(result.losses).toHaveLength(6);
    expect(result.stopped).toBe(false);
    // The same training as the CPU backend's (whose loss going down the CPU test below checks over 24 steps).
    const reference = await referenceLosses(6);
    for (const [i, loss] of result.losses.entries()) {
      expect(loss, `step ${i + 1}: WebGPU ${loss}, CPU ${reference[i]}`).toBeCloseTo(reference[i]!, 2);
    }
    expect([...result.files].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'labels.json']);
    expect(await page.isVisible('#result')).toBe(true);
    expect(await page.textContent('#progress-text')).toMatch(/^step 6 \/ 6/);
    expect(await chartPoints(page)).toHaveLength(6);

    // The weights: a safetensors file (u64 little-endian header length, then the JSON header).
    const header = await downloadedWeights(page);
    expect(header['base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight']).toMatchObject({
      dtype: 'F32',
      shape: [8, 64],
    });
    expect(header['base_model.model.gpt_neox.layers.1.attention.query_key_value.lora_B.weight']).toMatchObject({
      dtype: 'F32',
      shape: [192, 8],
    });
    expect(header['base_model.model.score.weight']).toMatchObject({ dtype: 'F32', shape: [3, 64] });

    // The config: PEFT's adapter_config.json.
    const [config] = await Promise.all([page.waitForEvent('download'), page.click('#download-config')]);
    const json = JSON.parse(readFileSync((await config.path())!, 'utf8'));
    expect(json).toMatchObject({ peft_type: 'LORA', task_type: 'SEQ_CLS', r: 8, lora_alpha: 16, base_model_name_or_path: 'tiny-gpt-neox' });
    expect(json.modules_to_save).toContain('score');

    const rows = await tryIt(page, '新型スマートフォンを発表');
    console.log(`[browser-finetune] WebGPU try-it: ${rows.map((r) => `${r.label} ${r.shown}`).join(', ')}`);
    await shot(page, 'webgpu-done');
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('without WebGPU: says how to enable it, trains on the CPU, and Stop ends training within a step keeping what trained', async () => {
    const cpuPage = await context.newPage();
    watch(cpuPage);
    // As a browser without WebGPU: navigator.gpu is gone before the page's scripts run.
    await cpuPage.addInitScript(() => {
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
    await cpuPage.goto(`${url}?steps=24&batch=4`);
    await cpuPage.waitForSelector('body[data-state="idle"], body[data-state="error"]', { timeout: 60_000 });
    expect(await cpuPage.getAttribute('body', 'data-state'), `page status: ${await cpuPage.textContent('#status')}`).toBe('idle');
    expect(await cpuPage.evaluate(() => 'gpu' in navigator)).toBe(false);
    expect(await cpuPage.getAttribute('body', 'data-webgpu')).toBe('no');
    expect(await cpuPage.getAttribute('body', 'data-backend')).toBe('cpu');
    expect(await cpuPage.inputValue('#backend')).toBe('cpu');
    expect(await cpuPage.isDisabled('#backend option[value="webgpu"]')).toBe(true);
    const note = (await cpuPage.textContent('#backend-note'))!;
    expect(await cpuPage.isVisible('#backend-note')).toBe(true);
    expect(note).toMatch(/^This browser has no WebGPU .*Training runs on the CPU \(WebAssembly\) instead.*To train on the GPU:/);
    for (const how of ['chrome://flags', '--enable-unsafe-webgpu', 'Safari Technology Preview', 'Firefox Nightly', 'dom.webgpu.enabled']) {
      expect(note).toContain(how);
    }
    expect(note).not.toMatch(/\bNode\b|npm|webgpu package/);
    const cpuBackend = (await summary(cpuPage)).backend!;
    console.log(`[browser-finetune] CPU backend: ${cpuBackend}`);
    expect(cpuBackend).toMatch(/^CPU, WebAssembly \(matrix products on wasm-simd x\d+ threads?\)$/);
    // vite serves the page cross-origin isolated, so the GEMM has SharedArrayBuffer and Web Workers.
    expect(await cpuPage.evaluate(() => crossOriginIsolated)).toBe(true);
    const cores = await cpuPage.evaluate(() => navigator.hardwareConcurrency);
    if (cores > 1) expect(cpuBackend).toContain(`x${Math.min(cores, 8)} threads`);
    await shot(cpuPage, 'cpu-ready');

    // A whole run on the CPU: the loss goes down as on WebGPU.
    let started = Date.now();
    await cpuPage.click('#train');
    await cpuPage.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60_000 });
    expect(await cpuPage.getAttribute('body', 'data-state'), `page status: ${await cpuPage.textContent('#status')}`).toBe('done');
    expect(await cpuPage.textContent('#status')).toBe('done: 24 steps on cpu');
    const full = await cpuPage.evaluate(() => window.peftResult!);
    console.log(
      `[browser-finetune] CPU: 24 steps in ${((Date.now() - started) / 1000).toFixed(1)} s: loss ${full.losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(full.losses.slice(-6))).toBeLessThan(mean(full.losses.slice(0, 6)));
    expect(await chartPoints(cpuPage)).toHaveLength(24);

    // Stop: a long run stopped after a few steps ends within one step of the click.
    await cpuPage.fill('#steps', '2000');
    started = Date.now();
    await cpuPage.click('#train');
    await cpuPage.waitForFunction(
      () => {
        const bar = document.getElementById('progress') as HTMLProgressElement;
        return document.body.dataset.state === 'training' && bar.max === 2000 && bar.value >= 3;
      },
      null,
      { timeout: 60_000 },
    );
    expect(await cpuPage.isEnabled('#stop')).toBe(true);
    const stepAtClick = await cpuPage.evaluate(() => {
      const at = (document.getElementById('progress') as HTMLProgressElement).value;
      document.getElementById('stop')!.click();
      return at;
    });
    await cpuPage.waitForSelector('body[data-state="stopped"], body[data-state="error"]', { timeout: 30_000 });
    const stopped = await cpuPage.evaluate(() => window.peftResult!);
    const ran = stopped.losses.length;
    console.log(
      `[browser-finetune] CPU: Stop clicked after step ${stepAtClick}, training ended after step ${ran} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
    expect(stopped.stopped).toBe(true);
    expect(ran).toBeGreaterThanOrEqual(stepAtClick);
    expect(ran).toBeLessThanOrEqual(stepAtClick + 1);
    expect(await cpuPage.textContent('#status')).toBe(
      `stopped after ${ran} of 2000 steps on cpu: the adapter keeps what those ${ran} steps trained (download it or try it below)`,
    );
    expect(await cpuPage.isDisabled('#stop')).toBe(true);
    expect(await cpuPage.isEnabled('#train')).toBe(true);
    expect(await cpuPage.textContent('#progress-text')).toMatch(new RegExp(`^step ${ran} / 2000`));
    expect(await cpuPage.textContent('#eta')).toBe('');
    expect(await chartPoints(cpuPage)).toHaveLength(ran);
    // What trained downloads and classifies.
    const header = await downloadedWeights(cpuPage);
    expect(header['base_model.model.score.weight']).toMatchObject({ dtype: 'F32', shape: [3, 64] });
    const rows = await tryIt(cpuPage, '日銀が金利を据え置き');
    console.log(`[browser-finetune] CPU try-it after stop: ${rows.map((r) => `${r.label} ${r.shown}`).join(', ')}`);
    await shot(cpuPage, 'cpu-stopped');
    await cpuPage.close();

    // A browser with WebGPU that finds no adapter: the CPU as well, and the page says which case it is.
    const noAdapter = await context.newPage();
    watch(noAdapter);
    await noAdapter.addInitScript(() => {
      GPU.prototype.requestAdapter = async () => null;
    });
    await noAdapter.goto(`${url}?steps=4`);
    await noAdapter.waitForSelector('body[data-state="idle"], body[data-state="error"]', { timeout: 60_000 });
    expect(await noAdapter.getAttribute('body', 'data-state'), `page status: ${await noAdapter.textContent('#status')}`).toBe('idle');
    expect(await noAdapter.getAttribute('body', 'data-backend')).toBe('cpu');
    expect(await noAdapter.textContent('#backend-note')).toMatch(
      /^This browser has WebGPU but found no GPU adapter\. Training runs on the CPU/,
    );
    await noAdapter.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
