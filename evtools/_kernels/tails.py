"""numba kernels behind :class:`evtools.TailModel`: per-column fitting and scoring.

Fitting works on a block of columns copied into the rows of a C-ordered
buffer, in any order: :func:`select_block` selects the few order statistics
a column's model needs (the threshold's, the body knots') with an
introselect and sorts only the exceedances; :func:`fit_block` fits them with
the estimator compiled into it. Both are single-threaded ``nogil`` kernels
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


# --- the estimator chosen at compile time -------------------------------------------------
# A kernel that took the method as a run-time integer would compile every
# estimator on first use. `fit_block` instead takes a marker whose *type* names
# the estimator (an integer type per method), so each compiled kernel holds only
# its own estimator. `fit_tail` (SPOT, declustering) keeps the run-time integer.
_MARKER_TYPES = (np.uint8, np.uint16, np.uint32, np.uint64, np.int8)  # indexed by METHODS' codes
_ESTIMATORS = (None, pwm_fit, zhang_fit, mom_fit, pwmb_fit)  # the same order; code 0 is mle_fit


def estimator_marker(method):
    """The value that selects ``method`` (a name of ``METHODS``) in :func:`fit_block`."""
    return _MARKER_TYPES[METHODS[method]](0)


def _estimate(y, marker):
    """``(sigma, xi, loglik, status)`` of the estimator named by the type of ``marker`` (numba only)."""
    raise NotImplementedError("called from numba code only")


@overload(_estimate, inline="always")
def _estimate_impl(y, marker):
    codes = {types.uint8: 0, types.uint16: 1, types.uint32: 2, types.uint64: 3, types.int8: 4}
    if marker not in codes:
        return None
    method = codes[marker]
    if method == 0:
        return lambda y, marker: mle_fit(y)
    fit = _ESTIMATORS[method]

    def impl(y, marker):
        sigma, xi, status = fit(y)
        loglik = gpd_loglik(y, sigma, xi) if status == OK else np.nan
        return sigma, xi, loglik, status
    return impl


@njit(cache=True, nogil=True)
def fit_block(T, t, n_exceed, marker, min_exceed, sigma, xi, loglik, status, ad, cvm):
    """GPD fits of the exceedances left at the end of each row by :func:`select_block`.

    Parameters
    ----------
    T : float32 or float64 (B, n_rows), C order: row ``j`` ends with its
        ``n_exceed[j]`` exceedances, ascending.
    t : float64 (B,) thresholds; n_exceed : int64 (B,).
    marker : from :func:`estimator_marker`.
    min_exceed : int, fewest exceedances for a GPD fit.
    sigma, xi, loglik, ad, cvm : float64 (B,), status : int8 (B,), written
        (rows without exceedances are left to :func:`select_block`).
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
            s_, x_, l_, s = _estimate(y, marker)
            if s == OK or s == XI_BOUNDARY:
                sigma[j], xi[j], loglik[j], status[j] = s_, x_, l_, s
                if k >= MIN_GOF_SIZE:
                    ad[j], cvm[j] = ad_cvm_sorted(y, s_, x_)
                continue
        m = 0.0  # the exponential fallback of `fit_tail`
        for i in range(k):
            m += y[i]
        m /= k
        sigma[j], xi[j], loglik[j], status[j] = m, 0.0, -k * math.log(m) - k, s


# --- order statistics by selection ---------------------------------------------------------
_SMALL = 16  # segments this short are finished by insertion sort


@njit(cache=True, nogil=True)
def _insertion_sort(a, lo, hi):
    for i in range(lo + 1, hi):
        v = a[i]
        m = i - 1
        while m >= lo and a[m] > v:
            a[m + 1] = a[m]
            m -= 1
        a[m + 1] = v


@njit(cache=True, nogil=True)
def _heapsort(a):
    """Sort ``a`` in place in O(n log n) on any input (introselect's fallback)."""
    n = a.shape[0]
    start = n // 2
    end = n
    while True:
        if start > 0:  # first build the max-heap ...
            start -= 1
        else:  # ... then move its top behind it, one by one
            end -= 1
            if end <= 0:
                return
            v = a[0]
            a[0] = a[end]
            a[end] = v
        v = a[start]  # sift a[start] down the heap a[:end]
        i = start
        while True:
            c = 2 * i + 1
            if c >= end:
                break
            if c + 1 < end and a[c + 1] > a[c]:
                c += 1
            if a[c] <= v:
                break
            a[i] = a[c]
            i = c
        a[i] = v


