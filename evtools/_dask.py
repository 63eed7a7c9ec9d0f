"""Dask arrays in :func:`evtools.fit_tails` and :class:`evtools.TailModel` scoring.

Columns are independent, so a matrix too large for one machine splits by
column blocks: each block, with all its rows gathered, is fitted by the very
same in-memory :func:`evtools.fit_tails` (so the same numba kernels), and the
per-block models are concatenated. Every per-column number depends only on
its column, so the result equals the in-memory fit bit for bit, whatever the
blocks. Scoring maps :meth:`TailModel.logsf` over the blocks of the input
and returns a Dask array.

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
# core, and numba's workqueue threading layer aborts on concurrent parallel
# regions (Dask's threaded scheduler runs blocks in several threads).
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


def _model_meta(model):
    return {"n_samples": model.n_samples, "method": model.method, "rule": model.rule,
            "min_exceed": model.min_exceed, "decluster": model.decluster}


def take_columns(model, j0, j1):
    """The TailModel of columns ``j0:j1`` of ``model`` (views of its arrays)."""
    from .tails import TailModel

    return TailModel(**{k: getattr(model, k)[j0:j1] for k in TailModel._ARRAYS}, **_model_meta(model))


def concat_models(models):
    """One TailModel of the columns of ``models`` side by side (same settings)."""
    from .tails import TailModel

    return TailModel(**{k: np.concatenate([getattr(m, k) for m in models], axis=0)
                        for k in TailModel._ARRAYS}, **_model_meta(models[0]))


def _fit_block(block, j0, kwargs):
    """fit_tails on one block of columns (all rows), with errors naming global columns."""
    from .tails import fit_tails

    try:
        with _KERNEL_LOCK:
            return fit_tails(block, progress=False, **kwargs)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"in the block of G's columns starting at column {j0} (column numbers below count "
            f"from there): {exc}") from exc


def fit_tails_dask(G, *, block_size=None, **kwargs):
    """:func:`evtools.fit_tails` of a Dask array: in-memory fits of column blocks, concatenated.

    Parameters
    ----------
    G : dask.array.Array, shape (n_samples, n_filters)
        Checked by :func:`as_dask_matrix`; rechunked to all rows by ``block_size`` columns; each block is
        computed (on the current scheduler: threads, processes or a
        ``dask.distributed`` client) and fitted where it lies.
    block_size : int, optional
        Columns per block; default keeps a block near 64 MiB, as in-memory.
    **kwargs
        The other arguments of :func:`evtools.fit_tails` (``progress`` is ignored).

    Returns
    -------
    TailModel
        Equal, array for array, to ``fit_tails(G.compute(), ...)``.
    """
    import dask

    n_rows, n_cols = G.shape
    if block_size is None:
        block_size = default_block_size(n_rows, G.dtype.itemsize, n_cols)
    block_size = int(min(block_size, n_cols))
    if block_size < 1:
        raise InvalidInputError(f"block_size must be at least 1, got {block_size}")
    kwargs.pop("progress", None)
    blocks = G.rechunk({0: -1, 1: block_size}).to_delayed()[0]
    fit = dask.delayed(_fit_block, pure=True)
    starts = range(0, n_cols, block_size)
    rule = kwargs.pop("threshold")
    models = dask.compute(*(fit(b, j0, {**kwargs, "threshold": rule.for_columns(j0, min(j0 + block_size, n_cols))})
                            for b, j0 in zip(blocks, starts)))
    model = concat_models(models)
    model.rule = rule
    return model


def _logsf_block(block, model, block_info=None):
    j0, j1 = block_info[0]["array-location"][1]
    with _KERNEL_LOCK:
        return take_columns(model, j0, j1).logsf(block)


def logsf_dask(model, G):
    """:meth:`TailModel.logsf` of a Dask array, as a Dask array with ``G``'s chunks.

    Values are checked (finite, right columns) when the blocks are computed.
    """
    import dask

    G = as_dask_matrix(G, "G")
    if G.shape[1] != model.n_filters:
        raise InvalidInputError(
            f"G has {G.shape[1]} columns but the model was fitted on {model.n_filters}; "
            "reference and diagnosed matrices must share their columns")
    return G.map_blocks(_logsf_block, dask.delayed(model, pure=True), dtype=np.float64,
                        meta=np.empty((0, 0), dtype=np.float64))
