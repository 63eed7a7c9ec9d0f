"""The exact GPD MLE kernel as it was before issue 14's speed-up (commit 51beb84), kept verbatim.

Only for comparison: tests/test_gpd_fit.py checks that today's ``mle_fit`` gives the same
``(sigma, xi, loglik, status)`` to 1e-10, and benchmarks/bench_mle.py times the two on the same
columns; it takes today's kernel from here as ``mle_fit_now`` (benchmarks may not import
private evtools names, and the kernel has no public numba entry point). Never imported by
``evtools``.
"""
import math

import numpy as np
from numba import njit

from evtools._kernels.gpd import mle_fit as mle_fit_now  # noqa: F401 (for benchmarks/bench_mle.py)
from evtools._status import CONSTANT, NO_MAXIMUM, NOT_CONVERGED, OK, XI_BOUNDARY

_NAN = np.nan
_INF = np.inf


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
def _is_invalid(y):
    """True when ``y`` breaks the kernels' contract: a negative or non-finite value."""
    for i in range(y.size):
        if not (y[i] >= 0.0 and y[i] < _INF):
            return True
    return False


@njit(cache=True)
def _is_degenerate(y):
    """True when ``y`` has no spread to fit: fewer than 2 values or all equal."""
    if y.size < 2:
        return True
    first = y[0]
    for i in range(1, y.size):
        if y[i] != first:
            return False
    return True


@njit(cache=True)
def _sample_status(y):
    """``NOT_CONVERGED`` if ``y`` breaks the contract, ``CONSTANT`` without spread, else ``OK``."""
    if _is_invalid(y):
        return NOT_CONVERGED
    if _is_degenerate(y):
        return CONSTANT
    return OK


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


@njit(cache=True)
def _profile(y, ymax, inv_ymax, v):
    """Profile quantities at ``s = expm1(v)``: ``(xi, D, l*, dxi/dv)`` in z units."""
    n = y.size
    s = math.expm1(v)
    sum_log = 0.0
    sum_a = 0.0
    if abs(s) < 0.1:
        # D from psi term by term: u (1 + xi) - 1 would cancel to O(s**2)
        sum_psi = 0.0
        for i in range(n):
            z = y[i] * inv_ymax
            t = s * z
            lg = math.log1p(t)
            q = 1.0 / (1.0 + t)
            sum_log += lg
            sum_a += z * q
            sum_psi += z * z * _psi(t, lg, q)
        xi = sum_log / n
        mean_a = sum_a / n
        b = mean_a if s == 0.0 else xi / s  # at s = 0, q = 1 and mean_a = mean(z)
        d = sum_psi / n - mean_a * b
    else:
        r = math.exp(v)  # 1 + s, accurate even where s rounds to -1
        sum_q = 0.0
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
            sum_log += lg
            sum_q += q
            sum_a += z * q
        xi = sum_log / n
        mean_a = sum_a / n
        b = xi / s
        d = (sum_q / n) * (1.0 + xi) - 1.0
        if s < 1.0:
            d /= s * s  # for s >= 1, s**2 could overflow: D is g itself there
    lstar = -n * (1.0 + math.log(b) + xi)
    return xi, d, lstar, math.exp(v) * mean_a


@njit(cache=True)
def _refine_max(y, ymax, inv_ymax, a, fa, xa, la, b, fb, xb, lb):
    """Brent's root finder on D over ``[a, b]`` with ``D(a) > 0 > D(b)``.

    Carries ``xi`` and ``l*`` along with each point; returns
    ``(v, xi, l*, converged)`` at the final iterate.
    """
    c, fc, xc, lc = a, fa, xa, la
    d = b - a
    e = d
    for _ in range(_MLE_MAXITER):
        if (fb > 0.0) == (fc > 0.0):
            c, fc, xc, lc = a, fa, xa, la
            d = b - a
            e = d
        if abs(fc) < abs(fb):
            a, fa, xa, la = b, fb, xb, lb
            b, fb, xb, lb = c, fc, xc, lc
            c, fc, xc, lc = a, fa, xa, la
        tol = 1e-10 * (1.0 + abs(b))  # well above the rounding noise of D
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b, xb, lb, True
        if abs(e) >= tol and abs(fa) > abs(fb):
            # inverse quadratic interpolation, or the secant step when a == c
            s = fb / fa
            if a == c:
                p = 2.0 * m * s
                q = 1.0 - s
            else:
                q = fa / fc
                r = fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e = d
                d = p / q
            else:
                d = m
                e = m
        else:
            d = m
            e = m
        a, fa, xa, la = b, fb, xb, lb
        b = b + d if abs(d) > tol else b + (tol if m > 0.0 else -tol)
        xb, fb, lb, _ = _profile(y, ymax, inv_ymax, b)
    return b, xb, lb, False


