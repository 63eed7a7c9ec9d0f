"""Declustering of time series and their extremal index, column by column.

Exceedances of a dependent series come in clusters (a flood lasts days, a
gradient norm stays high for several training steps). A GPD fitted to all of
them counts one event many times: the fit is biased towards the clustered
values and the rate of *events* is overstated. The standard remedy (Coles
2001, section 5.3) keeps one value per cluster, its maximum, and fits those.

Clusters here are found by the **runs method**: two consecutive exceedances
(values strictly above the threshold) belong to the same cluster unless their
times differ by more than ``run``; with row numbers as times, unless at least
``run`` values at or below the threshold lie between them. This is R POT's
``clust(data, u, tim.cond = run, clust.max = TRUE)``. The **extremal index**
``theta`` in (0, 1] is the reciprocal of the mean cluster size in the limit;
it is estimated by the runs estimator (clusters / exceedances) or by the
intervals estimator of Ferro & Segers (2003), which needs no run length.

``fit_tails(G, ..., decluster=run)`` fits the tails of every column to its
cluster maxima (see :func:`evtools.fit_tails`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._blocks import column_blocks
from ._errors import InvalidInputError
from ._kernels import decluster as decluster_kernels
from ._validation import _as_float_array, as_matrix
from .threshold import ThresholdRule

__all__ = ["Clusters", "decluster", "extremal_index"]


@dataclass(frozen=True, repr=False)
class Clusters:
    """Cluster maxima of one series, or of every column of a matrix.

    Attributes
    ----------
    index : int64, shape (n_clusters,) or (m_max, n_cols)
        Row of each cluster's maximum, in time order (for a matrix, padded
        with -1 below each column's ``n_clusters``).
    maxima : float64, same shape
        The cluster maxima (padded with NaN).
    n_clusters, n_exceed : int or int64 (n_cols,)
        Clusters and exceedances.
    threshold : float or float64 (n_cols,)
    run : float
        The run length used.
    """

    index: np.ndarray
    maxima: np.ndarray
    n_clusters: object
    n_exceed: object
    threshold: object
    run: float

    @property
    def extremal_index(self):
        """Runs estimate of the extremal index, ``n_clusters / n_exceed`` (NaN without exceedances)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            theta = np.true_divide(self.n_clusters, self.n_exceed)
        return float(theta) if theta.ndim == 0 else theta

    def __repr__(self):
        return (f"Clusters(n_clusters={self.n_clusters}, n_exceed={self.n_exceed}, run={self.run:g})"
                if np.ndim(self.n_clusters) == 0 else
                f"Clusters({np.size(self.n_clusters)} columns, run={self.run:g}, "
                f"clusters per column: median {np.median(self.n_clusters):g})")


def check_run(run):
    """The run length as a float > 0, or InvalidInputError."""
    if isinstance(run, (bool, np.bool_)) or not isinstance(run, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(run) and run > 0):
        raise InvalidInputError(
            f"run must be a positive number (rows, or time units with time=...), got {run!r}; "
            "run=r ends a cluster after r values at or below the threshold")
    return float(run)


def _prepare(x, threshold, time):
    """``(X (n, F), t (F,), time (n,), was_1d)`` checked."""
    was_1d = np.ndim(x) == 1
    X = as_matrix(np.asarray(x)[:, None] if was_1d else x, "x")
    n, F = X.shape
    if isinstance(threshold, ThresholdRule):
        t = threshold.select(X)  # sorted block by block, never a sorted copy of the whole matrix
    else:
        t = _as_float_array(threshold, "threshold")
        if t.ndim == 0:
            t = np.full(F, float(t))
        if t.shape != (F,) or not np.all(np.isfinite(t)):
            raise InvalidInputError(
                f"threshold must be a finite number, one per column (shape ({F},)) or a threshold "
                f"rule, got shape {t.shape}")
    if time is None:
        time = np.arange(n, dtype=np.float64)
    else:
        time = _as_float_array(time, "time")
        if time.shape != (n,) or not np.all(np.isfinite(time)) or np.any(np.diff(time) < 0):
            raise InvalidInputError(
                f"time must hold one finite, non-decreasing time per row (shape ({n},)), "
                f"got shape {time.shape}; sort the series by time first")
    return X, np.ascontiguousarray(t, dtype=np.float64), np.ascontiguousarray(time), was_1d


def count_clusters(X, t, time, run):
    """``(n_exceed, n_clusters)``, int64 (n_cols,) each, of the columns of ``X`` (n, n_cols), walked
    block by block so that each series is contiguous (no copy of the whole matrix)."""
    n_exceed = np.empty(X.shape[1], dtype=np.int64)
    n_clusters = np.empty(X.shape[1], dtype=np.int64)
    for j0, j1, T in column_blocks(X):
        n_exceed[j0:j1], n_clusters[j0:j1] = decluster_kernels.count_clusters(T, t[j0:j1], time, run)
    return n_exceed, n_clusters


