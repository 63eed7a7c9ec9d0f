"""Normality tests of every column of a gradient matrix.

The z-score saliency of Levin et al. (2022) reads a standardised gradient norm
as if each filter's norms were normal; Wang & Sato (2023) show they often are
not. :func:`normality_tests` checks that assumption column by column with five
classical tests, each vectorised over columns and equal, column by column, to
the single-column function it names:

========================  ===================================================
``"shapiro"``             ``scipy.stats.shapiro`` (Royston's AS R94)
``"dagostino"``           ``scipy.stats.normaltest`` (D'Agostino-Pearson K^2)
``"jarque_bera"``         ``scipy.stats.jarque_bera``
``"anderson"``            ``statsmodels.stats.diagnostic.normal_ad``
``"lilliefors"``          ``statsmodels.stats.diagnostic.lilliefors`` with
                          ``pvalmethod="table"``
========================  ===================================================

Each column is sorted once (shared by Shapiro-Wilk and Lilliefors); the
moment tests work on moments along the column axis.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidInputError
from ._io import TableRecord
from ._validation import as_matrix, check_names, check_probability
from .depth import layer_codes
from .multitest import check_correction, correct_pvalues

NORMALITY_TESTS = ("shapiro", "dagostino", "jarque_bera", "anderson", "lilliefors")
_MIN_ROWS = {"shapiro": 3, "dagostino": 8, "jarque_bera": 3, "anderson": 3, "lilliefors": 4}


# --- Shapiro-Wilk, after Royston (1995), Remark AS R94, as scipy computes it ----------

# Polynomial coefficients of AS R94, lowest power first.
_SW_C1 = (0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056)
_SW_C2 = (0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633)
_SW_C3 = (0.5440, -0.39978, 0.025054, -0.6714e-3)
_SW_C4 = (1.3822, -0.77857, 0.062767, -0.20322e-2)
_SW_C5 = (-1.5861, -0.31082, -0.083751, 0.38915e-2)
_SW_C6 = (-0.4803, -0.082676, 0.30302e-2)
_SW_G = (-2.273, 0.459)
_SW_SMALL = 1e-19


def _poly(coef, x):
    return np.polynomial.polynomial.polyval(x, coef)


def _ppnd7(p):
    """Normal quantile by Beasley & Springer's AS 111 (about 7 digits), as AS R94 uses it.

    The Shapiro-Wilk coefficients are defined with this approximation; using
    the exact quantile would shift W by about 1e-7 and the p-value of large
    samples by more.
    """
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    central = np.abs(q) <= 0.42
    r = q * q
    num = q * (((-25.44106049637 * r + 41.39119773534) * r - 18.61500062529) * r + 2.50662823884)
    den = (((3.13082909833 * r - 21.06224101826) * r + 23.08336743743) * r - 8.47351093090) * r + 1.0
    out = num / den
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(-np.log(np.where(q > 0, 1.0 - p, p)))
    tail = (((2.32121276858 * t + 4.85014127135) * t - 2.29796479134) * t - 2.78718931138) / (
        (1.63706781897 * t + 3.54388924762) * t + 1.0
    )
    return np.where(central, out, np.where(q < 0, -tail, tail))


def _shapiro_coefficients(n):
    """The ``n`` Shapiro-Wilk coefficients in the order of the sorted sample (antisymmetric)."""
    half = n // 2
    if n == 3:
        a = np.array([np.sqrt(0.5)])
    else:
        m = _ppnd7((np.arange(1, half + 1) - 0.375) / (n + 0.25))
        summ2 = 2.0 * np.sum(m * m)
        ssumm2 = np.sqrt(summ2)
        rsn = 1.0 / np.sqrt(n)
        a = -m / ssumm2
        a[0] = _poly(_SW_C1, rsn) - m[0] / ssumm2
        if n > 5:
            a[1] = _poly(_SW_C2, rsn) - m[1] / ssumm2
            fac = np.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a[0] ** 2 - 2 * a[1] ** 2))
            a[2:] = -m[2:] / fac
        else:
            fac = np.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a[0] ** 2))
            a[1:] = -m[1:] / fac
    full = np.zeros(n)
    full[:half] = -a
    full[n - half:] = a[::-1]
    return full


def _shapiro(S):
    """Shapiro-Wilk W and p-value of each sorted column of ``S`` (n >= 3, non-constant)."""
    from scipy import special  # scipy loads on use, not with the package

    n = S.shape[0]
    coef = _shapiro_coefficients(n)
    coef -= coef.mean()
    X = (S - S[n // 2]) / (S[-1] - S[0])
    X -= X.mean(axis=0)
    ssa = coef @ coef
    ssx = np.einsum("ij,ij->j", X, X)
    sax = coef @ X
    root = np.sqrt(ssa * ssx)
    w1 = (root - sax) * (root + sax) / (ssa * ssx)
    w = 1.0 - w1
    if n == 3:
        small = w < 0.75
        w = np.where(small, 0.75, w)
        with np.errstate(invalid="ignore"):
            return w, np.where(small, 0.0, 1.0 - 6.0 / np.pi * np.arccos(np.sqrt(w)))
    with np.errstate(divide="ignore"):
        y = np.log(w1)
    if n <= 11:
        gamma = _poly(_SW_G, n)
        saturated = y >= gamma
        with np.errstate(divide="ignore", invalid="ignore"):
            y = -np.log(gamma - y)
        mean, sd = _poly(_SW_C3, n), np.exp(_poly(_SW_C4, n))
    else:
        saturated = np.zeros(w.shape, dtype=bool)
        mean, sd = _poly(_SW_C5, np.log(n)), np.exp(_poly(_SW_C6, np.log(n)))
    pvalue = special.ndtr(-(y - mean) / sd)
    return w, np.where(saturated, _SW_SMALL, pvalue)


# --- the other tests --------------------------------------------------------------------


def _lilliefors(S):
    """Lilliefors' Kolmogorov-Smirnov statistic and table p-value of each sorted column."""
    from scipy import stats
    from statsmodels.stats._lilliefors import get_lilliefors_table  # the table behind lilliefors()

    n = S.shape[0]
    z = (S - S.mean(axis=0)) / S.std(axis=0, ddof=1)
    cdf = stats.norm.cdf(z)
    i = np.arange(1.0, n + 1)[:, None]
    d = np.maximum((i / n - cdf).max(axis=0), (cdf - (i - 1) / n).max(axis=0))
    pvalue = np.asarray(get_lilliefors_table("norm").prob(d, n), dtype=np.float64).reshape(d.shape)
    return d, pvalue


