"""Plain numpy/scipy versions of the GPD estimators, written for clarity, not speed.

The numba kernels of ``evtools._kernels.gpd`` are compared with these. Each
follows its paper's own notation where that differs from the kernels' (other
sign conventions, other algebra), so that the two are not the same code twice.
"""
import numpy as np
from scipy import optimize


def pwm(x):
    """Hosking & Wallis (1987) through the PWMs beta_r = E[X F(X)**r] (unbiased b_0, b_1).

    ``alpha_1 = E[X (1 - F)] = beta_0 - beta_1``; with ``alpha_0, alpha_1``:
    ``xi = 2 - alpha_0 / (alpha_0 - 2 alpha_1)``, ``sigma = 2 alpha_0 alpha_1 / (alpha_0 - 2 alpha_1)``.
    """
    x = np.sort(np.asarray(x, dtype=float))
    unit = x[-1]  # scale-equivariant: work in units of max(x) (no under/overflow)
    x = x / unit
    n = x.size
    j = np.arange(1, n + 1)
    b0 = x.mean()
    b1 = np.sum((j - 1) / (n - 1) * x) / n
    a0, a1 = b0, b0 - b1
    return unit * 2 * a0 * a1 / (a0 - 2 * a1), 2 - a0 / (a0 - 2 * a1)


def pwmb(x, a=0.35):
    """Hosking & Wallis (1987) with plotting positions p_j = (j - a) / n: b_1 = mean(p_j x_(j))."""
    x = np.sort(np.asarray(x, dtype=float))
    unit = x[-1]
    x = x / unit
    n = x.size
    p = (np.arange(1, n + 1) - a) / n
    a0 = x.mean()
    a1 = a0 - np.mean(p * x)
    return unit * 2 * a0 * a1 / (a0 - 2 * a1), 2 - a0 / (a0 - 2 * a1)


def mom(x):
    """Method of moments: solve mean = sigma/(1-xi), var = sigma^2/((1-xi)^2 (1-2 xi))."""
    x = np.asarray(x, dtype=float)
    unit = x.max()  # scale-equivariant: work in units of max(x) (no under/overflow)
    m, v = (x / unit).mean(), (x / unit).var(ddof=1)
    xi = 0.5 * (1 - m * m / v)
    return unit * m * (1 - xi), xi


def zhang(x):
    """Zhang & Stephens (2009) in the paper's notation.

    The paper writes F(x) = 1 - (1 - k x / sigma)**(1/k) (so k = -xi) and works
    with theta = k / sigma < 1 / x_(n); the profile log-likelihood is
    L(theta) = n (log(theta / k(theta)) + k(theta) - 1), k(theta) = -mean(log(1 - theta x)).
    Returns ``(sigma, xi)``.
    """
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    m = 20 + int(np.floor(np.sqrt(n)))
    x_star = x[int(np.floor(n / 4 + 0.5)) - 1]
    if x_star == 0:  # evtools' documented stand-in: the smallest positive value
        x_star = x[x > 0].min()
    j = np.arange(1, m + 1)
    theta = 1 / x[-1] + (1 - np.sqrt(m / (j - 0.5))) / (3 * x_star)
    k = -np.mean(np.log1p(-np.outer(theta, x)), axis=1)
    L = n * (np.log(theta / k) + k - 1)
    w = np.array([1 / np.sum(np.exp(L - L[i])) for i in range(m)])
    theta_hat = np.sum(theta * w)
    k_hat = -np.mean(np.log1p(-theta_hat * x))
    return k_hat / theta_hat, -k_hat


ESTIMATORS = {"pwm": pwm, "pwmb": pwmb, "mom": mom, "zhang": zhang}
"""The closed-form estimators by ``method`` name: ``x -> (sigma, xi)`` (the MLE: :func:`mle_bruteforce`)."""


def loglik(x, sigma, xi):
    """GPD log-likelihood written straight from the density."""
    x = np.asarray(x, dtype=float)
    if xi == 0:
        return -x.size * np.log(sigma) - x.sum() / sigma
    w = 1 + xi * x / sigma
    if np.any(w < 0) or (xi > -1 and np.any(w == 0)):
        return -np.inf
    if xi == -1:
        return -x.size * np.log(sigma)
    return -x.size * np.log(sigma) - (1 + 1 / xi) * np.sum(np.log1p(xi * x / sigma))


def _best_sigma(x, xi):
    """Maximise the likelihood over log(sigma) for fixed xi (bounded scalar search)."""
    n, xmax, xbar = x.size, x.max(), x.mean()
    lo = np.log(-xi * xmax) + 1e-12 if xi < 0 else np.log(xbar) - 40
    hi = np.log(xbar) + 40 if xi >= 0 else max(lo + 40, np.log(xbar) + 40)

    def neg(log_sigma):
        return -loglik(x, np.exp(log_sigma), xi)

    # coarse scan (vectorised) so the bounded search starts in the right basin
    grid = np.linspace(lo, hi, 400)
    sig = np.exp(grid)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if xi == 0:
            ll = -n * np.log(sig[:, 0]) - x.sum() / sig[:, 0]
        else:
            w = 1 + xi * x / sig
            ll = -n * np.log(sig[:, 0]) - (1 + 1 / xi) * np.log(w).sum(axis=1)
            ll[np.any(w <= 0, axis=1)] = -np.inf
    vals = -ll
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(neg, bounds=(a, b), method="bounded", options={"xatol": 1e-12})
    best = min((res.fun, res.x), (vals[i], grid[i]))
    return -best[0], np.exp(best[1])


def mle_bruteforce(x, xi_max=4.0, n_grid=200):
    """Brute-force MLE over xi in [-1, xi_max]: a grid of xi, sigma profiled by a
    bounded 1-D search, then a bounded search on xi around the best grid point.

    Includes the xi = -1 boundary value -n log max(x). Returns ``(sigma, xi, loglik)``.
    """
    x = np.asarray(x, dtype=float)
    xis = np.concatenate([np.linspace(-1, 1, n_grid), np.linspace(1, xi_max, n_grid // 3)[1:]])
    prof = np.array([_best_sigma(x, xi)[0] for xi in xis])
    i = int(np.argmax(prof))
    a, b = xis[max(i - 1, 0)], xis[min(i + 1, xis.size - 1)]
    res = optimize.minimize_scalar(
        lambda xi: -_best_sigma(x, xi)[0], bounds=(a, b), method="bounded", options={"xatol": 1e-10}
    )
    candidates = [(prof[i], xis[i]), (-res.fun, res.x)]
    ll, xi = max(candidates)
    boundary = -x.size * np.log(x.max())
    if boundary >= ll:
        return x.max(), -1.0, boundary
    return _best_sigma(x, xi)[1], xi, ll
