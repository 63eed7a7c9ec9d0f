"""numba kernels behind :class:`evtools.TailModel`: per-column fitting and scoring.

Fitting works on a block of columns copied into the rows of a C-ordered
buffer, in any order: :func:`order_block` sorts each column with a radix
sort and reads off the order statistics a column's model needs (the
threshold's, the body knots', the exceedances); :func:`fit_block` fits the
exceedances with the estimator compiled into it (and, for maximum
likelihood, writes the observed-information covariance). Both are single-threaded ``nogil`` kernels
that ``fit_tails`` runs in one thread per core (no ``parallel=True`` kernel to
compile). Scoring walks the rows of a C-ordered matrix with ``prange``.
"""
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .._status import CONSTANT, OK, TOO_FEW, XI_BOUNDARY
from .gof import MIN_GOF_SIZE, ad_cvm_sorted
from .gpd import (  # noqa: F401 (METHODS: the registry)
    METHODS,
    exponential_fit,
    fit_by_code,
    gpd_loglik,
    gpd_logsf_scalar,
    gpd_quantile_from_logsf,
    mle_fit,
    mom_fit,
    pwm_fit,
    pwmb_fit,
    zhang_fit,
)
from .parallel import parallel_kernel
from .return_levels import relative_cov
from .sort import sort_column

# below this value of 1 + xi * y / sigma (bounded tails) the log-survival is
# continued as a straight line of slope -1/sigma: finite and decreasing.
_Z_FLOOR = 2.220446049250313e-16


@njit(cache=True)
def fit_tail(y, method, min_exceed):
    """``(sigma, xi, loglik, status)`` of the exceedances ``y`` (at least one), with the fallbacks.

    Fewer than ``min_exceed`` exceedances, or a fit whose status is not
    ``OK``/``XI_BOUNDARY``: the exponential tail with the mean excess as
    scale, and its log-likelihood; the status says why.
    """
    k = y.shape[0]
    status = TOO_FEW
    if k >= min_exceed:
        sigma, xi, loglik, status = fit_by_code(y, method)
        if status == OK or status == XI_BOUNDARY:
            return sigma, xi, loglik, status
    m, ll = exponential_fit(y)
    return m, 0.0, ll, status


@njit(cache=True, nogil=True)
def fit_checks(y, sigma, xi, status, rel_cov, j):
    """``(ad, cvm)`` of a fit ``(sigma, xi, status)`` of the ascending excesses ``y``; writes ``rel_cov[j]``.

    The Anderson-Darling and Cramer-von Mises statistics of a usable fit
    (``OK``, ``XI_BOUNDARY``) of at least ``MIN_GOF_SIZE`` values, else NaN.
    ``rel_cov``: float64 (B, 3) for maximum likelihood, whose row ``j``
    receives the observed-information covariance
    (:func:`evtools._kernels.return_levels.relative_cov`) of an ``OK`` fit,
    NaN otherwise; nothing is written for ``j = -1`` or ``rel_cov`` None (then
    ``relative_cov`` is not even compiled).
    """
    if rel_cov is not None and j >= 0:
        c_ss = c_sx = c_xx = np.nan
        if status == OK:
            c_ss, c_sx, c_xx = relative_cov(y, sigma, xi)
        rel_cov[j, 0], rel_cov[j, 1], rel_cov[j, 2] = c_ss, c_sx, c_xx
    ad = cvm = np.nan
    if (status == OK or status == XI_BOUNDARY) and y.size >= MIN_GOF_SIZE:
        ad, cvm = ad_cvm_sorted(y, sigma, xi)
    return ad, cvm


# --- the estimator chosen at compile time -------------------------------------------------
# A kernel that took the method as a run-time integer would compile every
# estimator on first use. `fit_block` instead takes a marker: None for maximum
# likelihood (a plain call of `mle_fit`), else a value whose *type* names the
# estimator (an integer type per method), so each compiled kernel holds only its
# own estimator: numba drops a branch on ``arg is None`` / ``arg is not None``
# at compile time when ``arg`` is None, never when it is a number or an array.
# `fit_tail` (SPOT, declustering) keeps the run-time integer.
_MARKER_TYPES = (None, np.uint16, np.uint32, np.uint64, np.int8)  # indexed by METHODS' codes
_ESTIMATORS = (None, pwm_fit, zhang_fit, mom_fit, pwmb_fit)  # the same order; code 0 is mle_fit


def estimator_marker(method):
    """The value that selects ``method`` (a name of ``METHODS``) in :func:`fit_block`: None for ``"mle"``."""
    code = METHODS[method]
    return None if code == 0 else _MARKER_TYPES[code](0)


def _estimate(y, marker):
    """``(sigma, xi, loglik, status)`` of the estimator named by the type of ``marker`` (numba only)."""
    raise NotImplementedError("called from numba code only")


