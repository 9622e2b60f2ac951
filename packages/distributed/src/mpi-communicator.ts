/**
 * The communicator over MPI. Every collective is MPI's non-blocking form (MPI_Iallreduce,
 * MPI_Ibcast, MPI_Ibarrier, MPI_Iallgather[v]) on buffers in native memory (MPI keeps writing
 * into them after the call returns; a JavaScript buffer could move), completed by polling
 * MPI_Test between turns of the event loop. A wait has a deadline: when the other ranks do not
 * answer in `timeoutSeconds` (a rank died or was stopped) the call rejects with MpiTimeoutError
 * instead of hanging, and the communicator refuses further work (the pending request can never
 * be cancelled). The process then exits non-zero, and mpirun ends the job.
 *
 * Operations run one at a time in call order: every rank must call the same collectives in the
 * same order, as MPI requires.
 */
import {
  type Communicator,
  checkBytesOrFloats,
  checkFloats,
  checkOp,
  checkRoot,
  count,
  LocalCommunicator,
  MpiError,
  MpiTimeoutError,
  type ReduceOp,
  resolveTimeout,
  toJson,
} from './communicator.js';
import { detectMpiEnvironment } from './environment.js';
import { type Handle, loadMpi, type MpiLibrary } from './library.js';

export interface CommunicatorOptions {
  /** Seconds a collective waits for the other ranks (default: PEFT_MPI_TIMEOUT, else 120). */
  timeoutSeconds?: number;
  /** Largest piece of a buffer sent in one MPI call (default 16 MiB). */
  chunkBytes?: number;
}

const DEFAULT_CHUNK_BYTES = 16 * 2 ** 20;
/** MPI counts are C ints. */
const MAX_COUNT = 2 ** 31 - 1;

interface Native {
  ptr: unknown;
  bytes: number;
  u8: Uint8Array;
  view: DataView;
}

let created = false;

const sleep = (ms: number) => new Promise<void>((resolve) => (ms <= 0 ? setImmediate(resolve) : setTimeout(resolve, ms)));

