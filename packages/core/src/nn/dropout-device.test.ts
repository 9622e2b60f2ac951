import { createCpuBackend } from '@peft/backend-cpu';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { backward, clearTape } from '../autograd/tape.js';
import { mul } from '../ops/elementwise.js';
import { exampleDropout, exampleRowKeys, exampleStreamKeys, exampleStreamSeed } from '../ops/random.js';
import { sum } from '../ops/reduce.js';
import { Generator } from '../random/generator.js';
import { splitKey } from '../random/philox.js';
import { fromRaw, type Tensor, tensor } from '../tensor.js';
import { Dropout, setDropoutExamples } from './dropout.js';
import { Module } from './module.js';

const backend = createCpuBackend();
afterAll(() => backend.destroy());

const values = (n: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2 + 0.5);
const int32 = (data: Int32Array, shape: number[]) => fromRaw(data, shape, { backend, dtype: 'int32' });

describe('exampleDropout with its keys on the device', () => {
  it('exampleStreamKeys and exampleRowKeys hold the keys the host form draws from', () => {
    const sk = exampleStreamKeys(42, 7, 3);
    expect(sk.length).toBe(6);
    for (let s = 0; s < 3; s++) {
      const [k0, k1] = splitKey(exampleStreamSeed(42, 7, s));
      expect([sk[2 * s]! >>> 0, sk[2 * s + 1]!]).toEqual([k0, k1]);
    }
    expect(Array.from(exampleRowKeys([5, 9], 3))).toEqual([5, 0, 5, 1, 5, 2, 9, 0, 9, 1, 9, 2]);
    expect(Array.from(exampleRowKeys([4, 4, 1], [2, 3, 0]))).toEqual([4, 2, 4, 3, 1, 0]);
    expect(() => exampleRowKeys([1, 2], [0])).toThrow('exampleRowKeys: 2 keys and 1 positions: give one key and one position per row');
    expect(() => exampleRowKeys([1, 2 ** 27], 2)).toThrow(
      'exampleRowKeys: example key 134217728 (example 1) must be an integer in [0, 2^27)',
    );
    expect(() => exampleRowKeys([1], [2 ** 26])).toThrow('exampleRowKeys: position 67108864 (row 0)');
    expect(() => exampleStreamKeys(1, -1, 2)).toThrow('exampleDropout: step -1');
  });

  it('the host form makes one rowDropout launch forward and one rowDropoutBackward, with the masks of the device form', async () => {
    const forward = vi.spyOn(backend, 'rowDropout');
    const back = vi.spyOn(backend, 'rowDropoutBackward');
    const plain = vi.spyOn(backend, 'dropout');
    const before = backend.memory().buffers;
    // Rows of 6 features (not a multiple of 4), three examples of 4 positions: many runs before.
    const x = tensor(values(3 * 4 * 6), [3, 4, 6], { backend, requiresGrad: true });
    const w = tensor(values(3 * 4 * 6).reverse(), [3, 4, 6], { backend });
    const masks = { seed: 11, step: 3, stream: 1, keys: [7, 0, 2 ** 27 - 1] };
    const y = exampleDropout(x, 0.3, masks);
    const loss = (t: Tensor) => {
      const prod = mul(t, w);
      const l = sum(prod);
      backward(l);
      for (const u of [prod, l]) u.dispose();
    };
    loss(y);
    expect([forward.mock.calls.length, back.mock.calls.length, plain.mock.calls.length]).toEqual([1, 1, 0]);
    const hostY = Array.from(await y.data());
    const hostGrad = Array.from(await x.grad!.data());

    const streamKeys = int32(exampleStreamKeys(11, 3, 2), [4]);
    const rowKeys = int32(exampleRowKeys(masks.keys, 4), [12, 2]);
    x.grad!.dispose();
    x.grad = null;
    const yd = exampleDropout(x, 0.3, { streamKeys, stream: 1, rowKeys });
    loss(yd);
    expect(Array.from(await yd.data())).toEqual(hostY);
    expect(Array.from(await x.grad!.data())).toEqual(hostGrad);
    // Kept elements are x / 0.7, the others 0.
    const xs = Array.from(await x.data());
    for (const [i, v] of hostY.entries()) expect(v === 0 || v === Math.fround(xs[i]! * (1 / 0.7))).toBe(true);
    expect(hostY.filter((v) => v === 0).length).toBeGreaterThan(5);
    for (const t of [x, x.grad!, w, y, yd, streamKeys, rowKeys]) t.dispose();
    clearTape();
    // The uploaded keys went with the tape.
    expect(backend.memory().buffers).toBe(before);
    for (const s of [forward, back, plain]) s.mockRestore();
  });

  it('gathered rows: a key and a position per row, from host arrays or device tensors', async () => {
    const x = tensor(values(5 * 8), [5, 8], { backend });
    const keys = [4, 4, 1, 9, 2 ** 20];
    const positions = [2, 3, 0, 2 ** 20, 5];
    const host = Array.from(await exampleDropout(x, 0.5, { seed: 2 ** 40 + 1, step: 9, stream: 0, keys, positions }).data());
    const streamKeys = int32(exampleStreamKeys(2 ** 40 + 1, 9, 1), [2]);
    const rowKeys = int32(exampleRowKeys(keys, positions), [10]);
    expect(Array.from(await exampleDropout(x, 0.5, { streamKeys, stream: 0, rowKeys }).data())).toEqual(host);
    for (const t of [x, streamKeys, rowKeys]) t.dispose();
  });

  it('errors name the op and the tensors', () => {
    const x = tensor(values(12), [2, 6], { backend });
    const streamKeys = int32(exampleStreamKeys(1, 0, 2), [4]);
    const rowKeys = int32(exampleRowKeys([1, 2], 1), [2, 2]);
    expect(() => exampleDropout(x, 0.1, { streamKeys, stream: 2, rowKeys })).toThrow(
      /exampleDropout: stream 2 is not a key pair of streamKeys tensor #\d+ \[4\] int32 \(2 streams\)/,
    );
    const short = int32(new Int32Array(2), [2]);
    expect(() => exampleDropout(x, 0.1, { streamKeys, stream: 0, rowKeys: short })).toThrow(
      /exampleDropout: tensor #\d+ \[2, 6\] float32 has 2 rows of 6 features, but rowKeys tensor #\d+ \[2\] int32 holds 1 \(example key, position\) pairs/,
    );
    const floats = tensor([0, 0, 0, 0], [4], { backend });
    expect(() => exampleDropout(x, 0.1, { streamKeys: floats, stream: 0, rowKeys })).toThrow(
      /exampleDropout: streamKeys tensor #\d+ \[4\] float32 must be int32/,
    );
    // Keys out of range are found by the kernel (the CPU reads them): the row is named.
    const bad = int32(Int32Array.of(1, 0, -3, 0), [4]);
    expect(() => exampleDropout(x, 0.1, { streamKeys, stream: 0, rowKeys: bad })).toThrow(
      'rowDropout: row 1 has example key -3 (rowKeys[2]), outside [0, 2^27)',
    );
    for (const t of [x, streamKeys, rowKeys, short, floats, bad]) t.dispose();
  });
});