@overload(_estimate, inline="always")
def _estimate_impl(y, marker):
    codes = {types.uint16: 1, types.uint32: 2, types.uint64: 3, types.int8: 4}
    if marker not in codes:
        return None
    fit = _ESTIMATORS[codes[marker]]

    def impl(y, marker):
        sigma, xi, status = fit(y)
        loglik = gpd_loglik(y, sigma, xi) if status == OK else np.nan
        return sigma, xi, loglik, status
    return impl


@njit(cache=True, nogil=True)
def fit_block(T, t, n_exceed, marker, min_exceed, sigma, xi, loglik, status, ad, cvm, rel_cov):
    """GPD fits of the exceedances left at the end of each row by :func:`order_block`.

    Parameters
    ----------
    T : float32 or float64 (B, n_rows), C order: row ``j`` ends with its
        ``n_exceed[j]`` exceedances, ascending.
    t : float64 (B,) thresholds; n_exceed : int64 (B,).
    marker : from :func:`estimator_marker`; None for maximum likelihood.
    min_exceed : int, fewest exceedances for a GPD fit.
    sigma, xi, loglik, ad, cvm : float64 (B,), status : int8 (B,), written
        (rows without exceedances are left to :func:`order_block`).
    rel_cov : float64 (B, 3) for maximum likelihood, None for the other
        estimators: the observed-information covariance of the rows with a
        usable fit is written there (:func:`fit_checks`: NaN unless OK; other
        rows are left as they are, as are ``ad, cvm``).
    """
    B, n_rows = T.shape
    for j in range(B):
        k = n_exceed[j]
        if k == 0:
            continue
        y = np.empty(k)  # the excesses, ascending
        for i in range(k):
            y[i] = np.float64(T[j, n_rows - k + i]) - t[j]
        s = TOO_FEW
        if k >= min_exceed:
            # exactly one of the two runs; each is compiled only for its own estimator
            s_ = x_ = l_ = np.nan
            if marker is not None:
                s_, x_, l_, s = _estimate(y, marker)
            if rel_cov is not None:
                s_, x_, l_, s = mle_fit(y)
            if s == OK or s == XI_BOUNDARY:
                sigma[j], xi[j], loglik[j], status[j] = s_, x_, l_, s
                ad[j], cvm[j] = fit_checks(y, s_, x_, s, rel_cov, j)
                continue
        m, ll = exponential_fit(y)  # the exponential fallback of `fit_tail`
        sigma[j], xi[j], loglik[j], status[j] = m, 0.0, ll, s


# --- order statistics of sorted columns ------------------------------------------------------
@njit(cache=True, nogil=True)
def _count_around(col, hi, v):
    """``(#(col[:hi] < v), #(col[:hi] <= v))`` of the ascending ``col``, compared in float64."""
    lo, up = 0, hi
    while lo < up:  # first value >= v
        mid = (lo + up) // 2
        if np.float64(col[mid]) < v:
            lo = mid + 1
        else:
            up = mid
    lt, up = lo, hi
    while lo < up:  # first value > v
        mid = (lo + up) // 2
        if np.float64(col[mid]) <= v:
            lo = mid + 1
        else:
            up = mid
    return lt, lo


