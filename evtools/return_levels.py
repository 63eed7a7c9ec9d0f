"""Return levels of every column's tail model, with confidence intervals.

The ``m``-observation return level of a column is the level exceeded on
average once every ``m`` observations, ``P(S > x_m) = 1 / m``. Above the
threshold ``u`` (Coles 2001, section 4.3.3)::

    x_m = u + sigma / xi * ((m * zeta) ** xi - 1)     (u + sigma log(m zeta) at xi = 0)

with ``zeta`` the exceedance rate. :meth:`evtools.TailModel.return_level`
computes it for all columns with intervals by the delta method or by
profile likelihood; the kernels are in ``evtools._kernels.return_levels``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._blocks import sorted_column_blocks
from ._errors import InvalidInputError
from ._io import TableRecord
from ._kernels import return_levels as return_kernels
from ._validation import as_matrix, check_columns, check_probability
from .declustering import cluster_maxima_blocks

METHODS = ("delta", "profile")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ReturnLevels(TableRecord):
    """Return levels of every column with confidence intervals.

    Attributes
    ----------
    estimate, lower, upper : ndarray, shape (n_filters,), float64
        The return level and its ``1 - alpha`` interval, in the units of the
        data. ``estimate`` is ``TailModel.isf(1 / m)`` for every column (the
        fallback tail for columns whose status is not OK, the empirical body
        where ``m * rate <= 1``). ``lower`` and ``upper`` are NaN where the
        status is not OK (no GPD fit to be uncertain about: the fallback's
        uncertainty is not modelled), where ``m * rate <= 1`` (the level lies
        at or below the threshold, outside the GPD tail), and, for the delta
        method, where ``xi <= -1/2`` (the observed information is not a
        covariance there). ``upper`` is ``inf`` when the profile likelihood
        never falls below the cut (very heavy tails).
    se : ndarray, shape (n_filters,)
        Delta-method standard error (NaN where the interval is).
    status : ndarray, shape (n_filters,), int8
        The model's column status.
    period : float
        The return period as given; ``per_year`` observations per unit of
        ``period`` (None: the period is in observations).
    m : float
        The return period in observations, ``period * per_year``.
    alpha : float
    method : str
        ``"delta"`` or ``"profile"``.
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    se: np.ndarray
    status: np.ndarray
    period: float
    per_year: float | None
    m: float
    alpha: float
    method: str

    def __len__(self):
        return self.estimate.shape[0]

    def to_dict(self):
        """Per-column results as a dict of arrays (no pandas needed)."""
        return {"estimate": self.estimate, "lower": self.lower, "upper": self.upper, "se": self.se,
                "status": self.status}

    def __repr__(self):
        unit = f"{self.period:g} x {self.per_year:g} observations" if self.per_year else f"{self.m:g} observations"
        finite = np.isfinite(self.lower) & np.isfinite(self.upper)
        lines = [f"ReturnLevels({len(self)} filters, period {unit}, "
                 f"{100 * (1 - self.alpha):g}% intervals by {self.method!r})",
                 f"  intervals: {int(finite.sum())} finite, {int(np.isnan(self.lower).sum())} NaN"]
        if len(self) <= 5:
            for j in range(len(self)):
                lines.append(f"  [{j}] {self.estimate[j]:.6g}  [{self.lower[j]:.6g}, {self.upper[j]:.6g}]")
        return "\n".join(lines)


def _positive(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise InvalidInputError(f"{name} must be a positive finite number, got {value!r}")
    return v


def return_levels(model, period, alpha=0.05, method="delta", per_year=None, G=None):
    """Implementation of :meth:`evtools.TailModel.return_level` (see there)."""
    period = _positive(period, "period")
    m = period if per_year is None else period * _positive(per_year, "per_year")
    if m < 1.0:
        raise InvalidInputError(
            f"the return period is {m:g} observations: a level exceeded once every m "
            "observations needs m >= 1 (give the period in observations, or per_year)")
    alpha = check_probability(alpha, "alpha")
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose 'delta' or 'profile'")
    if model.method != "mle":
        raise InvalidInputError(
            f"return-level intervals need a maximum-likelihood fit; this model was fitted with "
            f"method={model.method!r}: refit with fit_tails(..., method='mle'), or use "
            "TailModel.isf(1 / m) for the estimate alone")
    estimate = model.isf(1.0 / m)
    from scipy import stats  # on use: scipy.stats costs 0.4 s to import
    z = float(stats.norm.isf(alpha / 2))
    _, se, lower, upper = return_kernels.delta_return_levels(
        m, z, model.threshold, model.n_exceed, float(model.n_samples), model.sigma, model.xi,
        np.ascontiguousarray(model.rel_cov), model.status)
    if method == "profile":
        if G is None:
            raise InvalidInputError(
                "profile-likelihood intervals need the exceedances: pass the reference matrix the "
                "model was fitted to, return_level(..., method='profile', G=G_ref) (evtools return-levels --data)")
        lower, upper = _profile(model, G, m, float(stats.chi2.isf(alpha, 1)) / 2, se)
    return ReturnLevels(estimate=estimate, lower=lower, upper=upper, se=se, status=model.status,
                        period=period, per_year=None if per_year is None else float(per_year), m=m,
                        alpha=alpha, method=method)


def _exceedance_blocks(model, G):
    """Yield ``(j0, j1, S)``: what each column's GPD was fitted to, at the end of its column of ``S``.

    ``S`` (rows, j1 - j0), Fortran order, sorted ascending: the columns of ``G``,
    or for a declustered model their cluster maxima at the model's threshold
    (-inf below them).
    """
    if model.decluster is None:
        yield from sorted_column_blocks(G)
        return
    for j0, j1, _, maxima in cluster_maxima_blocks(G, model.threshold, model.decluster):
        yield j0, j1, np.asfortranarray(np.sort(np.nan_to_num(maxima, nan=-np.inf), axis=0))


def _profile(model, G, m, half_chi2, se):
    G = as_matrix(G, "G")
    check_columns(G, model.n_filters)
    lower = np.empty(model.n_filters)
    upper = np.empty(model.n_filters)
    what = "values" if model.decluster is None else f"clusters (run {model.decluster:g})"
    for j0, j1, S in _exceedance_blocks(model, G):
        t = model.threshold[j0:j1]
        k = model.n_exceed[j0:j1]
        counts = (S > t).sum(axis=0)
        if not np.array_equal(counts, k):
            j = j0 + int(np.flatnonzero(counts != k)[0])
            raise InvalidInputError(
                f"G is not the matrix this model was fitted to: column {j} has {counts[j - j0]} {what} "
                f"above its threshold, the model {model.n_exceed[j]}; pass the reference matrix")
        lower[j0:j1], upper[j0:j1] = return_kernels.profile_return_levels(
            S, t, k, m, float(model.n_samples), model.sigma[j0:j1], model.xi[j0:j1],
            model.loglik[j0:j1], model.status[j0:j1], half_chi2, se[j0:j1])
    return lower, upper
