"""numba kernels of the generalized Pareto distribution (GPD) with location 0.

The GPD with scale ``sigma > 0`` and shape ``xi`` has survival function
``S(x) = (1 + xi x / sigma) ** (-1 / xi)`` for ``x >= 0`` (``exp(-x / sigma)``
at ``xi = 0``); for ``xi < 0`` its support ends at ``sigma / -xi``.

Two groups of kernels live here, all ``@njit(cache=True)`` and callable from
other numba code (including inside ``prange`` loops):

* scalar distribution functions (``gpd_logsf_scalar`` and friends) that
  :class:`evtools.GPD` turns into ufuncs;
* single-sample estimators ``mle_fit``, ``pwm_fit``, ``pwmb_fit``, ``zhang_fit``,
  ``mom_fit`` (dispatched by name through :data:`METHODS` and :func:`fit_by_code`)
  and ``gpd_loglik``, ``gpd_observed_info``. They take a float64 1-D contiguous
  array ``y`` of exceedances (values >= 0, any order), never modify it, and
  return status codes from :mod:`evtools._status`. Each one fits the sample
  scaled by a power of two into ``max = [0.5, 1)`` (:func:`unit_scaled`,
  exact), so no sum, reciprocal or mean overflows or loses digits to
  subnormals anywhere in the float64 range, and scales ``sigma`` back.
"""
import math

import numpy as np
from numba import njit

from .._status import CONSTANT, NO_MAXIMUM, NOT_CONVERGED, OK, XI_BOUNDARY
from .sort import sorted_float64

_NAN = np.nan
_INF = np.inf


# ---------------------------------------------------------------------------
# Smooth helpers without cancellation at 0
# ---------------------------------------------------------------------------
@njit(cache=True)
def _log1p_ratio(t):
    """``log1p(t) / t`` for ``t >= -1`` (1 at ``t = 0``; 0 at ``t = inf``)."""
    if abs(t) < 1e-5:
        return 1.0 - t * (0.5 - t * (1.0 / 3.0 - 0.25 * t))
    if t == _INF:
        return 0.0
    return math.log1p(t) / t


@njit(cache=True)
def _expm1_ratio(t):
    """``expm1(t) / t`` (1 at ``t = 0``; ``inf`` at ``t = inf``)."""
    if abs(t) < 1e-5:
        return 1.0 + t * (0.5 + t * (1.0 / 6.0 + t / 24.0))
    if t == _INF:
        return _INF
    return math.expm1(t) / t


@njit(cache=True)
def _psi(t, log1p_t, inv_1p_t):
    """``(log1p(t) - t / (1 + t)) / t**2``, given ``log1p(t)`` and ``1 / (1 + t)``.

    Equals ``sum_{k>=2} (-1)**k (k - 1) / k * t**(k - 2)`` (1/2 at ``t = 0``);
    the series is used for ``|t| < 0.01`` where the closed form cancels.
    """
    if abs(t) < 0.01:  # terms k = 2..10; the next is below 1e-18
        return 0.5 - t * (2.0 / 3.0 - t * (0.75 - t * (0.8 - t * (5.0 / 6.0 - t * (
            6.0 / 7.0 - t * (0.875 - t * (8.0 / 9.0 - t * 0.9)))))))
    return (log1p_t - t * inv_1p_t) / (t * t)


@njit(cache=True)
def _chi(x):
    """``(1 / (1 + x)**2 - 2 psi(x)) / x`` (-2/3 at ``x = 0``), used by the Hessian."""
    if abs(x) < 0.01:
        acc = 0.0
        for k in range(10, 0, -1):
            c = k * (k + 1.0) / (k + 2.0)
            acc = (c if k % 2 == 0 else -c) + x * acc
        return acc
    inv = 1.0 / (1.0 + x)
    return (inv * inv - 2.0 * _psi(x, math.log1p(x), inv)) / x


# ---------------------------------------------------------------------------
# Scalar distribution functions
# ---------------------------------------------------------------------------
@njit(cache=True)
def _cumhaz(x, sigma, xi):
    """``-log S(x) = log1p(xi x / sigma) / xi`` for ``x`` inside the support."""
    z = x / sigma
    t = xi * z
    if t > 1e15 or z == _INF:
        # 1 + t == t to double precision; work with logs so nothing overflows
        if xi == 0.0:
            return z
        return (math.log(xi) + math.log(x) - math.log(sigma)) / xi
    return z * _log1p_ratio(t)


@njit(cache=True)
def gpd_logsf_scalar(x, sigma, xi):
    """``log S(x)``: 0 for ``x <= 0``, ``-inf`` at and beyond the upper end point."""
    if math.isnan(x):
        return _NAN
    if x <= 0.0:
        return 0.0
    if xi < 0.0 and xi * (x / sigma) <= -1.0:
        return -_INF
    return -_cumhaz(x, sigma, xi)


@njit(cache=True)
def gpd_logpdf_scalar(x, sigma, xi):
    """Log density; ``-inf`` outside ``[0, end]``, ``+inf`` at the end point if ``xi < -1``."""
    if math.isnan(x):
        return _NAN
    if x < 0.0:
        return -_INF
    if xi < 0.0:
        t = xi * (x / sigma)
        if t < -1.0:
            return -_INF
        if xi == -1.0:
            return -math.log(sigma)
        if t == -1.0:
            return _INF if xi < -1.0 else -_INF
    return -math.log(sigma) - (1.0 + xi) * _cumhaz(x, sigma, xi)


