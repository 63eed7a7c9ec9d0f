"""Column blocks of a matrix, sorted: the shared first step of every per-column tail computation.

A gradient matrix is stored row by row and may be larger than memory (a
memory map). Per-column work therefore goes block by block: a few hundred
columns are copied (transposed, in the matrix's own dtype) into one reused
buffer and sorted there, so the whole matrix is never copied.
"""
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from tqdm.auto import tqdm

BLOCK_BYTES = 64 * 2**20  #: size of the working copy of one block of columns


def default_block_size(n_rows, itemsize, n_cols):
    """Columns per block so that one block's copy is about :data:`BLOCK_BYTES`."""
    return int(min(max(1, BLOCK_BYTES // (itemsize * n_rows)), n_cols))


def _sort_columns_into(out, G, j0, rows=64):
    """Copy G[:, j0:j0 + len(out)] transposed into ``out`` (B, n) and sort each row."""
    B = out.shape[0]
    for i in range(0, G.shape[0], rows):  # small row chunks keep the transposing copy in cache
        out[:, i:i + rows] = G[i:i + rows, j0:j0 + B].T
    out.sort(axis=1)


def sorted_column_blocks(G, block_size=None, *, progress=False, desc=None):
    """Yield ``(j0, j1, S)``: columns ``j0:j1`` of ``G`` sorted ascending.

    Parameters
    ----------
    G : ndarray, shape (n_rows, n_cols), float32 or float64 (a memory map works)
    block_size : int, optional
        Columns per block; default :func:`default_block_size`.
    progress : bool
        tqdm bar over blocks (hidden when not on a terminal).
    desc : str, optional
        The bar's label.

    Yields
    ------
    j0, j1 : int
    S : ndarray, shape (n_rows, j1 - j0), G's dtype, Fortran order
        A view of one buffer reused for every block: use it before asking
        for the next block. The copy and the sorts run in numba's number of
        threads over column slices (numpy releases the GIL for both).
    """
    n_rows, n_cols = G.shape
    if block_size is None:
        block_size = default_block_size(n_rows, G.itemsize, n_cols)
    block_size = int(min(block_size, n_cols))
    n_threads = numba.get_num_threads()
    buffer = np.empty((block_size, n_rows), dtype=G.dtype)  # pages touched once, reused
    with ThreadPoolExecutor(n_threads) as pool:
        for j0 in tqdm(range(0, n_cols, block_size), desc=desc, unit="block",
                       disable=None if progress else True):
            j1 = min(j0 + block_size, n_cols)
            T = buffer[:j1 - j0]
            edges = np.linspace(0, j1 - j0, n_threads + 1).astype(int)
            jobs = [(T[a:b], j0 + a) for a, b in zip(edges[:-1], edges[1:]) if b > a]
            list(pool.map(lambda job: _sort_columns_into(job[0], G, job[1]), jobs))
            yield j0, j1, T.T
