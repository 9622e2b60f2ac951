import type { DType } from '../dtype.js';
import type { SafetensorsDType } from './dtypes.js';
import { resolveSafetensorsDType } from './dtypes.js';
import { compareCodePoints, tensorByteLength } from './writer.js';

/** transformers' default `max_shard_size`. */
export const DEFAULT_MAX_SHARD_SIZE = '5GB';

export interface ShardPlanOptions {
  /** File name stem: "model" gives model.safetensors or model-00001-of-00003.safetensors. */
  prefix?: string;
  /** Extra keys for the index's "metadata" object besides total_size (e.g. total_parameters). */
  indexMetadata?: Record<string, unknown>;
}

export interface PlannedShard {
  fileName: string;
  /** Tensor names in the order they were given. */
  names: string[];
  /** Sum of the tensors' data bytes (headers not counted, as in transformers). */
  byteLength: number;
}

export interface ShardIndex {
  metadata: Record<string, unknown> & { total_size: number };
  weight_map: Record<string, string>;
}

export interface ShardPlan {
  /** False when everything fits one file: then it is `<prefix>.safetensors` and no index is written. */
  sharded: boolean;
  shards: PlannedShard[];
  /** Sum of all tensors' data bytes. */
  totalSize: number;
  /** `<prefix>.safetensors.index.json`. */
  indexFileName: string;
  index: ShardIndex;
  /** The index file's text exactly as transformers writes it (sorted keys, indent 2, ASCII, final newline). */
  indexJson: string;
}

/**
 * Splits tensors into shards of at most `maxShardBytes` data bytes the way transformers /
 * huggingface_hub `split_state_dict_into_shards_factory` does: walk the tensors in the given order,
 * start a new shard when the next tensor would tip the current one over the limit, and give a
 * tensor larger than the limit a shard of its own. Sizes given as strings use decimal units like
 * transformers ("5GB" = 5e9 bytes; TB, GB, MB, KB).
 */
export function planShards(
  tensors: ReadonlyArray<{ name: string; dtype: SafetensorsDType | DType; shape: readonly number[] }>,
  maxShardBytes: number | string = DEFAULT_MAX_SHARD_SIZE,
  options: ShardPlanOptions = {},
): ShardPlan {
  const prefix = options.prefix ?? 'model';
  const max = typeof maxShardBytes === 'string' ? parseSize(maxShardBytes) : maxShardBytes;
  if (!(max > 0)) throw new Error(`planShards: maxShardBytes must be a positive number of bytes, got ${maxShardBytes}`);

  const groups: Array<{ names: string[]; byteLength: number }> = [];
  let current: { names: string[]; byteLength: number } = { names: [], byteLength: 0 };
  let totalSize = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = `planShards: tensor ${JSON.stringify(t.name)}`;
    if (seen.has(t.name)) throw new Error(`${where} is given twice: tensor names must be unique`);
    seen.add(t.name);
    const size = tensorByteLength(resolveSafetensorsDType(t.dtype, where), t.shape, where);
    totalSize += size;
    if (size > max) {
      groups.push({ names: [t.name], byteLength: size });
      continue;
    }
    if (current.byteLength + size > max) {
      groups.push(current);
      current = { names: [], byteLength: 0 };
    }
    current.names.push(t.name);
    current.byteLength += size;
  }
  if (current.names.length > 0 || groups.length === 0) groups.push(current);

  const count = groups.length;
  const pad = (n: number) => String(n).padStart(5, '0');
  const shards = groups.map((g, i) => ({
    fileName: count === 1 ? `${prefix}.safetensors` : `${prefix}-${pad(i + 1)}-of-${pad(count)}.safetensors`,
    names: g.names,
    byteLength: g.byteLength,
  }));
  const weightMap: Record<string, string> = {};
  for (const s of shards) for (const name of s.names) weightMap[name] = s.fileName;
  const index: ShardIndex = {
    metadata: { ...options.indexMetadata, total_size: totalSize },
    weight_map: weightMap,
  };
  return {
    sharded: count > 1,
    shards,
    totalSize,
    indexFileName: `${prefix}.safetensors.index.json`,
    index,
    indexJson: `${pythonJson(index, '')}\n`,
  };
}

/** transformers' `parse_size_to_int`: "5GB" → 5_000_000_000. */
export function parseSize(size: string): number {
  const units: Record<string, number> = { TB: 1e12, GB: 1e9, MB: 1e6, KB: 1e3 };
  const s = size.trim();
  const unit = s.slice(-2).toUpperCase();
  const value = Number(s.slice(0, -2).trim());
  if (!(unit in units) || s.slice(0, -2).trim() === '' || !Number.isFinite(value)) {
    throw new Error(`size ${JSON.stringify(size)} is not understood: write a number and a unit (TB, GB, MB, KB), e.g. "5GB"`);
  }
  return Math.trunc(value * units[unit]!);
}

/** Python `json.dumps(value, indent=2, sort_keys=True)` (ensure_ascii on) for plain JSON data. */
function pythonJson(value: unknown, indent: string): string {
  if (value === null || typeof value !== 'object') return asciiJson(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + pythonJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const keys = Object.keys(value).sort(compareCodePoints);
  if (keys.length === 0) return '{}';
  const items = keys.map((k) => `${inner}${asciiJson(k)}: ${pythonJson((value as Record<string, unknown>)[k], inner)}`);
  return `{\n${items.join(',\n')}\n${indent}}`;
}

function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