@njit(cache=True)
def gpd_quantile_from_logsf(logq, sigma, xi):
    """The ``x`` with ``log S(x) = logq`` (``logq`` in ``[-inf, 0]``, NaN outside)."""
    if not logq <= 0.0:
        return _NAN
    e = -logq
    if e == _INF:
        return _INF if xi >= 0.0 else sigma / -xi
    return sigma * e * _expm1_ratio(xi * e)


# ---------------------------------------------------------------------------
# Log-likelihood and observed information
# ---------------------------------------------------------------------------
@njit(cache=True)
def gpd_loglik(y, sigma, xi):
    """GPD log-likelihood of the sample ``y``.

    ``-inf`` if any value lies outside the support or ``sigma <= 0``; NaN if a
    parameter is NaN.
    """
    if math.isnan(sigma) or math.isnan(xi):
        return _NAN
    if not sigma > 0.0:
        return -_INF
    total = 0.0
    for i in range(y.size):
        lp = gpd_logpdf_scalar(y[i], sigma, xi)
        if lp == -_INF:
            return -_INF
        total += lp
    return total


@njit(cache=True)
def gpd_observed_info(y, sigma, xi):
    """Observed information (minus the Hessian of the log-likelihood) at ``(sigma, xi)``.

    Returns ``(i_ss, i_sx, i_xx)``: the entries for (sigma, sigma), (sigma, xi),
    (xi, xi). Every term is written without cancellation near ``xi = 0``. NaN
    if a value lies at or beyond the end of the support (the information is
    not defined there).
    """
    h_ss = 0.0
    h_sx = 0.0
    h_xx = 0.0
    for i in range(y.size):
        z = y[i] / sigma
        x = xi * z
        if not 1.0 + x > 0.0:
            return _NAN, _NAN, _NAN
        inv = 1.0 / (1.0 + x)
        inv2 = inv * inv
        h_ss += 1.0 - (1.0 + xi) * z * (2.0 + x) * inv2
        h_sx += z * (1.0 - z) * inv2
        h_xx += z * z * (z * _chi(x) + inv2)
    return -h_ss / sigma / sigma, -h_sx / sigma, -h_xx


# ---------------------------------------------------------------------------
# Shared sample summaries
# ---------------------------------------------------------------------------
@njit(cache=True)
def _sample_status(y):
    """``NOT_CONVERGED`` if ``y`` breaks the kernels' contract (a negative or non-finite
    value), ``CONSTANT`` without spread (fewer than 2 values or all equal), else ``OK``.
    """
    spread = False
    for i in range(y.size):
        if not (y[i] >= 0.0 and y[i] < _INF):
            return NOT_CONVERGED
        spread = spread or y[i] != y[0]
    return OK if spread else CONSTANT


@njit(cache=True)
def unit_scaled(y):
    """``(z, e, status)``: the sample ``y`` scaled by ``2**-e`` so that ``max(z)`` is in ``[0.5, 1)``.

    Multiplying by a power of two is exact (only values below
    ``2**-1022 * max(y)`` would round, as subnormals), so an estimator fitted
    to ``z`` gives ``y``'s ``xi``, ``sigma = math.ldexp(sigma_z, e)``
    (:func:`scale_back`) and ``loglik = loglik_z - n e log 2``. ``status`` is
    that of :func:`_sample_status`; ``z`` is a new float64 array (n,), ``y``
    itself where ``y`` holds only zeros.
    """
    status = _sample_status(y)
    ymax = 0.0
    for i in range(y.size):
        ymax = max(ymax, y[i])
    if not (ymax > 0.0 and ymax < _INF):
        return y, 0, status
    e = math.frexp(ymax)[1]
    z = np.empty(y.size)
    for i in range(y.size):
        z[i] = math.ldexp(y[i], -e)
    return z, e, status


@njit(cache=True)
def scale_back(sigma, xi, status, e):
    """``(sigma * 2**e, xi, status)`` of a fit in :func:`unit_scaled`'s units. An ``OK`` fit
    whose ``sigma`` is not a positive float64 (NaN, 0 as PWM gives on ``[0, x]``, or past the
    float64 range, a nearly constant sample near 1e308) or whose ``xi`` is not finite gives
    NaN and ``NOT_CONVERGED``: a GPD needs a positive scale."""
    sigma = math.ldexp(sigma, e)
    if status == OK and not (0.0 < sigma < _INF and math.isfinite(xi)):
        return _NAN, _NAN, NOT_CONVERGED
    return sigma, xi, status


@njit(cache=True)
def exponential_fit(y):
    """``(sigma, loglik)`` of the exponential with the mean of ``y`` (k >= 1 values > 0) as scale.

    The mean is summed in :func:`unit_scaled`'s units (no overflow near 1e308).
    """
    k = y.size
    z, e, _ = unit_scaled(y)
    m = 0.0
    for i in range(k):
        m += z[i]
    m = math.ldexp(m / k, e)
    return m, -k * math.log(m) - k


