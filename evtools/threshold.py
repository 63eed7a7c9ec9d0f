"""Threshold rules: how each column's peaks-over-threshold level is chosen.

A rule is a small object with parameters (``Quantile(0.98)``, ``TopK(500)``,
``Fixed(30.0)``) applied to every column separately. Exceedances of a column
are its values strictly greater than its threshold; the excess is
``x - threshold``. Values equal to the threshold (ties) are never
exceedances, whatever the rule, so a rule may leave fewer exceedances than
its nominal count when the column has ties at the threshold.

Rules work on columns that are already sorted ascending, through
``thresholds_from_sorted``. ``Quantile`` and ``TopK`` place the threshold
between two order statistics (``position``), so ``fit_tails`` selects those
instead of sorting; other rules (ForwardStop) get sorted blocks of columns.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._blocks import sorted_column_blocks
from ._errors import InvalidInputError
from ._kernels import gof as gof_kernels
from ._validation import as_matrix, check_int, check_probability


class ThresholdRule:
    """Base class of threshold rules.

    Subclasses implement :meth:`thresholds_from_sorted`.
    """

    def thresholds_from_sorted(self, S, n_samples=None):
        """Per-column thresholds of sorted columns.

        Parameters
        ----------
        S : ndarray, shape (n_rows, n_cols), float32 or float64, Fortran order
            Each column sorted ascending.
        n_samples : int, optional
            The columns' full length when ``S`` holds only their largest
            ``n_rows`` values (a streaming top-k summary). Default ``n_rows``.

        Returns
        -------
        ndarray, shape (n_cols,), float64
        """
        raise NotImplementedError

    def for_columns(self, j0, j1, n_cols):
        """The rule for columns ``j0:j1`` of a matrix of ``n_cols`` columns.

        Itself, except for per-column rules, which check that they hold one
        value per column of the matrix (``InvalidInputError`` otherwise)
        before giving the rule of the block. Every application of a rule to
        a matrix goes through here, block by block.
        """
        return self

    def select(self, G):
        """Thresholds of the columns of a matrix.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters)

        Returns
        -------
        ndarray, shape (n_filters,), float64
        """
        G = as_matrix(G, "G")
        return np.concatenate([self.for_columns(j0, j1, G.shape[1]).thresholds_from_sorted(S)
                               for j0, j1, S in sorted_column_blocks(G)])

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def to_dict(self):
        """JSON-ready description: ``{"rule": class name, "params": constructor arguments}``."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        return {"rule": type(self).__name__, "params": params}

    @staticmethod
    def from_dict(spec):
        """The rule described by :meth:`to_dict`."""
        rules = {cls.__name__: cls for cls in (Quantile, TopK, ForwardStop, Fixed)}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("params", {}), Mapping):
            raise InvalidInputError(f"spec must be a dict {{'rule': name, 'params': {{...}}}}, got {spec!r}")
        if spec.get("rule") not in rules:
            raise InvalidInputError(f"unknown threshold rule {spec.get('rule')!r} in spec; known: {sorted(rules)}")
        try:
            return rules[spec["rule"]](**spec.get("params", {}))
        except TypeError as exc:  # unknown parameter names
            raise InvalidInputError(f"spec holds parameters that {spec['rule']} does not take: {exc}") from exc

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class _OrderStatisticRule(ThresholdRule):
    """A rule whose threshold interpolates two adjacent order statistics."""

    def position(self, n_samples):
        """``(rank, frac)``: threshold = x[rank] + frac * (x[rank + 1] - x[rank]), 0-based ascending."""
        raise NotImplementedError

    def kept_position(self, n_rows, n_samples=None):
        """``(rank, frac)`` of :meth:`position`, checked against the ``n_rows`` largest values kept.

        ``n_samples`` is the columns' full length (default ``n_rows``); the
        rank counts from the smallest of all ``n_samples`` values.
        """
        n = n_rows if n_samples is None else check_int(n_samples, "n_samples")
        rank, frac = self.position(n)
        if rank < n - n_rows:
            raise InvalidInputError(
                f"{self!r} needs order statistic {rank} of {n}, but only the largest "
                f"{n_rows} values per column are available; keep more values (a larger k)"
            )
        return rank, frac

    def thresholds_from_sorted(self, S, n_samples=None):
        n_rows = S.shape[0]
        rank, frac = self.kept_position(n_rows, n_samples)
        first_kept = (n_rows if n_samples is None else int(n_samples)) - n_rows  # rank of S[0]
        lo = S[rank - first_kept].astype(np.float64)
        if frac == 0.0:
            return lo
        hi = S[rank - first_kept + 1].astype(np.float64)
        return lo + frac * (hi - lo)