def _anderson(G):
    """statsmodels' ``normal_ad`` per column, with its single-column p-value above 13."""
    from statsmodels.stats.diagnostic import normal_ad

    n = G.shape[0]
    with np.errstate(invalid="ignore"):  # an infinite statistic (a value at cdf 0 or 1)
        statistic, pvalue = normal_ad(G, axis=0)
    # The single-column path returns 0 once the adjusted statistic passes 13;
    # the vectorised path keeps extrapolating its last formula there.
    adjusted = statistic * (1 + 0.75 / n + 2.25 / n**2)
    return statistic, np.where(adjusted > 13, 0.0, pvalue)


def _dagostino(G):
    from scipy import stats

    res = stats.normaltest(G, axis=0)
    return res.statistic, res.pvalue


def _jarque_bera(G):
    from scipy import stats

    res = stats.jarque_bera(G, axis=0)
    return res.statistic, res.pvalue


# --- results ------------------------------------------------------------------------------


@dataclass(repr=False)
class NormalityTest(TableRecord):
    """One normality test applied to every column.

    Attributes
    ----------
    name : str
    statistic, pvalue : ndarray, shape (n_filters,)
        As the single-column scipy/statsmodels function gives them; NaN for a
        constant column (no spread: normality is undefined there).
    pvalue_corrected : ndarray, shape (n_filters,), or None
        Adjusted over the columns by ``correction``; None without correction.
    rejected : ndarray, shape (n_filters,), bool, or None
        Normality rejected at ``alpha`` after correction; None without correction.
    alpha : float
    correction : str or None
    """

    name: str
    statistic: np.ndarray
    pvalue: np.ndarray
    pvalue_corrected: np.ndarray | None
    rejected: np.ndarray | None
    alpha: float
    correction: str | None

    def rejects(self):
        """Columns where normality is rejected: ``rejected``, or ``pvalue < alpha`` without correction.

        Returns
        -------
        ndarray, shape (n_filters,), bool
        """
        if self.rejected is not None:
            return self.rejected
        return np.nan_to_num(self.pvalue, nan=1.0) < self.alpha

    def to_dict(self):
        table = {"column": np.arange(self.statistic.size), "statistic": self.statistic, "pvalue": self.pvalue}
        if self.correction is not None:
            table["pvalue_corrected"] = self.pvalue_corrected
            table["rejected"] = self.rejected
        return table

    def __repr__(self):
        return (
            f"NormalityTest({self.name!r}, {self.statistic.size} columns, "
            f"rejecting {self.rejects().mean():.1%} at alpha={self.alpha}"
            f"{'' if self.correction is None else ' after ' + self.correction})"
        )


