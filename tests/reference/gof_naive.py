"""Plain, slow reference implementations for the goodness-of-fit code.

Nothing here is fast or batched: the statistics follow their textbook
formulae over sorted probability-integral transforms, the GPD cdf is scipy's,
and the asymptotic null distributions come from an eigen-decomposition of the
covariance kernel (the method behind Choulakian & Stephens, 2001).
"""
import functools
import math

import numpy as np
from scipy import optimize, stats

from tests.reference import return_level_naive as R


def gpd_cdf(y, sigma, xi):
    """GPD cdf via scipy (scipy's shape ``c`` is evtools' ``xi``)."""
    return stats.genpareto.cdf(y, xi, loc=0.0, scale=sigma)


def ad_statistic(z):
    """A2 = -n - (1/n) sum_{i=1}^n (2i - 1) [log z_(i) + log(1 - z_(n+1-i))]."""
    z = np.sort(np.asarray(z, dtype=float))
    n = z.size
    total = 0.0
    for i in range(1, n + 1):
        total += (2 * i - 1) * (math.log(z[i - 1]) + math.log(1.0 - z[n - i]))
    return -n - total / n


def cvm_statistic(z):
    """W2 = sum_{i=1}^n (z_(i) - (2i - 1) / (2n))**2 + 1 / (12 n)."""
    z = np.sort(np.asarray(z, dtype=float))
    n = z.size
    total = 1.0 / (12 * n)
    for i in range(1, n + 1):
        total += (z[i - 1] - (2 * i - 1) / (2 * n)) ** 2
    return total


def gof_columns_naive(Y, counts, sigma, xi):
    """Per-column loop: (ad, cvm) arrays, NaN where a column has fewer than 5 values."""
    n_cols = Y.shape[1]
    ad = np.full(n_cols, np.nan)
    cvm = np.full(n_cols, np.nan)
    for j in range(n_cols):
        if counts[j] < 5:
            continue
        z = gpd_cdf(Y[: counts[j], j], sigma[j], xi[j])
        ad[j] = ad_statistic(z)
        cvm[j] = cvm_statistic(z)
    return ad, cvm


@functools.lru_cache(maxsize=None)
def asymptotic_eigenvalues(xi, test, m=300):
    """Eigenvalues of the limiting covariance of the GPD-estimated empirical process.

    ``rho(s, t) = min(s, t) - s t - g(s)' I^{-1} g(t)`` with ``g = dF/d(sigma, xi)``
    at ``x = F^{-1}(t)`` (sigma = 1) and ``I^{-1} = (1 + xi) [[2, -1], [-1, 1 + xi]]``,
    the asymptotic covariance of the MLE; weighted by ``1/sqrt(s(1-s)t(1-t))``
    for A2. Discretised with Gauss-Legendre nodes clustered at both ends.
    """
    u, w = np.polynomial.legendre.leggauss(m)
    u = (u + 1.0) / 2.0
    t = (1.0 - np.cos(np.pi * u)) / 2.0
    wt = w / 2.0 * np.pi / 2.0 * np.sin(np.pi * u)
    sf = 1.0 - t
    if xi == 0.0:
        x = -np.log(sf)
        dlog_sf_dxi = x**2 / 2.0
    else:
        x = (sf ** (-xi) - 1.0) / xi
        dlog_sf_dxi = -np.log(sf) / xi - x / (xi * (1.0 + xi * x))
    g = np.vstack([-x * sf ** (1.0 + xi), -sf * dlog_sf_dxi])
    cov = (1.0 + xi) * np.array([[2.0, -1.0], [-1.0, 1.0 + xi]])
    rho = np.minimum.outer(t, t) - np.outer(t, t) - g.T @ cov @ g
    if test == "ad":
        v = 1.0 / np.sqrt(t * (1.0 - t))
        rho = rho * np.outer(v, v)
    sw = np.sqrt(wt)
    lam = np.linalg.eigvalsh(sw[:, None] * rho * sw[None, :])[::-1]
    lam = lam[lam > 1e-12]
    lam.flags.writeable = False
    return lam


