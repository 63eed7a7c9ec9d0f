"""numba kernels behind :class:`evtools.TailModel`: per-column fitting and scoring.

Fitting works on a block of columns sorted ascending (Fortran order), so the
threshold, the exceedances (the top of each column, already sorted) and the
empirical body knots all come from one sort. Scoring walks the rows of a
C-ordered matrix with ``prange``.
"""
import math

import numpy as np
from numba import njit, prange

from ._parallel import parallel_kernel
from ._gof_kernels import MIN_GOF_SIZE, ad_cvm_sorted
from ._gpd_kernels import METHODS, fit_by_code, gpd_logsf_scalar, gpd_quantile_from_logsf  # noqa: F401 (METHODS: the registry, re-exported)
from ._status import CONSTANT, OK, TOO_FEW, XI_BOUNDARY

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
    m = y.mean()
    return m, 0.0, -k * math.log(m) - k, status


@njit(cache=True)
def _first_index(col, t, strict):
    """First index of the ascending ``col`` holding a value > t (strict) or >= t."""
    lo = 0
    hi = col.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if col[mid] < t or (strict and col[mid] == t):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _midp_survival(col, v, n_total):
    """(#(x > v) + #(x == v) / 2) / n_total over the ascending ``col``."""
    above = _first_index(col, v, True)
    at_least = _first_index(col, v, False)
    return (col.shape[0] - above + 0.5 * (above - at_least)) / n_total


@parallel_kernel
def fit_sorted_block(S, t, method, min_exceed, n_total, n_knots):
    """Fit the tails of a block of sorted columns.

    Parameters
    ----------
    S : float32 or float64 (n_rows, B), Fortran order, each column ascending. When
        ``n_rows < n_total`` the block holds only each column's largest values.
    t : float64 (B,) thresholds.
    method : int, one of METHODS' values.
    min_exceed : int, fewest exceedances for a GPD fit.
    n_total : int, the columns' full length.
    n_knots : int >= 2, body knots below the threshold.

    Returns
    -------
    n_exceed (B,) int64, sigma, xi, loglik (B,) float64, status (B,) int8,
    tail_mass (B,) float64, knot_x, knot_sf (B, n_knots + 1) float64,
    complete_body (B,) bool, ad, cvm (B,) float64: Anderson-Darling and
    Cramer-von Mises statistics of the fitted GPD (NaN without a GPD fit or
    with fewer than MIN_GOF_SIZE exceedances).
    """
    n_rows, B = S.shape
    first_kept = n_total - n_rows
    n_exceed = np.zeros(B, dtype=np.int64)
    sigma = np.empty(B)
    xi = np.empty(B)
    loglik = np.empty(B)
    status = np.empty(B, dtype=np.int8)
    mass = np.empty(B)
    knot_x = np.empty((B, n_knots + 1))
    knot_sf = np.empty((B, n_knots + 1))
    complete = np.empty(B, dtype=np.bool_)
    ad = np.full(B, np.nan)
    cvm = np.full(B, np.nan)
    floor_mass = 1.0 / (n_total + 1.0)
    for j in prange(B):
        col = S[:, j]
        tj = t[j]
        k = n_rows - _first_index(col, tj, True)
        n_exceed[j] = k
        y = col[n_rows - k:] - tj  # ascending
        # --- the tail above the threshold
        if k == 0:  # at most the mid-p survival at t, so that sf stays non-increasing
            mass[j] = min(floor_mass, _midp_survival(col, tj, n_total))
            sigma[j] = np.inf
            xi[j] = 0.0
            loglik[j] = np.nan
            status[j] = CONSTANT  # the top of the column is flat: nothing above t to fit
        else:
            mass[j] = k / n_total
            sigma[j], xi[j], loglik[j], status[j] = fit_tail(y, method, min_exceed)
            if (status[j] == OK or status[j] == XI_BOUNDARY) and k >= MIN_GOF_SIZE:
                ad[j], cvm[j] = ad_cvm_sorted(y, sigma[j], xi[j])
        # --- the empirical body below (and at) the threshold
        r_top = n_total - k - 1  # rank of the largest value not above t
        r_low = first_kept
        complete[j] = first_kept == 0
        for i in range(n_knots):
            if r_top < r_low:  # every kept value exceeds the threshold
                knot_x[j, i] = tj
                knot_sf[j, i] = 1.0
                continue
            r = r_low + (i * (r_top - r_low)) // (n_knots - 1)
            v = col[r - first_kept]
            knot_x[j, i] = v
            knot_sf[j, i] = _midp_survival(col, v, n_total)
        knot_x[j, n_knots] = tj
        knot_sf[j, n_knots] = _midp_survival(col, tj, n_total)
    return n_exceed, sigma, xi, loglik, status, mass, knot_x, knot_sf, complete, ad, cvm


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
