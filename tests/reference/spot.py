"""SPOT's GPD fit as Wang & Sato's code uses it, restated to test a flaw in it.

SPOT (Siffer et al. 2017, "Anomaly detection in streams with extreme value
theory") fits the GPD to the peaks ``y`` over a threshold with Grimshaw's
trick: the likelihood equations reduce to one equation ``w(t) = 0`` in
``t = xi / sigma``; candidate roots are searched from a grid of starting
points by minimising ``sum w(t_i)^2`` with L-BFGS-B on two intervals, and the
candidate with the highest log-likelihood wins against the exponential fit
(``xi = 0``, ``sigma = mean(y)``), which starts as the incumbent.

The flaw: SPOT's log-likelihood for ``xi = 0`` is ``n (1 + log mean(y))``,
the negative of the exponential log-likelihood ``-n (1 + log mean(y))``. On
small values (mean below 1/e, as gradient norms are) the incumbent's value is
then very negative and any candidate beats it, whether or not it is a root of
``w`` or a better fit.

This module is a plain re-statement for the tests, not a library function.
"""
import math

import numpy as np
from scipy.optimize import minimize


def spot_log_likelihood(y, xi, sigma):
    """GPD log-likelihood of the peaks ``y`` as SPOT computes it (wrong sign at ``xi == 0``)."""
    n = y.size
    if xi != 0:
        return -n * math.log(sigma) - (1 + 1 / xi) * np.log(1 + (xi / sigma) * y).sum()
    return n * (1 + math.log(y.mean()))


def _candidate_roots(fun, jac, bounds, n_points):
    """L-BFGS-B minimisation of sum fun(t_i)^2 from ``n_points`` evenly spaced starts."""
    lo, hi = bounds
    step = (hi - lo) / (n_points + 1)
    starts = np.arange(lo + step, hi, step)

    def objective(ts):
        values = np.array([fun(t) for t in ts])
        return np.sum(values**2), 2 * values * np.array([jac(t) for t in ts])

    res = minimize(objective, starts, method="L-BFGS-B", jac=True, bounds=[bounds] * len(starts))
    return np.unique(res.x)


def spot_grimshaw(y, epsilon=1e-8, n_points=10):
    """SPOT's choice of ``(xi, sigma)`` for the peaks ``y`` and the log-likelihood it ranked them by.

    Returns
    -------
    xi, sigma, spot_loglik : float
    """
    y = np.asarray(y, dtype=np.float64)

    def u(s):
        return 1 + np.log(s).mean()

    def v(s):
        return np.mean(1 / s)

    def w(t):
        s = 1 + t * y
        return u(s) * v(s) - 1

    def jac_w(t):
        s = 1 + t * y
        us, vs = u(s), v(s)
        return us * (-vs + np.mean(1 / s**2)) / t + vs * (1 - vs) / t

    y_min, y_max, y_mean = y.min(), y.max(), y.mean()
    a = -1 / y_max
    if abs(a) < 2 * epsilon:
        epsilon = abs(a) / n_points
    a = a + epsilon
    b = 2 * (y_mean - y_min) / (y_mean * y_min)
    c = 2 * (y_mean - y_min) / y_min**2
    roots = np.concatenate([
        _candidate_roots(w, jac_w, (a + epsilon, -epsilon), n_points),
        _candidate_roots(w, jac_w, (b, c), n_points),
    ])
    best = (0.0, y_mean, spot_log_likelihood(y, 0.0, y_mean))
    for t in roots:
        xi = u(1 + t * y) - 1
        sigma = xi / t
        ll = spot_log_likelihood(y, xi, sigma)
        if ll > best[2]:
            best = (xi, sigma, ll)
    return best
