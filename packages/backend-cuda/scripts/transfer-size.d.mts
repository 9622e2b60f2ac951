// Types of transfer-size.mjs (plain JavaScript, run by bundle-device.mjs without a build step).
export interface TransferSize {
  tracked: number;
  device: number;
  total: number;
  limit: number;
  ok: boolean;
}
export const TRANSFER_LIMIT_BYTES: number;
export function folderBytes(dir: string): number;
export function trackedBytes(root: string): number;
export function transferSize(root: string, device?: string, limit?: number): TransferSize;
export function describeTransfer(s: TransferSize): string;
