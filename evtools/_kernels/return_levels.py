"""numba kernels of return levels and their intervals, over columns (``prange``).

Notation (Coles 2001, section 4.3.3): a column with threshold ``u``,
exceedance rate ``zeta`` and GPD tail ``(sigma, xi)`` has the ``m``-observation
return level (exceeded on average once every ``m`` observations)::

    x_m = u + sigma * e(xi, L),   L = log(m * zeta),   e = expm1(xi L) / xi  (L at xi = 0)

valid for ``m * zeta > 1`` (the level lies above the threshold). Variances
are carried in units of ``sigma`` (``rel_cov`` is the covariance of
``(sigma_hat / sigma, xi_hat)``), so nothing over- or underflows whatever the
scale of the data.
"""
import math

import numpy as np
from numba import njit, prange

from .._status import OK
from .gpd import _expm1_ratio, _log1p_ratio, gpd_observed_info
from .parallel import parallel_kernel

_NAN = np.nan
_INF = np.inf
_GOLD = 0.3819660112501051  # 2 - golden ratio


# ---------------------------------------------------------------------------
# Covariance of the MLE from the observed information
# ---------------------------------------------------------------------------
@njit(cache=True)
def relative_cov(y, sigma, xi):
    """``(c_ss, c_sx, c_xx)``: covariance of ``(sigma_hat / sigma, xi_hat)``, inverse observed information.

    Computed on ``y / sigma`` (scale 1). NaN for ``xi <= -1/2`` (the usual
    asymptotics fail there, Smith 1985) and where the information is singular.
    """
    if not (xi > -0.5 and sigma > 0.0 and sigma < _INF):
        return _NAN, _NAN, _NAN
    z = np.empty(y.size)
    for i in range(y.size):  # a loop, not ``y / sigma``: numba compiles it much faster
        z[i] = y[i] / sigma
    i_ss, i_sx, i_xx = gpd_observed_info(z, 1.0, xi)
    det = i_ss * i_xx - i_sx * i_sx
    if not (i_ss > 0.0 and i_xx > 0.0 and det > 1e-12 * i_ss * i_xx):
        return _NAN, _NAN, _NAN
    return i_xx / det, -i_sx / det, i_ss / det


# ---------------------------------------------------------------------------
# Delta method
# ---------------------------------------------------------------------------
@njit(cache=True)
def _f_series(a):
    """``(a e^a - e^a + 1) / a**2`` (1/2 at a = 0)."""
    if abs(a) < 1e-3:
        return 0.5 + a * (1.0 / 3.0 + a * (0.125 + a * (1.0 / 30.0 + a / 144.0)))
    return (a * math.exp(a) - math.expm1(a)) / (a * a)


@parallel_kernel
def delta_return_levels(m, z_crit, t, n_exceed, n_samples, sigma, xi, rel_cov, status):
    """Return levels with delta-method intervals (Coles 2001, section 4.3.3).

    The variance of ``x_m`` combines the binomial variance of the rate,
    ``zeta (1 - zeta) / n``, with the covariance of ``(sigma, xi)``; the rate
    is independent of the GPD estimates. Intervals are ``x_m -+ z_crit * se``.

    Returns
    -------
    estimate_excess, se, lower, upper : (B,) float64. ``estimate_excess`` is
    ``x_m - u`` (NaN where ``m * zeta <= 1``); ``se``, ``lower``, ``upper`` are
    NaN where the status is not OK, the covariance is NaN or ``m * zeta <= 1``.
    """
    B = t.shape[0]
    exc = np.full(B, _NAN)
    se = np.full(B, _NAN)
    lo = np.full(B, _NAN)
    hi = np.full(B, _NAN)
    for j in prange(B):
        zeta = n_exceed[j] / n_samples
        if not (zeta > 0.0 and m * zeta > 1.0 and sigma[j] < _INF):
            continue
        L = math.log(m * zeta)
        a = xi[j] * L
        e = L * _expm1_ratio(a)
        exc[j] = sigma[j] * e
        if status[j] != OK:
            continue
        d_zeta = math.exp(a) / zeta  # d x_m / d zeta, in units of sigma
        d_xi = L * L * _f_series(a)  # d x_m / d xi, in units of sigma
        v = (d_zeta * d_zeta * zeta * (1.0 - zeta) / n_samples + e * e * rel_cov[j, 0]
             + 2.0 * e * d_xi * rel_cov[j, 1] + d_xi * d_xi * rel_cov[j, 2])
        if not v >= 0.0:
            continue
        se[j] = sigma[j] * math.sqrt(v)
        lo[j] = t[j] + exc[j] - z_crit * se[j]
        hi[j] = t[j] + exc[j] + z_crit * se[j]
    return exc, se, lo, hi


# ---------------------------------------------------------------------------
# Profile likelihood
# ---------------------------------------------------------------------------
# Profiles: the parameter of interest psi and the nuisance v maximised out.
PROF_RETURN = 0  # psi = x_m - u (L given), v = xi, sigma = psi / e(xi, L)
PROF_XI = 1      # psi = xi, v = log(sigma)
PROF_SIGMA = 2   # psi = sigma, v = xi
_XI_SPAN = 4.0   # the nuisance xi is searched up to xi_hat + this
_N_GRID = 16     # coarse grid before the golden-section search


