"""numba kernels behind :mod:`evtools.declustering`: runs declustering and the extremal index.

Every kernel walks each series in time order; series run in parallel with
``prange``. The public functions hand them blocks of columns copied into the
rows of a C-ordered buffer (``evtools._blocks.column_blocks``), so each series
is contiguous. Row ``i`` is at time ``time[i]`` (the row number
when no time is given). Exceedances are values strictly above the column's
threshold. Runs declustering: two consecutive exceedances belong to the same
cluster unless their times differ by more than ``run`` (with row numbers as
times: unless at least ``run`` values at or below the threshold lie between
them), the convention of R's POT ``clust(tim.cond = run)``. A cluster's
maximum is its largest value, the first one among ties.
"""
import numpy as np
from numba import njit, prange

from .gpd import METHODS
from .parallel import parallel_kernel
from .sort import sorted_float64
from .tails import fit_checks, fit_tail

_MLE = METHODS["mle"]  # the estimator whose observed information gives rel_cov


@njit(cache=True)
def _cluster_maxima(x, t, time, run, index_out, maxima_out):
    """Cluster maxima of the column ``x``; returns ``(n_exceed, n_clusters)``.

    Writes each cluster maximum's row into ``index_out`` and its value into
    ``maxima_out`` (both of length >= the number of clusters) in time order.
    """
    n_exceed = 0
    m = -1
    last = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if not v > t:
            continue
        if n_exceed == 0 or time[i] - last > run:
            m += 1
            index_out[m] = i
            maxima_out[m] = v
        elif v > maxima_out[m]:
            index_out[m] = i
            maxima_out[m] = v
        last = time[i]
        n_exceed += 1
    return n_exceed, m + 1


@parallel_kernel
def count_clusters(T, t, time, run):
    """``(n_exceed, n_clusters)``, int64 (F,) each, of the series in the rows of ``T`` (F, n), C order."""
    F, n = T.shape
    n_exceed = np.zeros(F, dtype=np.int64)
    n_clusters = np.zeros(F, dtype=np.int64)
    for j in prange(F):
        idx = np.empty(n, dtype=np.int64)
        mx = np.empty(n)
        n_exceed[j], n_clusters[j] = _cluster_maxima(T[j], t[j], time, run, idx, mx)
    return n_exceed, n_clusters


@parallel_kernel
def cluster_maxima(T, t, time, run, m_max):
    """Rows and values of every cluster maximum of the series in the rows of ``T`` (F, n), C order:
    ``index`` int64 (m_max, F) padded with -1, ``maxima`` float64 (m_max, F) padded with NaN
    (``m_max`` from :func:`count_clusters`)."""
    F, n = T.shape
    index = np.full((m_max, F), -1, dtype=np.int64)
    maxima = np.full((m_max, F), np.nan)
    for j in prange(F):
        idx = np.empty(n, dtype=np.int64)
        mx = np.empty(n)
        _, m = _cluster_maxima(T[j], t[j], time, run, idx, mx)
        for i in range(m):  # a loop: a slice assignment would compile numba's shape-mismatch message
            index[i, j] = idx[i]
            maxima[i, j] = mx[i]
    return index, maxima


@njit(cache=True)
def intervals_estimate(x, t):
    """Ferro & Segers (2003) intervals estimator of the extremal index of one column.

    With ``N`` exceedances at rows ``i_1 < ... < i_N`` and interexceedance
    times ``T_k = i_{k+1} - i_k``::

        theta = min(1, 2 (sum T)**2 / ((N - 1) sum T**2))                      if max T <= 2
        theta = min(1, 2 (sum (T - 1))**2 / ((N - 1) sum (T - 1) (T - 2)))    otherwise

    NaN with fewer than 2 exceedances.
    """
    s1 = 0.0
    s2 = 0.0
    r1 = 0.0
    r2 = 0.0
    t_max = 0
    n_exc = 0
    prev = -1
    for i in range(x.shape[0]):
        if not x[i] > t:
            continue
        if prev >= 0:
            gap = i - prev
            s1 += gap
            s2 += gap * gap
            r1 += gap - 1.0
            r2 += (gap - 1.0) * (gap - 2.0)
            t_max = max(t_max, gap)
        prev = i
        n_exc += 1
    if n_exc < 2:
        return np.nan
    if t_max <= 2:
        theta = 2.0 * s1 * s1 / ((n_exc - 1) * s2)
    else:
        theta = 2.0 * r1 * r1 / ((n_exc - 1) * r2)
    return min(1.0, theta)


@parallel_kernel
def intervals_columns(T, t):
    """:func:`intervals_estimate` of the series in every row of ``T`` (F, n), C order -> float64 (F,)."""
    F = T.shape[0]
    out = np.empty(F)
    for j in prange(F):
        out[j] = intervals_estimate(T[j], t[j])
    return out


@parallel_kernel
def fit_clusters_block(X, t, run, method, min_exceed, n_total):
    """GPD fits of the cluster maxima of a block of time-ordered columns.

    Parameters
    ----------
    X : float32 or float64 (n_rows, B), rows in time order, Fortran order (each
        column contiguous).
    t : float64 (B,) thresholds.
    run : float, the run length (in rows).
    method : int, an estimator code of ``_kernels.gpd.METHODS``.
    min_exceed : int, fewest cluster maxima for a GPD fit.
    n_total : int, rows.

    Returns
    -------
    n_clusters, n_above (B,) int64; sigma, xi, loglik (B,) float64;
    status (B,) int8; tail_mass (B,) float64 (``n_clusters / n_total``);
    ad, cvm (B,) float64; rel_cov (B, 3) float64, the observed-information
    covariance of ``(sigma_hat / sigma, xi_hat)`` of a maximum-likelihood fit
    (``method`` is ``METHODS["mle"]``) whose status is OK, NaN otherwise. Columns without
    exceedances get ``n_clusters = 0`` and NaN everywhere else (the caller
    keeps its own values there).
    """
    n, B = X.shape
    time = np.arange(n).astype(np.float64)
    n_clusters = np.zeros(B, dtype=np.int64)
    n_above = np.zeros(B, dtype=np.int64)
    sigma = np.full(B, np.nan)
    xi = np.full(B, np.nan)
    loglik = np.full(B, np.nan)
    status = np.zeros(B, dtype=np.int8)
    mass = np.full(B, np.nan)
    ad = np.full(B, np.nan)
    cvm = np.full(B, np.nan)
    rel_cov = np.full((B, 3), np.nan)
    for j in prange(B):
        col = X[:, j].astype(np.float64)
        idx = np.empty(n, dtype=np.int64)
        mx = np.empty(n)
        n_above[j], m = _cluster_maxima(col, t[j], time, run, idx, mx)
        n_clusters[j] = m
        if m == 0:
            continue
        y = sorted_float64(mx[:m])
        for i in range(m):
            y[i] -= t[j]
        sigma[j], xi[j], loglik[j], status[j] = fit_tail(y, method, min_exceed)
        mass[j] = m / n_total
        row = np.int64(j) if method == _MLE else np.int64(-1)  # rel_cov's row: the MLE's only
        ad[j], cvm[j] = fit_checks(y, sigma[j], xi[j], status[j], rel_cov, row)
    return n_clusters, n_above, sigma, xi, loglik, status, mass, ad, cvm, rel_cov
