"""Threshold diagnostics for one column: mean residual life and parameter stability.

Both functions scan candidate thresholds ``u`` of a 1-D sample and return plain
arrays (a dict, one entry per candidate) for plotting elsewhere. Above a
threshold where the GPD holds,

* the mean excess ``e(u) = E[X - u | X > u] = (sigma_u0 + xi u) / (1 - xi)``
  is linear in ``u`` with slope ``xi / (1 - xi)`` (constant for the
  exponential, ``xi = 0``);
* the fitted shape ``xi`` and the modified scale ``sigma* = sigma_u - xi u``
  do not change with ``u``.

So the threshold to choose is the lowest ``u`` from which the mean-excess
curve is straight and the parameter estimates are flat within their
confidence bands. Exceedances are the values strictly greater than ``u``.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._errors import InvalidInputError
from ._status import TOO_FEW
from ._validation import as_sample, check_probability
from .gpd import gpd_fit

N_THRESHOLDS = 100


def _sorted_sample(x, min_size):
    xs = np.sort(as_sample(x, "x", min_size=min_size))
    if xs[0] == xs[-1]:
        raise InvalidInputError("x is constant: no threshold diagnostics are possible")
    return xs


def _thresholds(xs, thresholds, min_exceed):
    """Given thresholds as float64, or the default grid: empirical quantiles at
    ``N_THRESHOLDS`` probabilities from 0 to ``1 - min_exceed / n`` (so that
    each keeps about ``min_exceed`` exceedances or more)."""
    if thresholds is None:
        top = 1.0 - min_exceed / xs.size
        return np.quantile(xs, np.linspace(0.0, top, N_THRESHOLDS))
    return as_sample(np.atleast_1d(thresholds), "thresholds")


def _z(level):
    return stats.norm.ppf(0.5 + 0.5 * check_probability(level, "level"))


def mean_residual_life(x, thresholds=None, *, level=0.95):
    """Mean excess over each threshold, with a normal confidence interval.

    Parameters
    ----------
    x : array_like, shape (n,)
        One column of data, finite, not constant, n >= 3.
    thresholds : array_like, shape (m,), optional
        Candidate thresholds. Default: 100 empirical quantiles from the minimum
        up to the one leaving 10 exceedances.
    level : float
        Confidence level of the interval ``mean_excess +- z * sd / sqrt(n_exceed)``.

    Returns
    -------
    dict of arrays, shape (m,)
        ``threshold``; ``mean_excess`` (mean of ``x - u`` over ``x > u``);
        ``lower``, ``upper`` (the interval); ``n_exceed`` (int64). Where a
        threshold has no exceedance the mean excess is NaN, and where it has
        one the interval is NaN.
    """
    xs = _sorted_sample(x, 3)
    u = _thresholds(xs, thresholds, 10)
    z = _z(level)
    first = np.searchsorted(xs, u, side="right")
    n_exceed = (xs.size - first).astype(np.int64)
    me = np.full(u.size, np.nan)
    half = np.full(u.size, np.nan)
    for i, (t, f) in enumerate(zip(u, first)):
        excess = xs[f:] - t
        if excess.size >= 1:
            me[i] = excess.mean()
        if excess.size >= 2:
            half[i] = z * excess.std(ddof=1) / np.sqrt(excess.size)
    return {"threshold": u, "mean_excess": me, "lower": me - half, "upper": me + half, "n_exceed": n_exceed}


def parameter_stability(x, thresholds=None, *, level=0.95, min_exceed=30):
    """GPD shape and modified scale fitted above each threshold, with Wald intervals.

    At each threshold ``u`` the GPD is fitted to the excesses by maximum
    likelihood (:func:`evtools.gpd_fit`); the modified scale
    ``sigma* = sigma_u - xi u`` removes the scale's built-in dependence on
    ``u``. Standard errors are the fit's (inverse observed information); the
    interval of ``sigma*`` uses the delta method,
    ``var(sigma*) = var(sigma) - 2 u cov(sigma, xi) + u^2 var(xi)``.

    Parameters
    ----------
    x : array_like, shape (n,)
        One column of data, finite, not constant, n >= 3.
    thresholds : array_like, shape (m,), optional
        Candidate thresholds. Default: 100 empirical quantiles from the minimum
        up to the one leaving ``min_exceed`` exceedances.
    level : float
        Confidence level of the intervals ``estimate +- z * se``.
    min_exceed : int >= 3
        Fewest exceedances for a fit; thresholds with fewer get NaN.

    Returns
    -------
    dict of arrays, shape (m,)
        ``threshold``; ``xi``, ``xi_lower``, ``xi_upper``; ``scale_star``,
        ``scale_star_lower``, ``scale_star_upper``; ``n_exceed`` (int64);
        ``status`` (int8, :class:`evtools.Status` of each fit: ``TOO_FEW``
        below ``min_exceed``). Estimates are NaN where the fit failed; the
        intervals are also NaN where the fit has no standard errors
        (``xi <= -0.5``, where the MLE is not asymptotically normal, or a
        singular information).
    """
    if isinstance(min_exceed, (bool, np.bool_)) or not isinstance(min_exceed, (int, np.integer)) or min_exceed < 3:
        raise InvalidInputError(f"min_exceed must be an integer >= 3, got {min_exceed!r}")
    xs = _sorted_sample(x, 3)
    u = _thresholds(xs, thresholds, min(int(min_exceed), xs.size - 1))
    z = _z(level)
    first = np.searchsorted(xs, u, side="right")
    n_exceed = (xs.size - first).astype(np.int64)
    m = u.size
    xi = np.full(m, np.nan)
    star = np.full(m, np.nan)
    se_xi = np.full(m, np.nan)
    se_star = np.full(m, np.nan)
    status = np.full(m, TOO_FEW, dtype=np.int8)
    for i, (t, f) in enumerate(zip(u, first)):
        if n_exceed[i] < min_exceed:
            continue
        fit = gpd_fit(xs[f:] - t, method="mle")
        status[i] = fit.status
        if not fit.converged:
            continue
        xi[i] = fit.xi
        star[i] = fit.sigma - fit.xi * t
        se_xi[i] = fit.se_xi
        grad = np.array([1.0, -t])
        se_star[i] = np.sqrt(grad @ fit.cov @ grad)
    return {
        "threshold": u, "xi": xi, "xi_lower": xi - z * se_xi, "xi_upper": xi + z * se_xi,
        "scale_star": star, "scale_star_lower": star - z * se_star, "scale_star_upper": star + z * se_star,
        "n_exceed": n_exceed, "status": status,
    }
