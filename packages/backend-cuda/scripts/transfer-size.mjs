// What a GPU window sends to the GPU machine: the repository's git-tracked files (as
// `git ls-files -z | xargs -0 du -cb` counts them: apparent sizes, files deleted from the working
// tree left out) plus everything under .device/. bundle-device.mjs prints it and refuses a packing
// at or above the bar (50 MiB; the transfer's hard limit is 64 MiB).
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const TRANSFER_LIMIT_BYTES = 50 * 2 ** 20;

/** Bytes of the regular files under `dir` (links not followed); 0 when it does not exist. */
export function folderBytes(dir) {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += folderBytes(p);
    else if (e.isFile()) total += lstatSync(p).size;
  }
  return total;
}

/** Bytes of the git-tracked files of the checkout at `root` that exist in its working tree. */
export function trackedBytes(root) {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 })
    .split('\0')
    .filter(Boolean);
  let total = 0;
  for (const f of files) {
    try {
      const st = lstatSync(join(root, f));
      if (st.isFile()) total += st.size;
    } catch {
      // deleted in the working tree: not sent
    }
  }
  return total;
}

/** The transfer's parts: tracked files, .device/ (or `device`), their sum, and whether it is under `limit`. */
export function transferSize(root, device = join(root, '.device'), limit = TRANSFER_LIMIT_BYTES) {
  const tracked = trackedBytes(root);
  const deviceBytes = folderBytes(device);
  const total = tracked + deviceBytes;
  return { tracked, device: deviceBytes, total, limit, ok: total < limit };
}

const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;

/** One line for people: the parts, the total and the bar. */
export function describeTransfer(s) {
  return `transfer: tracked files ${MB(s.tracked)} + .device ${MB(s.device)} = ${MB(s.total)} (${(s.total / 2 ** 20).toFixed(1)} MiB; bar ${(s.limit / 2 ** 20).toFixed(0)} MiB)${s.ok ? '' : ': TOO LARGE'}`;
}
