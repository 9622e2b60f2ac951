import { contiguousView } from '../ops/util.js';
import { formatShape, type Tensor } from '../tensor.js';

/**
 * Overwrites `dst`'s storage with `src`'s values (rounded to dst's dtype), keeping `dst` the same
 * tensor: tied weights, optimizer state and every other holder see the new values.
 */
export function assignInPlace(dst: Tensor, src: Tensor): void {
  if (dst.shape.join() !== src.shape.join()) {
    throw new Error(
      `assignInPlace: ${src.describe()} does not fit ${dst.describe()} (${formatShape(src.shape)} vs ${formatShape(dst.shape)})`,
    );
  }
  if (dst.size === 0) return;
  dst.backend.copy(dst.buffer('assign'), src.buffer('assign'), contiguousView(src.shape));
}
