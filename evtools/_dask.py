"""Column-block maps over Dask arrays, for :func:`evtools.fit_tails` and :class:`evtools.TailModel` scoring.

Columns are independent, so a matrix too large for one machine splits by
column blocks: each block, with all its rows gathered, is fitted by the very
same in-memory :func:`evtools.fit_tails` (so the same numba kernels), and the
per-block models are concatenated. Every per-column number depends only on
its column, so the result equals the in-memory fit bit for bit, whatever the
blocks. Scoring maps :meth:`TailModel.logsf` over the blocks of the input
and returns a Dask array.

This module sits below :mod:`evtools.tails` and never imports it: the tail
model passes its fit, concatenation and scoring functions as arguments.

Dask is optional (the ``dask`` extra): it is imported only when a Dask array
is passed, and :func:`is_dask_array` never imports it.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from ._blocks import default_block_size
from ._errors import InvalidInputError

# One block's numba kernels at a time per process: each already uses every
# core, so Dask's threaded scheduler running blocks in several threads would
# only oversubscribe them. (The workqueue layer's abort on concurrent parallel
# regions is handled for every caller by evtools/_kernels/parallel.py.)
_KERNEL_LOCK = threading.Lock()


def is_dask_array(x):
    """True if ``x`` is a ``dask.array.Array`` (without importing Dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def as_dask_matrix(G, name):
    """Check a Dask array is 2-D with known shape and real numbers; float32/float64 kept, others cast.

    Values (finite or not) are checked block by block when they are computed.
    """
    if G.ndim != 2:
        raise InvalidInputError(f"{name} must be 2-D (n_samples, n_filters), got {G.ndim}-D shape {G.shape}")
    if any(np.isnan(s) for s in G.shape):
        raise InvalidInputError(
            f"{name} has unknown chunk sizes {G.shape}; call {name}.compute_chunk_sizes() first")
    if G.shape[0] < 1 or G.shape[1] < 1:
        raise InvalidInputError(f"{name} has shape {G.shape}: need at least 1 row and 1 column")
    kind = G.dtype.kind
    if kind not in "biuf":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {G.dtype}")
    return G if G.dtype in (np.float32, np.float64) else G.astype(np.float64)


def _fit_block(fit, block, j0, kwargs):
    """``fit(block, **kwargs)`` on one block of columns (all rows), with errors naming global columns."""
    try:
        with _KERNEL_LOCK:
            return fit(block, **kwargs)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"in the block of G's columns starting at column {j0} (column numbers below count "
            f"from there): {exc}") from exc


def fit_column_blocks(G, fit, block_kwargs, concat, *, block_size=None):
    """A column-wise fit of a Dask array: in-memory fits of column blocks, concatenated.

    Knows nothing of the model it builds: :func:`evtools.fit_tails` passes
    itself as ``fit`` and ``evtools.tails.concat_models`` as ``concat``, so
    this module never imports the tail model.

    Parameters
    ----------
    G : dask.array.Array, shape (n_samples, n_filters)
        Checked by :func:`as_dask_matrix`; rechunked to all rows by ``block_size`` columns; each block is
        computed (on the current scheduler: threads, processes or a
        ``dask.distributed`` client) and fitted where it lies.
    fit : callable
        ``fit(block, **kwargs)`` -> model of the block's columns; a module-level
        function (it travels to the workers).
    block_kwargs : callable
        ``block_kwargs(j0, j1)`` -> keyword arguments of ``fit`` for columns ``j0:j1``.
    concat : callable
        ``concat(models)`` -> one model of the blocks' columns side by side.
    block_size : int, optional
        Columns per block; default keeps a block near 64 MiB, as in-memory.

    Returns
    -------
    model
        What ``concat`` returns: equal, column for column, to ``fit(G.compute(), **block_kwargs(0, n))``
        when every column's fit depends only on that column.
    """
    import dask

    n_rows, n_cols = G.shape
    if block_size is None:
        block_size = default_block_size(n_rows, G.dtype.itemsize, n_cols)
    block_size = int(min(block_size, n_cols))
    if block_size < 1:
        raise InvalidInputError(f"block_size must be at least 1, got {block_size}")
    blocks = G.rechunk({0: -1, 1: block_size}).to_delayed()[0]
    fit_one = dask.delayed(_fit_block, pure=True)
    starts = range(0, n_cols, block_size)
    models = dask.compute(*(fit_one(fit, b, j0, block_kwargs(j0, min(j0 + block_size, n_cols)))
                            for b, j0 in zip(blocks, starts)))
    return concat(models)


def _map_block(block, func, model, block_info=None):
    j0, j1 = block_info[0]["array-location"][1]
    with _KERNEL_LOCK:
        return func(block, model, j0, j1)


def map_column_blocks(G, func, model, n_columns):
    """``func(block, model, j0, j1)`` over the blocks of a Dask array, as a Dask array with ``G``'s chunks.

    Parameters
    ----------
    G : dask.array.Array, shape (n_samples, n_columns)
    func : callable
        Module-level function returning a float64 array of the block's shape
        from the block and the model's columns ``j0:j1``.
    model : object
        Sent once to the workers (one Dask task).
    n_columns : int
        Columns ``G`` must have.

    Values are checked (finite, right columns) when the blocks are computed.
    """
    import dask

    G = as_dask_matrix(G, "G")
    if G.shape[1] != n_columns:
        raise InvalidInputError(
            f"G has {G.shape[1]} columns but the model was fitted on {n_columns}; "
            "reference and diagnosed matrices must share their columns")
    return G.map_blocks(_map_block, func, dask.delayed(model, pure=True), dtype=np.float64,
                        meta=np.empty((0, 0), dtype=np.float64))