@njit(cache=True, nogil=True)
def _partition_below(a, lo, hi, p, strict):
    """Move the values of ``a[lo:hi]`` below ``p`` (``< p`` if strict, else ``<= p``) to the front.

    Branch-free Lomuto partition (one swap per value, no unpredictable
    branch); returns the end of the front part.
    """
    store = lo
    for i in range(lo, hi):
        v = a[i]
        below = (v < p) if strict else (v <= p)
        a[i] = a[store]
        a[store] = v
        store += below
    return store


@njit(cache=True, nogil=True)
def select_ranks(a, ranks):
    """Partially order ``a`` in place so that each ``a[r]``, ``r`` in ``ranks``, holds
    the value a full sort would put there, with nothing larger before and nothing smaller after.

    Introselect: quickselect with a median-of-three pivot and branch-free
    partitions over every rank at once (values equal to the pivot, such as a
    dead filter's zeros, are split off when a split comes out lopsided); a
    segment that has been split too often is sorted instead, so the cost stays
    O(n log n) on any input. ``ranks``: int64, ascending, inside ``[0, len(a))``.
    """
    n = a.shape[0]
    if n <= 1 or ranks.size == 0:
        return
    max_depth = 2 * (int(math.log2(n)) + 1)
    stack = np.empty((4 * (max_depth + 2) + 4 * ranks.size, 5), dtype=np.int64)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3], stack[0, 4] = 0, n, 0, ranks.size, 0
    top = 1
    while top > 0:
        top -= 1
        s_lo, s_hi, r_lo, r_hi, depth = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3], stack[top, 4]
        if r_lo >= r_hi or s_hi - s_lo <= 1:
            continue
        if s_hi - s_lo <= _SMALL:
            _insertion_sort(a, s_lo, s_hi)
            continue
        if depth > max_depth:
            _heapsort(a[s_lo:s_hi])
            continue
        x, y, z = a[s_lo], a[(s_lo + s_hi) // 2], a[s_hi - 1]
        if x > y:
            x, y = y, x
        if y > z:
            y = z
            if x > y:
                y = x
        p = y  # median of three
        lt = _partition_below(a, s_lo, s_hi, p, True)  # [s_lo, lt) < p <= [lt, s_hi)
        gt = lt
        if 8 * (lt - s_lo) < s_hi - s_lo:  # a lopsided split: peel off the ties with p
            gt = _partition_below(a, lt, s_hi, p, False)  # [lt, gt) == p < [gt, s_hi)
        m1 = r_lo
        while m1 < r_hi and ranks[m1] < lt:
            m1 += 1
        m2 = m1
        while m2 < r_hi and ranks[m2] < gt:
            m2 += 1
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3], stack[top, 4] = s_lo, lt, r_lo, m1, depth + 1
        top += 1
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3], stack[top, 4] = gt, s_hi, m2, r_hi, depth + 1
        top += 1


@njit(cache=True, nogil=True)
def sort_all(a):
    """Sort ``a`` in place: :func:`select_ranks` at every rank (no second sort to compile)."""
    ranks = np.empty(a.shape[0], dtype=np.int64)
    for i in range(ranks.shape[0]):
        ranks[i] = i
    select_ranks(a, ranks)


@njit(cache=True, nogil=True)
def _move_above(a, start, t):
    """Move the values of ``a[start:]`` that exceed ``t`` to the end of ``a``; return their count."""
    n = a.shape[0]
    w = n
    for i in range(n - 1, start - 1, -1):
        if a[i] > t:
            w -= 1
            v = a[i]
            a[i] = a[w]
            a[w] = v
    return n - w


@njit(cache=True, nogil=True)
def _knot_ranks(out, n_knots, r_top, r_low, first_kept):
    """Write into ``out[:n_knots]`` the kept indices of the knots' ranks, ``r_low`` to ``r_top``."""
    for i in range(n_knots):
        out[i] = r_low + (i * (r_top - r_low)) // (n_knots - 1) - first_kept


