// End to end in a real browser: Vite builds the page and serves it on 127.0.0.1 (WebGPU needs a
// secure context, which localhost is), Debian's headless Chromium opens it through
// playwright-core, trains on WebGPU (SwiftShader here), and the adapter downloads. Skips, saying
// why, without /usr/bin/chromium or without WebGPU in it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { build, type PreviewServer, preview } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[browser-finetune] skipping the end-to-end test: ${CHROMIUM} is missing (apt-get install chromium)`);

describe.skipIf(!haveChromium)('browser-finetune end to end (headless Chromium, WebGPU)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peft-browser-finetune-'));
  let server: PreviewServer;
  let context: BrowserContext;
  let page: Page;
  let url: string;

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
    page.on('pageerror', (err) => console.error(`[page] ${err.message}`));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await new Promise<void>((resolve) => (server ? server.httpServer.close(() => resolve()) : resolve()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('trains the bundled tiny model on the bundled headlines: the loss goes down and the adapter downloads', async (ctx) => {
    await page.goto(`${url}?steps=12&batch=4`);
    await page.waitForSelector('body[data-webgpu]');
    if ((await page.getAttribute('body', 'data-webgpu')) !== 'yes') {
      const why = await page.textContent('#status');
      console.warn(`[browser-finetune] skipping the end-to-end test: ${why}`);
      ctx.skip();
    }
    const started = Date.now();
    await page.click('#train');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 75_000 });
    const status = await page.textContent('#status');
    expect(await page.getAttribute('body', 'data-state'), `page status: ${status}`).toBe('done');
    const result = await page.evaluate(() => window.peftResult!);
    console.log(
      `[browser-finetune] 12 steps in ${((Date.now() - started) / 1000).toFixed(1)} s: loss ${result.losses.map((l) => l.toFixed(3)).join(' ')}; ` +
        `test accuracy ${(100 * result.accuracy).toFixed(1)}% (majority ${(100 * result.baseline).toFixed(1)}%)`,
    );
    expect(result.losses).toHaveLength(12);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(result.losses.slice(-3))).toBeLessThan(mean(result.losses.slice(0, 3)));
    expect([...result.files].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'labels.json']);
    expect(await page.isVisible('#result')).toBe(true);
    expect(await page.textContent('#progress-text')).toMatch(/^step 12 \/ 12/);

    // The weights: a safetensors file (u64 little-endian header length, then the JSON header).
    const [weights] = await Promise.all([page.waitForEvent('download'), page.click('#download-weights')]);
    expect(weights.suggestedFilename()).toBe('adapter_model.safetensors');
    const bytes = readFileSync((await weights.path())!);
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    expect(headerLength).toBeGreaterThan(0);
    expect(8 + headerLength).toBeLessThan(bytes.byteLength);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<
      string,
      { dtype: string; shape: number[] }
    >;
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
  }, 90_000);
});
