/**
 * The MPI C library over koffi: where it is looked for, which implementation it is, the entry
 * points the communicator calls, and the predefined handles of each ABI.
 *
 * Two ABIs exist. Open MPI (libmpi.so.40) passes handles as pointers to global objects:
 * MPI_COMM_WORLD is `&ompi_mpi_comm_world`, MPI_FLOAT `&ompi_mpi_float`, MPI_SUM
 * `&ompi_mpi_op_sum`; their addresses come from the library's symbol table. MPICH and the
 * implementations that share its ABI (Intel MPI, MVAPICH; libmpi.so.12) pass handles as ints with
 * fixed values from mpi.h (MPI_COMM_WORLD 0x44000000, MPI_FLOAT 0x4c00040a, MPI_SUM 0x58000003).
 * Nothing here runs at import: `loadMpi()` loads koffi and the library on first call.
 */
import { createRequire } from 'node:module';

/** koffi's module, typed loosely (functions are declared from C strings at run time). */
// biome-ignore lint/suspicious/noExplicitAny: koffi's functions are declared from C strings at run time.
export type Koffi = any;
// biome-ignore lint/suspicious/noExplicitAny: the same: a C function declared from a string.
type Fn = (...args: any[]) => any;

/** An MPI handle: a pointer (Open MPI) or an int (MPICH ABI). */
export type Handle = bigint | number;

/** Thrown when koffi or the MPI library cannot be had; `reason` is a sentence for the user. */
export class MpiUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'MpiUnavailable';
  }
}

export type MpiFlavour = 'openmpi' | 'mpich';

/** The predefined handles and constants one ABI defines. */
export interface MpiHandles {
  commWorld: Handle;
  float: Handle;
  byte: Handle;
  int: Handle;
  sum: Handle;
  infoNull: Handle;
  errorsReturn: Handle;
  inPlace: bigint;
  /** MPI_STATUS_IGNORE: NULL in Open MPI, (MPI_Status *) 1 in MPICH. */
  statusIgnore: bigint | null;
  commTypeShared: number;
  threadFunneled: number;
  /** Bytes of one MPI_Request. */
  requestBytes: number;
}

const MPI_DECLS = {
  MPI_Initialized: 'int MPI_Initialized(_Out_ int *flag)',
  MPI_Finalized: 'int MPI_Finalized(_Out_ int *flag)',
  MPI_Init_thread: 'int MPI_Init_thread(void *argc, void *argv, int required, _Out_ int *provided)',
  MPI_Finalize: 'int MPI_Finalize()',
  MPI_Abort: 'int MPI_Abort(HANDLE comm, int code)',
  MPI_Comm_rank: 'int MPI_Comm_rank(HANDLE comm, _Out_ int *rank)',
  MPI_Comm_size: 'int MPI_Comm_size(HANDLE comm, _Out_ int *size)',
  MPI_Comm_split_type: 'int MPI_Comm_split_type(HANDLE comm, int type, int key, HANDLE info, void *newcomm)',
  MPI_Comm_free: 'int MPI_Comm_free(void *comm)',
  MPI_Comm_set_errhandler: 'int MPI_Comm_set_errhandler(HANDLE comm, HANDLE handler)',
  MPI_Error_string: 'int MPI_Error_string(int code, void *text, _Out_ int *length)',
  MPI_Get_library_version: 'int MPI_Get_library_version(void *text, _Out_ int *length)',
  MPI_Iallreduce: 'int MPI_Iallreduce(void *send, void *recv, int count, HANDLE type, HANDLE op, HANDLE comm, void *request)',
  MPI_Ibcast: 'int MPI_Ibcast(void *buffer, int count, HANDLE type, int root, HANDLE comm, void *request)',
  MPI_Ibarrier: 'int MPI_Ibarrier(HANDLE comm, void *request)',
  MPI_Iallgather:
    'int MPI_Iallgather(void *send, int sendCount, HANDLE sendType, void *recv, int recvCount, HANDLE recvType, HANDLE comm, void *request)',
  MPI_Iallgatherv:
    'int MPI_Iallgatherv(void *send, int sendCount, HANDLE sendType, void *recv, void *recvCounts, void *displs, HANDLE recvType, HANDLE comm, void *request)',
  MPI_Test: 'int MPI_Test(void *request, _Out_ int *flag, void *status)',
} as const;

