/**
 * The pieces of Python's `str.format` mini-language that scikit-learn's and seqeval's
 * reports use: `{:>{width}s}`, `{:>9}` and `{:>9.{digits}f}`. Widths count code points, as
 * Python's `len` does, and fixed-point formatting rounds the exact binary value half to even,
 * as CPython does (`format(0.125, '.2f') == '0.12'`, where JavaScript's `toFixed` gives 0.13).
 */

/** Length in code points, as Python's `len(str)`. */
export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** `'{:>{width}}'.format(s)`: right-align in `width` code points. */
export function padStart(s: string, width: number): string {
  const len = codePointLength(s);
  return len >= width ? s : ' '.repeat(width - len) + s;
}

const scratch = new DataView(new ArrayBuffer(8));

/** `format(x, f'.{digits}f')`, exactly as CPython prints it. */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isInteger(digits) || digits < 0) {
    throw new Error(`formatFixed: digits must be a non-negative integer, got ${digits}`);
  }
  if (Number.isNaN(x)) return 'nan';
  scratch.setFloat64(0, x);
  const hi = scratch.getUint32(0);
  const lo = scratch.getUint32(4);
  const negative = hi >>> 31 === 1;
  if (!Number.isFinite(x)) return negative ? '-inf' : 'inf';
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent: number;
  if (biased === 0) {
    exponent = -1074;
  } else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  // |x| = mantissa * 2^exponent; we want round_half_even(|x| * 10^digits).
  const scale = 10n ** BigInt(digits);
  let scaled: bigint;
  if (exponent >= 0) {
    scaled = (mantissa << BigInt(exponent)) * scale;
  } else {
    const num = mantissa * scale;
    const den = 1n << BigInt(-exponent);
    const q = num / den;
    const twiceRem = (num - q * den) * 2n;
    scaled = twiceRem > den || (twiceRem === den && q % 2n === 1n) ? q + 1n : q;
  }
  let body = scaled.toString();
  if (digits > 0) {
    body = body.padStart(digits + 1, '0');
    body = `${body.slice(0, body.length - digits)}.${body.slice(body.length - digits)}`;
  }
  return negative ? `-${body}` : body;
}

/** Python's `str()` of a number as a report prints a support count: `3`, `2.5`, `nan`. */
export function formatPlain(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return String(x);
}

/** Python's `repr(float)`: shortest round-trip digits, `5.0` for integral values, exponent outside [1e-4, 1e16). */
export function formatPythonFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  if (abs >= 1e16 || abs < 1e-4) {
    const [mant, exp] = x.toExponential().split('e');
    const e = Number(exp);
    const m = mant.includes('.') ? mant : mant;
    return `${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  const s = String(x);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}