@dataclass(repr=False)
class NormalitySummary(TableRecord):
    """Share of columns rejecting normality, per layer and test.

    Attributes
    ----------
    layer : ndarray, shape (n_layers,)
    n_filters : ndarray, shape (n_layers,), int64
    share_rejected : dict of str to ndarray, shape (n_layers,)
        Per test, the share of the layer's columns where normality is rejected.
    """

    layer: np.ndarray
    n_filters: np.ndarray
    share_rejected: dict

    def to_dict(self):
        table = {"layer": self.layer, "n_filters": self.n_filters}
        table.update({f"rejected_{name}": share for name, share in self.share_rejected.items()})
        return table

    def __repr__(self):
        tests = ", ".join(self.share_rejected)
        return f"NormalitySummary({self.layer.size} layers; tests: {tests})"


class NormalityReport(Mapping):
    """The results of :func:`normality_tests`: a mapping from test name to :class:`~evtools.normality.NormalityTest`.

    Attributes
    ----------
    n_samples, n_filters : int
    alpha : float
    correction : str or None
    """

    def __init__(self, results, n_samples, alpha, correction):
        self._results = dict(results)
        self.n_samples = int(n_samples)
        self.n_filters = int(next(iter(self._results.values())).pvalue.size)
        self.alpha = alpha
        self.correction = correction

    def __getitem__(self, name):
        return self._results[name]

    def __iter__(self):
        return iter(self._results)

    def __len__(self):
        return len(self._results)

    def summary(self, layer_of_column=None):
        """Share of columns rejecting normality per layer (one row "all" without layers).

        Parameters
        ----------
        layer_of_column : array_like, shape (n_filters,), or a filter index, optional
            See :func:`evtools.depth.layer_codes`.

        Returns
        -------
        NormalitySummary
        """
        if layer_of_column is None:
            layers, codes = np.array(["all"]), np.zeros(self.n_filters, dtype=np.int64)
        else:
            layers, codes = layer_codes(layer_of_column, self.n_filters)
        counts = np.bincount(codes, minlength=layers.size)
        shares = {
            name: np.bincount(codes, weights=res.rejects(), minlength=layers.size) / counts
            for name, res in self._results.items()
        }
        return NormalitySummary(layer=layers, n_filters=counts, share_rejected=shares)

    def to_dict(self):
        """All tests side by side: one row per column, ``<test>_<field>`` columns."""
        table = {"column": np.arange(self.n_filters)}
        for name, res in self._results.items():
            for field, values in res.to_dict().items():
                if field != "column":
                    table[f"{name}_{field}"] = values
        return table

    def to_frame(self):
        """All tests side by side as a ``pandas.DataFrame``."""
        return TableRecord.to_frame(self)

    def __repr__(self):
        shares = ", ".join(f"{name} {res.rejects().mean():.1%}" for name, res in self._results.items())
        return (
            f"NormalityReport({self.n_filters} columns x {self.n_samples} samples, "
            f"alpha={self.alpha}, correction={self.correction!r}; rejecting normality: {shares})"
        )