@njit(cache=True)
def _loglik(y, sigma, xi):
    """GPD log-likelihood, ``-inf`` outside the support (the profiles' hot loop, branch-free).

    ``-k log sigma - (1 + xi) sum z log1p(xi z) / (xi z)`` with ``z = y / sigma``;
    equals ``gpd_loglik`` for ``xi >= -1`` (tests check it).
    """
    if not (sigma > 0.0 and sigma < _INF):
        return -_INF
    inv = 1.0 / sigma
    total = 0.0
    for i in range(y.size):
        z = y[i] * inv
        t = xi * z
        if not t > -1.0:
            return -_INF
        total += z * _log1p_ratio(t)
    return -y.size * math.log(sigma) - (1.0 + xi) * total


@njit(cache=True)
def _loglik_at(y, mode, psi, L, v):
    if mode == PROF_RETURN:
        return _loglik(y, psi / (L * _expm1_ratio(v * L)), v)
    if mode == PROF_XI:
        return _loglik(y, math.exp(v), psi)
    return _loglik(y, psi, v)


@njit(cache=True)
def _nuisance_range(ymax, mode, psi, L, xi_hat, sigma_hat):
    """Open interval of the nuisance where the sample lies inside the support (xi >= -1)."""
    if mode == PROF_XI:
        centre = math.log(sigma_hat)
        lo = centre - 30.0
        if psi < 0.0:
            lo = max(lo, math.log(-psi * ymax))
        return lo, max(centre, lo) + 30.0
    lo = -1.0
    if mode == PROF_RETURN:
        if psi < ymax:  # 1 + xi ymax / sigma > 0  <=>  expm1(xi L) > -psi / ymax
            lo = max(lo, math.log1p(-psi / ymax) / L)
    else:
        lo = max(lo, -psi / ymax)
    return lo, max(xi_hat, lo) + _XI_SPAN


@njit(cache=True)
def profile_loglik(y, ymax, mode, psi, L, xi_hat, sigma_hat, v0):
    """``(profile log-likelihood at psi, maximising nuisance)``.

    Warm start: when the previous maximiser ``v0`` (NaN for none) is a local
    maximum within +-2 % of the nuisance range, Brent's method refines it
    there; otherwise a grid over the whole range picks the bracket first.
    """
    a, b = _nuisance_range(ymax, mode, psi, L, xi_hat, sigma_hat)
    if v0 > a and v0 < b:
        d = 0.02 * (b - a)
        lo = max(v0 - d, a + 1e-9 * (b - a))
        hi = min(v0 + d, b)
        f0 = _loglik_at(y, mode, psi, L, v0)
        if f0 > -_INF and f0 >= _loglik_at(y, mode, psi, L, lo) and f0 >= _loglik_at(y, mode, psi, L, hi):
            return _brent_max(y, mode, psi, L, lo, hi, v0, f0)
    best = -_INF
    ib = -1
    h = (b - a) / (_N_GRID + 1)
    for i in range(1, _N_GRID + 1):
        f = _loglik_at(y, mode, psi, L, a + i * h)
        if f > best:
            best = f
            ib = i
    if ib < 0:
        return -_INF, _NAN
    return _brent_max(y, mode, psi, L, a + (ib - 1) * h, a + (ib + 1) * h, a + ib * h, best)


@njit(cache=True)
def _brent_max(y, mode, psi, L, lo, hi, x, fx):
    """Brent's method (parabolic steps, golden sections as fallback) for the maximum in [lo, hi] near x."""
    w = v = x
    fw = fv = fx
    d = e = 0.0
    for _ in range(60):
        m = 0.5 * (lo + hi)
        tol = 1e-7 * (1.0 + abs(x))
        if abs(x - m) <= 2.0 * tol - 0.5 * (hi - lo):
            break
        golden = True
        if abs(e) > tol and fx > -_INF and fw > -_INF and fv > -_INF:
            r = (x - w) * (fv - fx)  # parabola through (v, w, x), in terms of -f
            q = (x - v) * (fw - fx)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            if abs(p) < abs(0.5 * q * e) and p > q * (lo - x) and p < q * (hi - x):
                e, d = d, p / q
                golden = False
                if (x + d) - lo < 2.0 * tol or hi - (x + d) < 2.0 * tol:
                    d = tol if m > x else -tol
        if golden:
            e = (lo - x) if x >= m else (hi - x)
            d = _GOLD * e
        u = x + (d if abs(d) >= tol else (tol if d > 0 else -tol))
        fu = _loglik_at(y, mode, psi, L, u)
        if fu >= fx:
            if u >= x:
                lo = x
            else:
                hi = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                lo = u
            else:
                hi = u
            if fu >= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu >= fv or v == x or v == w:
                v, fv = u, fu
    return fx, x


