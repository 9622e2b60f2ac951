/**
 * Size-class pool of GPUBuffers. A request is rounded up to its class (four classes per power of
 * two from 256 bytes, so at most 25% is wasted); a freed buffer waits in its class's free list and
 * the next request of that class takes it, so a training loop that allocates the same shapes every
 * step stops creating GPU buffers after its first step.
 */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Bytes waiting in free lists. */
  pooledBytes = 0;
  /** Bytes of every buffer this pool created and has not destroyed (handed out or pooled). */
  totalBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    private readonly label: string,
  ) {}

  /** The byte size of the class that holds `bytes`. */
  static sizeClass(bytes: number): number {
    if (bytes <= 256) return 256;
    const p = 2 ** Math.floor(Math.log2(bytes - 1));
    const step = p / 4;
    return Math.ceil(bytes / step) * step;
  }

  acquire(bytes: number): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage: this.usage, label: `${this.label} ${size}` });
    this.totalBytes += size;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buffer);
    this.pooledBytes += size;
  }

  /** Destroys every pooled (not handed out) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.totalBytes -= this.pooledBytes;
    this.pooledBytes = 0;
    this.free.clear();
  }
}