describe('setDropoutExamples with device keys', () => {
  class Two extends Module {
    readonly a: Dropout;
    readonly b: Dropout;
    constructor(gen: Generator) {
      super();
      this.a = this.registerModule('a', new Dropout(0.4, gen));
      this.b = this.registerModule('b', new Dropout(0.4, gen));
    }
    forward(x: Tensor): Tensor[] {
      return [this.a.forward(x), this.b.forward(x)];
    }
  }

  it('each Dropout uses its own stream; an input of the gathered rows uses gatheredRowKeys; the same masks as host keys', async () => {
    const gen = new Generator(77);
    const model = new Two(gen);
    model.train(true);
    const keys = [3, 12];
    const length = 4;
    const x = tensor(values(2 * length * 5), [2, length, 5], { backend });
    const rows = [1, 2, 4];
    const g = tensor(
      rows.flatMap((r) => values(2 * length * 5).slice(r * 5, r * 5 + 5)),
      [3, 5],
      { backend },
    );
    const read = async (ts: Tensor[]) => Promise.all(ts.map(async (t) => Array.from(await t.data())));
    expect(setDropoutExamples(model, { step: 6, keys, gathered: { length, rows } })).toBe(2);
    const host = await read([...model.forward(x), ...model.forward(g)]);

    const streamKeys = int32(exampleStreamKeys(77, 6, 2), [4]);
    const rowKeys = int32(exampleRowKeys(keys, length), [8, 2]);
    const gatheredRowKeys = int32(
      exampleRowKeys(
        rows.map((r) => keys[Math.floor(r / length)]!),
        rows.map((r) => r % length),
      ),
      [3, 2],
    );
    expect(setDropoutExamples(model, { device: { streamKeys, rowKeys, gatheredRowKeys } })).toBe(2);
    expect(model.b.examples).toMatchObject({ stream: 1 });
    const device = await read([...model.forward(x), ...model.forward(g)]);
    expect(device).toEqual(host);
    expect(device[0]).not.toEqual(device[1]);
    // New keys written into the same tensors: the masks of the new keys.
    backend.write(streamKeys.buffer(), exampleStreamKeys(77, 7, 2));
    expect(setDropoutExamples(model, { step: 7, keys })).toBe(2);
    const next = await read(model.forward(x));
    setDropoutExamples(model, { device: { streamKeys, rowKeys } });
    expect(await read(model.forward(x))).toEqual(next);
    expect(next[0]).not.toEqual(host[0]);
    expect(gen.offset).toBe(0);
    // Evaluation mode: no dropout.
    model.train(false);
    expect(await read(model.forward(x))).toEqual(await read([x, x]));
    setDropoutExamples(model, null);
    expect(model.a.examples).toBeNull();
    for (const t of [x, g, streamKeys, rowKeys, gatheredRowKeys]) t.dispose();
  });
});