export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly timeoutSeconds: number;
  readonly chunkBytes: number;
  /** The library's own words: "Open MPI v4.1.4, package: Debian OpenMPI, …". */
  readonly libraryVersion: string;
  private readonly mpi: MpiLibrary;
  private readonly world: Handle;
  private readonly request: Native;
  private readonly flag = [0];
  private stage: Native | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;
  private finalized = false;

  /** Use `createCommunicator()`: MPI is initialised once per process. */
  private constructor(mpi: MpiLibrary, options: CommunicatorOptions) {
    this.mpi = mpi;
    const h = mpi.handles;
    this.world = h.commWorld;
    this.timeoutSeconds = resolveTimeout(options.timeoutSeconds);
    const chunk = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunk) || chunk < 4 || chunk % 4 !== 0 || chunk > 2 ** 30)
      throw new Error(`communicator option chunkBytes is ${chunk}: expected a multiple of 4 bytes from 4 to 1 GiB`);
    this.chunkBytes = chunk;

    const provided = [0];
    this.check('MPI_Init_thread', mpi.MPI_Init_thread(null, null, h.threadFunneled, provided), 'initialising MPI');
    created = true;
    // Errors come back as codes (thrown here with the call's name), not as a process abort.
    this.check('MPI_Comm_set_errhandler', mpi.MPI_Comm_set_errhandler(this.world, h.errorsReturn), 'initialising MPI');
    const out = [0];
    this.check('MPI_Comm_rank', mpi.MPI_Comm_rank(this.world, out), 'initialising MPI');
    this.rank = out[0];
    this.check('MPI_Comm_size', mpi.MPI_Comm_size(this.world, out), 'initialising MPI');
    this.size = out[0];
    this.request = this.allocate(h.requestBytes);
    this.libraryVersion = this.readLibraryVersion();
    this.localRank = detectMpiEnvironment().localRank ?? this.sharedMemoryRank();
  }

  /** MPI_Init_thread, then rank, size and local rank. Throws MpiUnavailable without an MPI library. */
  static create(options: CommunicatorOptions = {}): MpiCommunicator {
    const mpi = loadMpi();
    const flag = [0];
    mpi.MPI_Finalized(flag);
    if (created || flag[0])
      throw new Error(
        'createCommunicator: MPI was already initialised in this process, and MPI allows that once: pass the communicator created first around',
      );
    return new MpiCommunicator(mpi, options);
  }

  get isRoot(): boolean {
    return this.rank === 0;
  }

  get description(): string {
    // "Open MPI v4.1.4, package: …" or "MPICH Version:\t4.0.2\nMPICH Release date: …"
    const first = this.libraryVersion.split('\n')[0].split(',')[0].replace('Version:', '').replace(/\s+/g, ' ').trim();
    const name = first || this.mpi.flavour;
    return `${name} (${this.mpi.path}), rank ${this.rank} of ${this.size}, local rank ${this.localRank}`;
  }

  async allReduce(data: Float32Array, op: ReduceOp = 'sum'): Promise<Float32Array> {
    checkFloats('allReduce', data);
    checkOp('allReduce', op);
    const what = `all-reduce (${op}) of ${count(data.length)} floats`;
    return this.serial(what, async () => {
      await this.sameLengths(what, data.length, 'floats');
      const h = this.mpi.handles;
      const perChunk = Math.floor(this.chunkBytes / 4);
      const stage = this.staging(Math.min(data.length, perChunk) * 4);
      const floats = new Float32Array(stage.u8.buffer, stage.u8.byteOffset, stage.bytes / 4);
      for (let offset = 0; offset < data.length; offset += perChunk) {
        const n = Math.min(perChunk, data.length - offset);
        floats.set(data.subarray(offset, offset + n));
        this.start(what, 'MPI_Iallreduce', (req) => this.mpi.MPI_Iallreduce(h.inPlace, stage.ptr, n, h.float, h.sum, this.world, req));
        await this.wait(what);
        data.set(floats.subarray(0, n), offset);
      }
      if (op === 'mean' && this.size > 1) for (let i = 0; i < data.length; i++) data[i] /= this.size;
      return data;
    });
  }

  async broadcast<T extends Uint8Array | Float32Array>(data: T, root = 0): Promise<T> {
    checkBytesOrFloats('broadcast', data);
    checkRoot('broadcast', root, this.size);
    const what = `broadcast from rank ${root} of ${count(data.byteLength)} bytes`;
    return this.serial(what, async () => {
      await this.sameLengths(what, data.byteLength, 'bytes');
      const h = this.mpi.handles;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const stage = this.staging(Math.min(bytes.length, this.chunkBytes));
      for (let offset = 0; offset < bytes.length; offset += this.chunkBytes) {
        const n = Math.min(this.chunkBytes, bytes.length - offset);
        if (this.rank === root) stage.u8.set(bytes.subarray(offset, offset + n));
        this.start(what, 'MPI_Ibcast', (req) => this.mpi.MPI_Ibcast(stage.ptr, n, h.byte, root, this.world, req));
        await this.wait(what);
        if (this.rank !== root) bytes.set(stage.u8.subarray(0, n), offset);
      }
      return data;
    });
  }

  async barrier(): Promise<void> {
    await this.serial('barrier', () => this.barrierNow('barrier'));
  }

  async allGatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    if (!(data instanceof Uint8Array)) throw new Error('allGatherBytes: expected a Uint8Array');
    const what = `all-gather of ${count(data.length)} bytes`;
    return this.serial(what, async () => {
      const lengths = await this.gatherLengths(what, data.length);
      const total = lengths.reduce((a, b) => a + b, 0);
      if (total > MAX_COUNT)
        throw new Error(
          `rank ${this.rank} of ${this.size}: ${what}: the ranks send ${count(total)} bytes in all; at most ${count(MAX_COUNT)}`,
        );
      const h = this.mpi.handles;
      const send = this.allocate(Math.max(data.length, 1));
      const recv = this.allocate(Math.max(total, 1));
      const counts = this.allocate(4 * this.size);
      const displs = this.allocate(4 * this.size);
      send.u8.set(data);
      let offset = 0;
      lengths.forEach((length, r) => {
        counts.view.setInt32(4 * r, length, true);
        displs.view.setInt32(4 * r, offset, true);
        offset += length;
      });
      this.start(what, 'MPI_Iallgatherv', (req) =>
        this.mpi.MPI_Iallgatherv(send.ptr, data.length, h.byte, recv.ptr, counts.ptr, displs.ptr, h.byte, this.world, req),
      );
      await this.wait(what);
      const out: Uint8Array[] = [];
      offset = 0;
      for (const length of lengths) {
        out.push(recv.u8.slice(offset, offset + length));
        offset += length;
      }
      for (const buffer of [send, recv, counts, displs]) this.release(buffer);
      return out;
    });
  }

  async allGatherObjects<T>(value: T): Promise<T[]> {
    const bytes = new TextEncoder().encode(toJson('allGatherObjects', value));
    const parts = await this.allGatherBytes(bytes);
    const decoder = new TextDecoder();
    return parts.map((part) => JSON.parse(decoder.decode(part)) as T);
  }

  async finalize(): Promise<void> {
    if (this.finalized) return;
    await this.queue.catch(() => {});
    this.finalized = true;
    // After a failure a request is still pending and a peer may be gone: MPI_Finalize would wait
    // for it forever. The process exits without it; mpirun reports the job as failed.
    if (this.failure) return;
    try {
      await this.barrierNow('finalize (waiting for every rank)');
    } catch (err) {
      this.failure = err as Error;
      throw err;
    }
    this.check('MPI_Finalize', this.mpi.MPI_Finalize(), 'finalize');
    if (this.stage) this.release(this.stage);
    this.release(this.request);
    this.stage = null;
  }

  async abort(code = 1): Promise<never> {
    this.mpi.MPI_Abort(this.world, code);
    process.exit(code);
  }

  // --- internals -----------------------------------------------------------------------------------

  /** Runs `body` after every earlier operation; refuses work after a failure or finalize(). */
  private serial<T>(what: string, body: () => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.finalized) throw new Error(`rank ${this.rank} of ${this.size}: ${what}: this communicator was finalized`);
      if (this.failure)
        throw new Error(
          `rank ${this.rank} of ${this.size}: ${what}: the communicator failed earlier and cannot be used again (${this.failure.message})`,
        );
      try {
        return await body();
      } catch (err) {
        // A length mismatch is seen alike by every rank and leaves nothing pending; anything else does.
        if (!(err instanceof LengthMismatch)) this.failure ??= err as Error;
        throw err;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  private async barrierNow(what: string): Promise<void> {
    this.start(what, 'MPI_Ibarrier', (req) => this.mpi.MPI_Ibarrier(this.world, req));
    await this.wait(what);
  }

  /** Every rank's `length`, after checking they agree; else every rank throws the same LengthMismatch. */
  private async sameLengths(what: string, length: number, unit: string): Promise<void> {
    const lengths = await this.gatherLengths(what, length);
    if (lengths.every((n) => n === lengths[0])) return;
    const each = lengths.map((n, r) => `rank ${r} ${count(n)} ${unit}`).join(', ');
    throw new LengthMismatch(
      `rank ${this.rank} of ${this.size}: ${what}: the ranks passed buffers of different lengths (${each}): every rank must pass the same length`,
    );
  }

  private async gatherLengths(what: string, length: number): Promise<number[]> {
    const h = this.mpi.handles;
    const send = this.allocate(8);
    const recv = this.allocate(8 * this.size);
    send.view.setFloat64(0, length, true);
    this.start(what, 'MPI_Iallgather', (req) => this.mpi.MPI_Iallgather(send.ptr, 8, h.byte, recv.ptr, 8, h.byte, this.world, req));
    await this.wait(what);
    const lengths = Array.from({ length: this.size }, (_, r) => recv.view.getFloat64(8 * r, true));
    this.release(send);
    this.release(recv);
    return lengths;
  }

  private start(what: string, call: string, issue: (request: unknown) => number): void {
    this.check(call, issue(this.request.ptr), what);
  }

  /**
   * Polls MPI_Test until the pending request completes. MPI progresses the transfer inside
   * MPI_Test, so polls come back to back for up to a millisecond before the event loop gets a
   * turn; a wait that lasts (a peer evaluating alone) polls less often. Rejects after timeoutSeconds.
   */
  private async wait(what: string): Promise<void> {
    const started = performance.now();
    const deadline = started + this.timeoutSeconds * 1000;
    for (;;) {
      const now = performance.now();
      const sliceEnd = now - started < 2000 ? now + 1 : now;
      do {
        this.check('MPI_Test', this.mpi.MPI_Test(this.request.ptr, this.flag, this.mpi.handles.statusIgnore), what);
        if (this.flag[0]) return;
      } while (performance.now() < sliceEnd);
      const waited = performance.now() - started;
      if (performance.now() >= deadline) {
        throw new MpiTimeoutError(
          `rank ${this.rank} of ${this.size}: ${what} got no answer from the other ranks in ${this.timeoutSeconds} s: a rank died or stopped (or is busy elsewhere for longer). ` +
            'This communicator cannot be used again: exit with a non-zero code (mpirun then stops the other ranks) or call abort(); ' +
            'if a rank is only slow, raise timeoutSeconds or PEFT_MPI_TIMEOUT',
          what,
          this.timeoutSeconds,
        );
      }
      await sleep(waited < 50 ? 0 : waited < 2000 ? 1 : 5);
    }
  }

  private check(call: string, rc: number, what: string): void {
    if (rc === 0) return;
    throw new MpiError(`rank ${this.rank ?? '?'} of ${this.size ?? '?'}: ${what}: ${call} failed: ${this.errorText(rc)}`, call, rc);
  }

  private errorText(rc: number): string {
    const text = Buffer.alloc(1024);
    const length = [0];
    if (this.mpi.MPI_Error_string(rc, text, length) !== 0) return `MPI error ${rc}`;
    return `${text.toString('utf8', 0, length[0])} (MPI error ${rc})`;
  }

  private readLibraryVersion(): string {
    const text = Buffer.alloc(8192);
    const length = [0];
    if (this.mpi.MPI_Get_library_version(text, length) !== 0) return this.mpi.flavour;
    return text.toString('utf8', 0, length[0]).trim();
  }

  /** The rank among processes sharing this machine's memory (MPI_Comm_split_type), when no launcher said it. */
  private sharedMemoryRank(): number {
    if (this.size === 1) return 0;
    const h = this.mpi.handles;
    const local = this.allocate(h.requestBytes);
    this.check(
      'MPI_Comm_split_type',
      this.mpi.MPI_Comm_split_type(this.world, h.commTypeShared, this.rank, h.infoNull, local.ptr),
      'finding the local rank',
    );
    const handle = h.requestBytes === 8 ? local.view.getBigUint64(0, true) : local.view.getInt32(0, true);
    const out = [0];
    this.check('MPI_Comm_rank', this.mpi.MPI_Comm_rank(handle, out), 'finding the local rank');
    this.mpi.MPI_Comm_free(local.ptr);
    this.release(local);
    return out[0];
  }

  private allocate(bytes: number): Native {
    const koffi = this.mpi.koffi;
    const ptr = koffi.alloc('uint8_t', bytes);
    const buffer: ArrayBuffer = koffi.view(ptr, bytes);
    return { ptr, bytes, u8: new Uint8Array(buffer), view: new DataView(buffer) };
  }

  private release(buffer: Native): void {
    this.mpi.koffi.free(buffer.ptr);
  }

  /** The staging buffer, at least `bytes` long (grown up to chunkBytes, then kept). */
  private staging(bytes: number): Native {
    if (!this.stage || this.stage.bytes < bytes) {
      if (this.stage) this.release(this.stage);
      this.stage = this.allocate(Math.max(bytes, 4));
    }
    return this.stage;
  }
}

class LengthMismatch extends Error {
  override name = 'LengthMismatch';
}

/**
 * Initialises MPI and returns the communicator of MPI_COMM_WORLD. Throws MpiUnavailable (with
 * every place looked and what to install) when no MPI library is found.
 */
export async function createCommunicator(options: CommunicatorOptions = {}): Promise<MpiCommunicator> {
  return MpiCommunicator.create(options);
}

/**
 * The communicator for how this process was started: over MPI when a launcher (mpirun, mpiexec,
 * srun) started it, a single-process LocalCommunicator otherwise. A trainer calls the same
 * methods either way.
 */
export async function communicatorFromEnvironment(options: CommunicatorOptions & { env?: NodeJS.ProcessEnv } = {}): Promise<Communicator> {
  if (!detectMpiEnvironment(options.env ?? process.env).launched) return new LocalCommunicator(options);
  return createCommunicator(options);
}
