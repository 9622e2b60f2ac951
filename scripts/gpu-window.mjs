#!/usr/bin/env node
// The GPU window's stages, run by scripts/gpu-window.sh (which unpacks Node first; see
// packages/backend-cuda/GPU.md): smoke, llama, conformance, neox, webgpu, in that order, each in
// its own process under `timeout -k`, each leaving OUT/<n>-<stage>.json as soon as it ends (also
// when it failed, was killed at its time-out or was skipped), with its log in OUT/<n>-<stage>.log.
// Stops starting stages when the budget is spent. Plain JavaScript with no dependencies: it runs
// on the packed Node before anything else is known to work.
//
//   node scripts/gpu-window.mjs OUT SECONDS
//
// Environment: PEFT_GPU_WINDOW_EMULATE=1 (the host emulator, stages from source),
// PEFT_GPU_WINDOW_DIST (the unpacked bundles), PEFT_GPU_WINDOW_STARTED (epoch seconds the budget
// started at), PEFT_GPU_WINDOW_STAGES (names to run, comma-separated), PEFT_GPU_WINDOW_TIMEOUTS
// (name=seconds,… instead of the scaled ones), PEFT_GPU_WINDOW_HANG (a stage that hangs on
// purpose), PEFT_GPU_WINDOW_ONLY (device-check --only), PEFT_GPU_WINDOW_VULKAN_ICD (an ICD json
// for the webgpu stage instead of the NVIDIA one).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The budget the stage time-outs below are sized for. */
export const REFERENCE_BUDGET_S = 660;
/** Below this many seconds left, no further stage starts. */
const MIN_STAGE_S = 15;
/** Kept back from the budget for writing the last files. */
const RESERVE_S = 5;
/** timeout -k: seconds between TERM and KILL. */
const KILL_AFTER_S = 10;
/** The conformance stage's cases on the emulator, where the whole suite runs in the package's own tests. */
const EMULATOR_ONLY = 'matmul,rmsNorm,neox-classifier,captured';

/**
 * The stages in order of value, with their time-outs in seconds for an H100 at a 660-s budget
 * (scaled by SECONDS / 660; time a stage leaves unused passes to the next ones):
 * smoke: process start, CUDA and cuBLASLt load, 11 small cases (~10 s);
 * llama: 7B build + 2 + 5 steps eager, again captured (~60 s), then PyTorch's import, build and
 *   7 steps (~90 s);
 * conformance: ~420 cases, gradient checks, 5 training runs and timings, ~10 processes (~90 s);
 * neox: as llama for the 3.6B shape (~120 s);
 * webgpu: Dawn's adapter, ~360 cases (pipelines compile once each), GEMMs, a 100M LoRA step (~40 s).
 */
export const STAGES = [
  { name: 'smoke', seconds: 60, cuda: true },
  { name: 'llama', seconds: 210, cuda: true, bench: true },
  { name: 'conformance', seconds: 150, cuda: true },
  { name: 'neox', seconds: 150, cuda: true, bench: true },
  { name: 'webgpu', seconds: 60, cuda: false },
];

/** Each stage's planned time-out for a budget of `budget` seconds: the table scaled, or `overrides` (name=seconds,…). */
export function plannedTimeouts(budget, overrides = '') {
  const set = Object.fromEntries(
    overrides
      .split(',')
      .filter(Boolean)
      .map((kv) => {
        const [k, v] = kv.split('=');
        if (!STAGES.some((s) => s.name === k) || !(Number(v) > 0)) {
          throw new Error(
            `PEFT_GPU_WINDOW_TIMEOUTS: "${kv}" is not <stage>=<seconds> with a stage of ${STAGES.map((s) => s.name).join(', ')}`,
          );
        }
        return [k, Number(v)];
      }),
  );
  return Object.fromEntries(
    STAGES.map((s) => [s.name, set[s.name] ?? Math.max(MIN_STAGE_S, Math.round((s.seconds * budget) / REFERENCE_BUDGET_S))]),
  );
}