export type MpiFunctions = { [K in keyof typeof MPI_DECLS]: Fn };

export interface MpiLibrary extends MpiFunctions {
  koffi: Koffi;
  /** The name or path that was loaded. */
  path: string;
  flavour: MpiFlavour;
  handles: MpiHandles;
}

/** MPICH's mpi.h values (shared by Intel MPI and MVAPICH). */
const MPICH_HANDLES: MpiHandles = {
  commWorld: 0x44000000,
  float: 0x4c00040a,
  byte: 0x4c00010d,
  int: 0x4c000405,
  sum: 0x58000003,
  infoNull: 0x1c000000,
  errorsReturn: 0x54000001,
  inPlace: 0xffff_ffff_ffff_ffffn, // (void *) -1
  statusIgnore: 1n,
  commTypeShared: 1,
  threadFunneled: 1,
  requestBytes: 4,
};

function openMpiHandles(lib: Koffi): MpiHandles {
  const address = (name: string): bigint => lib.symbol(name) as bigint;
  return {
    commWorld: address('ompi_mpi_comm_world'),
    float: address('ompi_mpi_float'),
    byte: address('ompi_mpi_byte'),
    int: address('ompi_mpi_int'),
    sum: address('ompi_mpi_op_sum'),
    infoNull: address('ompi_mpi_info_null'),
    errorsReturn: address('ompi_mpi_errors_return'),
    inPlace: 1n,
    statusIgnore: null,
    commTypeShared: 0,
    threadFunneled: 1,
    requestBytes: 8,
  };
}

let koffiModule: Koffi | null = null;

/** koffi, loaded on first use (its native addon would fail on an unsupported platform). */
function loadKoffi(): Koffi {
  if (koffiModule) return koffiModule;
  try {
    const require = createRequire(import.meta.url);
    koffiModule = require('koffi');
  } catch (err) {
    throw new MpiUnavailable(
      `the koffi package (FFI) could not be loaded: ${(err as Error).message.split('\n')[0]}. Reinstall @peft/distributed so that koffi and its platform package (@koromix/koffi-<os>-<arch>) are installed`,
    );
  }
  return koffiModule;
}

const SONAMES_LINUX = ['libmpi.so.40', 'libmpi.so.12', 'libmpich.so.12'];
const SONAMES_MAC = ['libmpi.40.dylib', 'libmpi.12.dylib', 'libmpich.12.dylib'];
const PREFIXES = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64/openmpi/lib',
  '/usr/lib64/mpich/lib',
  '/usr/lib/openmpi/lib',
  '/usr/lib/mpich/lib',
  '/opt/openmpi/lib',
  '/opt/mpich/lib',
  '/opt/intel/oneapi/mpi/latest/lib',
  '/usr/local/lib',
  '/opt/homebrew/lib',
];

/**
 * The libraries tried, in order: PEFT_MPI_LIBRARY alone when set; else each soname in the
 * folders of MPI_HOME / OPAL_PREFIX / I_MPI_ROOT and LD_LIBRARY_PATH, by bare name (the
 * dynamic loader's own search: ld.so.cache, DT_RUNPATH), then in common install prefixes.
 */