@njit(cache=True)
def _root(y, ymax, mode, L, xi_hat, sigma_hat, target, a, fa, b, fb, v):
    """Root of profile - target between a (fa > 0) and b (fb <= 0): Illinois regula falsi."""
    side = 0
    for _ in range(100):
        c = (a * fb - b * fa) / (fb - fa)
        if not (min(a, b) < c < max(a, b)):
            c = 0.5 * (a + b)
        fc, v = profile_loglik(y, ymax, mode, c, L, xi_hat, sigma_hat, v)
        fc -= target
        if fc > 0.0:
            a, fa = c, fc
            if side == 1:
                fb *= 0.5
            side = 1
        else:
            b, fb = c, fc
            if side == -1:
                fa *= 0.5
            side = -1
        if abs(b - a) <= 1e-9 * (abs(a) + abs(b)) + 1e-300 or fc == 0.0:
            break
    return 0.5 * (a + b)


@njit(cache=True)
def profile_interval(y, mode, psi_hat, L, xi_hat, sigma_hat, loglik_hat, half_chi2, step, lower_limit):
    """Interval ``{psi : loglik_hat - profile(psi) <= half_chi2}`` around ``psi_hat``.

    ``step`` is the first step away from ``psi_hat`` (doubled until the
    profile falls below the cut). The lower end is not searched below
    ``lower_limit`` (0 for a return level or a scale, -1 for xi): where the
    profile stays above the cut down there, ``lower_limit`` is returned; an
    upper end not reached within 60 doublings is ``inf``.
    """
    ymax = 0.0
    for i in range(y.size):
        ymax = max(ymax, y[i])
    target = loglik_hat - half_chi2
    nuisance_hat = math.log(sigma_hat) if mode == PROF_XI else xi_hat
    f0, v = profile_loglik(y, ymax, mode, psi_hat, L, xi_hat, sigma_hat, nuisance_hat)
    f0 -= target
    if not f0 > 0.0:
        return _NAN, _NAN
    v_hat = v
    # upper end
    upper = _INF
    d = step
    for _ in range(60):
        b = psi_hat + d
        fb, vb = profile_loglik(y, ymax, mode, b, L, xi_hat, sigma_hat, v)
        fb -= target
        if not fb > 0.0:
            upper = _root(y, ymax, mode, L, xi_hat, sigma_hat, target, psi_hat, f0, b, fb, v)
            break
        v = vb
        d *= 2.0
    # lower end: step down, doubling; below lower_limit halve the gap to it instead
    lower = lower_limit
    v = v_hat
    b = psi_hat - step
    for _ in range(200):
        if b <= lower_limit:
            b = lower_limit if mode == PROF_XI else lower_limit + 0.5 * (psi_hat - lower_limit)
        fb, vb = profile_loglik(y, ymax, mode, b, L, xi_hat, sigma_hat, v)
        fb -= target
        if not fb > 0.0:
            lower = _root(y, ymax, mode, L, xi_hat, sigma_hat, target, psi_hat, f0, b, fb, v)
            break
        if b == lower_limit or b - lower_limit < 1e-12 * (psi_hat - lower_limit):
            break
        v = vb
        b_next = psi_hat - 2.0 * (psi_hat - b)
        if b_next > lower_limit:
            b = b_next
        else:
            b = lower_limit if mode == PROF_XI else lower_limit + 0.5 * (b - lower_limit)
    return lower, upper


@parallel_kernel
def profile_return_levels(S, t, n_exceed, m, n_samples, sigma, xi, loglik, status, half_chi2, step):
    """Profile-likelihood intervals of the return levels of a block of columns.

    The rate ``zeta`` is held at its estimate (as in Coles 2001, section
    4.3.3, and ismev's ``gpd.prof``); ``sigma`` is written in terms of the
    return level, ``sigma = (x_m - u) / e(xi, L)``, and the likelihood is
    maximised over ``xi``.

    Parameters
    ----------
    S : (n_rows, B) Fortran order; column ``j`` ends with its ``n_exceed[j]``
        exceedances of ``t[j]``.
    step : (B,) first step of the search (the delta-method standard error).

    Returns
    -------
    lower, upper : (B,) float64, NaN where the status is not OK or ``m * zeta <= 1``.
    """
    n_rows, B = S.shape
    lo = np.full(B, _NAN)
    hi = np.full(B, _NAN)
    for j in prange(B):
        k = n_exceed[j]
        zeta = k / n_samples
        if status[j] != OK or not m * zeta > 1.0:
            continue
        y = np.empty(k)
        for i in range(k):
            y[i] = S[n_rows - k + i, j] - t[j]
        L = math.log(m * zeta)
        psi_hat = sigma[j] * L * _expm1_ratio(xi[j] * L)
        d = step[j] if step[j] > 0.0 and step[j] < _INF else 0.5 * psi_hat
        a, b = profile_interval(y, PROF_RETURN, psi_hat, L, xi[j], sigma[j], loglik[j], half_chi2, d, 0.0)
        lo[j] = t[j] + a
        hi[j] = t[j] + b
    return lo, hi
