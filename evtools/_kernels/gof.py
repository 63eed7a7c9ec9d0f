"""numba kernels behind :mod:`evtools.gof` and :class:`evtools.ForwardStop`.

Statistics
----------
For exceedances ``y_1 <= ... <= y_n`` and a GPD(sigma, xi), ``z_i = F(y_i)``:

* Anderson-Darling ``A2 = -n - (1/n) sum_i (2i - 1) [log z_i + log(1 - z_{n+1-i})]``
* Cramer-von Mises ``W2 = sum_i (z_i - (2i - 1) / (2n))**2 + 1 / (12 n)``

``log(1 - z)`` is computed as the GPD log-survival, so it stays accurate far in
the tail. ``z`` is kept inside ``[Z_CLIP, 1 - Z_CLIP]`` so that a value at (or
beyond) the fitted support's edge gives a large finite A2 rather than ``inf``.

P-values from tables
--------------------
:func:`table_pvalue` reads :mod:`evtools._kernels.gof_tables`: the critical values
are interpolated linearly in ``xi`` between the table's rows (``xi`` outside
``[-0.5, 0.9]`` uses the nearest row), then the p-value is interpolated
between the row's critical values linearly in the log-odds ``log(p / (1 - p))``.
A statistic beyond the table's ends gets the end's p-value (``_kernels.gof_tables.P_MIN = 0.001``
or ``_kernels.gof_tables.P_MAX = 0.999``).

The tables reach the kernels as arguments (``AD_CRIT``, ``CVM_CRIT``, packed
with their row and column labels), never as globals: numba's on-disk cache
freezes globals and would not notice an edit of :mod:`evtools._kernels.gof_tables`.
"""
import math

import numpy as np
from numba import njit, prange

from .._status import OK, XI_BOUNDARY
from . import gof_tables as T
from .gpd import fit_by_code, gpd_logsf_scalar, gpd_quantile_from_logsf, mle_fit
from .parallel import parallel_kernel
from .sort import sort_float64, sorted_float64

Z_CLIP = 1e-15
MIN_GOF_SIZE = 5  #: fewest exceedances for which the statistics are computed



def _pack(crit):
    """Table argument of :func:`table_pvalue`: ``[0, 1:]`` the log-odds of the
    levels, ``[1:, 0]`` the rows' xi, ``[1:, 1:]`` the critical values."""
    out = np.empty((crit.shape[0] + 1, crit.shape[1] + 1))
    out[0, 0] = np.nan
    out[0, 1:] = np.log(T.PVALUES / (1.0 - T.PVALUES))
    out[1:, 0] = T.XI
    out[1:, 1:] = crit
    return out


AD_CRIT = _pack(T.AD_CRIT)
CVM_CRIT = _pack(T.CVM_CRIT)


@njit(cache=True)
def ad_cvm_sorted(y, sigma, xi):
    """A2 and W2 of ascending exceedances ``y`` (n >= 1) against GPD(sigma, xi).

    Returns
    -------
    (float, float) : A2, W2
    """
    n = y.shape[0]
    log_z = np.empty(n)
    log_1mz = np.empty(n)
    w2 = 1.0 / (12.0 * n)
    lo = math.log(Z_CLIP)
    hi = math.log1p(-Z_CLIP)
    for i in range(n):
        ls = gpd_logsf_scalar(y[i], sigma, xi)
        if ls > hi:
            ls = hi
        elif ls < lo:
            ls = lo
        log_1mz[i] = ls
        z = -math.expm1(ls)
        log_z[i] = math.log(z)
        d = z - (2.0 * i + 1.0) / (2.0 * n)
        w2 += d * d
    acc = 0.0
    for i in range(n):
        acc += (2.0 * i + 1.0) * (log_z[i] + log_1mz[n - 1 - i])
    return -n - acc / n, w2


@parallel_kernel
def ad_cvm_columns(Y, counts, sigma, xi):
    """Anderson-Darling A2 and Cramer-von Mises W2 of many columns at once.

    This is the kernel behind :func:`evtools.gof.gof_columns` and
    ``TailModel.gof()``.

    Parameters
    ----------
    Y : float64 (k_max, n_cols), Fortran order
        Exceedances (excess over the threshold, >= 0) of column ``j`` in
        ``Y[:counts[j], j]``, in any order; rows below are padding, never read.
        ``Y`` is not modified (each column is sorted in a scratch copy).
    counts : int64 (n_cols,)
        Number of exceedances per column, ``0 <= counts[j] <= k_max``.
    sigma, xi : float64 (n_cols,)
        GPD parameters per column.

    Returns
    -------
    ad, cvm : float64 (n_cols,)
        NaN where ``counts[j] < MIN_GOF_SIZE`` or the parameters are unusable
        (``sigma`` not finite and > 0, ``xi`` not finite).
    """
    n_cols = Y.shape[1]
    ad = np.full(n_cols, np.nan)
    cvm = np.full(n_cols, np.nan)
    for j in prange(n_cols):
        n = counts[j]
        s = sigma[j]
        x = xi[j]
        if n < MIN_GOF_SIZE or not (s > 0.0 and np.isfinite(s) and np.isfinite(x)):
            continue
        y = sorted_float64(Y[:n, j])
        ad[j], cvm[j] = ad_cvm_sorted(y, s, x)
    return ad, cvm


