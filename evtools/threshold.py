"""Threshold rules: how each column's peaks-over-threshold level is chosen.

A rule is a small object with parameters (``Quantile(0.98)``, ``TopK(500)``)
applied to every column separately. Exceedances of a column are its values
strictly greater than its threshold; the excess is ``x - threshold``.

Rules work on columns that are already sorted ascending (``fit_tails`` sorts
each block of columns once and shares the sort between the threshold, the
exceedances and the empirical body), through ``thresholds_from_sorted``.
"""
from __future__ import annotations

import numpy as np

from ._errors import InvalidInputError
from ._validation import as_matrix, check_probability


class ThresholdRule:
    """Base class of threshold rules.

    Subclasses implement :meth:`thresholds_from_sorted`.
    """

    def thresholds_from_sorted(self, S, n_samples=None):
        """Per-column thresholds of sorted columns.

        Parameters
        ----------
        S : ndarray, shape (n_rows, n_cols), float32 or float64, Fortran order
            Each column sorted ascending.
        n_samples : int, optional
            The columns' full length when ``S`` holds only their largest
            ``n_rows`` values (a streaming top-k summary). Default ``n_rows``.

        Returns
        -------
        ndarray, shape (n_cols,), float64
        """
        raise NotImplementedError

    def select(self, G):
        """Thresholds of the columns of a matrix.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters)

        Returns
        -------
        ndarray, shape (n_filters,), float64
        """
        G = as_matrix(G, "G")
        S = np.sort(np.asfortranarray(G, dtype=np.float64), axis=0)
        return self.thresholds_from_sorted(S)

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class _OrderStatisticRule(ThresholdRule):
    """A rule whose threshold interpolates two adjacent order statistics."""

    def position(self, n_samples):
        """``(rank, frac)``: threshold = x[rank] + frac * (x[rank + 1] - x[rank]), 0-based ascending."""
        raise NotImplementedError

    def thresholds_from_sorted(self, S, n_samples=None):
        n_rows = S.shape[0]
        n = n_rows if n_samples is None else int(n_samples)
        rank, frac = self.position(n)
        first_kept = n - n_rows  # rank of S[0] among all n samples
        if rank < first_kept:
            raise InvalidInputError(
                f"{self!r} needs order statistic {rank} of {n}, but only the largest "
                f"{n_rows} values per column are available; keep more values (a larger k)"
            )
        lo = S[rank - first_kept].astype(np.float64)
        if frac == 0.0:
            return lo
        hi = S[rank - first_kept + 1].astype(np.float64)
        return lo + frac * (hi - lo)


class Quantile(_OrderStatisticRule):
    """Threshold at the empirical ``q`` quantile of each column.

    Uses the same interpolation as ``numpy.quantile(..., method="linear")``,
    so about ``(1 - q) * n_samples`` values exceed it.

    Parameters
    ----------
    q : float in (0, 1)
    """

    def __init__(self, q=0.98):
        self.q = check_probability(q, "q")

    def position(self, n_samples):
        h = self.q * (n_samples - 1)
        rank = int(np.floor(h))
        frac = h - rank
        if rank >= n_samples - 1:
            return n_samples - 1, 0.0
        return rank, frac


class TopK(_OrderStatisticRule):
    """Threshold at the ``(k + 1)``-th largest value, so the top ``k`` values exceed it.

    With ties at the threshold fewer than ``k`` values exceed it (exceedances
    are strictly greater than the threshold).

    Parameters
    ----------
    k : int >= 1
    """

    def __init__(self, k=500):
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)

    def position(self, n_samples):
        if n_samples <= self.k:
            raise InvalidInputError(
                f"TopK(k={self.k}) needs more than {self.k} rows, got {n_samples}; use a smaller k"
            )
        return n_samples - self.k - 1, 0.0