/** The command of `stage` for this window, or the reason it is skipped before it starts. */
function stageCommand(stage, w) {
  const dist = w.dist;
  const src = (ts) => ['--conditions=@peft/source', '--import', 'tsx', join(ROOT, ts)];
  const program = (bundle, ts) => (dist ? [join(dist, bundle)] : src(ts));
  const env = {};
  const notes = [];
  if (w.emulate) {
    Object.assign(env, w.emulatorEnv);
    notes.push('host emulator: kernels compiled for the CPU, a libcuda and a cuBLASLt stand-in');
  }
  switch (stage.name) {
    case 'smoke':
      env.CUDA_LAUNCH_BLOCKING = '1';
      return { args: program('window-smoke.mjs', 'packages/backend-cuda/scripts/window/smoke.ts'), env, notes };
    case 'llama':
    case 'neox': {
      const args = [
        ...program('bench-cuda.mjs', 'benchmarks/bench-cuda.ts'),
        '--only',
        stage.name,
        '--warmup',
        '2',
        '--steps',
        '5',
        '--out',
        'window',
      ];
      if (w.emulate) {
        args.push('--no-python');
        Object.assign(env, { PEFT_CUDA_EMU_DRY: '1', PEFT_CUDA_EMU_TOTAL_GIB: '80' });
        notes.push(
          'dry mode (PEFT_CUDA_EMU_DRY=1): kernels skipped, allocations real-sized: memory figures are real, times and losses are not',
        );
        notes.push('PyTorch + PEFT skipped: no GPU for PyTorch on the emulator');
      }
      return { args, env, notes };
    }
    case 'conformance': {
      const only = process.env.PEFT_GPU_WINDOW_ONLY ?? (w.emulate ? EMULATOR_ONLY : 'all');
      const args = [...program('device-check.mjs', 'packages/backend-cuda/scripts/device-check.ts')];
      if (only !== 'all') {
        args.push('--only', only);
        notes.push(`cases whose names contain one of: ${only} (PEFT_GPU_WINDOW_ONLY; "all" runs every case)`);
      }
      if (w.emulate) notes.push('timings dry (kernels skipped): host figures only');
      return { args, env, notes };
    }
    case 'webgpu': {
      const icd = vulkanIcd();
      if (!icd.path) return { skip: icd.reason };
      env.VK_ICD_FILENAMES = icd.path;
      env.XDG_RUNTIME_DIR = process.env.XDG_RUNTIME_DIR ?? join(w.out, '.xdg-runtime');
      mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
      if (dist && !existsSync(join(dist, '..', '..', 'node_modules', 'webgpu')))
        return { skip: 'the webgpu package (dawn.node) was not packed' };
      notes.push(`Vulkan ICD ${icd.path}`);
      if (!systemVulkanLoader()) {
        const packed = dist ? join(dist, '..', '..', 'lib') : '';
        if (!packed || !existsSync(join(packed, 'libvulkan.so.1')))
          return { skip: 'no Vulkan loader (libvulkan.so.1) on this machine, and none was packed' };
        env.LD_LIBRARY_PATH = [packed, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
        notes.push(`Vulkan loader: the packed ${join(packed, 'libvulkan.so.1')} (none on this machine)`);
      }
      return { args: program('window-webgpu.mjs', 'benchmarks/src/cuda-suite-webgpu.ts'), env, notes };
    }
    default:
      throw new Error(`gpu-window: no command for stage ${stage.name}`);
  }
}

/** The NVIDIA Vulkan driver's ICD json (or PEFT_GPU_WINDOW_VULKAN_ICD), or why there is none. */
export function vulkanIcd(dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d']) {
  const forced = process.env.PEFT_GPU_WINDOW_VULKAN_ICD;
  if (forced) return existsSync(forced) ? { path: forced } : { reason: `PEFT_GPU_WINDOW_VULKAN_ICD=${forced} does not exist` };
  for (const dir of dirs) {
    let files = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    } catch {
      continue;
    }
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      if (/nvidia/i.test(f) || /nvidia/i.test(text)) return { path: join(dir, f) };
    }
  }
  return { reason: `no Vulkan driver for the GPU: no NVIDIA ICD json in ${dirs.join(' or ')}` };
}

/** Whether the dynamic linker finds a Vulkan loader (libvulkan.so.1) on this machine. */
function systemVulkanLoader() {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) return /\blibvulkan\.so\.1\b/.test(r.stdout);
  return ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1', '/usr/lib/libvulkan.so.1'].some((p) => existsSync(p));
}

function writeJson(path, value) {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return {};
  }
}