@njit(cache=True)
def _logistic(lo):
    return 1.0 / (1.0 + math.exp(-lo))


@njit(cache=True)
def table_pvalue(stat, xi, table):
    """P-value of ``stat`` for shape ``xi`` from a table of critical values.

    Parameters
    ----------
    stat, xi : float
    table : float64 (n_rows + 1, n_levels + 1)
        ``AD_CRIT`` or ``CVM_CRIT`` (packed, see ``_pack``).

    Returns
    -------
    float in [P_MIN, P_MAX], NaN if ``stat`` or ``xi`` is NaN.
    """
    if not (np.isfinite(xi) and stat == stat):
        return np.nan
    n_rows = table.shape[0] - 1
    n_lev = table.shape[1] - 1
    # rows r and r + 1 (1-based in the packed table), weight w; xi clipped to the table's range
    if xi <= table[1, 0]:
        r, w = 1, 0.0
    elif xi >= table[n_rows, 0]:
        r, w = n_rows - 1, 1.0
    else:
        r = 1
        while table[r + 1, 0] < xi:
            r += 1
        w = (xi - table[r, 0]) / (table[r + 1, 0] - table[r, 0])
    c_prev = (1.0 - w) * table[r, 1] + w * table[r + 1, 1]
    if stat <= c_prev:
        return _logistic(table[0, 1])
    for j in range(2, n_lev + 1):
        c = (1.0 - w) * table[r, j] + w * table[r + 1, j]
        if stat < c:
            f = (stat - c_prev) / (c - c_prev)
            return _logistic(table[0, j - 1] + f * (table[0, j] - table[0, j - 1]))
        c_prev = c
    return _logistic(table[0, n_lev])


@parallel_kernel
def table_pvalues(stats, xi, table):
    """:func:`table_pvalue` over columns: ``stats``, ``xi`` float64 (n_cols,) -> (n_cols,)."""
    n = stats.shape[0]
    out = np.empty(n)
    for j in prange(n):
        out[j] = table_pvalue(stats[j], xi[j], table)
    return out


BOOT_CHUNK = 32  #: bootstrap replicates per task (one seed each): results do not depend on the threads


@parallel_kernel
def bootstrap_columns(counts, sigma, xi, ad_obs, cvm_obs, method, n_boot, seeds):
    """Parametric bootstrap of A2 and W2 for many columns, refitting with the same estimator.

    Replicate ``b`` of column ``j`` draws ``counts[j]`` values from the
    GPD(``sigma[j]``, ``xi[j]``), refits them with the estimator ``method``
    (a code of ``_kernels.gpd.METHODS``) and computes both statistics.
    Replicates run in tasks of :data:`BOOT_CHUNK`, in parallel; task ``c``
    of column ``j`` draws from numba's generator seeded with ``seeds[j, c]``,
    so the result depends on the seeds only.

    Parameters
    ----------
    counts : int64 (F,), sample sizes (>= MIN_GOF_SIZE where used)
    sigma, xi : float64 (F,), the null GPDs (the fitted parameters)
    ad_obs, cvm_obs : float64 (F,), observed statistics; NaN skips the column
    method : int
    n_boot : int
    seeds : int64 (F, ceil(n_boot / BOOT_CHUNK))

    Returns
    -------
    n_ad, n_cvm, n_valid : int64 (F, n_tasks)
        Per task: replicates whose statistic is >= the observed one, and
        replicates whose refit gave usable parameters (status OK or
        XI_BOUNDARY, finite; only those are counted). Sum over axis 1.
    """
    F = counts.shape[0]
    n_tasks = seeds.shape[1]
    ge_ad = np.zeros((F, n_tasks), dtype=np.int64)
    ge_cvm = np.zeros((F, n_tasks), dtype=np.int64)
    valid = np.zeros((F, n_tasks), dtype=np.int64)
    for task in prange(F * n_tasks):
        j = task // n_tasks
        c = task - j * n_tasks
        b0 = c * BOOT_CHUNK
        b1 = min(b0 + BOOT_CHUNK, n_boot)
        n = counts[j]
        if b0 >= b1 or n < MIN_GOF_SIZE or not (np.isfinite(ad_obs[j]) and np.isfinite(cvm_obs[j])):
            continue
        np.random.seed(seeds[j, c])
        y = np.empty(n)
        for _ in range(b0, b1):
            for i in range(n):
                y[i] = gpd_quantile_from_logsf(-np.random.exponential(1.0), sigma[j], xi[j])
            sort_float64(y)
            s, x, _, st = fit_by_code(y, method)
            if not ((st == OK or st == XI_BOUNDARY) and s > 0.0 and np.isfinite(s) and np.isfinite(x)):
                continue
            a2, w2 = ad_cvm_sorted(y, s, x)
            valid[j, c] += 1
            ge_ad[j, c] += a2 >= ad_obs[j]
            ge_cvm[j, c] += w2 >= cvm_obs[j]
    return ge_ad, ge_cvm, valid