# ---------------------------------------------------------------------------
# Maximum likelihood (Grimshaw 1993)
# ---------------------------------------------------------------------------
# With theta = xi / sigma, the likelihood maximised over xi for fixed theta is
# reached at xi(theta) = mean(log1p(theta y)), which leaves the profile
#     l*(theta) = -n (1 + log(xi(theta) / theta) + xi(theta)).
# We work with z = y / max(y) and s = theta max(y) in (-1, inf), so that the
# profile is l*(s) - n log max(y) with l* computed from z, and search along
# v = log1p(s). Writing u = mean(1 / (1 + s z)), the derivative obeys
#     sign(dl*/ds) = sign(g(s)),  g(s) = u (1 + xi) - 1.
# g has a spurious double root at s = 0, so we follow
#     D(s) = g(s) / s**2 = mean(z**2 psi(s z)) - mean(z / (1 + s z)) b(s)
# for |s| < 1 (b(s) = xi(s) / s, psi from `_psi`), smooth through s = 0, and
# D(s) = g(s) for s >= 1 (no overflow of s**2; continuous at s = 1). The sign
# changes of D are exactly the stationary points of the profile: a change from
# + to - is a local maximum.

_MLE_MAXITER = 100
_LOG2 = math.log(2.0)  # v at s = 1
_MLE_VTOL = 1e-10  # roots of D: Newton steps down to _MLE_VTOL (1 + |v|) in v, then one more unevaluated


@njit(cache=True)
def _profile(y, ymax, inv_ymax, v):
    """The profile at ``s = expm1(v)`` in z units: the point ``(v, D, dD/dv, xi, l*, dxi/dv)``.

    With ``q = 1 / (1 + s z)``, ``A = mean(z q) = dxi/ds``, ``u = mean(q)``:
    ``dg/ds = u A - mean(z q**2) (1 + xi)``. Near ``s = 0`` that cancels, and
    ``D = P - A b`` (``P = mean(z**2 psi(s z))``) gives ``dD/ds = mean(z**3 psi'(s z))
    + b mean((z q)**2) + A P`` (``db/ds = -P``, ``dA/ds = -mean((z q)**2)``).
    ``dD/dv`` only steers Newton's method in `_refine_max` and is accurate to
    better than 1e-7 relative; D itself is computed as exactly as before.
    """
    n = y.size
    s = math.expm1(v)
    r = math.exp(v)  # 1 + s, accurate even where s rounds to -1
    sum_log = 0.0
    sum_a = 0.0
    sum_q = 0.0
    sum_aq = 0.0
    if abs(s) < 0.1:
        # D from psi term by term: u (1 + xi) - 1 would cancel to O(s**2)
        sum_psi = 0.0
        sum_a2 = 0.0
        sum_z3 = 0.0
        sum_z4 = 0.0
        for i in range(n):
            z = y[i] * inv_ymax
            t = s * z
            lg = math.log1p(t)
            q = 1.0 / (1.0 + t)
            zq = z * q
            z2 = z * z
            sum_log += lg
            sum_q += q
            sum_a += zq
            sum_aq += zq * q
            sum_a2 += zq * zq
            sum_psi += z2 * _psi(t, lg, q)
            sum_z3 += z2 * z
            sum_z4 += z2 * z2
        xi = sum_log / n
        mean_a = sum_a / n
        mean_psi = sum_psi / n
        b = mean_a if s == 0.0 else xi / s  # at s = 0, q = 1 and mean_a = mean(z)
        d = mean_psi - mean_a * b
        if abs(s) < 1e-4:  # dD/ds with psi'(t) = -2/3 + 3/2 t (relative error < 3e-8)
            d_s = (-2.0 / 3.0 * sum_z3 + 1.5 * s * sum_z4) / n + b * (sum_a2 / n) + mean_a * mean_psi
        else:  # from dg/ds as below, cancelling to O(1e-16 / s**2)
            d_s = ((sum_q / n) * mean_a - (sum_aq / n) * (1.0 + xi) - 2.0 * s * d) / (s * s)
    else:
        for i in range(n):
            yi = y[i]
            z = yi * inv_ymax
            t = s * z
            if t > 0.5:  # log(1 + t) is as accurate here as log1p, and faster
                w = 1.0 + t
                lg = math.log(w)
                q = 1.0 / w
            elif t > -0.5:
                lg = math.log1p(t)
                q = 1.0 / (1.0 + t)
            else:  # z >= 1/2 here, so ymax - yi is exact and 1 + t keeps its digits
                w = (ymax - yi) * inv_ymax + z * r
                lg = math.log(w)
                q = 1.0 / w
            zq = z * q
            sum_log += lg
            sum_q += q
            sum_a += zq
            sum_aq += zq * q
        xi = sum_log / n
        mean_a = sum_a / n
        b = xi / s
        u = sum_q / n
        d = u * (1.0 + xi) - 1.0
        d_s = u * mean_a - (sum_aq / n) * (1.0 + xi)
        if s < 1.0:
            d /= s * s  # for s >= 1, s**2 could overflow: D is g itself there
            d_s = (d_s - 2.0 * s * d) / (s * s)
    lstar = -n * (1.0 + math.log(b) + xi)
    return v, d, r * d_s, xi, lstar, r * mean_a


