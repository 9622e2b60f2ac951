// Per-example dropout in a CUDA graph, on the host emulator: exampleDropout's device form reads
// its Philox keys from int32 tensors, so a graph captured once replays with whatever keys are
// written into them, and every replay gives the masks (forward and gradient) that an eager call
// with those keys gives. Needs a C++17 compiler; skips visibly without one.
import {
  backward,
  type ExampleMasks,
  exampleDropout,
  exampleRowKeys,
  exampleStreamKeys,
  fromRaw,
  ops,
  type Tensor,
  tensor,
} from '@peft/core';
import { describe, expect, it } from 'vitest';
import { useEmulator } from './emulator.testkit.js';

const emu = await useEmulator();

describe.skipIf(!emu)('exampleDropout with device keys in a captured CUDA graph (host emulator)', async () => {
  const { createCudaBackend } = await import('./index.js');

  it('replays with new keys written into the key tensors and gets the eager masks of those keys', async () => {
    const b = createCudaBackend({ cublas: false });
    const shape = [3, 4, 6];
    const n = 72;
    const whole = { shape: [n], strides: [1], offset: 0 };
    const x = tensor(
      Array.from({ length: n }, (_, i) => Math.sin(i * 0.7) * 2 + 0.25),
      shape,
      { backend: b, requiresGrad: true },
    );
    const w = tensor(
      Array.from({ length: n }, (_, i) => Math.cos(i * 0.3)),
      shape,
      { backend: b },
    );
    const streamKeys = fromRaw(new Int32Array(4), [4], { backend: b, dtype: 'int32' });
    const rowKeys = fromRaw(new Int32Array(2 * 12), [12, 2], { backend: b, dtype: 'int32' });
    const y = b.alloc('float32', n);
    const dx = b.alloc('float32', n);

    /** y = dropout(x), dx = ∂ Σ w·y / ∂x, with the keys the tensors hold. */
    const step = () => {
      const out = exampleDropout(x, 0.3, { streamKeys, stream: 1, rowKeys });
      const prod = ops.mul(out, w);
      const loss = ops.sum(prod);
      backward(loss);
      b.copy(y, out.buffer(), whole);
      b.copy(dx, x.grad!.buffer(), whole);
      for (const t of [out, prod, loss, x.grad!]) t.dispose();
      x.grad = null;
    };
    /** The same with host keys, eagerly. */
    const eager = async (masks: ExampleMasks): Promise<[number[], number[]]> => {
      const out = exampleDropout(x, 0.3, masks);
      const prod = ops.mul(out, w);
      const loss = ops.sum(prod);
      backward(loss);
      const r: [number[], number[]] = [Array.from(await out.data()), Array.from(await x.grad!.data())];
      for (const t of [out, prod, loss, x.grad!] as Tensor[]) t.dispose();
      x.grad = null;
      return r;
    };
    const setKeys = (step: number, keys: number[]) => {
      b.write(streamKeys.buffer(), exampleStreamKeys(5, step, 2));
      b.write(rowKeys.buffer(), exampleRowKeys(keys, 4));
    };

    setKeys(0, [1, 2, 3]);
    step(); // warm-up: the allocator's pool holds what the captured step needs
    const graph = b.captureGraph(step);
    const seen: number[][] = [];
    for (const [s, keys] of [
      [3, [7, 0, 2 ** 27 - 1]],
      [4, [7, 0, 2 ** 27 - 1]],
      [4, [9, 64, 11]],
    ] as const) {
      setKeys(s, [...keys]);
      graph.launch();
      const got = [Array.from((await b.read(y)) as Float32Array), Array.from((await b.read(dx)) as Float32Array)];
      const want = await eager({ seed: 5, step: s, stream: 1, keys: [...keys] });
      expect(got).toEqual(want);
      expect(got[0]!.filter((v) => v === 0).length).toBeGreaterThan(5);
      seen.push(got[0]!);
    }
    // Each replay drew other masks (another step, other examples).
    expect(new Set(seen.map((s) => s.join())).size).toBe(3);
    graph.destroy();
    // Host keys cannot be uploaded inside a capture: the error names the device form.
    expect(() => b.captureGraph(() => exampleDropout(x, 0.3, { seed: 5, step: 0, stream: 1, keys: [1, 2, 3] }))).toThrow(
      /exampleDropout: uploading the host keys failed \(write: cannot upload while a CUDA graph is being captured.*\); in a captured graph give the keys as device tensors/,
    );
    for (const t of [x, w, streamKeys, rowKeys]) t.dispose();
    b.free(y);
    b.free(dx);
    b.destroy();
  });
});
