"""Column blocks of a matrix: the shared first step of every per-column tail computation.

A gradient matrix is stored row by row and may be larger than memory (a
memory map). Per-column work therefore goes block by block: a few hundred
columns are copied (transposed, in the matrix's own dtype) into one reused
buffer, and sorted there where a rule needs whole sorted columns, so the
whole matrix is never copied.
"""
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ._kernels.sort import radix_keys, sort_rows

BLOCK_BYTES = 64 * 2**20  #: size of the working copy of one block of columns


def default_block_size(n_rows, itemsize, n_cols):
    """Columns per block so that one block's copy is about :data:`BLOCK_BYTES`."""
    return int(min(max(1, BLOCK_BYTES // (itemsize * n_rows)), n_cols))


def _copy_columns_into(out, G, j0, sort, rows=64):
    """Copy G[:, j0:j0 + len(out)] transposed into ``out`` (B, n), then sort each row if asked."""
    B = out.shape[0]
    for i in range(0, G.shape[0], rows):  # small row chunks keep the transposing copy in cache
        out[:, i:i + rows] = G[i:i + rows, j0:j0 + B].T
    if sort:
        sort_rows(out, *radix_keys(out.dtype))  # a radix sort: np.sort's speed hinges on the host's SIMD sort


def _num_threads():
    """``numba.get_num_threads()``, without starting numba's threading layer (15 ms) to ask.

    Until the layer runs, ``set_num_threads`` has not been called (it starts
    the layer), so the count is ``NUMBA_NUM_THREADS``.
    """
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", True):
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


def thread_slices(n, func):
    """Run ``func(a, b)`` over ``n_threads`` slices ``[a, b)`` of ``range(n)`` in threads.

    For numpy calls and ``nogil`` numba kernels, which release the GIL;
    ``n_threads`` is numba's (``numba.get_num_threads()``).
    """
    edges = np.linspace(0, n, _num_threads() + 1).astype(int)
    jobs = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    if len(jobs) == 1:
        func(*jobs[0])
        return
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(func, a, b) for a, b in jobs]:
            future.result()


def column_blocks(G, block_size=None, *, sort=False, progress=False, desc=None):
    """Yield ``(j0, j1, T)``: columns ``j0:j1`` of ``G`` as the rows of ``T``.

    Parameters
    ----------
    G : ndarray, shape (n_rows, n_cols), float32 or float64 (a memory map works)
    block_size : int, optional
        Columns per block; default :func:`default_block_size`.
    sort : bool
        Sort each row of ``T`` ascending.
    progress : bool
        tqdm bar over blocks (hidden when not on a terminal).
    desc : str, optional
        The bar's label.

    Yields
    ------
    j0, j1 : int
    T : ndarray, shape (j1 - j0, n_rows), G's dtype, C order
        A view of one buffer reused for every block (the caller may reorder
        its rows): use it before asking for the next block. The copy (and
        the sorts) run in threads over column slices (:func:`thread_slices`).
    """
    n_rows, n_cols = G.shape
    if block_size is None:
        block_size = default_block_size(n_rows, G.itemsize, n_cols)
    block_size = int(min(block_size, n_cols))
    buffer = np.empty((block_size, n_rows), dtype=G.dtype)  # pages touched once, reused
    starts = range(0, n_cols, block_size)
    if progress:  # imported only then: tqdm.auto imports asyncio (20 ms of a CLI call)
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=desc, unit="block", disable=None)
    for j0 in starts:
        j1 = min(j0 + block_size, n_cols)
        T = buffer[:j1 - j0]
        thread_slices(j1 - j0, lambda a, b: _copy_columns_into(T[a:b], G, j0 + a, sort))
        yield j0, j1, T


def sorted_column_blocks(G, block_size=None, *, progress=False, desc=None):
    """Yield ``(j0, j1, S)``: columns ``j0:j1`` of ``G`` sorted ascending.

    As :func:`column_blocks` with ``sort=True``, but ``S`` has shape
    (n_rows, j1 - j0) (Fortran order): each column sorted.
    """
    for j0, j1, T in column_blocks(G, block_size, sort=True, progress=progress, desc=desc):
        yield j0, j1, T.T