class Quantile(_OrderStatisticRule):
    """Threshold at the empirical ``q`` quantile of each column.

    Uses the same interpolation as ``numpy.quantile(..., method="linear")``:
    with ``h = q * (n - 1)`` the threshold is ``x_(floor h) + frac(h) *
    (x_(floor h + 1) - x_(floor h))`` over the ascending order statistics
    (0-based), so about ``(1 - q) * n_samples`` values exceed it. Values equal
    to the threshold do not exceed it: with ties (a column that is mostly
    zeros, say) fewer values, possibly none, exceed it.

    Parameters
    ----------
    q : float in (0, 1)
    """

    def __init__(self, q=0.98):
        self.q = check_probability(q, "q")

    def position(self, n_samples):
        h = self.q * (n_samples - 1)
        rank = int(np.floor(h))
        frac = h - rank
        if rank >= n_samples - 1:
            return n_samples - 1, 0.0
        return rank, frac


class TopK(_OrderStatisticRule):
    """Threshold at the ``(k + 1)``-th largest value, so the top ``k`` values exceed it.

    The threshold is the order statistic ``x_(n - k - 1)`` (0-based,
    ascending), no interpolation. With ties at the threshold (the ``k``-th
    and ``(k + 1)``-th largest values equal) fewer than ``k`` values exceed
    it, since exceedances are strictly greater than the threshold.

    Parameters
    ----------
    k : int >= 1
    """

    def __init__(self, k=500):
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)

    def position(self, n_samples):
        if n_samples <= self.k:
            raise InvalidInputError(
                f"TopK(k={self.k}) needs more than {self.k} rows, got {n_samples}; use a smaller k"
            )
        return n_samples - self.k - 1, 0.0


