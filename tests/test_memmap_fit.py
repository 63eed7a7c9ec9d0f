"""fit_tails on a .npy memory map (as written row by row): the in-memory fit, in bounded memory."""
import tracemalloc

import numpy as np
import pytest

import evtools as ev
from evtools.adapter import NpyRowWriter


def write_npy(path, G, rows=700):
    with NpyRowWriter(path, G.shape[1], G.dtype) as writer:
        for i in range(0, G.shape[0], rows):
            writer.write(G[i:i + rows])
        return writer.close()


def make_matrix(rng, n, m, dtype):
    G = rng.lognormal(sigma=rng.uniform(0.3, 1.0, m), size=(n, m)).astype(dtype)
    G[:, 1] = 0.0
    return G


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_size", [None, 7])
def test_memmap_fit_equals_in_memory(tmp_path, rng, dtype, block_size):
    G = make_matrix(rng, 3000, 40, dtype)
    M = write_npy(tmp_path / "G.npy", G)
    assert isinstance(M, np.memmap)
    got = ev.fit_tails(M, block_size=block_size, progress=False)
    expected = ev.fit_tails(G, progress=False)
    for name in ev.TailModel._ARRAYS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    np.testing.assert_array_equal(got.score(M[:100]), expected.score(G[:100]))


def test_memmap_fit_allocates_one_block_at_a_time(tmp_path, rng):
    """numpy allocations during the fit stay near one block of columns, far below the file.

    (tracemalloc sees every numpy buffer, so a hidden whole-matrix copy would
    show; numba's small per-column outputs are not traced.)
    """
    n, m, block = 8000, 600, 20
    path = tmp_path / "G.npy"
    with NpyRowWriter(path, m, np.float32) as writer:
        for i in range(0, n, 1000):
            writer.write(make_matrix(rng, 1000, m, np.float32))
        M = writer.close()
    ev.fit_tails(M[:, :block], block_size=block, progress=False)  # compile / load outside the trace
    tracemalloc.start()
    try:
        ev.fit_tails(M, block_size=block, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block_bytes = n * block * M.itemsize
    assert peak < 3 * block_bytes + 2 * m * 65 * 8 + 2**20, (peak, block_bytes, M.nbytes)
    assert peak < M.nbytes / 8
