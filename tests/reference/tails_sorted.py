"""Sort-based reference of what ``fit_tails`` stores per column (before selection replaced sorting).

Each column is sorted whole with ``np.sort`` in its own dtype; the threshold
interpolates two order statistics in float64, the exceedances are the top of
the sorted column, the body knots are sorted values at fixed ranks and the
mid-p survival counts come from ``np.searchsorted``. Every step uses the same
floating-point operations as the kernels, so results must agree bit for bit.
"""
import numpy as np

from evtools._kernels.gpd import gpd_loglik, mle_fit, mom_fit, pwm_fit, zhang_fit
from evtools._status import CONSTANT, OK, TOO_FEW, XI_BOUNDARY

ESTIMATORS = {"mle": mle_fit, "pwm": pwm_fit, "zhang": zhang_fit, "mom": mom_fit}


def midp(s, v, n_total):
    """(#(s > v) + #(s == v) / 2) / n_total over the sorted ``s`` (in s's dtype when v is)."""
    le = np.searchsorted(s, v, side="right")
    lt = np.searchsorted(s, v, side="left")
    return (len(s) - le + 0.5 * (le - lt)) / n_total


def fit_column_sorted(x, rank, frac, method="mle", min_exceed=10, n_knots=64, n_total=None, fixed=None):
    """dict of threshold, n_exceed, sigma, xi, loglik, status, mass, knot_x, knot_sf for one column.

    ``x`` holds the column (or its largest values when ``n_total > len(x)``);
    ``rank, frac`` the rule's position among ``n_total``, or ``fixed`` the threshold.
    """
    s = np.sort(x)
    n_rows = len(s)
    n_total = n_rows if n_total is None else n_total
    first = n_total - n_rows
    if fixed is None:
        lo = np.float64(s[rank - first])
        t = lo if frac == 0.0 else lo + frac * (np.float64(s[rank - first + 1]) - lo)
    else:
        t = np.float64(fixed)
    k = int(np.sum(s > t))
    out = {"threshold": t, "n_exceed": k}
    # the survival at t; a t above every value takes the largest value's (never 0)
    sf_t = midp(s, np.float64(t), n_total) if t <= s[-1] else midp(s, s[-1], n_total)
    if k == 0:
        out.update(sigma=np.inf, xi=0.0, loglik=np.nan, status=CONSTANT,
                   mass=min(1.0 / (n_total + 1.0), sf_t))
    else:
        y = s[n_rows - k:].astype(np.float64) - t
        status = TOO_FEW
        if k >= min_exceed:
            res = ESTIMATORS[method](y)
            if method == "mle":
                sigma, xi, loglik, status = res
            else:
                sigma, xi, status = res
                loglik = gpd_loglik(y, sigma, xi) if status == OK else np.nan
        if status in (OK, XI_BOUNDARY):
            out.update(sigma=sigma, xi=xi, loglik=loglik)
        else:
            m = 0.0
            for v in y:
                m += v
            m /= k
            out.update(sigma=m, xi=0.0, loglik=-k * np.log(m) - k)
        out.update(status=status, mass=k / n_total)
    r_top, r_low = n_total - k - 1, first
    kx, ks = [], []
    for i in range(n_knots):
        if r_top < r_low:
            kx.append(t)
            ks.append(1.0)
        else:
            v = s[r_low + (i * (r_top - r_low)) // (n_knots - 1) - first]
            kx.append(v)
            ks.append(midp(s, v, n_total))
    kx.append(t)
    ks.append(sf_t)
    out.update(knot_x=np.array(kx, dtype=np.float64), knot_sf=np.array(ks))
    return out