@njit(cache=True)
def _refine_max(y, ymax, inv_ymax, lo, hi):
    """Root of D between the points ``lo`` (``D > 0``) and ``hi`` (``D < 0``, ``v`` above ``lo``'s).

    Newton's method on D, started from the end with the shorter step; a step
    that would leave the bracket, or that is not at most half the one before,
    is replaced by bisection (Numerical Recipes' ``rtsafe``), and every
    evaluation shrinks the bracket. Once a step is below ``_MLE_VTOL (1 + |v|)``,
    or Newton's predicted error after it (``|D'' / (2 D')| step**2``) is below
    a thousandth of that, its target is returned without another evaluation
    (``xi`` moved along to first order; ``l*``, flat at the root, kept): the
    root is then known to well within ``_MLE_VTOL``, closer than the Brent
    search to that tolerance used before. Returns ``(v, xi, l*, converged)``.
    """
    v_lo, v_hi = lo[0], hi[0]
    end = lo if abs(lo[1] * hi[2]) <= abs(hi[1] * lo[2]) else hi
    v_new = end[0] - end[1] / end[2] if end[2] != 0.0 else v_lo
    if not v_lo < v_new < v_hi:
        v_new = 0.5 * (v_lo + v_hi)
    step_old = v_hi - v_lo
    v_prev, dd_prev = _NAN, _NAN
    for _ in range(_MLE_MAXITER):
        v, d, dd, xi, lv, slope = _profile(y, ymax, inv_ymax, v_new)
        if d == 0.0:
            return v, xi, lv, True
        if d > 0.0:
            v_lo = v
        else:
            v_hi = v
        v_new = v - d / dd if dd != 0.0 else v
        newton = v_lo < v_new < v_hi and abs(2.0 * (v_new - v)) <= abs(step_old)
        if not newton:
            v_new = 0.5 * (v_lo + v_hi)
        step = v_new - v
        tol = _MLE_VTOL * (1.0 + abs(v))
        # Newton's error after this step, |D'' / (2 D')| step**2, with D'' from the last two
        # slopes (on one side of s = 1, where dD/dv jumps): done if below tol / 1000
        if abs(step) <= tol or (newton and abs(step) <= 1e4 * tol and (v > _LOG2) == (v_prev > _LOG2) and (
                abs((dd - dd_prev) / (v - v_prev)) * step * step <= 2e-3 * tol * abs(dd))):
            # dl*/dv = n (1 + s) g / (s xi) falls linearly to 0 over the step: l* gains half of it
            s = math.expm1(v)
            den = (xi / s if abs(s) < 1.0 else s * xi) if s != 0.0 else 0.0  # g / (s xi) = D / den
            gain = 0.5 * y.size * (1.0 + s) * d * step / den if den > 0.0 else 0.0
            return v_new, xi + slope * step, lv + gain, True
        step_old = step
        v_prev, dd_prev = v, dd
    return v, xi, lv, False


@njit(cache=True)
def _bracket_max(y, ymax, inv_ymax, a, b):
    """Local maximum of the profile between the points ``a`` and ``b`` (``v`` ascending), if one is evident.

    A sign change of D from + to - is refined directly. D of one sign at both
    ends while l* moves the other way (falls although D > 0, rises although
    D < 0) proves a hidden maximum: bisection keeps a half with that
    contradiction until a sign change appears.
    Returns ``(found, v, xi, l*, converged)``.
    """
    noise = 1e-11 * (y.size + abs(a[4]) + abs(b[4]))
    for _ in range(_MLE_MAXITER):
        da, la, db, lb = a[1], a[4], b[1], b[4]
        if da > 0.0 and db < 0.0:
            v, xi, lv, conv = _refine_max(y, ymax, inv_ymax, a, b)
            return True, v, xi, lv, conv
        hidden_rise = da < 0.0 and db < 0.0 and lb - la > noise
        hidden_fall = da > 0.0 and db > 0.0 and la - lb > noise
        if not (hidden_rise or hidden_fall):
            return False, b[0], b[3], lb, True
        m = _profile(y, ymax, inv_ymax, 0.5 * (a[0] + b[0]))
        # keep the half with the sign change, else the half with the contradiction
        if hidden_rise:
            right = m[1] > 0.0 or m[4] < lb
        else:
            right = m[1] > 0.0 and m[4] >= la
        if right:
            a = m
        else:
            b = m
    return False, b[0], b[3], b[4], False


