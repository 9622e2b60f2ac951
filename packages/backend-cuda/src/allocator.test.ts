import { describe, expect, it } from 'vitest';
import { CachingAllocator, type RawAllocator } from './allocator.js';

/** A fake device: addresses from a counter (256-aligned), a byte limit, and a log. */
function fakeDevice(limit = Number.POSITIVE_INFINITY) {
  let next = 0x10000;
  const live = new Map<number, number>();
  const raw: RawAllocator & { live: Map<number, number>; used: () => number } = {
    live,
    used: () => [...live.values()].reduce((s, b) => s + b, 0),
    alloc(bytes) {
      if (raw.used() + bytes > limit) throw new Error('CUDA_ERROR_OUT_OF_MEMORY');
      const ptr = next;
      next += Math.ceil(bytes / 256) * 256;
      live.set(ptr, bytes);
      return ptr;
    },
    free(ptr) {
      if (!live.delete(ptr)) throw new Error(`double free of ${ptr}`);
    },
  };
  return raw;
}

describe('CachingAllocator', () => {
  it('rounds large requests (over 8 MiB) to multiples of 2 MiB', () => {
    const MiB = 2 ** 20;
    expect([8 * MiB, 8 * MiB + 1, 4096 * 11008 * 2, 32000 * 4096 * 2].map(CachingAllocator.sizeClass)).toEqual([
      8 * MiB,
      10 * MiB,
      86 * MiB,
      250 * MiB,
    ]);
  });

  it('serves a large request from a free large block at most 1/8 bigger before asking the device', () => {
    const MiB = 2 ** 20;
    const dev = fakeDevice();
    const a = new CachingAllocator(dev);
    const big = a.alloc(96 * MiB);
    const huge = a.alloc(200 * MiB);
    a.release(big);
    a.release(huge);
    const b = a.alloc(86 * MiB); // 96 ≤ 86 + 86/8: reused
    expect(b.ptr).toBe(big.ptr);
    expect(b.size).toBe(96 * MiB);
    const c = a.alloc(100 * MiB); // 200 MiB is too big for it: a new block
    expect(c.ptr).not.toBe(huge.ptr);
    expect(a.stats()).toMatchObject({ current: 196 * MiB, pooled: 200 * MiB, deviceAllocs: 3 });
    a.release(b);
    expect(a.stats().pooled).toBe(296 * MiB);
  });

  it('rounds requests to four classes per power of two from 512 bytes', () => {
    expect([1, 512, 513, 1000, 1024, 1025, 3000, 2 ** 20 + 1].map(CachingAllocator.sizeClass)).toEqual([
      512,
      512,
      640,
      1024,
      1024,
      1280,
      3072,
      2 ** 20 + 2 ** 18,
    ]);
  });

  it('reuses a freed block of the same class instead of calling the device again', () => {
    const dev = fakeDevice();
    const a = new CachingAllocator(dev);
    const b1 = a.alloc(4000);
    a.release(b1);
    const b2 = a.alloc(3900);
    expect(b2.ptr).toBe(b1.ptr);
    expect(a.stats()).toMatchObject({ current: 4096, reserved: 4096, pooled: 0, blocks: 1, deviceAllocs: 1 });
  });

  it('tracks current, peak and reserved bytes; resetPeak brings the peak down to now', () => {
    const a = new CachingAllocator(fakeDevice());
    const x = a.alloc(1024);
    const y = a.alloc(2048);
    a.release(x);
    expect(a.stats()).toMatchObject({ current: 2048, peak: 3072, reserved: 3072, pooled: 1024, blocks: 1 });
    a.resetPeak();
    expect(a.stats().peak).toBe(2048);
    a.release(y);
    a.trim();
    expect(a.stats()).toMatchObject({ current: 0, reserved: 0, pooled: 0, peakReserved: 3072 });
  });

  it('on out-of-memory, synchronizes, releases the pool and retries once', () => {
    const dev = fakeDevice(8192);
    let synced = 0;
    const a = new CachingAllocator(dev, () => synced++);
    a.release(a.alloc(4096));
    a.release(a.alloc(2048));
    const big = a.alloc(8000); // 4096 + 2048 pooled: does not fit beside them
    expect(synced).toBe(1);
    expect(big.size).toBe(8192);
    expect(dev.used()).toBe(8192);
    expect(() => a.alloc(512)).toThrow(/OUT_OF_MEMORY/);
  });

  it('during a graph capture, an out-of-memory allocation fails at once: no stream sync, no frees, advice in the error', () => {
    const dev = fakeDevice(8192);
    let synced = 0;
    const a = new CachingAllocator(dev, () => synced++);
    a.release(a.alloc(4096)); // cached in the shared pool: the eager retry would free it
    a.activePool = 3;
    const inGraph = a.alloc(2048);
    expect(() => a.alloc(8000)).toThrow(
      /^alloc: out of device memory for 8192 bytes \(0\.0 MiB\) while a CUDA graph is being captured \(graph pool 3; 0\.0 MiB reserved, 0\.0 MiB cached\): CUDA_ERROR_OUT_OF_MEMORY\. Freeing cached blocks would synchronise the stream and invalidate the capture, so the allocation is not retried\. Reserve the memory before capturing: run the step once eagerly as a warm-up/,
    );
    expect(synced).toBe(0);
    expect(dev.used()).toBe(4096 + 2048);
    expect(a.stats()).toMatchObject({ current: 2048, pooled: 4096, reserved: 6144 });
    // After the capture the usual retry applies again.
    a.activePool = 0;
    a.release(inGraph);
    expect(() => a.alloc(8000)).toThrow(/OUT_OF_MEMORY/); // the graph's block is not the shared pool's to free
    expect(synced).toBe(1);
  });

  it('keeps blocks allocated during a graph capture in that graph pool until it is released', () => {
    const dev = fakeDevice();
    const a = new CachingAllocator(dev);
    const shared = a.alloc(1024);
    a.release(shared);
    a.activePool = 7;
    const inGraph = a.alloc(1024); // does not take the shared block: the graph will keep writing it
    expect(inGraph.ptr).not.toBe(shared.ptr);
    a.release(inGraph);
    const again = a.alloc(1024); // reused inside the same capture
    expect(again.ptr).toBe(inGraph.ptr);
    const kept = a.alloc(2048); // an output the caller holds after capture
    a.activePool = 0;
    expect(a.alloc(1024).ptr).toBe(shared.ptr); // outside, the shared pool serves
    a.release(again);
    expect(dev.live.size).toBe(3);
    a.releasePool(7);
    expect(dev.live.size).toBe(1);
    expect(a.stats()).toMatchObject({ current: 1024, blocks: 1, reserved: 1024 });
    void kept;
  });

  it('releaseAll gives everything back', () => {
    const dev = fakeDevice();
    const a = new CachingAllocator(dev);
    a.alloc(100);
    a.release(a.alloc(5000));
    a.releaseAll();
    expect(dev.live.size).toBe(0);
    expect(a.stats()).toMatchObject({ current: 0, reserved: 0, pooled: 0, blocks: 0 });
  });
});