def weighted_chi2_sf(c, lam, eps=1e-9):
    """P(sum_j lam_j chi2_1 > c) by Imhof's (1961) inversion formula.

    ``1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du`` with
    ``theta = (1/2) sum atan(lam u) - c u / 2``, ``rho = prod (1 + lam^2 u^2)^(1/4)``,
    truncated where Imhof's bound on the remainder is below ``eps`` and
    integrated with Simpson's rule on a grid finer than the oscillations.
    """
    lam = np.sort(lam)[::-1]
    k = np.arange(1, min(lam.size, 12) + 1)
    log_prod = np.cumsum(0.5 * np.log(lam[: k.size]))
    upper = np.min(np.exp((2.0 / k) * (np.log(2.0 / (np.pi * k * eps)) - log_prod)))
    h = min(4.0 * np.pi / c, 1.0 / lam[0]) / 40.0
    n = int(np.ceil(upper / h / 2.0)) * 2
    u = np.linspace(0.0, n * h, n + 1)[1:]
    theta = np.zeros_like(u)
    log_rho = np.zeros_like(u)
    for lj in lam:
        theta += 0.5 * np.arctan(lj * u)
        log_rho += 0.25 * np.log1p((lj * u) ** 2)
    theta -= 0.5 * c * u
    f = np.concatenate([[0.5 * (lam.sum() - c)], np.sin(theta) * np.exp(-log_rho) / u])
    val = h / 3.0 * (f[0] + f[-1] + 4.0 * f[1:-1:2].sum() + 2.0 * f[2:-1:2].sum())
    return 0.5 + val / np.pi


def asymptotic_critical_value(xi, p, test):
    """c with P(T > c) = p under the asymptotic null distribution of A2 or W2."""
    lam = asymptotic_eigenvalues(float(xi), test)
    mean = lam.sum()
    return optimize.brentq(lambda c: weighted_chi2_sf(c, lam) - p, 0.05 * mean, 12.0 * mean, xtol=1e-6)


def forwardstop_count(p, alpha):
    """ForwardStop (G'Sell et al. 2016): k_hat = max{k : -(1/k) sum_{i<=k} log(1 - p_i) <= alpha}, 0 if none."""
    k_hat = 0
    total = 0.0
    for k in range(1, len(p) + 1):
        total += -math.log(1.0 - p[k - 1])
        if total / k <= alpha:
            k_hat = k
    return k_hat


def forwardstop_select_naive(x, probs, alpha, min_exceed, test, fit, gof):
    """Threshold chosen by ForwardStop for one column, by a plain loop.

    ``fit(y) -> (sigma, xi)`` and ``gof(y, sigma, xi) -> p-value`` are passed in
    (the package's MLE and table p-values), so that the loop and the batched
    kernel are compared on the selection logic only.

    Returns
    -------
    threshold, index of the chosen candidate, p-values (NaN where too few exceedances)
    """
    thresholds = np.quantile(x, probs)
    pvals = np.full(len(probs), np.nan)
    for i, t in enumerate(thresholds):
        y = np.sort(x[x > t] - t)
        if y.size < min_exceed:
            continue
        sigma, xi = fit(y)
        pvals[i] = gof(y, sigma, xi)
    usable = np.flatnonzero(np.isfinite(pvals))
    if usable.size == 0:
        return thresholds[0], 0, pvals
    k_hat = forwardstop_count(pvals[usable], alpha)
    idx = min(k_hat, usable.size - 1)
    return thresholds[usable[idx]], int(usable[idx]), pvals


def mean_excess_naive(x, thresholds):
    """Mean of x - u over x > u, and the count, per threshold."""
    me = np.array([np.mean(x[x > u] - u) if np.any(x > u) else np.nan for u in thresholds])
    n = np.array([np.sum(x > u) for u in thresholds])
    return me, n


def gpd_wald_naive(y, sigma, xi, u):
    """Standard errors of xi and of sigma* = sigma - xi u from a finite-difference
    Hessian of scipy's GPD log-likelihood at (sigma, xi) (return_level_naive's)."""
    cov = np.linalg.inv(R.hessian(lambda p: R.nll(p, y), [sigma, xi]))
    grad = np.array([1.0, -u])
    return math.sqrt(cov[1, 1]), math.sqrt(grad @ cov @ grad)