def normality_tests(G, tests=NORMALITY_TESTS, correction="fdr_bh", alpha=0.05):
    """Test every column of ``G`` for normality.

    Parameters
    ----------
    G : array_like, shape (n_samples, n_filters)
        Finite values; computed in float64.
    tests : sequence of str
        Any of ``"shapiro"``, ``"dagostino"``, ``"jarque_bera"``, ``"anderson"``,
        ``"lilliefors"`` (see the module docstring for the function each equals).
    correction : str or None
        Multiple-testing correction over the columns, per test: a method of
        ``statsmodels.stats.multitest.multipletests`` (Benjamini-Hochberg
        ``"fdr_bh"`` by default) or None for none.
    alpha : float in (0, 1)
        Level of the rejection decisions.

    Returns
    -------
    NormalityReport
        Maps each test name to a :class:`~evtools.normality.NormalityTest` with per-column
        ``statistic`` and ``pvalue``, and with a correction also
        ``pvalue_corrected`` and ``rejected``. ``report.summary(layers)`` gives
        the share of columns rejecting normality per layer.

    Notes
    -----
    Constant columns get NaN statistics and p-values in every test and are
    never rejected (the single-column functions disagree on them: Shapiro-Wilk
    returns W = 1, Anderson-Darling a p-value of 0, the others NaN). Every
    other column gets finite values: each column is first scaled by a power of
    two (exact, and the tests are scale-invariant), so values such as 1e300 or
    denormals, whose powers overflow or underflow in the single-column
    functions, give what those functions give at a moderate scale. For more
    than 5000 rows the Shapiro-Wilk p-value is, as scipy warns, approximate.
    """
    tests = check_names(tests, "tests", NORMALITY_TESTS, "normality test(s)")
    correction = check_correction(correction)
    alpha = check_probability(alpha, "alpha")
    G = np.array(as_matrix(G, "G"), dtype=np.float64)  # one owned float64 copy, scaled in place below
    n = G.shape[0]
    need = max(_MIN_ROWS[t] for t in tests)
    if n < need:
        raise InvalidInputError(
            f"G has {n} rows; the tests {', '.join(tests)} need at least {need}"
        )
    hi, lo = G.max(axis=0), G.min(axis=0)
    constant = hi == lo
    # Every test is scale-invariant: scale each column by a power of two (exact) so that its
    # largest magnitude lies in [0.5, 1); squares and fourth powers then neither overflow
    # (1e80, 1e300) nor underflow (denormals).
    np.ldexp(G, -np.frexp(np.maximum(hi, -lo))[1], out=G)
    S = np.sort(G, axis=0) if {"shapiro", "lilliefors"} & set(tests) else None
    live = ~constant
    compute = {
        "shapiro": lambda: _shapiro(S[:, live]),
        "lilliefors": lambda: _lilliefors(S[:, live]),
        "anderson": lambda: _anderson(G[:, live]),
        "dagostino": lambda: _dagostino(G[:, live]),
        "jarque_bera": lambda: _jarque_bera(G[:, live]),
    }
    if n > 5000 and "shapiro" in tests:
        warnings.warn(
            f"Shapiro-Wilk p-values are approximate for more than 5000 rows (G has {n})",
            UserWarning,
            stacklevel=2,
        )
    results = {}
    for name in tests:
        statistic = np.full(G.shape[1], np.nan)
        pvalue = np.full(G.shape[1], np.nan)
        if live.any():
            statistic[live], pvalue[live] = compute[name]()
        rejected = corrected = None
        if correction is not None:
            rejected, corrected = correct_pvalues(pvalue, alpha, correction)
        results[name] = NormalityTest(name, statistic, pvalue, corrected, rejected, alpha, correction)
    return NormalityReport(results, n, alpha, correction)