@njit(cache=True)
def _right_tail_bound(n, v, xi, mean_log_z):
    """Upper bound on ``l*(s')`` for every ``s' >= s = expm1(v) > 0`` (z units; ``mean_log_z`` finite).

    ``l*(s') = -n (1 + H(s'))`` with ``H = log xi(s') + m(s')``, ``m(s') = mean(log(1 / s' + z))``.
    Both bounds use ``m(s') >= mean(log z)``; the plain one ``xi(s') >= xi(s)``. The
    second writes ``s' = s e**w`` and uses that ``c -> mean(log(c + z))`` is concave, so
    above its chord from ``c = 0`` to ``c = 1 / s``: ``m(s') >= mean(log z) + p`` with
    ``p = delta e**-w``, ``delta = m(s) - mean(log z)``, and with ``xi = log s' + m``,
    ``xi(s') >= x(w) = xi(s) + w - delta + p``. Then ``H >= max(log xi(s), log x) + mean(log z) + p``.
    Below ``w = log delta`` that is at least its value there (``x`` falls, ``p`` falls),
    and beyond, where ``x`` rises, ``log x + p`` has one minimum, where
    ``phi(w) = 1 - p (1 + x) = 0`` (``phi`` increases; if ``phi >= 0`` at ``log delta``
    the minimum is there). At it ``p = 1 / (1 + x*)`` and ``log x + p = G(x*) =
    log x* + 1 / (1 + x*)``, where ``x*`` solves ``rho(x) = x - log(1 + x) - 1 / (1 + x)
    = xi(s) + log delta - delta``; ``G`` and ``rho`` increase, so any ``x`` with
    ``rho(x) <= rho(x*)`` (found by Newton's method, then checked) gives the bound
    ``G(x)``. The sums' rounding (all terms of one sign) is allowed for.
    """
    s = math.expm1(v)
    log_s = math.log(s)
    h = math.log(xi) + mean_log_z
    delta = xi - log_s - mean_log_z
    if not delta > 0.0:  # lost to rounding (s near 1e300)
        return -n * (1.0 + h)
    w = math.log(delta) if delta > 1.0 else 0.0
    p = min(delta, 1.0)
    x = xi + w - delta + p
    if not (x > 0.0 and math.isfinite(x)):
        return -n * (1.0 + h)
    if p * (1.0 + x) < 1.0:
        hb = math.log(x) + p  # phi > 0 already: the minimum is at this end
    else:
        # at the minimum p = 1 / (1 + x) and w = log(delta (1 + x)), so x solves
        # rho(x) = x - log(1 + x) - 1 / (1 + x) = c (rho increases); Newton from x(w) <= x*
        c = xi + math.log(delta) - delta
        for _ in range(30):
            r = 1.0 / (1.0 + x)
            dx = (x - math.log1p(x) - r - c) / (1.0 - r + r * r)
            x -= dx
            if not x > 0.0:
                return -n * (1.0 + h)
            if abs(dx) <= 1e-12 * x:
                break
        x *= 1.0 - 1e-9  # below x*, as the check confirms
        if not x - math.log1p(x) - 1.0 / (1.0 + x) <= c:
            return -n * (1.0 + h)
        hb = math.log(x) + 1.0 / (1.0 + x)
    err = 2.3e-16 * (n + 2) * (xi + abs(log_s) + abs(mean_log_z)) * (3.0 + 1.0 / delta) * (2.0 + 1.0 / x)
    return -n * (1.0 + max(h, hb + mean_log_z - err))


@njit(cache=True)
def _march(y, ymax, inv_ymax, direction, v_end, mean_log_z, start, best_l, best_v, best_xi):
    """Walk from the point ``start`` (``v = 0``) towards ``v_end`` in steps of about 0.2 in ``xi``.

    ``xi(v)`` is increasing and convex, so a step of ``dxi / slope`` moves
    ``xi`` by at most ``dxi`` to the left and at least ``dxi`` to the right.
    To the left the step is also capped at ``xi + 1``: the walk then closes in
    on the ``xi = -1`` boundary like Newton's method, never crossing it.
    Every bracket is searched with `_bracket_max`. The walk stops once nothing
    beyond the current point can beat the incumbent ``best_l``: for
    ``s' >= s > 0`` by `_right_tail_bound` (tried only below the incumbent),
    and for ``-1 < s' <= s < 0`` by ``l*(s') <= -n (1 + log b(s) - min(b(s), 1))``:
    ``b(s') >= b(s)`` (``b`` decreases) and ``b(s') >= -xi(s')`` (``|s'| < 1``),
    so ``l*(s') <= -n (1 + max(log b(s), log(-x)) + x)`` at ``x = xi(s')`` in
    ``[-1, xi(s)]``, whose largest value is at ``x = -min(b(s), 1)`` (``log(-x) + x``
    decreases there). Returns ``(best_l, best_v, best_xi, all_converged)``.
    """
    n = y.size
    prev = start
    ok = True
    while True:
        v_prev, xi_prev, slope = prev[0], prev[3], prev[5]
        if direction > 0:
            if xi_prev > 0.0 and prev[4] < best_l and mean_log_z > -_INF and (
                    -n * (1.0 + math.log(xi_prev) + mean_log_z) <= best_l
                    or _right_tail_bound(n, v_prev, xi_prev, mean_log_z) <= best_l):
                break
            step = 0.2 if xi_prev < 1.0 else 0.35 * xi_prev
        else:
            if xi_prev < 0.0:
                b = xi_prev / math.expm1(v_prev)
                if -n * (1.0 + math.log(b) - min(b, 1.0)) <= best_l:
                    break
            step = min(0.2, xi_prev + 1.0)
            if step < 1e-9:
                break
        v = v_prev + direction * step / slope
        last = not (v < v_end) if direction > 0 else not (v > v_end)  # NaN ends the walk
        if last:
            v = v_end
        cur = _profile(y, ymax, inv_ymax, v)
        if not (cur[3] >= -1.0 and math.isfinite(cur[1])):
            break
        a, b = (prev, cur) if direction > 0 else (cur, prev)
        found, vr, xr, lr, conv = _bracket_max(y, ymax, inv_ymax, a, b)
        ok = ok and conv
        if found and xr >= -1.0 and lr > best_l:
            best_l, best_v, best_xi = lr, vr, xr
        if last:
            break
        prev = cur
    return best_l, best_v, best_xi, ok