def cluster_maxima_blocks(X, t, run, time=None):
    """Yield ``(j0, j1, T, maxima)``: the cluster maxima of columns ``j0:j1`` of ``X``, block by block.

    Parameters
    ----------
    X : ndarray, shape (n, n_cols), float32 or float64
        Series in time order (rows are times).
    t : ndarray, shape (n_cols,), float64
        Thresholds.
    run : float
    time : ndarray, shape (n,), float64, optional
        Row times; default the row numbers.

    Yields
    ------
    j0, j1 : int
    T : ndarray, shape (j1 - j0, n)
        The block's series (the :func:`evtools._blocks.column_blocks` buffer, valid until the next block).
    maxima : ndarray, shape (m, j1 - j0), float64
        Each column's cluster maxima in time order, padded with NaN (``m`` the block's most clusters).
    """
    time = np.arange(X.shape[0], dtype=np.float64) if time is None else time
    t = np.ascontiguousarray(t, dtype=np.float64)
    for j0, j1, T in column_blocks(X):
        _, n_clusters = decluster_kernels.count_clusters(T, t[j0:j1], time, run)
        _, maxima = decluster_kernels.cluster_maxima(T, t[j0:j1], time, run, int(n_clusters.max(initial=0)))
        yield j0, j1, T, maxima


def decluster(x, threshold, run=1, *, time=None):
    """Cluster maxima by the runs method.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, n_cols)
        A series in time order, or one series per column (rows are times).
    threshold : float, array_like (n_cols,) or ThresholdRule
        Exceedances are values strictly above it.
    run : float
        A new cluster starts when an exceedance comes more than ``run`` after
        the previous one: with rows as times (default), after at least
        ``run`` values at or below the threshold.
    time : array_like, shape (n,), optional
        Non-decreasing time of each row (e.g. in years, as R POT's
        ``clust(..., tim.cond=)``); ``run`` is then in the same unit.

    Returns
    -------
    Clusters
        Shapes follow ``x``: scalars and 1-D arrays for a series, per-column
        arrays for a matrix.

    Examples
    --------
    >>> import evtools as ev
    >>> c = ev.decluster([0, 5, 6, 0, 0, 7, 0], threshold=1, run=2)
    >>> c.maxima, c.index, c.extremal_index
    (array([6., 7.]), array([2, 5]), 0.666...)
    """
    run = check_run(run)
    X, t, time, was_1d = _prepare(x, threshold, time)
    n_exceed, n_clusters = count_clusters(X, t, time, run)
    m_max = int(n_clusters.max(initial=0))
    index = np.empty((m_max, X.shape[1]), dtype=np.int64)
    maxima = np.empty((m_max, X.shape[1]))
    for j0, j1, T in column_blocks(X):
        index[:, j0:j1], maxima[:, j0:j1] = decluster_kernels.cluster_maxima(T, t[j0:j1], time, run, m_max)
    if was_1d:
        return Clusters(index=index[:, 0], maxima=maxima[:, 0], n_clusters=int(n_clusters[0]),
                        n_exceed=int(n_exceed[0]), threshold=float(t[0]), run=run)
    return Clusters(index=index, maxima=maxima, n_clusters=n_clusters, n_exceed=n_exceed,
                    threshold=t, run=run)


def extremal_index(x, threshold, method="intervals", *, run=None, time=None):
    """Estimate the extremal index of a series, or of every column of a matrix.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, n_cols)
        Series in time order (rows are equally spaced times).
    threshold : float, array_like (n_cols,) or ThresholdRule
    method : {"intervals", "runs"}
        * ``"intervals"``: Ferro & Segers (2003), from the times between
          exceedances ``T`` (in rows): ``min(1, 2 (sum T)**2 / ((N - 1) sum T**2))``
          if ``max T <= 2``, else ``min(1, 2 (sum (T - 1))**2 / ((N - 1) sum (T - 1)(T - 2)))``.
          No run length needed; NaN with fewer than 2 exceedances. (R POT's
          ``fitexi`` swaps the two cases; ``evd::exi`` and ``extRemes`` do not.)
        * ``"runs"``: clusters / exceedances of :func:`decluster` with ``run``
          (and ``time``); NaN without exceedances.
    run : float, required for ``"runs"``
    time : array_like (n,), optional, ``"runs"`` only

    Returns
    -------
    float, or float64 ndarray (n_cols,)
    """
    if method == "runs":
        if run is None:
            raise InvalidInputError("method='runs' needs run=r (the run length of the clusters)")
        return decluster(x, threshold, run, time=time).extremal_index
    if method != "intervals":
        raise InvalidInputError(f"method must be 'intervals' or 'runs', got {method!r}")
    if run is not None or time is not None:
        raise InvalidInputError("the intervals estimator takes no run or time: it needs equally spaced rows")
    X, t, _, was_1d = _prepare(x, threshold, None)
    theta = np.empty(X.shape[1])
    for j0, j1, T in column_blocks(X):
        theta[j0:j1] = decluster_kernels.intervals_columns(T, t[j0:j1])
    return float(theta[0]) if was_1d else theta
