/**
 * Single-precision GEMM on row-major float32 arrays: C = alpha · op(A) · op(B) (+ C).
 * op(A) is [m, k]: A is stored [m, k] or, with transA, [k, m], rows `lda` apart (default: packed,
 * k or m). op(B) is [k, n]: B is stored [k, n] or, with transB, [n, k], rows `ldb` apart (default
 * n or k). C is [m, n], rows `ldc` apart (default n). A leading dimension lets an operand be a
 * block of a larger matrix.
 */
export interface SgemmArgs {
  m: number;
  n: number;
  k: number;
  a: Float32Array;
  aOffset: number;
  transA: boolean;
  b: Float32Array;
  bOffset: number;
  transB: boolean;
  c: Float32Array;
  cOffset: number;
  alpha: number;
  accumulate: boolean;
  /** Elements between rows of the stored A (default: its row length, k, or m with transA). */
  lda?: number;
  /** Elements between rows of the stored B (default: its row length, n, or k with transB). */
  ldb?: number;
  /** Elements between rows of C (default: n). */
  ldc?: number;
}

export interface LeadingDims {
  lda: number;
  ldb: number;
  ldc: number;
}

function ld(name: string, value: number | undefined, rowLength: number): number {
  if (value === undefined) return rowLength;
  if (!Number.isSafeInteger(value) || value < rowLength || value > 0x7fffffff) {
    throw new Error(`sgemm: ${name} must be an int32 >= the stored row length ${rowLength}, got ${value}`);
  }
  return value;
}

/** The leading dimensions of a call, defaults filled in; throws when one is shorter than its row. */
export function leadingDims(args: SgemmArgs): LeadingDims {
  const { m, n, k, transA, transB } = args;
  return {
    lda: ld('lda', args.lda, transA ? m : k),
    ldb: ld('ldb', args.ldb, transB ? k : n),
    ldc: ld('ldc', args.ldc, n),
  };
}

/** Elements a rows × cols block with rows `ld` apart spans. */
function extent(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

function within(name: string, arr: Float32Array, offset: number, span: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + span > arr.length) {
    throw new Error(`sgemm: ${name} needs ${span} elements from offset ${offset}, its array has ${arr.length}`);
  }
}

/**
 * Checks sizes, offsets and leading dimensions against the arrays, for engines that hand raw
 * pointers to native code (where reading past an array is not NaN but a crash).
 */
export function checkSgemmArgs(args: SgemmArgs, lds: LeadingDims): void {
  const { m, n, k, transA, transB } = args;
  for (const [name, v] of [
    ['m', m],
    ['n', n],
    ['k', k],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0 || v > 0x7fffffff) throw new Error(`sgemm: ${name} must be a non-negative int32, got ${v}`);
  }
  if (m === 0 || n === 0) return;
  if (k > 0) {
    within('a', args.a, args.aOffset, transA ? extent(k, m, lds.lda) : extent(m, k, lds.lda));
    within('b', args.b, args.bOffset, transB ? extent(n, k, lds.ldb) : extent(k, n, lds.ldb));
  }
  within('c', args.c, args.cOffset, extent(m, n, lds.ldc));
}