@njit(cache=True, nogil=True)
def select_block(T, t, rank, frac, first_kept, n_total, n_knots, n_exceed, sigma, xi, loglik,
                 status, mass, knot_x, knot_sf, complete):
    """Threshold, exceedances and empirical body knots of each row of ``T``, by selection.

    Row ``j`` of ``T`` (a column of the matrix) is reordered in place: its
    ``n_exceed[j]`` exceedances go to the end, sorted ascending (for
    :func:`fit_block`); only the order statistics the model stores are
    selected below them (:func:`select_ranks`), never a full sort. The
    results equal, bit for bit, those computed from the sorted column.

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
    sigma = inf, xi = 0, loglik = NaN, status = CONSTANT.
    """
    B, n_rows = T.shape
    floor_mass = 1.0 / (n_total + 1.0)
    ranks = np.empty(n_knots, dtype=np.int64)
    both = np.empty(n_knots + 1, dtype=np.int64)  # the knots' ranks and the rank above the threshold
    for j in range(B):
        col = T[j]
        # --- the threshold and the exceedances
        selected = -1  # the knots are already selected if the lower part ends here
        if rank >= 0:
            # one selection for the threshold's order statistics and the knots, placed as if
            # nothing above x[rank] ties with the threshold (checked below)
            r = rank - first_kept
            _knot_ranks(both, n_knots, rank, first_kept, first_kept)
            both[n_knots] = min(r + 1, n_rows - 1)
            select_ranks(col, both)
            tj = np.float64(col[r])
            if frac != 0.0:
                tj = tj + frac * (np.float64(col[r + 1]) - tj)
            t[j] = tj
            start = r + 1  # col[:r + 1] <= col[r] <= tj
            selected = r + 1
        else:
            tj = t[j]
            start = 0
        k = _move_above(col, start, tj)
        sort_all(col[n_rows - k:])
        n_exceed[j] = k
        low = n_rows - k  # col[:low] <= tj < col[low:]
        # --- the empirical body: knots at ranks r_low..r_top, then the threshold
        r_low = first_kept
        r_top = n_total - k - 1
        complete[j] = first_kept == 0
        if r_top < r_low:  # every kept value exceeds the threshold
            for i in range(n_knots):
                knot_x[j, i] = tj
                knot_sf[j, i] = 1.0
            at_t_le = 0
            at_t_lt = 0
        else:
            _knot_ranks(ranks, n_knots, r_top, r_low, first_kept)
            if selected != low:  # ties at the threshold moved the lower part's end
                select_ranks(col[:low], ranks)
            # counts of values < v and <= v at each knot value v; equal knots share them
            i = 0
            while i < n_knots:
                v = col[ranks[i]]
                e = i
                while e + 1 < n_knots and col[ranks[e + 1]] == v:
                    e += 1
                lo = 0 if i == 0 else ranks[i - 1] + 1
                lt = lo
                for m in range(lo, ranks[i]):
                    lt += col[m] < v
                if e == n_knots - 1:  # v is the largest value not above tj
                    le = low
                else:
                    le = ranks[e] + 1
                    for m in range(ranks[e] + 1, ranks[e + 1]):
                        le += col[m] <= v
                sf = (n_rows - le + 0.5 * (le - lt)) / n_total
                for m in range(i, e + 1):
                    knot_x[j, m] = v
                    knot_sf[j, m] = sf
                i = e + 1
            at_t_le = low
            at_t_lt = low if col[ranks[n_knots - 1]] < tj else lt  # lt of the top knot's value
        knot_x[j, n_knots] = tj
        knot_sf[j, n_knots] = (n_rows - at_t_le + 0.5 * (at_t_le - at_t_lt)) / n_total
        if k == 0:  # at most the mid-p survival at t, so that sf stays non-increasing
            mass[j] = min(floor_mass, knot_sf[j, n_knots])
            sigma[j] = np.inf
            xi[j] = 0.0
            loglik[j] = np.nan
            status[j] = CONSTANT  # the top of the column is flat: nothing above t to fit
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
