"""Plain per-column reference of fit_tails and TailModel scoring (slow, obvious).

Written from the TailModel docstring, independently of the numba kernels:
numpy sorting, ``evtools.gpd_fit`` for the single-sample fit and
``scipy.stats.genpareto`` for the tail probability.
"""
import math

import numpy as np
from scipy import stats

import evtools as ev
from evtools._status import CONSTANT, OK, TOO_FEW, XI_BOUNDARY


def threshold_of(x, rule):
    if isinstance(rule, float):  # a fixed threshold
        return rule
    if isinstance(rule, ev.Quantile):
        return float(np.quantile(x, rule.q))
    s = np.sort(x)
    return float(s[len(s) - rule.k - 1])


def midp_sf(x, v):
    return (np.sum(x > v) + 0.5 * np.sum(x == v)) / len(x)


def fit_column(x, rule, method="mle", min_exceed=10, n_knots=64):
    """Everything fit_tails stores for one column, as a dict (``rule``: a rule, or a float: fixed)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    s = np.sort(x)
    t = threshold_of(x, rule)
    y = np.sort(x[x > t] - t)
    k = len(y)
    out = {"threshold": t, "n_exceed": k}
    # the survival at t; a t above every value takes the largest value's (never 0)
    sf_t = midp_sf(x, min(t, s[-1]))
    if k == 0:
        out.update(sigma=np.inf, xi=0.0, status=CONSTANT, mass=min(1.0 / (n + 1), sf_t))
    else:
        status = TOO_FEW
        if k >= min_exceed:
            fit = ev.gpd_fit(y, method=method)
            status = fit.status
        if status in (OK, XI_BOUNDARY):
            out.update(sigma=fit.sigma, xi=fit.xi, loglik=fit.loglik)
        else:
            out.update(sigma=y.mean(), xi=0.0, loglik=-k * math.log(y.mean()) - k)
        out.update(status=status, mass=k / n)
    r_top = n - k - 1
    ranks = [(i * r_top) // (n_knots - 1) for i in range(n_knots)] if r_top >= 0 else []
    kx = [s[r] for r in ranks] + [t]
    ks = [midp_sf(x, s[r]) for r in ranks] + [sf_t]
    out["knots"] = (np.array(kx), np.array(ks))
    return out


def logsf_of(g, col):
    """log P(S > g) for one value under one column's fitted dict."""
    t = col["threshold"]
    if g > t:
        if col["sigma"] == np.inf:
            return math.log(col["mass"])
        return math.log(col["mass"]) + stats.genpareto.logsf(g - t, col["xi"], scale=col["sigma"])
    kx, ks = col["knots"]
    below = [i for i in range(len(kx)) if kx[i] <= g]
    if not below:
        return 0.0
    i = below[-1]
    if i == len(kx) - 1:
        return math.log(ks[i])
    return math.log(ks[i] + (g - kx[i]) * (ks[i + 1] - ks[i]) / (kx[i + 1] - kx[i]))
