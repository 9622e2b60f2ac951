// Vite serves the page and the bundled tiny model straight from fixtures/models/tiny-gpt-neox
// (under /models/tiny-gpt-neox/, nothing copied into the example): the dev and preview servers
// answer from the fixture folder, and a build emits the files into dist/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const MODEL_DIR = fileURLToPath(new URL('../../fixtures/models/tiny-gpt-neox/', import.meta.url));
const MODEL_FILES = ['config.json', 'model.safetensors', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json'];
const PREFIX = '/models/tiny-gpt-neox/';

function tinyModel(): Plugin {
  const serve = (req: { url?: string }, res: import('node:http').ServerResponse, next: () => void) => {
    const name = req.url?.split('?')[0];
    if (!name || !MODEL_FILES.includes(name.replace(/^\//, ''))) return next();
    const file = name.replace(/^\//, '');
    res.setHeader('content-type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    res.end(readFileSync(join(MODEL_DIR, file)));
  };
  return {
    name: 'peft-tiny-model',
    configureServer(server) {
      server.middlewares.use(PREFIX, serve);
    },
    configurePreviewServer(server) {
      server.middlewares.use(PREFIX, serve);
    },
    generateBundle() {
      for (const file of MODEL_FILES) {
        this.emitFile({ type: 'asset', fileName: `models/tiny-gpt-neox/${file}`, source: readFileSync(join(MODEL_DIR, file)) });
      }
    },
  };
}

// Cross-origin isolation: with these two headers a page gets SharedArrayBuffer, and the CPU
// backend's WebAssembly GEMM then runs on Web Workers beside the page's thread (without them it
// runs on the page's thread alone). A static host of dist/ needs to send the same headers.
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  // Workspace packages resolve to their TypeScript sources (the @peft/source export condition).
  resolve: { conditions: ['@peft/source', 'module', 'browser', 'development|production'] },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  server: { headers: ISOLATION },
  preview: { headers: ISOLATION },
  plugins: [tinyModel()],
});
