import type { PeftModel } from '../adapters/peft-model.js';
import {
  type FileSink,
  type LoadAdapterOptions,
  loadAdapterFrom,
  type SaveAdapterOptions,
  type SaveMergedOptions,
  saveAdapterTo,
  saveMergedTo,
} from '../adapters/save-load.js';
import type { Module } from '../nn/module.js';
import { makeDirectory, writeFileAtomic } from './atomic-write.js';
import { insideDir, nodeDirReader } from './dir-reader.js';

/** A `FileSink` over a directory (created if needed); each file is written atomically. */
export function nodeDirSink(dir: string): FileSink {
  let made: Promise<unknown> | null = null;
  return {
    name: dir,
    async writeFile(fileName, data) {
      const path = insideDir(dir, fileName);
      made ??= makeDirectory(dir, path);
      await made;
      await writeFileAtomic(path, data);
    },
  };
}

/** Saves one adapter as PEFT's save_pretrained does: `<dir>/adapter_config.json` and `<dir>/adapter_model.safetensors`. */
export async function saveAdapter(peft: PeftModel, dir: string, opts: SaveAdapterOptions = {}): Promise<void> {
  await saveAdapterTo(peft, nodeDirSink(dir), opts);
}

/** Loads an adapter folder (ours or Python PEFT's) onto a model or as another adapter of a PeftModel. */
export async function loadAdapter<M extends Module>(
  model: M | PeftModel<M>,
  dir: string,
  opts: LoadAdapterOptions = {},
): Promise<PeftModel<M>> {
  return loadAdapterFrom(model, nodeDirReader(dir), opts);
}

/** Writes a Hugging Face model folder with the active adapters merged (config.json + model.safetensors or shards). */
export async function saveMerged(peft: PeftModel, dir: string, opts: SaveMergedOptions = {}): Promise<void> {
  await saveMergedTo(peft, nodeDirSink(dir), opts);
}