class ForwardStop(ThresholdRule):
    """Automatic threshold per column by sequential goodness-of-fit tests.

    Bader, Yan & Zhang (2018), "Automated threshold selection for generalized
    Pareto distribution", *Annals of Applied Statistics* 12(1). For each
    column the candidate thresholds are the empirical quantiles at
    ``candidates`` (increasing). Above each, the GPD is fitted by maximum
    likelihood and tested with Anderson-Darling (``test="ad"``) or
    Cramer-von Mises (``"cvm"``); p-values ``p_1, ..., p_L`` come from the
    Choulakian & Stephens tables (:func:`evtools.gpd_gof`). ForwardStop
    (G'Sell et al. 2016) rejects the first
    ``k = max{k : -(1/k) sum_{i<=k} log(1 - p_i) <= alpha}`` candidates (0 if
    none) and the threshold is candidate ``k + 1``: the lowest threshold from
    which the GPD is no longer rejected, controlling the false discovery rate
    of the rejections at ``alpha``. Each candidate is a :class:`Quantile`
    threshold (same interpolation, same ties convention: values equal to it
    are not exceedances).

    Edge cases, reported per column by :meth:`select_details` (``flag``):

    * candidates with fewer than ``min_exceed`` exceedances are skipped;
    * no candidate rejected: the lowest candidate (``flag = 0``);
    * every usable candidate rejected: the highest usable one, flagged
      ``ForwardStop.ALL_REJECTED`` (the GPD fits badly at every candidate);
    * no usable candidate: the lowest candidate, flagged
      ``ForwardStop.NO_CANDIDATE`` (``fit_tails`` then reports too few
      exceedances through the column's status).

    Parameters
    ----------
    alpha : float in (0, 1)
        False discovery rate of the sequential rejections.
    candidates : sequence of float in (0, 1), strictly increasing
        Probabilities of the candidate quantiles; default 0.50, 0.52, ..., 0.98.
    test : {"ad", "cvm"}
    min_exceed : int >= 5
        Fewest exceedances for a candidate to be tested (table p-values are
        asymptotic; about 25 or more keeps them accurate).
    """

    OK = gof_kernels.FS_OK
    ALL_REJECTED = gof_kernels.FS_ALL_REJECTED
    NO_CANDIDATE = gof_kernels.FS_NO_CANDIDATE

    def __init__(self, alpha=0.1, candidates=None, test="ad", min_exceed=25):
        self.alpha = check_probability(alpha, "alpha")
        if candidates is None:
            candidates = np.round(np.linspace(0.5, 0.98, 25), 2)
        try:
            probs = np.asarray(candidates, dtype=np.float64)
        except (TypeError, ValueError):
            probs = np.empty(0)
        if probs.ndim != 1 or probs.size == 0:
            raise InvalidInputError(f"candidates must be a non-empty 1-D sequence of probabilities, got {candidates!r}")
        for q in probs:
            check_probability(q, "each of candidates")
        if np.any(np.diff(probs) <= 0):
            raise InvalidInputError(f"candidates must be strictly increasing, got {probs.tolist()}")
        self.candidates = tuple(float(q) for q in probs)
        if test not in ("ad", "cvm"):
            raise InvalidInputError(f"test must be 'ad' or 'cvm', got {test!r}")
        self.test = test
        self.min_exceed = check_int(min_exceed, "min_exceed", low=gof_kernels.MIN_GOF_SIZE)

    def _run(self, S, n_samples):
        n_rows = S.shape[0]
        n = n_rows if n_samples is None else check_int(n_samples, "n_samples")
        first_kept = n - n_rows
        pos = [Quantile(q).position(n) for q in self.candidates]
        rank = np.array([r for r, _ in pos], dtype=np.int64)
        frac = np.array([f for _, f in pos], dtype=np.float64)
        if rank[0] < first_kept:
            raise InvalidInputError(
                f"ForwardStop's lowest candidate (quantile {self.candidates[0]}) needs order statistic "
                f"{rank[0]} of {n}, but only the largest {n_rows} values per column are available; "
                "keep more values or raise the candidates"
            )
        S = np.asfortranarray(S, dtype=np.float64)
        use_ad = self.test == "ad"
        return gof_kernels.forwardstop_columns(S, rank - first_kept, frac, self.alpha, self.min_exceed, use_ad,
                                       gof_kernels.AD_CRIT if use_ad else gof_kernels.CVM_CRIT)

    def thresholds_from_sorted(self, S, n_samples=None):
        return self._run(S, n_samples)[0]

    def select_details(self, G):
        """Thresholds with everything ForwardStop looked at, for plots and checks.

        Parameters
        ----------
        G : array_like, shape (n_samples, n_filters)

        Returns
        -------
        dict
            ``candidates`` (L,) the probabilities; ``threshold`` (n_filters,);
            ``chosen`` (n_filters,) int64 index of the chosen candidate;
            ``flag`` (n_filters,) int8 (``ForwardStop.OK``, ``ALL_REJECTED``,
            ``NO_CANDIDATE``); and per candidate and column, shape
            (L, n_filters): ``candidate_threshold``, ``pvalue`` (NaN where
            skipped), ``sigma``, ``xi`` (the MLE fits, NaN where skipped) and
            ``n_exceed``.
        """
        G = as_matrix(G, "G")
        blocks = [self._run(S, None) for _, _, S in sorted_column_blocks(G)]
        threshold, chosen, flag, cand, pvalue, sigma, xi, n_exceed = (
            np.concatenate(parts, axis=-1) for parts in zip(*blocks))
        return {
            "candidates": np.array(self.candidates), "threshold": threshold, "chosen": chosen,
            "flag": flag, "candidate_threshold": cand, "pvalue": pvalue, "sigma": sigma, "xi": xi,
            "n_exceed": n_exceed,
        }


