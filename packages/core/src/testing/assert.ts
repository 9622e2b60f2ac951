/** Tolerance comparisons with messages that say where and by how much two arrays differ. */

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface AssertCloseOptions extends Tolerance {
  /** Names the thing compared, first in the message: `matmul [float32] "m=7 n=5": out`. */
  what: string;
  /** Renders flat indices as coordinates of this shape in messages. */
  shape?: readonly number[];
  /** Elements for which this returns false are not compared (values left unspecified by a spec). */
  care?: (index: number) => boolean;
}

/** `[i0,i1,…]` coordinates of a flat row-major index. */
export function formatIndex(index: number, shape?: readonly number[]): string {
  if (!shape || shape.length === 0) return `${index}`;
  const coords = new Array<number>(shape.length);
  let rem = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords[d] = rem % shape[d]!;
    rem = Math.floor(rem / shape[d]!);
  }
  return `${index} = [${coords.join(',')}]`;
}

function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? String(Number(x.toPrecision(9))) : x.toExponential(6);
}

/**
 * Elementwise |actual − expected| ≤ atol + rtol·|expected|. Infinities must match exactly, NaN
 * only NaN. Throws an Error naming the worst element (largest excess over its tolerance), the
 * values, the tolerance and how many elements failed.
 */
export function assertClose(actual: number | ArrayLike<number>, expected: number | ArrayLike<number>, options: AssertCloseOptions): void {
  const a = typeof actual === 'number' ? [actual] : actual;
  const e = typeof expected === 'number' ? [expected] : expected;
  const { atol, rtol, what, shape, care } = options;
  if (a.length !== e.length) throw new Error(`${what}: length mismatch: actual has ${a.length} elements, expected ${e.length}`);
  let failures = 0;
  let worst = -1;
  let worstExcess = -1;
  let first = -1;
  for (let i = 0; i < e.length; i++) {
    if (care && !care(i)) continue;
    const ai = a[i]!;
    const ei = e[i]!;
    let excess: number;
    if (Number.isNaN(ei) || !Number.isFinite(ei)) {
      excess = Object.is(ai, ei) || (Number.isNaN(ai) && Number.isNaN(ei)) ? -1 : Number.POSITIVE_INFINITY;
    } else if (!Number.isFinite(ai)) {
      excess = Number.POSITIVE_INFINITY;
    } else {
      const tol = atol + rtol * Math.abs(ei);
      const diff = Math.abs(ai - ei);
      excess = diff <= tol ? -1 : (diff - tol) / Math.max(tol, Number.MIN_VALUE);
    }
    if (excess >= 0) {
      failures++;
      if (first < 0) first = i;
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = i;
      }
    }
  }
  if (failures === 0) return;
  const ew = e[worst]!;
  const aw = a[worst]!;
  const tol = atol + rtol * Math.abs(ew);
  const lines = [
    `${what}: ${failures} of ${e.length} elements outside tolerance (atol ${atol}, rtol ${rtol})`,
    `  worst at index ${formatIndex(worst, shape)}: expected ${formatNumber(ew)}, actual ${formatNumber(aw)}, |diff| ${formatNumber(Math.abs(aw - ew))} > ${formatNumber(tol)} = atol + rtol·|expected|`,
  ];
  if (first !== worst) {
    lines.push(`  first at index ${formatIndex(first, shape)}: expected ${formatNumber(e[first]!)}, actual ${formatNumber(a[first]!)}`);
  }
  throw new Error(lines.join('\n'));
}

/** Elementwise equality (int32 outputs, raw bits). */
export function assertEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, shape?: readonly number[]): void {
  if (actual.length !== expected.length)
    throw new Error(`${what}: length mismatch: actual has ${actual.length} elements, expected ${expected.length}`);
  let failures = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    if (Object.is(actual[i], expected[i])) continue;
    failures++;
    if (first < 0) first = i;
  }
  if (failures > 0) {
    throw new Error(
      `${what}: ${failures} of ${expected.length} elements differ; first at index ${formatIndex(first, shape)}: expected ${expected[first]}, actual ${actual[first]}`,
    );
  }
}