@njit(cache=True)
def _root_bound(ratio, ymax_over_ymin):
    """Upper bound on ``v`` of every stationary point with ``s > 0``.

    A root needs ``u (1 + xi) = 1``; with ``u <= 1 / (1 + c)`` and
    ``xi <= log(1 + c R)`` (``c = theta min(y)``, ``R = mean(y) / min(y)``, by
    Jensen) that forces ``log(1 + c R) >= c``. Newton from the right on that
    concave equation gives a decreasing sequence of valid bounds. ``min`` and
    ``mean`` are over the positive values: with zeros in the sample the
    likelihood grows without bound as ``xi -> inf``, and the search for ``xi``
    is limited to where the positive values alone could place a maximum.
    """
    if ratio <= 1.0:
        return 0.0
    c = ratio
    for _ in range(6):
        # Newton step c - (log1p(c R) - c) / (d - 1), d = R / (1 + c R) < 1, without cancellation
        d = 1.0 / (c + 1.0 / ratio)
        if d >= 1.0:  # only for ratio within rounding of 1, where c is already ~0
            break
        log1p_cr = math.log1p(c * ratio) if c < 1e300 / ratio else math.log(c) + math.log(ratio)
        c = (log1p_cr - c * d) / (1.0 - d)
    return math.log1p(1.01 * c * ymax_over_ymin)  # a little slack for rounding


@njit(cache=True)
def mle_fit(y):
    """Exact maximum likelihood fit of the GPD to exceedances ``y``.

    Grimshaw's (1993) reduction to the one-dimensional profile over
    ``theta = xi / sigma``: stationary points are bracketed by walking the
    profile in steps of about 0.2 in ``xi`` on both sides of the exponential
    (until a bound shows nothing further can win), each bracket is refined
    with Newton's method kept inside it (bisection as the safeguard), and the
    best local maximum is compared with the exponential (``xi = 0``) and with
    the ``xi = -1`` boundary. A fit of 400 exceedances takes about 10
    evaluations of the profile (``benchmarks/bench_mle.py``).

    The likelihood is unbounded for ``xi < -1`` (as ``sigma / -xi`` approaches
    ``max(y)``), so the search is restricted to ``xi >= -1``; on that boundary
    the best fit is the uniform ``sigma = max(y)``, ``xi = -1``. When the
    sample contains zeros the likelihood also grows without bound as
    ``xi -> inf`` (the density at 0 is ``1 / sigma``); that direction is left
    out and the best local maximum is returned. The same holds, within double
    precision, when ``min(y) / max(y)`` is below about 1e-290 (``theta`` would
    pass 1e304).

    Parameters
    ----------
    y : ndarray, shape (n,), float64
        Exceedances, all ``>= 0``, in any order; not modified.

    Returns
    -------
    sigma, xi, loglik : float
        NaN for a sample without spread (``status == CONSTANT``).
    status : int
        ``OK``; ``XI_BOUNDARY`` if the uniform (``xi = -1``) wins;
        ``NO_MAXIMUM`` if the likelihood has no interior maximum (it rises
        from the exponential towards ``xi -> inf``, as with zeros in a
        heavy-tailed sample): the exponential is returned with that status;
        ``NOT_CONVERGED`` if a root refinement ran out of iterations (the best
        point found is returned) or ``y`` holds negative or non-finite values
        (NaN returned); ``CONSTANT``.
    """
    z, e, status = unit_scaled(y)
    if status != OK:
        return _NAN, _NAN, _NAN, status
    sigma, xi, loglik, status = _mle_unit(z)
    sigma, xi, status = scale_back(sigma, xi, status, e)
    return sigma, xi, loglik - y.size * e * _LOG2, status


@njit(cache=True)
def _mle_unit(y):
    """:func:`mle_fit` of a sample with spread and ``max(y)`` in ``[0.5, 1)`` (:func:`unit_scaled`)."""
    n = y.size
    ymax = 0.0
    ymin_pos = _INF
    sum_log = 0.0
    n_pos = 0
    for i in range(n):
        yi = y[i]
        if yi > 0.0:
            n_pos += 1
            sum_log += math.log(yi)
            if yi < ymin_pos:
                ymin_pos = yi
        if yi > ymax:
            ymax = yi
    inv_ymax = 1.0 / ymax
    log_ymax = math.log(ymax)
    mean_log_z = sum_log / n - log_ymax if n_pos == n else -_INF
    sum_z = 0.0  # moments of z = y / max(y): no overflow for huge y
    sum_z2 = 0.0
    sum_z3 = 0.0
    for i in range(n):
        z = y[i] * inv_ymax
        sum_z += z
        sum_z2 += z * z
        sum_z3 += z * z * z
    m1 = sum_z / n
    d0 = 0.5 * sum_z2 / n - m1 * m1
    l0 = -n * (1.0 + math.log(m1))
    # the point v = 0 (see `_profile`; psi(0) = 1/2, psi'(0) = -2/3)
    start = (0.0, d0, 1.5 * m1 * (sum_z2 / n) - (2.0 / 3.0) * (sum_z3 / n), 0.0, l0, m1)

    # candidates: the xi = -1 boundary (l* = 0 in z units) and the exponential
    best_l, best_v, best_xi = 0.0, -_INF, -1.0
    if l0 > best_l:
        best_l, best_v, best_xi = l0, 0.0, 0.0
    # past v = 700, s = expm1(v) overflows
    v_hi = min(_root_bound(sum_z / n_pos * (ymax / ymin_pos), ymax / ymin_pos), 700.0)
    # walk the side the profile rises towards first: its maximum prunes the other
    ok = True
    for side in range(2):
        right = (side == 0) == (d0 > 0.0)
        if right and not v_hi > 0.0:
            continue
        # below v = -700, 1 + s underflows: nothing there differs from the boundary
        best_l, best_v, best_xi, ok_side = _march(
            y, ymax, inv_ymax, 1.0 if right else -1.0, v_hi if right else -700.0, mean_log_z, start,
            best_l, best_v, best_xi)
        ok = ok and ok_side
    status = OK if ok else NOT_CONVERGED

    loglik = best_l - n * log_ymax
    if best_v == -_INF:
        return ymax, -1.0, loglik, (XI_BOUNDARY if status == OK else status)
    if best_v == 0.0:
        # the profile still rises at xi = 0 (d0 > 0) and no maximum lies beyond: the
        # likelihood has no interior maximum, the exponential is only its value at xi = 0
        if d0 > 0.0 and status == OK:
            status = NO_MAXIMUM
        return m1 * ymax, 0.0, loglik, status
    return ymax * (best_xi / math.expm1(best_v)), best_xi, loglik, status