/** Runs argv under `timeout -k`, its output to our stdout and to `log`; resolves with how it ended. */
function runTimed(argv, env, seconds, log) {
  return new Promise((done) => {
    const out = createWriteStream(log);
    const t0 = Date.now();
    const child = spawn('timeout', ['-k', String(KILL_AFTER_S), String(seconds), ...argv], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const pass = (chunk) => {
      process.stdout.write(chunk);
      out.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', pass);
    child.stderr.on('data', pass);
    child.on('error', (err) => {
      out.end();
      done({ code: null, signal: null, error: err.message, tail, seconds: (Date.now() - t0) / 1000 });
    });
    child.on('close', (code, signal) => {
      out.end();
      done({ code, signal, tail, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

/** A stage's status from how its process ended and what it recorded. */
export function judge(stage, ended, figures, timeoutS) {
  if (ended.error) return { status: 'failed', reason: `could not start: ${ended.error}` };
  // timeout(1) exits 124 after TERM, 137 when KILL was needed; 137 before the time-out is a kill from elsewhere (memory).
  if ((ended.code === 124 || ended.code === 137) && ended.seconds >= timeoutS - 1) {
    return { status: 'timeout', reason: `killed at its ${timeoutS}-s time-out` };
  }
  const a = figures.availability;
  if (stage.cuda && a && a.available === false) return { status: 'failed', reason: `CUDA unavailable: ${a.reason}` };
  if (ended.code === 0) return { status: 'passed', reason: '' };
  if (stage.name === 'webgpu' && ended.code === 2)
    return { status: 'failed', reason: `no WebGPU adapter: ${figures.reason ?? 'see the log'}` };
  const lastLine = ended.tail.trim().split('\n').filter(Boolean).at(-1) ?? '';
  return { status: 'failed', reason: `exit ${ended.code ?? ended.signal}${lastLine ? `: ${lastLine.slice(0, 300)}` : ''}` };
}

/** Why `stage` does not run, from the stages before it, or null. */
export function skipReason(stage, w, results) {
  if (w.selected && !w.selected.includes(stage.name)) return `not selected (PEFT_GPU_WINDOW_STAGES=${w.selected.join(',')})`;
  if (w.emulatorReason && stage.cuda) return `emulator: ${w.emulatorReason}`;
  const smoke = results.smoke?.figures ?? {};
  if (stage.cuda && smoke.availability?.available === false) return `CUDA unavailable (smoke): ${smoke.availability.reason}`;
  if (stage.bench && smoke.gemmPath && smoke.gemmPath !== 'cublasLt') return `the GEMM path is not cuBLASLt (smoke): ${smoke.gemmLibrary}`;
  return null;
}

function nvidiaSmi() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,compute_cap', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.error) return `nvidia-smi: ${r.error.code === 'ENOENT' ? 'not found' : r.error.message}`;
  return r.status === 0 ? r.stdout.trim() : `nvidia-smi exited with ${r.status}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
}

/** The emulator's environment from emulator-env.ts, or why there is none. */
function emulatorSetup() {
  const r = spawnSync(
    process.execPath,
    ['--conditions=@peft/source', '--import', 'tsx', join(ROOT, 'packages/backend-cuda/scripts/window/emulator-env.ts')],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 240_000,
    },
  );
  const line = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
  try {
    const j = JSON.parse(line);
    return j.env ? { env: j.env } : { reason: j.reason };
  } catch {
    return {
      reason: `emulator-env.ts printed no result (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''}`,
    };
  }
}

/** One stage: skipped, or run under its time-out; its result file written either way. */
async function runStage(stage, index, w, results) {
  const file = join(w.out, `${index}-${stage.name}`);
  const base = { stage: stage.name, index, emulated: w.emulate };
  const remaining = w.deadline - Date.now() / 1000 - RESERVE_S;
  let skip = skipReason(stage, w, results);
  if (!skip && remaining < MIN_STAGE_S) skip = `budget: ${Math.max(0, Math.round(remaining))} s left of ${w.budget} s`;
  const cmd = skip ? null : stageCommand(stage, w);
  if (cmd?.skip) skip = cmd.skip;
  if (skip) {
    // A stage that does not run leaves its time to the ones after it.
    w.saved += w.timeouts[stage.name];
    const r = { ...base, status: 'skipped', exitCode: null, seconds: 0, reason: skip, figures: {} };
    writeJson(`${file}.json`, r);
    console.log(`\n=== ${index}-${stage.name}: skipped — ${skip}`);
    return r;
  }
  // Time-outs set by PEFT_GPU_WINDOW_TIMEOUTS are kept as they are; the others get the time saved before them.
  const extra = w.fixed.includes(stage.name) ? 0 : w.saved;
  const timeoutS = Math.max(1, Math.floor(Math.min(remaining, w.timeouts[stage.name] + extra)));
  const figuresFile = `${file}.figures.json`;
  rmSync(figuresFile, { force: true });
  const startedAt = new Date().toISOString();
  const command = [process.execPath, ...cmd.args];
  writeJson(`${file}.json`, {
    ...base,
    status: 'running',
    startedAt,
    timeoutSeconds: timeoutS,
    command: command.join(' '),
    notes: cmd.notes,
  });
  console.log(`\n=== ${index}-${stage.name}: time-out ${timeoutS} s: ${cmd.args.join(' ')}`);
  const env = {
    ...process.env,
    ...cmd.env,
    PEFT_GPU_WINDOW_STAGE: stage.name,
    PEFT_GPU_WINDOW_FIGURES: figuresFile,
    PEFT_GPU_WINDOW_DEADLINE: String(Date.now() + timeoutS * 1000),
    OUT: w.out,
  };
  const ended = await runTimed(command, env, timeoutS, `${file}.log`);
  const figures = readJson(figuresFile);
  const { status, reason } = judge(stage, ended, figures, timeoutS);
  w.saved = Math.max(0, w.saved + w.timeouts[stage.name] - ended.seconds);
  const r = {
    ...base,
    status,
    exitCode: ended.code,
    signal: ended.signal,
    seconds: Math.round(ended.seconds * 10) / 10,
    timeoutSeconds: timeoutS,
    reason,
    startedAt,
    command: command.join(' '),
    notes: cmd.notes,
    figures,
    logTail: ended.tail.split('\n').slice(-40).join('\n'),
  };
  writeJson(`${file}.json`, r);
  rmSync(figuresFile, { force: true });
  console.log(`=== ${index}-${stage.name}: ${status} in ${r.seconds.toFixed(1)} s${reason ? ` — ${reason}` : ''}`);
  return r;
}

async function main() {
  const [outArg, secondsArg] = process.argv.slice(2);
  const budget = Number(secondsArg);
  if (!outArg || !(budget > 0)) {
    console.error('usage: node scripts/gpu-window.mjs OUT SECONDS  (see packages/backend-cuda/GPU.md)');
    process.exit(64);
  }
  if (process.env.PEFT_GPU_WINDOW_EMULATE !== '1' && !process.env.PEFT_GPU_WINDOW_DIST) {
    console.error(
      'gpu-window: PEFT_GPU_WINDOW_DIST is not set: run bash scripts/gpu-window.sh OUT SECONDS, which unpacks .device/ and sets it',
    );
    process.exit(64);
  }
  const out = resolve(outArg);
  mkdirSync(out, { recursive: true });
  const started = Number(process.env.PEFT_GPU_WINDOW_STARTED) || Date.now() / 1000;
  const emulate = process.env.PEFT_GPU_WINDOW_EMULATE === '1';
  const w = {
    out,
    budget,
    deadline: started + budget,
    emulate,
    dist: process.env.PEFT_GPU_WINDOW_DIST || '',
    selected: process.env.PEFT_GPU_WINDOW_STAGES ? process.env.PEFT_GPU_WINDOW_STAGES.split(',') : null,
    timeouts: plannedTimeouts(budget, process.env.PEFT_GPU_WINDOW_TIMEOUTS),
    saved: 0,
    fixed: (process.env.PEFT_GPU_WINDOW_TIMEOUTS ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => kv.split('=')[0]),
    emulatorEnv: {},
    emulatorReason: null,
  };
  const smi = nvidiaSmi();
  console.log(`GPU (nvidia-smi name, driver, memory, compute capability): ${smi}`);
  console.log(
    `node ${process.version}; budget ${budget} s (${Math.round(w.deadline - Date.now() / 1000)} s left); time-outs ${JSON.stringify(w.timeouts)}`,
  );
  if (emulate) {
    const e = emulatorSetup();
    if (e.env) w.emulatorEnv = e.env;
    else w.emulatorReason = e.reason;
    console.log(`emulator mode: ${e.env ? `driver ${e.env.PEFT_CUDA_DRIVER_PATH}` : e.reason}`);
  }
  const packing = readJson(join(ROOT, '.device', 'manifest.json'));
  if (packing.commit) {
    console.log(
      `packed from ${packing.commit}${packing.uncommitted?.length ? ` with ${packing.uncommitted.length} uncommitted files` : ''} on ${packing.packed}`,
    );
  }
  const window = {
    packing,
    budgetSeconds: budget,
    started: new Date(started * 1000).toISOString(),
    emulated: emulate,
    nvidiaSmi: smi,
    node: process.version,
    timeouts: w.timeouts,
    stages: [],
  };
  writeJson(join(out, 'window.json'), window);
  const results = {};
  for (const [i, stage] of STAGES.entries()) {
    const r = await runStage(stage, i + 1, w, results);
    results[stage.name] = r;
    window.stages.push({ stage: stage.name, status: r.status, seconds: r.seconds, reason: r.reason });
    writeJson(join(out, 'window.json'), window);
    if (stage.name === 'smoke' && r.figures.gemmLibrary) {
      console.log(`GEMM path: ${r.figures.gemmLibrary}; fallbacks: ${JSON.stringify(r.figures.gemmFallbacks ?? 'n/a')}`);
    }
  }
  console.log('\n=== gpu-window summary');
  for (const s of window.stages)
    console.log(`  ${s.stage.padEnd(12)} ${s.status.padEnd(8)} ${String(s.seconds).padStart(6)} s  ${s.reason ?? ''}`);
  console.log(`results in ${out}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(`gpu-window: ${err.stack ?? err}`);
    process.exit(1);
  });
}