class Fixed(ThresholdRule):
    """A threshold the user gives: one number for every column, or one per column.

    The usual choice in a published analysis ("u = 30 mm") or with a domain
    threshold. Exceedances are the values strictly greater than the
    threshold (values equal to it are not counted); a column with no value
    above it gets status ``CONSTANT`` in :func:`evtools.fit_tails` (see
    :class:`evtools.TailModel`).

    Parameters
    ----------
    threshold : float or array_like, shape (n_filters,)
        Finite thresholds in the units of the data. A plain float or array
        passed as ``threshold=`` to :func:`evtools.fit_tails` means
        ``Fixed(threshold)``.

    Notes
    -----
    With a streaming top-k summary (``fit_tails(..., n_samples=n)``), every
    column's threshold must be at least its smallest kept value; otherwise
    values below the kept ones might exceed it and the rate would be wrong,
    so that is refused.
    """

    def __init__(self, threshold):
        try:
            arr = None if isinstance(threshold, str) else np.asarray(threshold, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim > 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"Fixed threshold must be a finite number or a 1-D array of finite numbers "
                f"(one per column), got {threshold!r}")
        self.threshold = float(arr) if arr.ndim == 0 else tuple(float(v) for v in arr)

    def values(self, n_cols):
        """Thresholds as a float64 array of shape (n_cols,)."""
        if isinstance(self.threshold, float):
            return np.full(n_cols, self.threshold)
        if len(self.threshold) != n_cols:
            raise InvalidInputError(
                f"Fixed has {len(self.threshold)} thresholds but the matrix has {n_cols} columns; "
                "give one number or one per column")
        return np.array(self.threshold)

    def for_columns(self, j0, j1, n_cols):
        if isinstance(self.threshold, float):
            return self
        self.values(n_cols)  # one threshold per column of the whole matrix, exactly
        return Fixed(self.threshold[j0:j1])

    def thresholds_from_sorted(self, S, n_samples=None):
        t = self.values(S.shape[1])
        if n_samples is not None and int(n_samples) > S.shape[0] and S.shape[0] > 0:
            low = t < S[0]
            if np.any(low):
                j = int(np.flatnonzero(low)[0])
                raise InvalidInputError(
                    f"Fixed threshold {t[j]} of column {j} is below the smallest of the "
                    f"{S.shape[0]} values kept of {n_samples}: its exceedances are not all known; "
                    "keep more values per column or raise the threshold")
        return t

    def __repr__(self):
        if isinstance(self.threshold, float):
            return f"Fixed({self.threshold!r})"
        return f"Fixed(<{len(self.threshold)} thresholds>)"

    def __hash__(self):
        return hash((type(self).__name__, self.threshold))


def as_rule(threshold, default):
    """A threshold rule from a rule, a number or a per-column array (``Fixed``); ``default`` for None.

    A bare number in (0, 1) is refused as ambiguous (a quantile level to
    :class:`evtools.POTSaliency` and the CLI, a value here): spell it
    ``Quantile(q)`` or ``Fixed(u)``.
    """
    if threshold is None:
        return default
    if isinstance(threshold, ThresholdRule):
        return threshold
    if isinstance(threshold, (bool, np.bool_, str)):
        raise InvalidInputError(
            f"threshold must be a threshold rule (ev.Quantile(0.98), ev.TopK(500), ev.Fixed(30.0)) "
            f"or a number / per-column array meaning ev.Fixed, got {threshold!r}")
    if np.ndim(threshold) == 0 and isinstance(threshold, (int, float, np.integer, np.floating)) \
            and 0 < threshold < 1:
        raise InvalidInputError(
            f"threshold={threshold!r} is ambiguous: write ev.Quantile({threshold!r}) for the {threshold!r} quantile "
            f"of each column (what POTSaliency and the CLI mean by a number in (0, 1)) or "
            f"ev.Fixed({threshold!r}) for that value as the threshold")
    try:
        return Fixed(threshold)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"threshold must be a threshold rule (ev.Quantile(0.98), ev.TopK(500), ev.Fixed(30.0)) "
            f"or a number / per-column array meaning ev.Fixed, got {threshold!r}") from exc
