/**
 * What each rank runs in the multi-process tests (started by mpirun through mpi.testkit.ts).
 * argv[2] picks the scenario; each rank prints one JSON line "result <json>" with what it saw,
 * or "error <message>" and exits 1 when a collective rejects.
 */
import { createCommunicator } from './index.js';

const scenario = process.argv[2];
// Without the launcher's local rank the communicator asks MPI (MPI_Comm_split_type).
if (scenario === 'collectives') {
  delete process.env.OMPI_COMM_WORLD_LOCAL_RANK;
  delete process.env.OMPI_COMM_WORLD_LOCAL_SIZE;
}
const comm = await createCommunicator();
const { rank, size } = comm;
const print = (tag: string, value: unknown) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);

/** Elements of `got` that differ from `expected(i)`, and the first few values. */
function compare(got: Float32Array, expected: (i: number) => number) {
  let mismatches = 0;
  for (let i = 0; i < got.length; i++) if (got[i] !== expected(i)) mismatches++;
  return { length: got.length, mismatches, head: Array.from(got.subarray(0, 3)), last: got[got.length - 1] };
}

async function collectives() {
  // Odd size, sum: rank r contributes (r + 1) * (i % 7).
  const ranksSum = (size * (size + 1)) / 2;
  const odd = Float32Array.from({ length: 1001 }, (_, i) => (rank + 1) * (i % 7));
  await comm.allReduce(odd, 'sum');
  // Mean of rank r's value r + 0.5 * i: 0.5 * i + (size - 1) / 2.
  const mean = Float32Array.from({ length: 37 }, (_, i) => rank + 0.5 * i);
  await comm.allReduce(mean, 'mean');
  // Larger than one 16 MiB chunk (4 Mi floats): two chunks, the second of 5 floats.
  const big = new Float32Array(4 * 2 ** 20 + 5).fill(rank + 1);
  big[big.length - 1] = rank * 1000;
  await comm.allReduce(big, 'sum');
  const bytes = new Uint8Array(100_003);
  if (rank === 1) for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
  await comm.broadcast(bytes, 1);
  const floats = Float32Array.from({ length: 5 }, (_, i) => (rank === 0 ? i + 0.25 : -1));
  await comm.broadcast(floats);
  await comm.barrier();
  const gathered = await comm.allGatherObjects({ rank, accuracy: 0.5 + rank / 10, label: `r${rank}`.repeat(rank + 1) });
  const empty = await comm.allGatherBytes(new Uint8Array(rank === 0 ? 0 : 3).fill(7));
  let mismatch = '';
  try {
    await comm.allReduce(new Float32Array(10 + rank));
  } catch (err) {
    mismatch = (err as Error).message;
  }
  // The communicator is still usable after a length mismatch: every rank saw it.
  const after = await comm.allReduce(Float32Array.of(rank), 'sum');
  print('result', {
    rank,
    size,
    localRank: comm.localRank,
    description: comm.description,
    odd: compare(odd, (i) => ranksSum * (i % 7)),
    mean: compare(mean, (i) => 0.5 * i + (size - 1) / 2),
    big: compare(big, (i) => (i === big.length - 1 ? (1000 * size * (size - 1)) / 2 : ranksSum)),
    broadcastBytes: bytes.every((b, i) => b === (i * 31) % 251),
    broadcastFloats: Array.from(floats),
    gathered,
    emptyLengths: empty.map((b) => b.length),
    mismatch,
    after: Array.from(after),
  });
  await comm.finalize();
}

async function peerStops(how: string) {
  if (rank === 1) {
    print('pid', process.pid);
    if (how === 'stop') process.kill(process.pid, 'SIGSTOP');
    if (how === 'exit') process.exit(3);
    if (how === 'kill') process.kill(process.pid, 'SIGKILL');
  }
  if (rank === 0 && how === 'abort') await comm.abort(5);
  await comm.allReduce(new Float32Array(1234).fill(1), 'sum');
  print('result', { rank, completed: true });
  await comm.finalize();
}

try {
  if (scenario === 'collectives') await collectives();
  else await peerStops(scenario ?? '');
} catch (err) {
  print('error', (err as Error).message);
  process.exit(1);
}
