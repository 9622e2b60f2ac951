#!/usr/bin/env node
// Regenerates every WebAssembly module of the package: each AssemblyScript source (*.as.ts) is
// compiled with the AssemblyScript compiler (devDependency) and embedded as base64 in a generated
// .wasm.ts next to the code that loads it. Deterministic: same source + same asc → same bytes.
//
//   node scripts/build-wasm.mjs [name…]          write the generated files (all modules, or those named)
//   node scripts/build-wasm.mjs --check [name…]  exit 0 if each embedded module equals a fresh compile,
//                                                1 if one differs, 2 if the compiler cannot run
//
// `pnpm --filter @peft/backend-cpu build:wasm` runs the first form.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
/** Largest wasm32 memory, in 64 KiB pages; the host may create a smaller one. */
const MAX_PAGES = 65536;

/** Options of every module: optimized, no runtime or asserts, SIMD without the relaxed instructions. */
const COMMON = ['-O3', '--noAssert', '--runtime', 'stub', '--use', 'abort=', '--enable', 'simd', '--disable', 'relaxed-simd'];
/** A module that imports its memory (env.memory) from the host. */
const IMPORTED_MEMORY = ['--importMemory', '--noExportMemory', '--initialMemory', '1', '--maximumMemory', String(MAX_PAGES)];
/** A module that exports its own memory (one page; the host grows it). */
const OWN_MEMORY = ['--initialMemory', '1'];

/**
 * The modules: `source` (relative to the package) compiles to `output`, one exported base64
 * constant per variant (extra compiler options and a doc comment each), then `footer`. `parts`:
 * the other AssemblyScript files `source` imports (compiled with it; `--check` names each).
 */
export const MODULES = [
  {
    name: 'sgemm',
    source: 'src/gemm/wasm/sgemm.as.ts',
    output: 'src/gemm/sgemm.wasm.ts',
    variants: [
      {
        constant: 'SGEMM_WASM_SHARED_BASE64',
        args: [...IMPORTED_MEMORY, '--enable', 'threads', '--sharedMemory'],
        doc: `Threads variant: imports a shared memory (env.memory, max ${MAX_PAGES} pages).`,
      },
      {
        constant: 'SGEMM_WASM_PLAIN_BASE64',
        args: IMPORTED_MEMORY,
        doc: `Single-thread variant: imports a non-shared memory (env.memory, max ${MAX_PAGES} pages).`,
      },
    ],
    footer: `\n/** Maximum memory declared by both modules, in 64 KiB pages. */\nexport const SGEMM_WASM_MAX_PAGES = ${MAX_PAGES};\n`,
  },
  {
    name: 'attention-rows',
    source: 'src/kernels/attention-rows.as.ts',
    output: 'src/kernels/attention-rows.wasm.ts',
    variants: [
      {
        constant: 'ATTENTION_ROWS_WASM_BASE64',
        args: IMPORTED_MEMORY,
        doc: `Imports a non-shared memory (env.memory, max ${MAX_PAGES} pages).`,
      },
    ],
  },
  {
    name: 'random',
    source: 'src/kernels/wasm/random.as.ts',
    output: 'src/kernels/random.wasm.ts',
    variants: [
      {
        constant: 'RANDOM_WASM_BASE64',
        args: OWN_MEMORY,
        doc: 'Philox words, uniform and normal transforms; exports its own memory (1 page, grown by the host).',
      },
    ],
  },
  {
    name: 'elementwise',
    source: 'src/kernels/wasm/elementwise.as.ts',
    parts: ['src/kernels/wasm/gelu-tables.as.ts', 'src/kernels/wasm/binary.as.ts'],
    output: 'src/kernels/elementwise.wasm.ts',
    variants: [
      {
        constant: 'ELEMENTWISE_WASM_BASE64',
        args: OWN_MEMORY,
        doc: 'GELU, SwiGLU, binary ops and affine; imports Math.exp as "elementwise.as" "exp" and "gelu-tables.as" "exp", exports its own memory (1 page, grown by the host).',
      },
    ],
  },
  {
    name: 'norms',
    source: 'src/kernels/wasm/norms.as.ts',
    output: 'src/kernels/norms.wasm.ts',
    variants: [
      {
        constant: 'NORMS_WASM_BASE64',
        args: OWN_MEMORY,
        doc: 'LayerNorm and RMSNorm row kernels, forward and backward; exports its own memory (1 page, grown by the host).',
      },
    ],
  },
];

/** The module's bytes for one variant. */
async function compile(asc, source, args) {
  const outputs = new Map();
  const stdout = asc.createMemoryStream();
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main([source, '--outFile', 'out.wasm', ...COMMON, ...args, '--baseDir', pkgDir], {
    stdout,
    stderr,
    writeFile(name, contents) {
      outputs.set(name, contents);
    },
  });
  if (error) throw new Error(`asc failed on ${source}: ${error.message}\n${stderr.toString()}`);
  const wasm = outputs.get('out.wasm');
  if (!(wasm instanceof Uint8Array)) throw new Error(`asc produced no module for ${source}`);
  return wasm;
}

/** Relative import path of `file` from the directory of `from` (both package-relative). */
function relative(from, file) {
  const dir = from.split('/').slice(0, -1);
  const parts = file.split('/');
  let common = 0;
  while (common < dir.length && dir[common] === parts[common]) common++;
  const up = dir.length - common;
  return `${up === 0 ? './' : '../'.repeat(up)}${parts.slice(common).join('/')}`;
}

/** The text of the module's generated .wasm.ts. */
export async function generate(module) {
  const asc = (await import('assemblyscript/asc')).default;
  let text = `// Generated by scripts/build-wasm.mjs from ${relative(module.output, module.source)}; do not edit.
// Rebuild: pnpm --filter @peft/backend-cpu build:wasm
`;
  for (const v of module.variants) {
    const wasm = await compile(asc, module.source, v.args);
    const lines = Buffer.from(wasm)
      .toString('base64')
      .match(/.{1,100}/g)
      .map((l) => `  '${l}'`)
      .join(' +\n');
    text += `\n/** ${v.doc} ${wasm.length} bytes. */\nexport const ${v.constant} =\n${lines};\n`;
  }
  return text + (module.footer ?? '');
}

async function main() {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !MODULES.some((m) => m.name === n));
  if (unknown.length > 0) {
    console.error(`build-wasm: unknown module ${unknown.join(', ')}; modules: ${MODULES.map((m) => m.name).join(', ')}`);
    process.exit(2);
  }
  let stale = 0;
  for (const module of MODULES) {
    if (names.length > 0 && !names.includes(module.name)) continue;
    let text;
    try {
      text = await generate(module);
    } catch (e) {
      console.error(`build-wasm: cannot compile: ${e instanceof Error ? e.message : e}`);
      process.exit(2);
    }
    const out = new URL(`../${module.output}`, import.meta.url);
    if (check) {
      const current = await readFile(out, 'utf8').catch(() => '');
      if (current === text) {
        for (const source of [module.source, ...(module.parts ?? [])]) {
          console.log(`build-wasm: ${module.output} (from ${source}) is up to date`);
        }
      } else {
        console.error(`build-wasm: ${module.output} (from ${module.source}) is stale; run pnpm --filter @peft/backend-cpu build:wasm`);
        stale++;
      }
    } else {
      await writeFile(out, text);
      console.log(`build-wasm: wrote ${module.output}`);
    }
  }
  if (stale > 0) process.exit(1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
