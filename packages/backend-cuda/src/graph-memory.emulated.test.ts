// Graphs sharing one memory pool (captureGraph's shareMemoryWith), on the host emulator: a second
// graph recorded into the first one's pool reuses the blocks the first capture freed instead of
// reserving its own, both replay correctly in turn, and the pool goes with the last graph.
// Needs a C++17 compiler; skips visibly without one.
import { affine, type Backend, keep, ops, type Tensor, tensor } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();

/** out ← exp(x · 0.5) · 2 + 1 through temporaries of x's size, the result copied into `out` (allocated outside any capture). */
function step(backend: Backend, x: Tensor, out: Tensor): void {
  const a = affine(x, 0.5, 0);
  const e = ops.unary('exp', a);
  const y = affine(e, 2, 1);
  backend.copy(out.buffer(), y.buffer(), { shape: [x.size], strides: [1], offset: 0 });
  for (const t of [a, e, y]) t.dispose();
}

const expected = (values: number[]) => values.map((v) => Math.fround(Math.fround(Math.exp(Math.fround(v * 0.5))) * 2 + 1));

describe.skipIf(!emu)('CUDA graphs sharing one memory pool (host emulator)', async () => {
  const { createCudaBackend } = await import('./index.js');

  for (const share of [false, true]) {
    it(share
      ? 'with shareMemoryWith the second graph reuses the first one’s freed blocks'
      : 'without it each graph reserves its own', async () => {
      const b = createCudaBackend();
      const big = 1 << 18;
      const small = 1 << 16;
      const xs = [big, small].map((n) =>
        keep(
          tensor(
            Array.from({ length: n }, (_, i) => (i % 13) / 13),
            [n],
            { backend: b },
          ),
        ),
      );
      const outs = [big, small].map((n) => keep(tensor(new Float32Array(n), [n], { backend: b })));
      // Eager first, as GraphCache does: kernels loaded, pooled blocks trimmed by the capture.
      step(b, xs[0]!, outs[0]!);
      step(b, xs[1]!, outs[1]!);
      const g1 = b.captureGraph(() => step(b, xs[0]!, outs[0]!));
      const afterFirst = b.memoryStats().reserved;
      const g2 = b.captureGraph(() => step(b, xs[1]!, outs[1]!), share ? { shareMemoryWith: g1 } : undefined);
      const added = b.memoryStats().reserved - afterFirst;
      // Three float32 temporaries of the small step: 3 × 256 KiB, unless they come from g1's pool.
      if (share) expect(added).toBe(0);
      else expect(added).toBeGreaterThanOrEqual(3 * small * 4);
      // Replays in turn, each with new inputs, give the eager values.
      for (let round = 0; round < 2; round++) {
        const v0 = Array.from({ length: big }, (_, i) => ((i + round) % 7) / 7);
        const v1 = Array.from({ length: small }, (_, i) => ((i * 3 + round) % 11) / 11);
        b.write(xs[0]!.buffer(), Float32Array.from(v0));
        b.write(xs[1]!.buffer(), Float32Array.from(v1));
        g1.launch();
        g2.launch();
        expect(Array.from(await outs[0]!.data())).toEqual(expected(v0));
        expect(Array.from(await outs[1]!.data())).toEqual(expected(v1));
      }
      const beforeDestroy = b.memoryStats().reserved;
      g1.destroy();
      // A shared pool stays while g2 uses it; g2 still replays.
      if (share) {
        expect(b.memoryStats().reserved).toBe(beforeDestroy);
        b.write(
          xs[1]!.buffer(),
          Float32Array.from({ length: small }, () => 0.5),
        );
        g2.launch();
        expect((await outs[1]!.data())[0]).toBe(expected([0.5])[0]);
      } else {
        expect(b.memoryStats().reserved).toBeLessThan(beforeDestroy);
      }
      const beforeLast = b.memoryStats().reserved;
      g2.destroy();
      expect(b.memoryStats().reserved).toBeLessThan(beforeLast);
      expect(() => b.captureGraph(() => {}, { shareMemoryWith: g2 })).toThrow(
        'captureGraph: shareMemoryWith is not a live graph of this backend',
      );
      for (const t of [...xs, ...outs]) t.dispose();
      b.destroy();
    }, 120_000);
  }
});