export function libraryCandidates(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string[] {
  const override = env.PEFT_MPI_LIBRARY;
  if (override) return [override];
  const sonames = platform === 'darwin' ? SONAMES_MAC : SONAMES_LINUX;
  const folders: string[] = [];
  for (const root of [env.MPI_HOME, env.OPAL_PREFIX, env.I_MPI_ROOT]) if (root) folders.push(`${root}/lib`);
  const pathVar = platform === 'darwin' ? env.DYLD_LIBRARY_PATH : env.LD_LIBRARY_PATH;
  for (const dir of (pathVar ?? '').split(':')) if (dir) folders.push(dir);
  const out: string[] = [];
  for (const dir of folders) for (const name of sonames) out.push(`${dir.replace(/\/$/, '')}/${name}`);
  out.push(...sonames);
  for (const dir of PREFIXES) for (const name of sonames) out.push(`${dir}/${name}`);
  return [...new Set(out)];
}

/** What to install, for an error that says none was found. */
export const INSTALL_HINT =
  'install Open MPI (Debian/Ubuntu: `apt install openmpi-bin libopenmpi3`; Fedora/RHEL: `dnf install openmpi` and `module load mpi/openmpi-x86_64`; macOS: `brew install open-mpi`) or MPICH (`apt install mpich`), or set PEFT_MPI_LIBRARY to the path of libmpi';

function symbolExists(lib: Koffi, name: string): boolean {
  try {
    lib.symbol(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens the first MPI library of `candidates` and declares its functions. RTLD_GLOBAL: Open MPI
 * loads its components (mca_*.so) with dlopen, and they resolve symbols of libmpi.
 */
export function openMpiLibrary(candidates: string[], envOverride = false): MpiLibrary {
  const koffi = loadKoffi();
  const failures: string[] = [];
  for (const path of candidates) {
    let lib: Koffi;
    try {
      lib = koffi.load(path, { global: true });
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      // A missing file is the common case; any other failure (wrong architecture, a broken
      // dependency) is worth its own words.
      failures.push(/No such file|not found|image not found/i.test(why) ? path : `${path} (${why})`);
      continue;
    }
    let flavour: MpiFlavour;
    if (symbolExists(lib, 'ompi_mpi_comm_world')) flavour = 'openmpi';
    else if (symbolExists(lib, 'MPIR_Dup_fn') || symbolExists(lib, 'MPIR_Err_return_comm')) flavour = 'mpich';
    else
      throw new MpiUnavailable(
        `${path} is not an MPI library this package knows: it has neither Open MPI's ompi_mpi_comm_world nor MPICH's MPIR_Dup_fn. Point PEFT_MPI_LIBRARY at Open MPI's libmpi.so.40 or MPICH's libmpi.so.12`,
      );
    const handles = flavour === 'openmpi' ? openMpiHandles(lib) : MPICH_HANDLES;
    const handleType = flavour === 'openmpi' ? 'void *' : 'int';
    const mpi = { koffi, path, flavour, handles } as MpiLibrary;
    for (const [key, decl] of Object.entries(MPI_DECLS)) {
      try {
        (mpi as unknown as Record<string, unknown>)[key] = lib.func(decl.replaceAll('HANDLE', handleType));
      } catch (err) {
        throw new MpiUnavailable(
          `${path} has no ${key}: an MPI older than 3.0 (${(err as Error).message}); install Open MPI ≥ 3 or MPICH ≥ 3`,
        );
      }
    }
    return mpi;
  }
  if (envOverride)
    throw new MpiUnavailable(
      `no MPI library: PEFT_MPI_LIBRARY names ${failures.join('; ')}, which could not be loaded. Point it at Open MPI's libmpi.so.40 or MPICH's libmpi.so.12, or unset it to search the usual places`,
    );
  throw new MpiUnavailable(
    `no MPI library found: looked for ${failures.join(', ')} (PEFT_MPI_LIBRARY unset). To train on several processes, ${INSTALL_HINT}`,
  );
}

let library: MpiLibrary | null = null;
let libraryError: MpiUnavailable | null = null;

/** The MPI library of this process, loaded once (PEFT_MPI_LIBRARY picks one). Throws MpiUnavailable. */
export function loadMpi(): MpiLibrary {
  if (library) return library;
  if (libraryError) throw libraryError;
  try {
    library = openMpiLibrary(libraryCandidates(), Boolean(process.env.PEFT_MPI_LIBRARY));
    return library;
  } catch (err) {
    libraryError = err instanceof MpiUnavailable ? err : new MpiUnavailable((err as Error).message);
    throw libraryError;
  }
}

/** Whether an MPI library can be loaded here, and which; never throws. */
export function mpiAvailability(): { available: boolean; reason: string; flavour?: MpiFlavour } {
  try {
    const mpi = loadMpi();
    return { available: true, reason: `${mpi.flavour === 'openmpi' ? 'Open MPI' : 'MPICH ABI'} (${mpi.path})`, flavour: mpi.flavour };
  } catch (err) {
    return { available: false, reason: err instanceof MpiUnavailable ? err.reason : `MPI check failed: ${(err as Error).message}` };
  }
}
