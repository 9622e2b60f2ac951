/**
 * A caching allocator over cuMemAlloc, for one stream. A request is rounded up to its size class:
 * below 8 MiB four classes per power of two from 512 bytes (at most 25% waste), from 8 MiB on
 * multiples of 2 MiB (at most 2 MiB: a model's weights, 13 GB for a 7B model in bfloat16, are not
 * inflated by a quarter); every block is 256-byte aligned as cuBLASLt likes. A freed block waits
 * in its class's free list and the next request of that class takes it; a large request with no
 * free block of its class takes the smallest free large block at most 1/8 (and 2 MiB) bigger
 * before asking the device. Reuse is safe without events because all work runs on one stream: a
 * kernel enqueued after the free runs after every kernel that used the block before it.
 *
 * Blocks allocated while a CUDA graph is captured belong to that graph's private pool: freed
 * during capture they go back to that pool only (the graph will write them again on every
 * replay), and they are released when the graph is destroyed.
 *
 * The allocator never frees device memory by itself except when an allocation fails: then it
 * calls `beforeRelease` (the backend synchronizes its stream), releases the pooled blocks and
 * tries once more. Not during a graph capture (activePool ≠ 0): waiting for the stream would
 * invalidate the capture, so there an allocation that fails throws at once, with advice.
 */

export interface RawAllocator {
  /** Device memory of exactly `bytes`; throws on failure (out of memory). */
  alloc(bytes: number): number;
  free(ptr: number): void;
}

export interface Block {
  readonly ptr: number;
  /** Class size in bytes (what the block occupies). */
  readonly size: number;
  /** The private pool (graph) it belongs to, or 0. */
  readonly pool: number;
}

export interface AllocatorStats {
  /** Bytes of blocks handed out now (class sizes). */
  current: number;
  /** Largest `current` since creation or resetPeak(). */
  peak: number;
  /** Bytes of device memory held: handed out + pooled (free lists, graph pools included). */
  reserved: number;
  /** Largest `reserved` since creation or resetPeak(). */
  peakReserved: number;
  /** Bytes held in free lists, not handed out. */
  pooled: number;
  /** Blocks handed out now. */
  blocks: number;
  /** cuMemAlloc calls so far (a training loop that reuses its buffers stops making them). */
  deviceAllocs: number;
}

const MIN_CLASS = 512;
/** From here on classes are multiples of LARGE_STEP. */
const LARGE = 8 * 2 ** 20;
const LARGE_STEP = 2 * 2 ** 20;

export class CachingAllocator {
  private readonly free = new Map<number, Map<number, number[]>>(); // pool → class size → ptrs
  private readonly privateHeld = new Map<number, number[]>(); // pool → every ptr it owns (to release)
  private readonly sizes = new Map<number, number>(); // ptr → class size of every block we hold
  private current = 0;
  private peak = 0;
  private reserved = 0;
  private peakReserved = 0;
  private pooled = 0;
  private blocks = 0;
  private deviceAllocs = 0;
  /** The pool new blocks go to (a graph being captured), 0 = the shared pool. */
  activePool = 0;
  /** True while capturing into a pool earlier graphs share: any free block of it that fits is used. */
  reuseAnyFree = false;

  constructor(
    private readonly raw: RawAllocator,
    private readonly beforeRelease: () => void = () => {},
  ) {}

  /** The byte size of the class that holds `bytes`. */
  static sizeClass(bytes: number): number {
    if (bytes <= MIN_CLASS) return MIN_CLASS;
    if (bytes > LARGE) return Math.ceil(bytes / LARGE_STEP) * LARGE_STEP;
    const p = 2 ** Math.floor(Math.log2(bytes - 1));
    const step = p / 4;
    return Math.ceil(bytes / step) * step;
  }

  alloc(bytes: number): Block {
    let size = CachingAllocator.sizeClass(bytes);
    const pool = this.activePool;
    const classes = this.free.get(pool);
    let ptr = classes?.get(size)?.pop();
    if (ptr === undefined && this.reuseAnyFree && classes) {
      // A pool that graphs share (captureGraph's shareMemoryWith): its free blocks are reserved
      // already, so the smallest one that fits serves the request rather than new device memory.
      let best = 0;
      for (const [s, list] of classes) if (s > size && list.length > 0 && (best === 0 || s < best)) best = s;
      if (best) {
        size = best;
        ptr = classes.get(best)!.pop();
      }
    }
    if (ptr === undefined && size > LARGE && classes) {
      // The smallest free large block that wastes at most max(2 MiB, size/8).
      const limit = size + Math.max(LARGE_STEP, size / 8);
      let best = 0;
      for (const [s, list] of classes) if (s > size && s <= limit && list.length > 0 && (best === 0 || s < best)) best = s;
      if (best) {
        size = best;
        ptr = classes.get(best)!.pop();
      }
    }
    if (ptr !== undefined) {
      this.pooled -= size;
    } else {
      ptr = this.allocDevice(size);
      if (pool !== 0) {
        let held = this.privateHeld.get(pool);
        if (!held) this.privateHeld.set(pool, (held = []));
        held.push(ptr);
      }
    }
    this.blocks++;
    this.current += size;
    if (this.current > this.peak) this.peak = this.current;
    return { ptr, size, pool };
  }