@njit(cache=True)
def _bracket_max(y, ymax, inv_ymax, va, da, xa, la, vb, db, xb, lb):
    """Local maximum of the profile inside ``[va, vb]``, if one is evident.

    A sign change of D from + to - is refined directly. D of one sign at both
    ends while l* moves the other way (falls although D > 0, rises although
    D < 0) proves a hidden maximum: bisection keeps a half with that
    contradiction until a sign change appears.
    Returns ``(found, v, xi, l*, converged)``.
    """
    noise = 1e-11 * (y.size + abs(la) + abs(lb))
    for _ in range(_MLE_MAXITER):
        if da > 0.0 and db < 0.0:
            v, xi, lv, conv = _refine_max(y, ymax, inv_ymax, va, da, xa, la, vb, db, xb, lb)
            return True, v, xi, lv, conv
        hidden_rise = da < 0.0 and db < 0.0 and lb - la > noise
        hidden_fall = da > 0.0 and db > 0.0 and la - lb > noise
        if not (hidden_rise or hidden_fall):
            return False, vb, xb, lb, True
        vm = 0.5 * (va + vb)
        xm, dm, lm, _ = _profile(y, ymax, inv_ymax, vm)
        # keep the half with the sign change, else the half with the contradiction
        if hidden_rise:
            right = dm > 0.0 or lm < lb
        else:
            right = dm > 0.0 and lm >= la
        if right:
            va, da, xa, la = vm, dm, xm, lm
        else:
            vb, db, xb, lb = vm, dm, xm, lm
    return False, vb, xb, lb, False


@njit(cache=True)
def _march(y, ymax, inv_ymax, direction, v_end, mean_log_z, d0, l0, slope0,
           best_l, best_v, best_xi):
    """Walk from ``v = 0`` towards ``v_end`` in steps of about 0.2 in ``xi``.

    ``xi(v)`` is increasing and convex, so a step of ``dxi / slope`` moves
    ``xi`` by at most ``dxi`` to the left and at least ``dxi`` to the right.
    To the left the step is also capped at ``xi + 1``: the walk then closes in
    on the ``xi = -1`` boundary like Newton's method, never crossing it.
    Every bracket is searched with `_bracket_max`. The walk stops early once
    nothing beyond the current point can beat the incumbent ``best_l``:
    for ``s' >= s > 0``, ``l*(s') <= -n (1 + log xi(s) + mean(log z))``
    (``xi`` increases, ``log s - xi(s)`` increases to ``-mean(log z)``), and
    for ``-1 < s' <= s < 0``, ``l*(s') <= -n log b(s)`` (``b`` decreases and
    ``xi >= -1``). Returns ``(best_l, best_v, best_xi, all_converged)``.
    """
    n = y.size
    v_prev, d_prev, xi_prev, l_prev, slope = 0.0, d0, 0.0, l0, slope0
    ok = True
    while True:
        if direction > 0:
            if xi_prev > 0.0 and -n * (1.0 + math.log(xi_prev) + mean_log_z) <= best_l:
                break
            step = 0.2 if xi_prev < 1.0 else 0.35 * xi_prev
        else:
            if xi_prev < 0.0 and -n * math.log(xi_prev / math.expm1(v_prev)) <= best_l:
                break
            step = min(0.2, xi_prev + 1.0)
            if step < 1e-9:
                break
        v = v_prev + direction * step / slope
        last = not (v < v_end) if direction > 0 else not (v > v_end)  # NaN ends the walk
        if last:
            v = v_end
        xi, d, lv, slope_v = _profile(y, ymax, inv_ymax, v)
        if not (xi >= -1.0 and math.isfinite(d)):
            break
        if direction > 0:
            found, vr, xr, lr, conv = _bracket_max(
                y, ymax, inv_ymax, v_prev, d_prev, xi_prev, l_prev, v, d, xi, lv)
        else:
            found, vr, xr, lr, conv = _bracket_max(
                y, ymax, inv_ymax, v, d, xi, lv, v_prev, d_prev, xi_prev, l_prev)
        ok = ok and conv
        if found and xr >= -1.0 and lr > best_l:
            best_l, best_v, best_xi = lr, vr, xr
        if last:
            break
        v_prev, d_prev, xi_prev, l_prev, slope = v, d, xi, lv, slope_v
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
    with Brent's method, and the best local maximum is compared with the
    exponential (``xi = 0``) and with the ``xi = -1`` boundary.

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
    n = y.size
    status = _sample_status(y)
    if status != OK:
        return _NAN, _NAN, _NAN, status
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
    for i in range(n):
        z = y[i] * inv_ymax
        sum_z += z
        sum_z2 += z * z
    m1 = sum_z / n
    d0 = 0.5 * sum_z2 / n - m1 * m1
    l0 = -n * (1.0 + math.log(m1))

    # candidates: the xi = -1 boundary (l* = 0 in z units) and the exponential
    best_l, best_v, best_xi = 0.0, -_INF, -1.0
    if l0 > best_l:
        best_l, best_v, best_xi = l0, 0.0, 0.0
    # past v = 700, s = expm1(v) overflows
    v_hi = min(_root_bound(sum_z / n_pos * (ymax / ymin_pos), ymax / ymin_pos), 700.0)
    # walk the side the profile rises towards first: its maximum prunes the other
    ok_pos = ok_neg = True
    for side in range(2):
        if (side == 0) == (d0 > 0.0):
            if v_hi > 0.0:
                best_l, best_v, best_xi, ok_pos = _march(
                    y, ymax, inv_ymax, 1.0, v_hi, mean_log_z, d0, l0, m1,
                    best_l, best_v, best_xi)
        else:
            # below v = -700, 1 + s underflows: nothing there differs from the boundary
            best_l, best_v, best_xi, ok_neg = _march(
                y, ymax, inv_ymax, -1.0, -700.0, mean_log_z, d0, l0, m1,
                best_l, best_v, best_xi)
    status = OK if (ok_pos and ok_neg) else NOT_CONVERGED

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

