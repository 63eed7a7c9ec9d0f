"""Plain scipy versions of return levels and their intervals, for one sample at a time.

Written from Coles (2001), sections 4.3.3 and 2.6.6, independently of
``evtools._kernels.return_levels``: the MLE by ``scipy.optimize.minimize`` on the
negative log-likelihood of ``scipy.stats.genpareto``, the covariance by a
finite-difference Hessian of that function, the delta method through a
finite-difference gradient of the return level, and profile likelihoods by
``minimize_scalar`` (inner) and ``brentq`` (outer, for the end points).
"""
import numpy as np
from scipy import optimize, stats


def nll(params, y):
    """Negative GPD log-likelihood of ``y`` at ``(sigma, xi)`` (inf outside the support)."""
    sigma, xi = params
    if sigma <= 0:
        return np.inf
    v = stats.genpareto.logpdf(y, xi, loc=0, scale=sigma).sum()
    return -v if np.isfinite(v) else np.inf


def mle(y):
    """``(sigma, xi)`` maximising the likelihood (Nelder-Mead from the moment estimate)."""
    m, v = y.mean(), y.var()
    xi0 = 0.5 * (1 - m * m / v)
    start = [max(m * (1 - xi0), 1e-3 * m), xi0]
    res = optimize.minimize(nll, start, args=(y,), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    return res.x


def hessian(f, x, rel=1e-4):
    """Central finite-difference Hessian of ``f`` at ``x``."""
    x = np.asarray(x, dtype=float)
    h = rel * np.maximum(np.abs(x), 1e-2)
    n = x.size
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = h[i]
            ej[j] = h[j]
            H[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
    return H


def return_level(u, zeta, sigma, xi, m):
    """``x_m = u + sigma / xi ((m zeta)^xi - 1)`` (Coles 2001, eq. 4.13)."""
    return u + sigma / xi * ((m * zeta) ** xi - 1)


def delta_interval(x, u, n, m, alpha=0.05):
    """``(x_m, lower, upper)`` by the delta method with V = diag(zeta(1-zeta)/n, inverse Hessian)."""
    y = x[x > u] - u
    zeta = y.size / n
    sigma, xi = mle(y)
    cov = np.linalg.inv(hessian(lambda p: nll(p, y), [sigma, xi]))
    V = np.zeros((3, 3))
    V[0, 0] = zeta * (1 - zeta) / n
    V[1:, 1:] = cov
    p = np.array([zeta, sigma, xi])
    grad = np.empty(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6 * max(abs(p[i]), 1e-3)
        grad[i] = (return_level(u, *(p + e), m) - return_level(u, *(p - e), m)) / (2 * e[i])
    est = return_level(u, zeta, sigma, xi, m)
    se = np.sqrt(grad @ V @ grad)
    z = stats.norm.ppf(1 - alpha / 2)
    return est, est - z * se, est + z * se


def profile_return_interval(x, u, n, m, alpha=0.05):
    """Profile-likelihood interval of ``x_m`` (rate fixed at its estimate), by brentq on the profile."""
    y = x[x > u] - u
    zeta = y.size / n
    sigma, xi = mle(y)
    lmax = -nll([sigma, xi], y)
    est = return_level(u, zeta, sigma, xi, m)
    cut = lmax - stats.chi2.ppf(1 - alpha, 1) / 2
    c = np.log(m * zeta)

    def profile(xm):
        def neg(k):
            s = (xm - u) * k / np.expm1(k * c) if k != 0 else (xm - u) / c
            return nll([s, k], y)
        grid = np.linspace(-0.99, xi + 3, 200)
        vals = [neg(k) for k in grid]
        i = int(np.argmin(vals))
        res = optimize.minimize_scalar(neg, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
                                       method="bounded", options={"xatol": 1e-11})
        return -min(vals[i], res.fun)

    lo = optimize.brentq(lambda v: profile(v) - cut, u + 1e-6, est, xtol=1e-8)
    hi_b = est * 1.5
    while profile(hi_b) > cut:
        hi_b *= 1.5
    hi = optimize.brentq(lambda v: profile(v) - cut, est, hi_b, xtol=1e-8)
    return est, lo, hi


def profile_param_interval(y, which, alpha=0.05):
    """Profile-likelihood interval of ``sigma`` (which=0) or ``xi`` (which=1) of the sample ``y``."""
    sigma, xi = mle(y)
    lmax = -nll([sigma, xi], y)
    cut = lmax - stats.chi2.ppf(1 - alpha, 1) / 2

    def profile(v):
        if which == 1:
            lo = np.log(max(-v * y.max(), 0) + 1e-12 * sigma) if v < 0 else np.log(sigma) - 20
            def f(ls):
                return nll([np.exp(ls), v], y)
            grid = np.linspace(lo + 1e-9, np.log(sigma) + 5, 400)
        else:
            lo = max(-0.999, -v / y.max() + 1e-12)
            def f(k):
                return nll([v, k], y)
            grid = np.linspace(lo, xi + 4, 400)
        vals = [f(g) for g in grid]
        i = int(np.argmin(vals))
        res = optimize.minimize_scalar(f, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
                                       method="bounded", options={"xatol": 1e-11})
        return -min(vals[i], res.fun)

    est = (sigma, xi)[which]
    step = 0.25 * abs(est) + 0.05
    a = est - step
    while profile(a) > cut:
        a = a / 2 if which == 0 and a - step <= 0 else a - step
    b = est + step
    while profile(b) > cut:
        b += step
    lo = optimize.brentq(lambda v: profile(v) - cut, a, est, xtol=1e-9)
    hi = optimize.brentq(lambda v: profile(v) - cut, est, b, xtol=1e-9)
    return lo, hi