  release(block: Block): void {
    if (block.pool !== 0 && !this.privateHeld.has(block.pool)) return; // its graph was destroyed: already freed
    let classes = this.free.get(block.pool);
    if (!classes) this.free.set(block.pool, (classes = new Map()));
    let list = classes.get(block.size);
    if (!list) classes.set(block.size, (list = []));
    list.push(block.ptr);
    this.blocks--;
    this.current -= block.size;
    this.pooled += block.size;
  }

  /** Releases the shared pool's free blocks to the device (call with the stream idle). */
  trim(): void {
    const classes = this.free.get(0);
    if (!classes) return;
    for (const [size, list] of classes) {
      for (const ptr of list) this.freeDevice(ptr, size);
      this.pooled -= size * list.length;
    }
    classes.clear();
  }

  /**
   * Releases every block of a private (graph) pool. Blocks of it still handed out are the
   * caller's: they are released now too (the graph that wrote them is gone).
   */
  releasePool(pool: number): void {
    const held = this.privateHeld.get(pool) ?? [];
    const free = this.free.get(pool);
    const freePtrs = new Set(free ? [...free.values()].flat() : []);
    for (const ptr of held) {
      const size = this.sizes.get(ptr) ?? 0;
      if (freePtrs.has(ptr)) {
        this.pooled -= size;
      } else {
        // Still handed out: it no longer counts as handed out; a later release() of it is ignored.
        this.current -= size;
        this.blocks--;
      }
      this.freeDevice(ptr, size);
    }
    this.free.delete(pool);
    this.privateHeld.delete(pool);
  }

  /**
   * Releases everything (the backend is being destroyed; the stream must be idle), trying every
   * block even when a free fails; returns what failed (nothing is held afterwards either way).
   */
  releaseAll(): string[] {
    const failed: string[] = [];
    for (const [ptr, size] of [...this.sizes]) {
      try {
        this.raw.free(ptr);
      } catch (err) {
        failed.push(`${(err as Error).message.split('\n')[0]}`);
      }
      this.sizes.delete(ptr);
      this.reserved -= size;
    }
    this.free.clear();
    this.privateHeld.clear();
    this.current = this.pooled = this.blocks = 0;
    if (failed.length <= 3) return failed;
    return [...failed.slice(0, 2), `… and ${failed.length - 2} more device frees failed the same way`];
  }

  resetPeak(): void {
    this.peak = this.current;
    this.peakReserved = this.reserved;
  }

  stats(): AllocatorStats {
    return {
      current: this.current,
      peak: this.peak,
      reserved: this.reserved,
      peakReserved: this.peakReserved,
      pooled: this.pooled,
      blocks: this.blocks,
      deviceAllocs: this.deviceAllocs,
    };
  }

  private allocDevice(size: number): number {
    let ptr: number;
    try {
      ptr = this.raw.alloc(size);
    } catch (err) {
      if (this.activePool !== 0) throw this.captureOom(size, err as Error);
      if (this.pooled === 0) throw err;
      this.beforeRelease();
      this.trim();
      ptr = this.raw.alloc(size);
    }
    this.deviceAllocs++;
    this.sizes.set(ptr, size);
    this.reserved += size;
    if (this.reserved > this.peakReserved) this.peakReserved = this.reserved;
    return ptr;
  }

  /**
   * Out of memory during a graph capture: the usual retry (wait for the stream, free the pooled
   * blocks) would invalidate the capture, so it fails at once, saying what to do instead.
   */
  private captureOom(size: number, err: Error): Error {
    const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    return new Error(
      `alloc: out of device memory for ${size} bytes (${MiB(size)}) while a CUDA graph is being captured (graph pool ${this.activePool}; ${MiB(this.reserved)} reserved, ${MiB(this.pooled)} cached): ${err.message.split('\n')[0]}. ` +
        'Freeing cached blocks would synchronise the stream and invalidate the capture, so the allocation is not retried. ' +
        'Reserve the memory before capturing: run the step once eagerly as a warm-up, free buffers the step does not need, or capture a smaller step',
    );
  }

  private freeDevice(ptr: number, size: number): void {
    this.raw.free(ptr);
    this.sizes.delete(ptr);
    this.reserved -= size;
  }
}