@njit(cache=True, nogil=True)
def order_block(T, key, top, ones, t, rank, frac, first_kept, n_total, n_knots, n_exceed, sigma, xi, loglik,
                status, mass, knot_x, knot_sf, complete):
    """Threshold, exceedances and empirical body knots of each row of ``T``.

    Row ``j`` of ``T`` (a column of the matrix) is sorted in place by a radix
    sort (:func:`evtools._kernels.sort.sort_column`; ``key, top, ones``: ``radix_keys(T.dtype)``), which leaves its
    ``n_exceed[j]`` exceedances at the end, ascending, for :func:`fit_block`;
    the threshold and the knots are read off at their ranks.

    Parameters
    ----------
    T : float32 or float64 (B, n_rows), C order, one matrix column per row, in
        any order. When ``n_rows < n_total`` a row holds only the column's
        largest values.
    t : float64 (B,) thresholds: read when ``rank < 0``, else written.
    rank, frac : the order-statistic rule's position among ``n_total``
        (threshold ``x[rank] + frac * (x[rank + 1] - x[rank])``), or ``rank = -1``.
    first_kept : int, ``n_total - n_rows``.
    n_total : int, the columns' full length.
    n_knots : int >= 2, body knots below the threshold.
    n_exceed (B,) int64, mass (B,) float64, knot_x, knot_sf (B, n_knots + 1)
    float64, complete (B,) bool: written. For rows without exceedances also
    sigma = inf, xi = 0, loglik = NaN, status = CONSTANT, and mass
    ``min(1 / (n_total + 1), knot_sf[j, n_knots])``. A (fixed) threshold above
    every value, whose mid-p survival is 0, takes the largest value's instead
    (``knot_sf[j, n_knots - 1]``): sf stays positive and non-increasing, flat
    from the largest value up to the threshold.
    """
    B, n_rows = T.shape
    floor_mass = 1.0 / (n_total + 1.0)
    for j in range(B):
        col = T[j]
        sort_column(col, key, top, ones)
        # --- the threshold and the exceedances
        if rank >= 0:
            r = rank - first_kept
            tj = np.float64(col[r])
            if frac != 0.0:
                tj = tj + frac * (np.float64(col[r + 1]) - tj)
            t[j] = tj
        else:
            tj = t[j]
        at_t_lt, low = _count_around(col, n_rows, tj)  # col[:low] <= tj < col[low:]
        k = n_rows - low
        n_exceed[j] = k
        # --- the empirical body: knots at ranks r_low..r_top, then the threshold
        r_low = first_kept
        r_top = n_total - k - 1
        complete[j] = first_kept == 0
        if r_top < r_low:  # every kept value exceeds the threshold
            for i in range(n_knots):
                knot_x[j, i] = tj
                knot_sf[j, i] = 1.0
        else:
            for i in range(n_knots):  # mid-p survival: values above v, and half of those equal to v
                v = np.float64(col[r_low + (i * (r_top - r_low)) // (n_knots - 1) - first_kept])
                lt, le = _count_around(col, low, v)
                knot_x[j, i] = v
                knot_sf[j, i] = (n_rows - le + 0.5 * (le - lt)) / n_total
        knot_x[j, n_knots] = tj
        knot_sf[j, n_knots] = (n_rows - low + 0.5 * (low - at_t_lt)) / n_total
        if k == 0:
            if at_t_lt == n_rows:  # a fixed t above every value: the largest value's survival up to t
                knot_sf[j, n_knots] = knot_sf[j, n_knots - 1]
            # at most the mid-p survival at t, so that sf stays non-increasing
            mass[j] = min(floor_mass, knot_sf[j, n_knots])
            sigma[j] = np.inf
            xi[j] = 0.0
            loglik[j] = np.nan
            status[j] = CONSTANT  # nothing above t to fit (a flat top, or a fixed t above every value)
        else:
            mass[j] = k / n_total

@njit(cache=True)
def tail_logsf(y, sigma, xi):
    """log P(Y > y) of the excess over the threshold, finite for every y >= 0."""
    if sigma == np.inf:
        return 0.0
    if xi >= 0.0 or 1.0 + xi * y / sigma > _Z_FLOOR:
        return gpd_logsf_scalar(y, sigma, xi)
    y_floor = sigma * (_Z_FLOOR - 1.0) / xi
    return -math.log(_Z_FLOOR) / xi - (y - y_floor) / sigma


@njit(cache=True)
def body_sf(g, kx, ks, left):
    """Empirical survival at ``g`` interpolated between the knots (kx ascending, ks non-increasing)."""
    m = kx.shape[0]
    lo = 0
    hi = m
    while lo < hi:  # first knot > g
        mid = (lo + hi) // 2
        if kx[mid] <= g:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i < 0:
        return left
    if i == m - 1:
        return ks[i]
    return ks[i] + (g - kx[i]) * (ks[i + 1] - ks[i]) / (kx[i + 1] - kx[i])


@njit(cache=True)
def logsf_value(g, t, mass, sigma, xi, kx, ks, left):
    if g > t:
        return math.log(mass) + tail_logsf(g - t, sigma, xi)
    return math.log(body_sf(g, kx, ks, left))


@parallel_kernel
def logsf_matrix(G, t, mass, sigma, xi, knot_x, knot_sf, left):
    """log survival of every entry of G (n, F) under its column's tail model."""
    n, F = G.shape
    out = np.empty((n, F))
    for i in prange(n):
        for j in range(F):
            out[i, j] = logsf_value(G[i, j], t[j], mass[j], sigma[j], xi[j],
                                    knot_x[j], knot_sf[j], left[j])
    return out


@njit(cache=True)
def _tail_isf(p, sigma, xi):
    """Excess y with P(Y > y) = p for the GPD (sigma, xi)."""
    if sigma == np.inf:
        return 0.0
    return gpd_quantile_from_logsf(math.log(p), sigma, xi)


@parallel_kernel
def isf_vector(q, t, mass, sigma, xi, knot_x, knot_sf):
    """Per column the level exceeded with probability q (inverse of sf)."""
    F = t.shape[0]
    out = np.empty(F)
    for j in prange(F):
        if q <= mass[j]:
            out[j] = t[j] + _tail_isf(q / mass[j], sigma[j], xi[j])
            continue
        kx = knot_x[j]
        ks = knot_sf[j]
        out[j] = kx[0]
        for i in range(kx.shape[0] - 1, 0, -1):  # walk down from the threshold
            if ks[i - 1] >= q:  # ks[i] < q <= ks[i - 1]
                out[j] = kx[i] + (q - ks[i]) * (kx[i - 1] - kx[i]) / (ks[i - 1] - ks[i])
                break
    return out