FS_OK = 0  #: ForwardStop chose the first candidate it did not reject
FS_ALL_REJECTED = 1  #: every usable candidate was rejected; the highest was chosen
FS_NO_CANDIDATE = 2  #: no candidate had enough exceedances; the lowest was returned


@njit(cache=True)
def forwardstop_pick(p, alpha):
    """Index of the candidate ForwardStop chooses from p-values in threshold order.

    NaN entries (skipped candidates) are ignored. With ``m`` usable p-values,
    ``k = max{k <= m : -(1/k) sum_{i<=k} log(1 - p_i) <= alpha}`` (0 if none);
    the choice is usable candidate ``k + 1``.

    Returns
    -------
    (int, int) : index into ``p`` and flag (``FS_OK``, ``FS_ALL_REJECTED``:
    all usable rejected, the last usable chosen; ``FS_NO_CANDIDATE``: none
    usable, index 0).
    """
    usable = np.empty(p.shape[0], dtype=np.int64)
    total = 0.0
    m = 0
    k_hat = 0
    for i in range(p.shape[0]):
        if p[i] != p[i]:
            continue
        usable[m] = i
        m += 1
        total -= math.log1p(-p[i])
        if total / m <= alpha:
            k_hat = m
    if m == 0:
        return 0, FS_NO_CANDIDATE
    if k_hat == m:
        return usable[m - 1], FS_ALL_REJECTED
    return usable[k_hat], FS_OK


@parallel_kernel
def forwardstop_columns(S, rank, frac, alpha, min_exceed, use_ad, table):
    """ForwardStop threshold selection (Bader, Yan & Zhang 2018) over sorted columns.

    For each column and each candidate threshold ``t_l`` (increasing in ``l``):
    the exceedances ``y = x - t_l`` for ``x > t_l`` are fitted by MLE and
    tested with A2 (``use_ad``) or W2, table p-value ``p_l``. Candidates with
    fewer than ``min_exceed`` exceedances are skipped (NaN p-value); a fit
    without usable parameters counts as a rejection (``p = P_MIN``). The
    choice among the candidates is :func:`forwardstop_pick`.

    Parameters
    ----------
    S : float64 (n_rows, n_cols), Fortran order, each column ascending
    rank, frac : int64 (L,), float64 (L,)
        Candidate ``l`` of a column is ``S[rank[l]] + frac[l] * (S[rank[l] + 1] - S[rank[l]])``.
    alpha : float
    min_exceed : int
    use_ad : bool
        Anderson-Darling (True) or Cramer-von Mises (False).
    table : float64, ``AD_CRIT`` or ``CVM_CRIT`` to match ``use_ad``

    Returns
    -------
    threshold : float64 (n_cols,)
    chosen : int64 (n_cols,), index of the chosen candidate
    flag : int8 (n_cols,), ``FS_OK``, ``FS_ALL_REJECTED`` or ``FS_NO_CANDIDATE``
    cand : float64 (L, n_cols), candidate thresholds
    pvalue, sigma, xi : float64 (L, n_cols), per candidate (NaN where skipped)
    n_exceed : int64 (L, n_cols)
    """
    n_rows, n_cols = S.shape
    L = rank.shape[0]
    p_min = _logistic(table[0, table.shape[1] - 1])
    threshold = np.empty(n_cols)
    chosen = np.zeros(n_cols, dtype=np.int64)
    flag = np.zeros(n_cols, dtype=np.int8)
    cand = np.empty((L, n_cols))
    pvalue = np.full((L, n_cols), np.nan)
    sigma = np.full((L, n_cols), np.nan)
    xi = np.full((L, n_cols), np.nan)
    n_exceed = np.zeros((L, n_cols), dtype=np.int64)
    for j in prange(n_cols):
        col = S[:, j]
        for i in range(L):
            r = rank[i]
            t = col[r]
            if frac[i] > 0.0:
                t += frac[i] * (col[r + 1] - col[r])
            cand[i, j] = t
            first = np.searchsorted(col, t, side="right")
            n_exc = n_rows - first
            n_exceed[i, j] = n_exc
            if n_exc < min_exceed:
                continue
            y = col[first:] - t
            s, x, _, _ = mle_fit(y)
            sigma[i, j] = s
            xi[i, j] = x
            if s > 0.0 and np.isfinite(s) and np.isfinite(x):
                a2, w2 = ad_cvm_sorted(y, s, x)
                pvalue[i, j] = table_pvalue(a2 if use_ad else w2, x, table)
            else:
                pvalue[i, j] = p_min
        pick, flag[j] = forwardstop_pick(pvalue[:, j], alpha)
        chosen[j] = pick
        threshold[j] = cand[pick, j]
    return threshold, chosen, flag, cand, pvalue, sigma, xi, n_exceed
