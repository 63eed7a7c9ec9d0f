"""numba kernels behind :class:`evtools.SPOT` and :class:`evtools.DSPOT`.

State lives in per-column arrays owned by the Python class; the kernels
update it in place. Each column's peaks (excesses over its threshold) are kept
sorted ascending in row ``j`` of a padded buffer ``peaks`` of shape
``(n_cols, capacity)``, the first ``n_peaks[j]`` entries valid. The caller
guarantees room: one update of ``r`` rows adds at most ``r`` peaks per column.

Streams are processed column by column (``prange`` over columns, the rows of
one column in order inside), so columns never wait for each other.
"""
import math

import numpy as np
from numba import njit, prange

from .._status import CONSTANT, TOO_FEW
from .parallel import parallel_kernel
from .sort import sort_float64
from .tails import fit_tail


@njit(cache=True)
def tail_params(y, method, min_exceed):
    """GPD ``(sigma, xi, status)`` of the peaks ``y``, with :class:`evtools.TailModel`'s fallbacks.

    Fewer than ``min_exceed`` peaks, or a fit that is not ``OK`` /
    ``XI_BOUNDARY``: the exponential tail with the mean excess as scale.
    No peak at all: ``sigma = inf`` (the anomaly threshold is then ``t``).
    """
    if y.size == 0:
        return np.inf, 0.0, TOO_FEW
    sigma, xi, _, status = fit_tail(y, method, min_exceed)
    return sigma, xi, status


@njit(cache=True)
def anomaly_threshold(q, t, sigma, xi, n_peaks, n_obs):
    """SPOT's ``z_q = t + (sigma / xi) ((q n / N_t)^(-xi) - 1)`` (``t - sigma log(q n / N_t)`` at xi = 0).

    Written as ``t + sigma expm1(-xi log r) / xi`` with ``r = q n / N_t`` (no
    cancellation near xi = 0), ``t - sigma log r`` for ``|xi| < 1e-12``.
    Without peaks (``sigma = inf``) ``z_q = t``. The formula is spelt out
    here, not shared with :class:`evtools.TailModel`'s quantile, so that it
    stays the one the plain reference in the tests states; the two agree to
    rounding (``SPOT.fit`` equals ``fit_tails(...).isf(q)`` to ~1e-15).
    """
    if n_peaks == 0:
        return t
    log_r = math.log(q * n_obs / n_peaks)
    if abs(xi) < 1e-12:
        return t - sigma * log_r
    return t + sigma * math.expm1(-xi * log_r) / xi


@parallel_kernel
def calibrate(T, t, q, method, min_exceed, capacity):
    """Initial peaks, fit and anomaly threshold of every column.

    Parameters
    ----------
    T : float64 (n_cols, n) C order, calibration values of each column (row j = column j).
    t : float64 (n_cols,) thresholds.
    q : float, risk.
    method : int, one of ``_kernels.tails.METHODS``' values.
    min_exceed : int.
    capacity : int, width of the peak buffer (>= the most peaks of a column).

    Returns
    -------
    peaks (n_cols, capacity) float64, n_peaks (n_cols,) int64, sigma, xi
    (n_cols,) float64, status (n_cols,) int8, z_q (n_cols,) float64.
    A column without peaks gets status ``CONSTANT`` if all its values are
    equal, ``TOO_FEW`` otherwise.
    """
    n_cols, n = T.shape
    peaks = np.zeros((n_cols, capacity))
    n_peaks = np.zeros(n_cols, dtype=np.int64)
    sigma = np.empty(n_cols)
    xi = np.empty(n_cols)
    status = np.empty(n_cols, dtype=np.int8)
    z_q = np.empty(n_cols)
    for j in prange(n_cols):
        k = 0
        for i in range(n):
            if T[j, i] > t[j]:
                peaks[j, k] = T[j, i] - t[j]
                k += 1
        y = peaks[j, :k]
        sort_float64(y)
        n_peaks[j] = k
        s, x, st = tail_params(y, method, min_exceed)
        if k == 0 and T[j].min() == T[j].max():
            st = CONSTANT
        sigma[j] = s
        xi[j] = x
        status[j] = st
        z_q[j] = anomaly_threshold(q, t[j], s, x, k, n)
    return peaks, n_peaks, sigma, xi, status, z_q


