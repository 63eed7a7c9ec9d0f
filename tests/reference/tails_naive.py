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


def threshold_of(x, rule, n_total=None, position=None):
    """The threshold of ``rule`` on the column ``x`` (float64).

    ``Quantile`` by ``np.quantile``, ``TopK`` as an order statistic and ``Fixed`` as given; with
    ``position = (rank, frac)`` instead the order statistic ``rank`` of ``n_total`` (``x`` its
    largest values) plus ``frac`` of the gap to the next, as a float64 sum (bit for bit).
    """
    if position is not None:
        s = np.sort(x)
        rank, frac = position
        lo = s[rank - (n_total - len(s))]
        return lo if frac == 0.0 else lo + frac * (s[rank - (n_total - len(s)) + 1] - lo)
    if isinstance(rule, float):  # a fixed threshold
        return rule
    if isinstance(rule, ev.Fixed):
        return float(rule.threshold)
    if isinstance(rule, ev.Quantile):
        return float(np.quantile(x, rule.q))
    s = np.sort(x)
    return float(s[len(s) - rule.k - 1])


def midp_sf(x, v, n_total=None):
    """(#(x > v) + #(x == v) / 2) / n_total (default len(x))."""
    return (np.sum(x > v) + 0.5 * np.sum(x == v)) / (len(x) if n_total is None else n_total)


def fit_column(x, rule, method="mle", min_exceed=10, n_knots=64, n_total=None, position=None):
    """Everything fit_tails stores for one column, as a dict.

    ``x`` is the column, or its largest values when ``n_total`` (the column's length) is larger;
    ``position``: see :func:`threshold_of`; ``rule`` may be a float (a fixed threshold). The GPD
    fit (``sigma, xi, loglik, status``) is the single-sample ``ev.gpd_fit``'s, or the exponential
    with the mean excess where that fails.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x) if n_total is None else n_total
    first = n - len(x)  # rank of the smallest value in x
    s = np.sort(x)
    t = threshold_of(x, rule, n, position)
    y = np.sort(x[x > t] - t)
    k = len(y)
    out = {"threshold": t, "n_exceed": k}
    # the survival at t; a t above every value takes the largest value's (never 0)
    sf_t = midp_sf(x, min(t, s[-1]), n)
    if k == 0:
        out.update(sigma=np.inf, xi=0.0, loglik=np.nan, status=CONSTANT, mass=min(1.0 / (n + 1), sf_t))
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
    r_top = n - k - 1  # the largest value not above t; knots at ranks first..r_top
    if r_top >= first:
        ranks = [first + (i * (r_top - first)) // (n_knots - 1) for i in range(n_knots)]
        kx = [s[r - first] for r in ranks]
        ks = [midp_sf(x, v, n) for v in kx]
    else:  # every kept value exceeds t
        kx, ks = [t] * n_knots, [1.0] * n_knots
    out["knots"] = (np.array(kx + [t]), np.array(ks + [sf_t]))
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
