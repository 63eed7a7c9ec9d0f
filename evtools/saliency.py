"""Parameter saliency on gradient matrices: which filters look responsible for an input.

Two scorers, fitted on a reference gradient matrix ``G_ref`` (inputs the model
handles well) and applied to the rows of ``G`` (inputs to diagnose):

- :class:`ZScoreSaliency` (Levin et al. 2022): ``(g - mean_k) / std_k`` per
  filter ``k``. Comparing z-scores across filters assumes every filter's
  gradient norms are normal.
- :class:`POTSaliency` (Wang & Sato 2023): ``-log10 P(S_k > g)`` from a
  peaks-over-threshold tail model per filter (:func:`evtools.fit_tails`), a
  tail probability that is comparable across filters whatever their shape.

Both share :meth:`~_ParameterSaliency.rank` (top-k filters per row, ties
broken by column index) and :meth:`~_ParameterSaliency.select` (filters whose
tail p-value survives a multiple-testing correction over the filters).
When a filter's norms are normal the two agree: its POT score is close to
``-log10 Phi(-z)``, one increasing function of the z-score shared by every
normal filter (see ``docs/saliency.md``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import prange

from ._errors import InvalidInputError, NotFittedError
from ._files import SavedFile, save_npz
from ._io import TableRecord
from ._kernels.parallel import parallel_kernel
from ._validation import as_matrix, check_columns, check_int, check_probability
from .multitest import check_correction, correct_pvalues
from .tails import TailModel, fit_tails
from .threshold import Quantile, ThresholdRule, as_rule

MAX_EXPONENT = 1100
"""Largest power-of-two scale of a column a saved :class:`ZScoreSaliency` can hold (float64 spans about 2**+-1075)."""

STD_FLOOR = 1e-14
"""Reference standard deviations at or below this are replaced by 1 (Levin et al.'s code does so)."""

_BLOCK = 32  # columns per block of the Welford kernel: rows are read in contiguous runs


@parallel_kernel
def _welford_columns(G):
    """One scaled streaming pass per column: exponent, mean and sum of squared deviations.

    Each column is scaled by a power of two, ``2**-e`` with ``e`` the binary
    exponent of its largest magnitude (exact: no rounding), so that its
    values lie in (-1, 1): the update neither overflows (values near
    +-1e308) nor underflows (denormals).

    Parameters
    ----------
    G : ndarray, shape (n_samples, n_filters), float32 or float64, C-contiguous

    Returns
    -------
    e : ndarray, shape (n_filters,), int64
        Binary exponent of each column's largest magnitude (0 for a zero column).
    mean, m2 : ndarray, shape (n_filters,), float64
        Mean and sum of squared deviations (Welford's M2) of ``G * 2**-e``.
    """
    n, m = G.shape
    e = np.zeros(m, dtype=np.int64)
    mean = np.zeros(m)
    m2 = np.zeros(m)
    n_blocks = (m + _BLOCK - 1) // _BLOCK
    for b in prange(n_blocks):
        j0 = b * _BLOCK
        j1 = min(j0 + _BLOCK, m)
        limit = np.zeros(j1 - j0)  # 2**e: a larger magnitude moves the column to a larger scale
        s1 = np.ones(j1 - j0)  # 2**-e as two factors, neither of which overflows
        s2 = np.ones(j1 - j0)
        for i in range(n):
            inv = 1.0 / (i + 1)
            for j in range(j0, j1):
                x = np.float64(G[i, j])
                if abs(x) >= limit[j - j0]:
                    e_new = math.frexp(x)[1]
                    if i > 0:
                        mean[j] = math.ldexp(mean[j], e[j] - e_new)
                        m2[j] = math.ldexp(m2[j], 2 * (e[j] - e_new))
                    e[j] = e_new
                    limit[j - j0] = math.ldexp(1.0, e_new) if e_new < 1024 else np.inf
                    half = -e_new // 2
                    s1[j - j0] = math.ldexp(1.0, half)
                    s2[j - j0] = math.ldexp(1.0, -e_new - half)
                x = x * s1[j - j0] * s2[j - j0]
                delta = x - mean[j]
                mean[j] += delta * inv
                m2[j] += delta * (x - mean[j])
    return e, mean, m2


@dataclass(repr=False)
class Ranking(TableRecord):
    """Top-k filters per row, best first.

    Attributes
    ----------
    index : ndarray, shape (n_rows, k) or (k,), int64
        Column indices; 1-D when ``rank`` was given one row as a 1-D array.
        Ties in score are broken by the smaller column index.
    score : ndarray, same shape as ``index``
    pvalue : ndarray, same shape as ``index``
        The scorer's tail p-value of each ranked entry (see ``pvalues``).
    """

    index: np.ndarray
    score: np.ndarray
    pvalue: np.ndarray

    @property
    def k(self):
        return self.index.shape[-1]

    def to_dict(self):
        """Long table: one line per (row, rank) with the filter, its score and p-value."""
        index = np.atleast_2d(self.index)
        n_rows, k = index.shape
        return {
            "row": np.repeat(np.arange(n_rows), k),
            "rank": np.tile(np.arange(1, k + 1), n_rows),
            "filter": index.ravel(),
            "score": np.atleast_2d(self.score).ravel(),
            "pvalue": np.atleast_2d(self.pvalue).ravel(),
        }

    def __repr__(self):
        n_rows = 1 if self.index.ndim == 1 else self.index.shape[0]
        return f"Ranking(top {self.k} filters of {n_rows} row(s))"


@dataclass(repr=False)
class Selection(TableRecord):
    """Filters whose tail p-value is significant after a correction over the filters.

    Attributes
    ----------
    rejected : ndarray, shape (n_rows, n_filters) or (n_filters,), bool
        Selected filters (null hypothesis "this value is a usual one" rejected).
    pvalue : ndarray, same shape
    pvalue_corrected : ndarray, same shape
        Adjusted p-values; equal to ``pvalue`` when ``correction`` is None.
    alpha : float
    correction : str or None
    """

    rejected: np.ndarray
    pvalue: np.ndarray
    pvalue_corrected: np.ndarray
    alpha: float
    correction: str | None

    def filters(self, row=0):
        """Selected columns of one row, most significant first (ties by column index).

        Returns
        -------
        ndarray of int64, shape (n_selected,)
        """
        rejected = np.atleast_2d(self.rejected)[row]
        pvalue = np.atleast_2d(self.pvalue)[row]
        cols = np.flatnonzero(rejected)
        return cols[np.argsort(pvalue[cols], kind="stable")]

    def to_dict(self):
        """Long table: one line per selected (row, filter), by row then p-value."""
        n_rows = np.atleast_2d(self.rejected).shape[0]
        rows, cols = [], []
        for r in range(n_rows):
            sel = self.filters(r)
            rows.append(np.full(sel.size, r))
            cols.append(sel)
        rows = np.concatenate(rows).astype(np.int64)
        cols = np.concatenate(cols).astype(np.int64)
        return {
            "row": rows,
            "filter": cols,
            "pvalue": np.atleast_2d(self.pvalue)[rows, cols],
            "pvalue_corrected": np.atleast_2d(self.pvalue_corrected)[rows, cols],
        }

    def __repr__(self):
        rejected = np.atleast_2d(self.rejected)
        return (
            f"Selection({int(rejected.sum())} filter(s) selected over {rejected.shape[0]} row(s), "
            f"alpha={self.alpha}, correction={self.correction!r})"
        )


class _ParameterSaliency:
    """Shared ranking and selection. Subclasses implement ``fit``, ``score`` and ``_pvalue_of_score``."""

    _params = ()

    def __repr__(self):
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._params)
        return f"{type(self).__name__}({params})"

    def _check_is_fitted(self):
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(G_ref) first"
            )

    def _matrix(self, G):
        """Validated 2-D input with the fitted number of columns; 1-D input is one row."""
        self._check_is_fitted()
        one_row = np.ndim(G) == 1
        G = as_matrix(np.atleast_2d(G) if one_row else G, "G")
        check_columns(G, self.n_features_in_)
        return G, one_row

    def score(self, G):
        raise NotImplementedError

    @staticmethod
    def _pvalue_of_score(score):
        raise NotImplementedError

    def pvalues(self, G):
        """Tail p-values ``P(S_k > g)`` under the fitted reference model.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters)

        Returns
        -------
        ndarray, shape (n_samples, n_filters), float64
        """
        return self._pvalue_of_score(self.score(G))

    def rank(self, G, k=10):
        """The ``k`` highest-scoring filters of each row.

        Parameters
        ----------
        G : array_like, shape (n_rows, n_filters) or (n_filters,)
            Rows to diagnose (one row may be given as a 1-D array).
        k : int in [1, n_filters]

        Returns
        -------
        Ranking
            ``index``, ``score`` and ``pvalue`` of shape (n_rows, k), or (k,)
            for a 1-D row. Ties are broken deterministically: equal scores
            rank by ascending column index.
        """
        G, one_row = self._matrix(G)
        m = G.shape[1]
        k = check_int(k, "k", high=m)  # at most the number of filters
        score = self.score(G)
        index = np.argsort(-score, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(score, index, axis=1)
        pvalue = self._pvalue_of_score(top)
        if one_row:
            index, top, pvalue = index[0], top[0], pvalue[0]
        return Ranking(index=index.astype(np.int64), score=top, pvalue=pvalue)

    def select(self, G, alpha=0.05, correction="fdr_bh"):
        """Filters whose tail p-value is significant after correcting for the number of filters.

        Each row is a family of ``n_filters`` tests of "this filter's value is
        a usual one"; the correction runs over the filters of the row.

        Parameters
        ----------
        G : array_like, shape (n_rows, n_filters) or (n_filters,)
        alpha : float in (0, 1)
            With ``"fdr_bh"`` (Benjamini-Hochberg, the default), the expected
            share of false discoveries among the selected filters of a row is
            at most ``alpha`` when the p-values are valid and independent
            across filters (or positively dependent).
        correction : str or None
            A ``statsmodels.stats.multitest.multipletests`` method, or None to
            compare raw p-values with ``alpha``.

        Returns
        -------
        Selection
        """
        alpha = check_probability(alpha, "alpha")
        correction = check_correction(correction)
        G, one_row = self._matrix(G)
        pvalue = self.pvalues(G)
        if correction is None:
            rejected, corrected = pvalue < alpha, pvalue.copy()
        else:
            rejected = np.empty(pvalue.shape, dtype=bool)
            corrected = np.empty(pvalue.shape)
            for r in range(pvalue.shape[0]):
                rejected[r], corrected[r] = correct_pvalues(pvalue[r], alpha, correction)
        if one_row:
            rejected, pvalue, corrected = rejected[0], pvalue[0], corrected[0]
        return Selection(rejected, pvalue, corrected, alpha, correction)


class ZScoreSaliency(_ParameterSaliency):
    """Standardised gradient norms, as Levin et al. (2022) compute them.

    ``score(G) = (G - mean_) / std_`` per column, with the mean and the
    unbiased (``n - 1``) standard deviation of the whole reference matrix
    (every reference input, correctly classified or not, as in their code),
    accumulated in one streaming Welford pass in float64 with each column
    scaled by a power of two (exact; finite and right from denormals to
    +-1e308). A standard deviation at or below ``STD_FLOOR = 1e-14`` (a
    constant column, such as a dead filter) is replaced by 1, so such a column
    scores ``g - mean`` instead of dividing by zero.

    ``pvalues`` are one-sided normal tail probabilities ``Phi(-z)``: exactly
    the normality assumption behind comparing z-scores across filters. On
    heavy-tailed columns they are too small and :meth:`select` then selects
    more false discoveries than ``alpha`` allows; check the assumption with
    :func:`evtools.normality_tests` or use :class:`POTSaliency`.

    Attributes
    ----------
    n_features_in_ : int
    n_samples_seen_ : int
    mean_ : ndarray, shape (n_filters,)
    var_ : ndarray, shape (n_filters,)
        Unbiased variance; inf (0) where it lies beyond float64 (values near
        1e200 and up; denormals). Scores do not use it.
    std_ : ndarray, shape (n_filters,)
        The unbiased standard deviation, with values at or below ``STD_FLOOR``
        replaced by 1.
    """

    def fit(self, G_ref):
        """Reference mean and standard deviation of every column.

        Parameters
        ----------
        G_ref : array_like, shape (n_samples, n_filters), n_samples >= 2

        Returns
        -------
        self
        """
        G_ref = as_matrix(G_ref, "G_ref", min_rows=2)
        self.__dict__.pop("n_features_in_", None)  # start afresh, not merged with an earlier fit
        return self.partial_fit(G_ref)

    def partial_fit(self, G_batch):
        """Add a batch of reference rows (streaming; batches merge exactly, Chan et al. 1979).

        Parameters
        ----------
        G_batch : array_like, shape (n_batch, n_filters)

        Returns
        -------
        self
        """
        G_batch = as_matrix(G_batch, "G_batch")
        e_b, mean_b, m2_b = _welford_columns(np.ascontiguousarray(G_batch))
        n_b = G_batch.shape[0]
        if not hasattr(self, "n_features_in_"):
            self.n_features_in_ = G_batch.shape[1]
            return self._set_state(n_b, e_b, mean_b, m2_b)
        check_columns(G_batch, self.n_features_in_, "G_batch")
        n_a = self.n_samples_seen_
        n = n_a + n_b
        e = np.maximum(self._exponent, e_b)  # merge on the larger scale (powers of two: exact)
        mean_a, m2_a = np.ldexp(self._mean, self._exponent - e), np.ldexp(self._m2, 2 * (self._exponent - e))
        mean_b, m2_b = np.ldexp(mean_b, e_b - e), np.ldexp(m2_b, 2 * (e_b - e))
        delta = mean_b - mean_a
        return self._set_state(n, e, mean_a + delta * (n_b / n), m2_a + m2_b + delta**2 * (n_a * n_b / n))

    def _set_state(self, n_samples, exponent, mean, m2):
        """State in scaled units (column ``j`` scaled by ``2**-exponent[j]``); public attributes from it."""
        self.n_samples_seen_ = int(n_samples)
        self._exponent, self._mean, self._m2 = np.asarray(exponent, dtype=np.int64), mean, m2
        with np.errstate(invalid="ignore", divide="ignore"):
            var = m2 / (self.n_samples_seen_ - 1)
        std = np.sqrt(var)
        self.mean_ = np.ldexp(mean, self._exponent)
        with np.errstate(over="ignore"):
            self.var_ = np.ldexp(var, 2 * self._exponent)  # inf (0) where the variance over- (under-)flows
            std_ = np.ldexp(std, self._exponent)
        self.std_ = np.where(std_ <= STD_FLOOR, 1.0, std_)
        return self

    def score(self, G):
        """z-scores ``(G - mean_) / std_``.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters) or (n_filters,)

        Returns
        -------
        ndarray, same shape as ``G``, float64
        """
        G2, one_row = self._matrix(G)
        if self.n_samples_seen_ < 2:
            raise InvalidInputError("the reference holds 1 row; a standard deviation needs at least 2")
        try:  # in float64 without a float64 copy of G first
            with np.errstate(over="raise"):
                z = np.subtract(G2, self.mean_, dtype=np.float64)
                z /= self.std_
        except FloatingPointError:  # g - mean_ overflowed (values near +-1e308): scale by 2**-k, exact
            k = np.maximum(np.frexp(self.std_)[1] - 1, 0)
            with np.errstate(over="ignore"):  # a z-score beyond float64 stays inf
                z = (np.ldexp(G2.astype(np.float64), -k) - np.ldexp(self.mean_, -k)) / np.ldexp(self.std_, -k)
        return z[0] if one_row else z

    @staticmethod
    def _pvalue_of_score(score):
        from scipy.special import ndtr  # scipy loads on first use, not with the package

        return ndtr(-score)

    def save(self, path):
        """Write the fitted statistics to an ``.npz`` file, atomically; read back with :func:`load_saliency`.

        ``.npz`` is appended unless the name ends with it; returns the path written (pathlib.Path).
        """
        self._check_is_fitted()
        # format 2: mean and m2 of each column scaled by 2**-exponent. Format 1 (unscaled, no exponent) is
        # still read; an evtools that reads only format 1 refuses these files instead of taking the scaled
        # values for the real ones.
        return save_npz(path, {"scorer": "zscore", "format": 2, "n_samples_seen": self.n_samples_seen_,
                               "mean": self._mean, "m2": self._m2, "exponent": self._exponent})

    @classmethod
    def _from_file(cls, f):
        version = f.integer(f.array("format", np.int64, ()), "format") if "format" in f.arrays else 1
        f.version(version, (1, 2))
        n = f.integer(f.array("n_samples_seen", np.int64, ()), "n_samples_seen", 1)
        mean = f.array("mean", np.float64, (None,))
        m2 = f.array("m2", np.float64, mean.shape)
        f.check(mean.shape[0] >= 1, "it has no columns")
        f.check(np.isfinite(mean).all(), "mean is not finite")
        f.check((np.isfinite(m2) & (m2 >= 0)).all(), "m2 is not finite and >= 0")
        model = cls()
        if version == 2 or "exponent" in f.arrays:
            exponent = f.array("exponent", np.int64, mean.shape)
            f.check((np.abs(exponent) <= MAX_EXPONENT).all(), f"exponent is outside [-{MAX_EXPONENT}, {MAX_EXPONENT}]")
        else:  # format 1: unscaled
            exponent = np.zeros(mean.shape[0], dtype=np.int64)
        model.n_features_in_ = mean.shape[0]
        return model._set_state(n, exponent, mean, m2)


class POTSaliency(_ParameterSaliency):
    """Peaks-over-threshold tail probability of each gradient norm (Wang & Sato 2023).

    Per filter: a threshold at the empirical ``0.90`` quantile of its
    reference column (Wang & Sato's choice; they also report 0.85 and 0.95),
    a GPD fitted to the exceedances, and the score ``-log10 P(S_k > g)``,
    where above the threshold ``P(S_k > g) = (N_t,k / n) (1 + xi_k (g -
    t_k) / sigma_k)^(-1 / xi_k)`` and below it the empirical survival of the
    reference column: every value of every filter gets a score, and ranking
    filters by descending score is ranking by ascending tail probability.
    The model is :func:`evtools.fit_tails`; this class adds ranking and
    selection.

    Unlike the SPOT code Wang & Sato build on (whose xi = 0 log-likelihood
    has the wrong sign, so the exponential fit is almost never chosen on
    small values such as gradient norms), the default ``method="mle"`` is
    the exact maximum-likelihood fit of :func:`evtools.gpd_fit`.

    Parameters
    ----------
    threshold : float in (0, 1), ThresholdRule or array_like, default 0.90
        A float is the quantile level, ``Quantile(threshold)``; a fixed
        threshold is ``evtools.Fixed(u)`` (one number, or one per filter),
        and an array of one threshold per filter means ``Fixed(array)``.
    method : {"mle", "pwm", "pwmb", "zhang", "mom"}
        GPD estimator.
    min_exceed : int
        Fewest exceedances for a GPD fit (see :class:`evtools.TailModel` for
        the fallback of other columns).

    Attributes
    ----------
    tail_ : TailModel
    n_features_in_ : int
    """

    _params = ("threshold", "method", "min_exceed")

    def __init__(self, threshold=0.90, method="mle", min_exceed=10):
        self.threshold = threshold
        self.method = method
        self.min_exceed = min_exceed

    def _rule(self):
        if isinstance(self.threshold, ThresholdRule):
            return self.threshold
        if np.ndim(self.threshold) == 1:
            return as_rule(self.threshold, None)
        return Quantile(check_probability(self.threshold, "threshold"))

    def fit(self, G_ref):
        """Fit the per-filter tail models.

        Parameters
        ----------
        G_ref : array_like, shape (n_samples, n_filters)

        Returns
        -------
        self
        """
        tail = fit_tails(G_ref, threshold=self._rule(), method=self.method,
                         min_exceed=self.min_exceed, progress=False)
        return self._set_tail(tail)

    def _set_tail(self, tail):
        self.tail_ = tail
        self.n_features_in_ = tail.n_filters
        return self

    @classmethod
    def from_tail(cls, tail):
        """A fitted scorer around an existing :class:`evtools.TailModel`.

        Its parameters are the model's ``rule``, ``method`` and ``min_exceed``.
        """
        if not isinstance(tail, TailModel):
            raise InvalidInputError(f"expected a TailModel, got {type(tail).__name__}")
        return cls(threshold=tail.rule, method=tail.method, min_exceed=tail.min_exceed)._set_tail(tail)

    def score(self, G):
        """Scores ``-log10 P(S_k > g)``, equal to ``tail_.score(G)``.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters) or (n_filters,)

        Returns
        -------
        ndarray, same shape as ``G``, float64, >= 0
        """
        G2, one_row = self._matrix(G)
        s = self.tail_.score(G2)
        return s[0] if one_row else s

    @staticmethod
    def _pvalue_of_score(score):
        return np.power(10.0, -score)

    def save(self, path):
        """Write the tail model (:meth:`TailModel.save`, atomic, ``.npz`` appended unless present).

        Returns the path written.
        """
        self._check_is_fitted()
        return self.tail_.save(path)


def load_saliency(path):
    """Read a scorer written by ``ZScoreSaliency.save`` or ``POTSaliency.save`` / ``TailModel.save``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, with or without its ``.npz`` suffix.

    Returns
    -------
    ZScoreSaliency or POTSaliency

    Raises
    ------
    FileFormatError
        Missing, truncated or damaged file, or arrays a saved scorer cannot
        have (checked before any kernel sees them).
    """
    f = SavedFile(path, "saved model", "`evtools fit` or a scorer's save()")
    if "scorer" in f.arrays:
        scorer = str(f.array("scorer", "U", ()))
        f.check(scorer == "zscore", f"unknown scorer {scorer!r}")
        return ZScoreSaliency._from_file(f)
    return POTSaliency.from_tail(TailModel._from_file(f))
