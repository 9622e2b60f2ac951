import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** Reads a JSON fixture from src/fixtures. */
export function readFixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as T;
}

/** Fixtures write NaN as null. */
export function expectClose(actual: number | null | undefined, expected: number | null, where: string, tol = 1e-12): void {
  if (expected === null) {
    expect(Number.isNaN(actual as number), `${where}: expected NaN, got ${actual}`).toBe(true);
    return;
  }
  expect(typeof actual, where).toBe('number');
  expect(Math.abs((actual as number) - expected) <= tol, `${where}: got ${actual}, expected ${expected}`).toBe(true);
}

export function expectAllClose(actual: readonly number[], expected: readonly (number | null)[], where: string): void {
  expect(actual.length, `${where}: length`).toBe(expected.length);
  expected.forEach((e, i) => {
    expectClose(actual[i], e, `${where}[${i}]`);
  });
}