# ---------------------------------------------------------------------------
# Other estimators
# ---------------------------------------------------------------------------
@njit(cache=True)
def _pwm_from_moments(a0, a1):
    """GPD ``(sigma, xi, status)`` from ``a0 = E[Y]`` and ``a1 = E[Y (1 - F(Y))]`` estimates."""
    denom = a0 - 2.0 * a1  # half Gini's mean difference: > 0 unless the spread is below rounding
    if not denom > 0.0:
        return _NAN, _NAN, CONSTANT
    return 2.0 * a0 * (a1 / denom), 2.0 - a0 / denom, OK


@njit(cache=True)
def _pwm(y, plotting_positions):
    """:func:`pwm_fit` (unbiased ``a1``) or :func:`pwmb_fit` (plotting positions) of ``y``."""
    z, e, status = unit_scaled(y)
    if status != OK:
        return _NAN, _NAN, status
    ys = sorted_float64(z)
    n = ys.size
    a0 = 0.0
    a1 = 0.0
    for i in range(n):  # rank = i + 1
        a0 += ys[i]
        if plotting_positions:
            a1 += (1.0 - (i + 0.65) / n) * ys[i]  # 1 - p_i, p_i = (rank - 0.35) / n
        else:
            a1 += (n - 1 - i) * ys[i]  # n - rank
    sigma, xi, status = _pwm_from_moments(a0 / n, a1 / n if plotting_positions else a1 / (n * (n - 1.0)))
    return scale_back(sigma, xi, status, e)


@njit(cache=True)
def pwm_fit(y):
    """Probability-weighted moments with the unbiased estimator (L-moments; POT's ``"pwmu"``).

    ``a0 = mean(y)`` and ``a1 = mean((n - i) / (n - 1) * y_(i))`` over the
    ascending order statistics ``y_(1) <= ... <= y_(n)``: the unbiased
    estimator of ``E[Y (1 - F(Y))]`` (Landwehr, Matalas & Wallis 1979), i.e.
    the sample L-moments ``l1 = a0``, ``l2 = a0 - 2 a1``. Then
    ``xi = 2 - a0 / (a0 - 2 a1)`` and ``sigma = 2 a0 a1 / (a0 - 2 a1)``
    (Hosking & Wallis 1987's equations with their ``k = -xi``); the estimate
    always has ``xi < 1``. :func:`pwmb_fit` uses plotting positions instead.

    Returns ``(sigma, xi, status)``; status ``OK``, ``CONSTANT`` (no spread), or
    ``NOT_CONVERGED`` with NaN if ``y`` holds negative or non-finite values.
    """
    return _pwm(y, False)


@njit(cache=True)
def pwmb_fit(y):
    """Probability-weighted moments with plotting positions (Hosking & Wallis 1987; POT's ``"pwmb"``).

    As :func:`pwm_fit` but ``a1 = mean((1 - p_i) y_(i))`` with the plotting
    positions ``p_i = (i - 0.35) / n`` that Hosking & Wallis (1987) used
    (slightly biased; POT's ``fitgpd(..., "pwmb")`` with ``a = 0.35, b = 0``).

    Returns ``(sigma, xi, status)`` like :func:`pwm_fit`.
    """
    return _pwm(y, True)


