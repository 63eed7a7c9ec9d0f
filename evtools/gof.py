"""Goodness of fit of a generalized Pareto tail: Anderson-Darling and Cramer-von Mises.

Both statistics compare the exceedances with the fitted GPD through the
probability integral transform ``z = F(y; sigma, xi)``:

* Anderson-Darling ``A2 = -n - (1/n) sum_i (2i - 1) [log z_(i) + log(1 - z_(n+1-i))]``,
  which weighs the tails, the part that matters for extremes;
* Cramer-von Mises ``W2 = sum_i (z_(i) - (2i - 1) / (2n))**2 + 1 / (12 n)``.

The parameters are estimated from the same data, which makes the statistics
smaller than for a fully specified distribution: the usual tables (and
``scipy.stats.anderson`` / ``cramervonmises`` p-values) do not apply. Two ways
to a p-value are offered:

``pvalue="table"`` (default, instant)
    Asymptotic critical values of Choulakian & Stephens (2001, Technometrics
    43(4), Table 2) for both parameters estimated, interpolated in the fitted
    shape ``xi`` and in the log-odds of the significance level (see
    :mod:`evtools._kernels.gof_tables` for the table, its sign convention and what was
    checked). The tables hold for maximum-likelihood estimates only: for
    any other estimator (``estimator="pwm"``, ``"pwmb"``, ``"zhang"``,
    ``"mom"``) the statistic has another null distribution, and the table
    p-value is NaN (ask for ``pvalue="bootstrap"``). Shapes
    outside ``[-0.5, 0.9]`` use the nearest row. P-values are limited to
    ``[0.001, 0.999]``: a reported ``0.001`` means ``p <= 0.001`` and ``0.999``
    means ``p >= 0.999``. The approximation is good from about 25 exceedances.

``pvalue="bootstrap"``
    Parametric bootstrap: ``n_boot`` samples of the same size are drawn from the
    fitted GPD, the GPD is refitted to each *with the same estimator* as the
    observed fit and the statistic recomputed;
    ``p = (1 + #{T_b >= T}) / (1 + n_valid)``, where replicates whose refit gave
    no usable parameters are dropped. Valid for every estimator, at the actual
    sample size (no asymptotic table, no range limit beyond ``1 / (1 + n_boot)``),
    up to Monte-Carlo error; costs ``n_boot`` fits per column, all columns and
    replicates in parallel (numba kernel ``bootstrap_columns``). Checked to give
    uniform p-values under the null for every estimator (xi = 0.1, 40
    exceedances); where an estimator is far off (``"mom"`` for xi > 0.25,
    outside its range) the bootstrap's null model is too, and its p-values
    come out too small.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._errors import InvalidInputError
from ._kernels import gof as gof_kernels
from ._validation import _as_float_array, as_sample, check_choice, check_names, check_random_state, positive_int
from .gpd import check_method

TESTS = ("ad", "cvm")
PVALUE_METHODS = ("table", "bootstrap")
_CRIT = {"ad": gof_kernels.AD_CRIT, "cvm": gof_kernels.CVM_CRIT}
_NAMES = {"ad": "Anderson-Darling A2", "cvm": "Cramer-von Mises W2"}


def _check_tests(test):
    return tuple(dict.fromkeys(check_names(test, "test", TESTS)))


def _check_pvalue(pvalue, n_boot):
    check_choice(pvalue, "pvalue", PVALUE_METHODS)
    return positive_int(n_boot, "n_boot")


def _check_params(sigma, xi):
    try:
        sigma = float(sigma)
        xi = float(xi)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"sigma and xi must be numbers, got {sigma!r} and {xi!r}") from exc
    if not (np.isfinite(sigma) and sigma > 0):
        raise InvalidInputError(f"sigma must be finite and > 0, got {sigma}; pass the fitted GPD scale")
    if not np.isfinite(xi):
        raise InvalidInputError(f"xi must be finite, got {xi}; pass the fitted GPD shape")
    return sigma, xi


def pvalues(ad, cvm, counts, sigma, xi, estimator, pvalue, n_boot, random_state):
    """``(ad_pvalue, ad_pvalue, n_valid)`` per column: tables (MLE only, else NaN) or the bootstrap.

    ``ad``, ``cvm``, ``sigma``, ``xi`` float64 (F,), ``counts`` int64 (F,);
    ``n_valid`` is None for tables.
    """
    code = check_method(estimator, "estimator")
    if pvalue == "table":
        if estimator != "mle":  # the tables hold for maximum likelihood only
            nan = np.full(ad.shape, np.nan)
            return nan, nan.copy(), None
        return (gof_kernels.table_pvalues(ad, xi, gof_kernels.AD_CRIT),
                gof_kernels.table_pvalues(cvm, xi, gof_kernels.CVM_CRIT), None)
    n_tasks = -(-n_boot // gof_kernels.BOOT_CHUNK)
    seeds = check_random_state(random_state).integers(0, 2**31 - 1, size=(ad.shape[0], n_tasks))
    ge_ad, ge_cvm, valid = (a.sum(axis=1) for a in gof_kernels.bootstrap_columns(
        np.ascontiguousarray(counts, dtype=np.int64), sigma, xi, ad, cvm, code, n_boot, seeds))
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = valid > 0
        p_ad = np.where(ok, (1.0 + ge_ad) / (1.0 + valid), np.nan)
        p_cvm = np.where(ok, (1.0 + ge_cvm) / (1.0 + valid), np.nan)
    return p_ad, p_cvm, valid


@dataclass(frozen=True, repr=False)
class GOFResult:
    """Goodness of fit of one sample of exceedances.

    Attributes
    ----------
    statistic, pvalue : dict
        Keyed by test name (``"ad"``, ``"cvm"``), for the tests asked.
    n : int
        Number of exceedances.
    sigma, xi : float
        The GPD tested (the fitted parameters).
    method : str
        ``"table"`` or ``"bootstrap"``.
    n_boot : int or None
        Bootstrap replicates whose refit gave usable parameters (``None`` for tables).
    estimator : str
        The estimator that fitted ``sigma, xi`` (and refits the bootstrap samples).
    """

    statistic: dict = field(default_factory=dict)
    pvalue: dict = field(default_factory=dict)
    n: int = 0
    sigma: float = np.nan
    xi: float = np.nan
    method: str = "table"
    n_boot: int | None = None
    estimator: str = "mle"

    def to_dict(self):
        """Flat dict: ``{"ad_stat", "ad_pvalue", "cvm_stat", ...}`` plus n, sigma, xi."""
        out = {"n": self.n, "sigma": self.sigma, "xi": self.xi}
        for t in self.statistic:
            out[f"{t}_stat"] = self.statistic[t]
            out[f"{t}_pvalue"] = self.pvalue[t]
        return out

    def __repr__(self):
        boot = f", n_boot={self.n_boot}" if self.n_boot is not None else ""
        lines = [f"GOFResult(n={self.n}, sigma={self.sigma:.4g}, xi={self.xi:.4g}, method={self.method!r}"
                 f"{boot}, estimator={self.estimator!r})"]
        for t in self.statistic:
            lines.append(f"  {_NAMES[t]:<22} {self.statistic[t]:10.4f}   p = {self.pvalue[t]:.4g}")
        return "\n".join(lines)


def gpd_gof(x, sigma, xi, *, test=("ad", "cvm"), pvalue="table", n_boot=999, random_state=None,
            estimator="mle"):
    """Test whether exceedances follow a GPD whose parameters were fitted to them.

    Parameters
    ----------
    x : array_like, shape (n,)
        Exceedances as excesses over the threshold (``x - u >= 0``), n >= 5.
    sigma, xi : float
        Fitted GPD scale (> 0) and shape, estimated from ``x`` by ``estimator``
        (``evtools.gpd_fit(x, estimator)``).
    test : {"ad", "cvm"} or tuple of them
        Anderson-Darling A2 and/or Cramer-von Mises W2.
    pvalue : {"table", "bootstrap"}
        How p-values are obtained (see the module docstring). Table p-values
        lie in ``[0.001, 0.999]`` and exist for ``estimator="mle"`` only
        (NaN otherwise: the tables do not hold for other estimators).
    n_boot : int
        Bootstrap replicates (``pvalue="bootstrap"`` only).
    random_state : None, int or numpy.random.Generator
        Seed of the bootstrap.
    estimator : {"mle", "pwm", "pwmb", "zhang", "mom"}
        The estimator that gave ``sigma, xi``; the bootstrap refits with it.

    Returns
    -------
    GOFResult

    Examples
    --------
    >>> import evtools as ev
    >>> y = ev.GPD(1.0, 0.2).rvs(500, random_state=0)   # doctest: +SKIP
    >>> fit = ev.gpd_fit(y)                              # doctest: +SKIP
    >>> ev.gpd_gof(y, fit.sigma, fit.xi).pvalue["ad"]    # doctest: +SKIP
    """
    tests = _check_tests(test)
    n_boot = _check_pvalue(pvalue, n_boot)
    check_method(estimator, "estimator")
    sigma, xi = _check_params(sigma, xi)
    y = as_sample(x, "x")
    if y.size < gof_kernels.MIN_GOF_SIZE:
        raise InvalidInputError(
            f"x has {y.size} exceedance(s); a goodness-of-fit test needs at least "
            f"{gof_kernels.MIN_GOF_SIZE} (about 25 for accurate table p-values): lower the threshold"
        )
    if y.min() < 0:
        raise InvalidInputError(
            f"x holds a negative value ({y.min()}); pass excesses over the threshold (x - u for x > u)"
        )
    y = np.sort(y)
    ad, cvm = gof_kernels.ad_cvm_sorted(y, sigma, xi)
    stats = {"ad": ad, "cvm": cvm}
    p_ad, p_cvm, valid = pvalues(np.array([ad]), np.array([cvm]), np.array([y.size]), np.array([sigma]),
                                 np.array([xi]), estimator, pvalue, n_boot, random_state)
    pvals = {"ad": p_ad[0], "cvm": p_cvm[0]}
    return GOFResult(
        statistic={t: float(stats[t]) for t in tests},
        pvalue={t: float(pvals[t]) for t in tests},
        n=int(y.size), sigma=sigma, xi=xi, method=pvalue,
        n_boot=None if valid is None else int(valid[0]), estimator=estimator,
    )


def _column_array(a, name, n_cols, dtype=np.float64):
    arr = _as_float_array(a, name) if dtype is np.float64 else np.asarray(a)
    if arr.shape != (n_cols,):
        raise InvalidInputError(f"{name} must have shape ({n_cols},) (one value per column), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def gof_columns(Y, counts, sigma, xi, pvalue="table", *, n_boot=999, random_state=None,
                estimator="mle"):
    """A2 and W2 with p-values for many columns of exceedances at once.

    Parameters
    ----------
    Y : array_like, shape (k_max, n_cols)
        Exceedances (excesses >= 0) of column ``j`` in ``Y[:counts[j], j]``,
        in any order; the rows below are padding and are ignored. Not modified.
    counts : array_like of int, shape (n_cols,)
        Exceedances per column.
    sigma, xi : array_like, shape (n_cols,)
        Fitted GPD parameters per column (by ``estimator``).
    pvalue : {"table", "bootstrap"}
        See :func:`gpd_gof` (tables for maximum likelihood only, NaN
        otherwise). The bootstrap runs all columns and replicates in parallel.
    n_boot : int
    random_state : None, int or numpy.random.Generator
    estimator : {"mle", "pwm", "pwmb", "zhang", "mom"}
        The estimator that gave ``sigma, xi``; the bootstrap refits with it.

    Returns
    -------
    dict of float64 arrays, shape (n_cols,)
        ``"ad_stat"``, ``"ad_pvalue"``, ``"cvm_stat"``, ``"cvm_pvalue"``.
        A column with fewer than 5 exceedances, or whose ``sigma`` is not
        finite and > 0 or ``xi`` not finite (a column whose fit failed), gets NaN
        everywhere: per-column trouble is not an error.
    """
    n_boot = _check_pvalue(pvalue, n_boot)
    check_method(estimator, "estimator")
    Y = _as_float_array(Y, "Y")
    if Y.ndim != 2:
        raise InvalidInputError(f"Y must be 2-D (k_max, n_cols), got shape {Y.shape}")
    k_max, n_cols = Y.shape
    counts = np.asarray(counts)
    if not np.issubdtype(counts.dtype, np.integer):
        raise InvalidInputError(f"counts must hold integers, got dtype {counts.dtype}")
    counts = _column_array(counts, "counts", n_cols, np.int64)
    if counts.size and (counts.min() < 0 or counts.max() > k_max):
        raise InvalidInputError(
            f"counts must lie in [0, {k_max}] (the rows of Y), got [{counts.min()}, {counts.max()}]")
    sigma = _column_array(sigma, "sigma", n_cols)
    xi = _column_array(xi, "xi", n_cols)
    Y = np.asfortranarray(Y, dtype=np.float64)
    used = np.arange(k_max)[:, None] < counts[None, :]
    bad = used & ~(np.isfinite(Y) & (Y >= 0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InvalidInputError(
            f"Y[{i}, {j}] = {Y[i, j]} is not a finite excess >= 0; exceedances must be x - u for x > u"
        )
    ad, cvm = gof_kernels.ad_cvm_columns(Y, counts, sigma, xi)
    p_ad, p_cvm, _ = pvalues(ad, cvm, counts, sigma, xi, estimator, pvalue, n_boot, random_state)
    return {"ad_stat": ad, "ad_pvalue": p_ad, "cvm_stat": cvm, "cvm_pvalue": p_cvm}
