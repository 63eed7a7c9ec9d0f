"""Streaming top-k per column: what a peaks-over-threshold fit needs, in O(k) memory.

A tail model fitted with ``threshold=TopK(k)`` only looks at the ``k + 1``
largest values of each column (the ``(k + 1)``-th is the threshold, the ``k``
above it are the exceedances) and at the number of rows (for the exceedance
rate). :class:`TopKAccumulator` keeps exactly that while gradient rows stream
in block by block, so a reference set of any size needs memory for about
``2 (k + 1)`` rows.
"""
from __future__ import annotations

import numpy as np

from ._errors import InvalidInputError
from ._validation import as_matrix, check_finite, positive_int


class TopKAccumulator:
    """Keep the ``k + 1`` largest values of every column of a streamed matrix.

    Parameters
    ----------
    k : int
        Number of exceedances of the ``TopK(k)`` threshold rule the fit will use;
        ``k + 1`` values per column are kept because the threshold is the
        ``(k + 1)``-th largest value.

    Attributes
    ----------
    count : int
        Rows seen so far.
    n_filters : int or None
        Number of columns, fixed by the first :meth:`update` (None before).

    Notes
    -----
    Incoming blocks are appended, transposed, to a buffer of ``2 (k + 1)``
    values per column; when it is full it is cut back to the ``k + 1`` largest
    with :func:`numpy.partition`, so each row costs O(n_filters) on average.
    The dtype is that of the blocks (float32 or float64; float32 is promoted
    to float64 if a float64 block arrives). Blocks must be finite.

    Examples
    --------
    >>> acc = TopKAccumulator(k=50)
    >>> for block in blocks:          # doctest: +SKIP
    ...     acc.update(block)
    >>> tail = acc.fit(method="mle")  # doctest: +SKIP
    """

    def __init__(self, k):
        self.k = positive_int(k, "k")
        self.count = 0
        self.n_filters = None
        self._buf = None  # (n_filters, 2 (k + 1)): per column, values in [:_fill] (unsorted)
        self._fill = 0

    @property
    def _keep(self):
        return self.k + 1

    def update(self, block):
        """Add rows.

        Parameters
        ----------
        block : array_like, shape (b, n_filters)
            Finite values; ``b`` may be 0.

        Returns
        -------
        self
        """
        block = as_matrix(block, "block", finite=False, min_rows=0)
        if not np.isfinite(block).all():  # a fast test first; check_finite finds and names the culprit
            check_finite(block, "block")
        if self._buf is None:
            self.n_filters = block.shape[1]
            self._buf = np.empty((self.n_filters, 2 * self._keep), dtype=block.dtype)
        elif block.shape[1] != self.n_filters:
            raise InvalidInputError(
                f"block has {block.shape[1]} columns but the accumulator holds {self.n_filters}; "
                "every block must have the same columns"
            )
        if block.dtype.itemsize > self._buf.dtype.itemsize:
            self._buf = self._buf.astype(block.dtype)
        start = 0
        while start < block.shape[0]:
            take = min(block.shape[0] - start, self._buf.shape[1] - self._fill)
            self._buf[:, self._fill:self._fill + take] = block[start:start + take].T
            self._fill += take
            start += take
            if self._fill == self._buf.shape[1]:
                self._compact()
        self.count += block.shape[0]
        return self

    def _compact(self):
        """Cut the buffer back to the ``k + 1`` largest values of each column."""
        if self._fill > self._keep:
            live = self._buf[:, :self._fill]
            live.partition(self._fill - self._keep, axis=1)
            self._buf[:, :self._keep] = live[:, self._fill - self._keep:]
            self._fill = self._keep

    def merge(self, other):
        """Absorb another accumulator (same ``k`` and columns), e.g. from another worker.

        Parameters
        ----------
        other : TopKAccumulator

        Returns
        -------
        self
            Holding the top values and row count of both streams together.
        """
        if not isinstance(other, TopKAccumulator):
            raise InvalidInputError(f"can only merge a TopKAccumulator, got {type(other).__name__}")
        if other.k != self.k:
            raise InvalidInputError(f"cannot merge accumulators with k={self.k} and k={other.k}")
        if other._buf is None:
            return self
        rows_seen = self.count
        self.update(other._buf[:, :other._fill].T)
        self.count = rows_seen + other.count
        return self

    @property
    def top(self):
        """Largest values per column, sorted descending.

        Returns
        -------
        ndarray, shape (min(count, k + 1), n_filters)
        """
        if self._buf is None:
            raise InvalidInputError("the accumulator is empty; call update() with at least one block first")
        self._compact()
        return -np.sort(-self._buf[:, :self._fill], axis=1).T

    def fit(self, method="mle", **kwargs):
        """Fit the tail model of every column from the kept values.

        Equals ``evtools.fit_tails(G, threshold=evtools.TopK(k), method=method)``
        on the full streamed matrix ``G`` in thresholds, rates, exceedances,
        fitted tails, statuses and scores above the threshold. Only the
        empirical body at and below the threshold differs: it is known only
        down to the smallest kept value (ties at the threshold are counted
        among the kept values only).

        Parameters
        ----------
        method : str
            GPD estimator, passed to :func:`evtools.fit_tails`.
        **kwargs
            Further arguments of :func:`evtools.fit_tails`.

        Returns
        -------
        evtools.TailModel
        """
        from .tails import fit_tails
        from .threshold import TopK

        return fit_tails(self.top, threshold=TopK(self.k), method=method, n_samples=self.count, **kwargs)

    def __repr__(self):
        return f"TopKAccumulator(k={self.k}, count={self.count}, n_filters={self.n_filters})"