@njit(cache=True)
def mom_fit(y):
    """Method of moments: match the mean and the variance (``ddof = 1``).

    With ``r = mean**2 / var``: ``xi = (1 - r) / 2`` and
    ``sigma = mean (1 + r) / 2``; the estimate always has ``xi < 1/2``.

    Returns ``(sigma, xi, status)``; status ``OK``, ``CONSTANT`` (no spread), or
    ``NOT_CONVERGED`` with NaN if ``y`` holds negative or non-finite values.
    """
    y, e, status = unit_scaled(y)
    if status != OK:
        return _NAN, _NAN, status
    n = y.size
    ymax = 0.0
    for i in range(n):
        ymax = max(ymax, y[i])
    inv_ymax = 1.0 / ymax  # moments of y / max(y)
    mean = 0.0
    for i in range(n):
        mean += y[i] * inv_ymax
    mean /= n
    ss = 0.0
    for i in range(n):
        dev = y[i] * inv_ymax - mean
        ss += dev * dev
    if not ss > 0.0:
        return _NAN, _NAN, CONSTANT
    ratio = mean * mean * (n - 1) / ss
    return scale_back(0.5 * ymax * mean * (1.0 + ratio), 0.5 * (1.0 - ratio), OK, e)


@njit(cache=True)
def _theta_profile(y, theta):
    """``(xi, xi / theta)`` of the profile at ``theta = xi / sigma``, continuous at 0.

    Needs ``1 + theta max(y) > 0``; ``xi / theta`` is the matching ``sigma``.
    """
    sum_log = 0.0
    sum_b = 0.0
    for i in range(y.size):
        t = theta * y[i]
        ratio = _log1p_ratio(t)
        sum_log += t * ratio
        sum_b += y[i] * ratio
    return sum_log / y.size, sum_b / y.size


@njit(cache=True)
def zhang_fit(y):
    """Empirical Bayes estimator of Zhang & Stephens (2009).

    The posterior mean of ``theta = xi / sigma`` over the grid
    ``theta_j = -(1 / y_(n) + (1 - sqrt(m / (j - 1/2))) / (3 y_*))``,
    ``j = 1..m``, ``m = 20 + floor(sqrt(n))``, where ``y_*`` is the order
    statistic ``y_(floor(n/4 + 1/2))`` (about the first quartile); the grid
    points are quantiles of the paper's prior, so each gets the weight of its
    profile likelihood. Then ``xi = mean(log1p(theta y))`` and
    ``sigma = xi / theta``. (Signs follow this module's ``xi``; the paper uses
    ``k = -xi`` and ``theta = -xi / sigma``.) If ``y_*`` is 0 (a quarter of
    the sample is zero), the smallest positive value takes its place. Computed
    on ``y / y_(n)`` (the estimator is scale-equivariant), so that neither the
    grid nor the likelihoods overflow at any scale; only a ``y_*`` below about
    3e-308 ``y_(n)`` puts the grid itself beyond float64.

    Returns ``(sigma, xi, status)``; status ``OK``, ``CONSTANT`` (no spread), or
    ``NOT_CONVERGED`` with NaN if ``y`` holds negative or non-finite values or
    the grid lies beyond float64.
    """
    y, e, status = unit_scaled(y)
    if status != OK:
        return _NAN, _NAN, status
    n = y.size
    z = sorted_float64(y)  # in units of max(y), where nothing overflows: the estimator is scale-equivariant
    ymax = z[n - 1]
    for i in range(n):
        z[i] /= ymax
    zstar = z[int(math.floor(n / 4.0 + 0.5)) - 1]
    if zstar == 0.0:
        for i in range(n):
            if z[i] > 0.0:
                zstar = z[i]
                break
    m = 20 + int(math.floor(math.sqrt(n)))
    thetas = np.empty(m)
    logliks = np.empty(m)
    lmax = -_INF
    for j in range(m):
        theta = -(1.0 + (1.0 - math.sqrt(m / (j + 0.5))) / (3.0 * zstar))
        thetas[j] = theta
        xi, b = _theta_profile(z, theta)
        logliks[j] = -n * (1.0 + math.log(b) + xi)
        lmax = max(lmax, logliks[j])
    # weights exp(L_j) / sum_i exp(L_i), shifted by the largest for stability; normalised
    # before the weighted sum, which stays within the grid (the thetas reach 1e308 when
    # the quartile is ~1e-308 max(y))
    wsum = 0.0
    for j in range(m):
        logliks[j] = math.exp(logliks[j] - lmax)
        wsum += logliks[j]
    theta_hat = 0.0
    for j in range(m):
        theta_hat += (logliks[j] / wsum) * thetas[j]
    xi, sigma = _theta_profile(z, theta_hat)
    return scale_back(sigma * ymax, xi, OK, e)


# ---------------------------------------------------------------------------
# The estimator registry
# ---------------------------------------------------------------------------
#: every GPD estimator by name, with the code the column kernels dispatch on
METHODS = {"mle": 0, "pwm": 1, "zhang": 2, "mom": 3, "pwmb": 4}


@njit(cache=True)
def fit_by_code(y, method):
    """``(sigma, xi, loglik, status)`` of the estimator with code ``method`` (see :data:`METHODS`).

    ``loglik`` is the GPD log-likelihood at the estimate (NaN unless the
    status is ``OK``; ``-inf`` where a non-MLE estimate leaves a value
    outside its support).
    """
    if method == 0:
        return mle_fit(y)
    if method == 1:
        sigma, xi, status = pwm_fit(y)
    elif method == 2:
        sigma, xi, status = zhang_fit(y)
    elif method == 3:
        sigma, xi, status = mom_fit(y)
    else:
        sigma, xi, status = pwmb_fit(y)
    loglik = gpd_loglik(y, sigma, xi) if status == OK else _NAN
    return sigma, xi, loglik, status