@njit(cache=True)
def _insert_sorted(row, size, value):
    """Insert ``value`` into the ascending ``row[:size]`` (after equal values); needs ``size < row.size``."""
    lo = 0
    hi = size
    while lo < hi:
        mid = (lo + hi) // 2
        if row[mid] <= value:
            lo = mid + 1
        else:
            hi = mid
    for i in range(size, lo, -1):
        row[i] = row[i - 1]
    row[lo] = value


@parallel_kernel
def stream(X, q, method, min_exceed, refit_every, t, peaks, n_peaks, n_obs, pending,
           sigma, xi, status, z_q, window, head, alarm, z_out, m_out):
    """Run SPOT (``window.shape[1] == 0``) or DSPOT over new values, updating the state in place.

    Parameters
    ----------
    X : float64 (n_cols, n_rows) C order, new values (row j = column j, in arrival order).
    q, method, min_exceed : as for :func:`calibrate`.
    refit_every : int >= 1, refit a column after this many new peaks.
    t : float64 (n_cols,) thresholds (fixed after calibration).
    peaks : float64 (n_cols, capacity), room for ``n_rows`` more peaks per column.
    n_peaks, n_obs, pending : int64 (n_cols,) peaks, non-alarm values seen,
        peaks added since the last refit.
    sigma, xi : float64 (n_cols,); status : int8 (n_cols,); z_q : float64 (n_cols,).
    window : float64 (n_cols, depth) the last ``depth`` non-alarm values of each
        column, a ring buffer whose oldest entry is at ``head[j]``.
    head : int64 (n_cols,).
    alarm : bool (n_cols, n_rows), out.
    z_out : float64 (n_cols, n_rows), out: z_q in force when each value arrived.
    m_out : float64 (n_cols, n_rows) out (DSPOT; (0, 0) for SPOT): the local mean
        subtracted from each value.

    Notes
    -----
    Per value ``x`` (DSPOT: ``x - M`` with ``M`` the window mean, summed
    oldest to newest): above ``z_q`` it is an alarm and changes nothing;
    otherwise it counts (``n_obs += 1``, and enters the window), and above
    ``t`` its excess joins the peaks; every ``refit_every``-th new peak
    refits the GPD and recomputes ``z_q``.
    """
    n_cols, n_rows = X.shape
    depth = window.shape[1]
    for j in prange(n_cols):
        for i in range(n_rows):
            x = X[j, i]
            v = x
            if depth > 0:
                m = 0.0
                h = head[j]
                for k in range(depth):
                    m += window[j, (h + k) % depth]
                m /= depth
                m_out[j, i] = m
                v = x - m
            z_out[j, i] = z_q[j]
            if v > z_q[j]:
                alarm[j, i] = True
                continue
            alarm[j, i] = False
            n_obs[j] += 1
            if depth > 0:
                window[j, head[j]] = x
                head[j] = (head[j] + 1) % depth
            if v > t[j]:
                _insert_sorted(peaks[j], n_peaks[j], v - t[j])
                n_peaks[j] += 1
                pending[j] += 1
                if pending[j] >= refit_every:
                    pending[j] = 0
                    s, x_, st = tail_params(peaks[j, :n_peaks[j]], method, min_exceed)
                    sigma[j] = s
                    xi[j] = x_
                    status[j] = st
                    z_q[j] = anomaly_threshold(q, t[j], s, x_, n_peaks[j], n_obs[j])


@parallel_kernel
def drift_residuals(X, depth):
    """DSPOT's calibration values: ``X[i] - mean(X[i - depth:i])`` for ``i >= depth``.

    Parameters
    ----------
    X : float64 (n_cols, n) C order, row j = column j.
    depth : int, ``1 <= depth < n``.

    Returns
    -------
    float64 (n_cols, n - depth); each mean summed oldest to newest, then divided by depth.
    """
    n_cols, n = X.shape
    out = np.empty((n_cols, n - depth))
    for j in prange(n_cols):
        for i in range(depth, n):
            m = 0.0
            for k in range(i - depth, i):
                m += X[j, k]
            out[j, i - depth] = X[j, i] - m / depth
    return out
