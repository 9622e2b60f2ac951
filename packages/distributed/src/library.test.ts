import { describe, expect, it } from 'vitest';
import { INSTALL_HINT, libraryCandidates, openMpiLibrary } from './library.js';

describe('libraryCandidates', () => {
  it('tries PEFT_MPI_LIBRARY alone when it is set', () => {
    expect(libraryCandidates({ PEFT_MPI_LIBRARY: '/site/mpi/lib/libmpi.so', LD_LIBRARY_PATH: '/x' }, 'linux')).toEqual([
      '/site/mpi/lib/libmpi.so',
    ]);
  });

  it('tries MPI_HOME and LD_LIBRARY_PATH first, then the loader by soname, then common prefixes', () => {
    const list = libraryCandidates({ MPI_HOME: '/apps/openmpi-4.1', LD_LIBRARY_PATH: '/opt/x/lib/::/usr/local/cuda/lib64' }, 'linux');
    expect(list.slice(0, 9)).toEqual([
      '/apps/openmpi-4.1/lib/libmpi.so.40',
      '/apps/openmpi-4.1/lib/libmpi.so.12',
      '/apps/openmpi-4.1/lib/libmpich.so.12',
      '/opt/x/lib/libmpi.so.40',
      '/opt/x/lib/libmpi.so.12',
      '/opt/x/lib/libmpich.so.12',
      '/usr/local/cuda/lib64/libmpi.so.40',
      '/usr/local/cuda/lib64/libmpi.so.12',
      '/usr/local/cuda/lib64/libmpich.so.12',
    ]);
    expect(list.slice(9, 12)).toEqual(['libmpi.so.40', 'libmpi.so.12', 'libmpich.so.12']);
    for (const path of [
      '/usr/lib/x86_64-linux-gnu/libmpi.so.40',
      '/usr/lib64/openmpi/lib/libmpi.so.40',
      '/usr/lib64/mpich/lib/libmpi.so.12',
      '/opt/intel/oneapi/mpi/latest/lib/libmpi.so.12',
    ])
      expect(list).toContain(path);
    expect(new Set(list).size).toBe(list.length);
  });

  it('looks for dylibs on macOS', () => {
    expect(libraryCandidates({}, 'darwin')).toContain('/opt/homebrew/lib/libmpi.40.dylib');
  });
});

describe('openMpiLibrary', () => {
  it('names the PEFT_MPI_LIBRARY path that could not be loaded', () => {
    const candidates = libraryCandidates({ PEFT_MPI_LIBRARY: '/nonexistent/mpi/libmpi.so.40' }, 'linux');
    expect(() => openMpiLibrary(candidates, true)).toThrow(
      "no MPI library: PEFT_MPI_LIBRARY names /nonexistent/mpi/libmpi.so.40, which could not be loaded. Point it at Open MPI's libmpi.so.40 or MPICH's libmpi.so.12, or unset it to search the usual places",
    );
  });

  it('names every place looked and what to install when none loads', () => {
    let message = '';
    try {
      openMpiLibrary(['/nonexistent/a/libmpi.so.40', '/nonexistent/b/libmpi.so.12']);
    } catch (err) {
      message = (err as Error).message;
      expect((err as Error).name).toBe('MpiUnavailable');
    }
    expect(message).toBe(
      `no MPI library found: looked for /nonexistent/a/libmpi.so.40, /nonexistent/b/libmpi.so.12 (PEFT_MPI_LIBRARY unset). To train on several processes, ${INSTALL_HINT}`,
    );
    expect(message).toContain('apt install openmpi-bin libopenmpi3');
  });

  it('refuses a library that is not MPI', () => {
    expect(() => openMpiLibrary(['libm.so.6'])).toThrow(
      "libm.so.6 is not an MPI library this package knows: it has neither Open MPI's ompi_mpi_comm_world nor MPICH's MPIR_Dup_fn",
    );
  });
});
