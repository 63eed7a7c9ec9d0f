"""Statistics of measured claims: Wilson and bootstrap intervals, and verdicts.

Framework-free (numpy and scipy only): the experiments of an adapter (e.g.
``evtools_torch.experiments``) measure a claim as a proportion or a ratio of
sums, take its confidence interval from here and turn the interval of the
measured difference into a verdict:

- :func:`wilson_interval`: proportions of independent units (filters);
- :func:`bootstrap_ratios` and :func:`percentile_interval`: ratios of sums
  over rows (inputs), optionally grouped (inputs sharing a cause), with every
  column resampled with the same weights so that differences are paired;
- :func:`verdict`: ``"held"`` when the interval of the measured difference
  lies on the claimed side of zero, ``"reversed"`` when it lies on the other
  side, ``"not shown"`` when it contains zero (or is NaN);
- :func:`share_by_group`: the share of units (filters) with a property per
  group (layer) and overall, with Wilson intervals;
- :func:`estimate_with_ci` and :func:`total_variation`: the ``{"value", "ci"}``
  record of a result, and the depth-bias distance between two shares.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from ._errors import InvalidInputError
from ._validation import _as_float_array, check_finite, check_int, check_probability, check_random_state

__all__ = ["VERDICTS", "bootstrap_ratios", "estimate_with_ci", "percentile_interval", "share_by_group",
           "total_variation", "verdict", "wilson_interval"]

VERDICTS = ("held", "not shown", "reversed")
"""Outcomes of a claim: the interval is on the claimed side of zero, contains it, or is on the other side."""


def wilson_interval(successes, n, level=0.95):
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes, n : int or array_like of int
        Successes out of ``n`` independent trials (broadcast together);
        ``n = 0`` gives NaN.
    level : float
        Confidence level, in (0, 1).

    Returns
    -------
    lo, hi : ndarray
        Bounds in [0, 1], of the broadcast shape (0-d for scalars).
    """
    z = norm.ppf(0.5 + check_probability(level, "level") / 2)
    successes, n = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    if np.any(n < 0) or np.any(successes < 0) or np.any(successes > n):
        raise InvalidInputError("wilson_interval needs 0 <= successes <= n")
    safe = np.where(n > 0, n, 1.0)
    p = successes / safe
    shrink = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / shrink
    half = z / shrink * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi


def share_by_group(flags, groups, n_groups, level=0.95):
    """Share of units with a property, per group and overall, with Wilson intervals.

    Parameters
    ----------
    flags : array_like of bool, shape (n_units,)
        Whether each unit (e.g. filter) has the property (e.g. rejects normality).
    groups : array_like of int, shape (n_units,)
        Group of each unit (e.g. its layer, as from :func:`evtools.depth.layer_codes`), in [0, n_groups).
    n_groups : int
        Number of groups; a group with no unit gets NaN.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    dict
        ``share``, ``ci_low``, ``ci_high`` (lists, one per group), ``overall``
        (``{"value", "ci"}``) and ``count`` (units with the property).
    """
    flags = np.asarray(flags, dtype=bool)
    groups = np.asarray(groups)
    if flags.ndim != 1 or groups.shape != flags.shape or flags.size == 0:
        raise InvalidInputError(f"flags and groups must be 1-D of one non-zero length, got {flags.shape} "
                                f"and {groups.shape}")
    if not np.issubdtype(groups.dtype, np.integer) or groups.min() < 0 or groups.max() >= n_groups:
        raise InvalidInputError(f"groups must hold integers in [0, {n_groups}), one per unit")
    hits = np.bincount(groups, weights=flags.astype(float), minlength=n_groups)
    n = np.bincount(groups, minlength=n_groups)
    lo, hi = wilson_interval(hits, n, level)
    all_lo, all_hi = wilson_interval(flags.sum(), flags.size, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = hits / n
    return {"share": share.tolist(), "ci_low": lo.tolist(), "ci_high": hi.tolist(),
            "overall": estimate_with_ci(flags.mean(), all_lo, all_hi), "count": int(flags.sum())}


def bootstrap_ratios(num, den, groups=None, n_boot=2000, seed=0):
    """Bootstrap draws of ratios of sums, ``sum(num) / sum(den)`` column by column.

    Rows are the resampled units. With ``groups``, the bootstrap is
    two-stage: groups are resampled with replacement, then the rows of each
    group drawn, independently for each time it was drawn, so that rows
    sharing a cause (one implanted set of filters) are not treated as
    independent. (A group drawn ``k`` times contributes the sum of ``k``
    independent row resamples: a multinomial of ``k * n_g`` rows.) Every
    column is resampled with the same weights, so differences between
    columns are paired.

    Parameters
    ----------
    num, den : array_like, shape (n_rows, n_columns)
        Numerators and denominators per row (``den`` of ones gives means);
        finite (a NaN would make every replicate NaN).
    groups : array_like of int, shape (n_rows,), optional
        Group label of each row.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    estimate : ndarray, shape (n_columns,)
        ``sum(num) / sum(den)`` on the data (NaN where ``sum(den) = 0``).
    draws : ndarray, shape (n_boot, n_columns)
        The replicates (NaN where a replicate's denominator is 0).
    """
    num = _as_float_array(num, "num").astype(np.float64, copy=False)
    den = _as_float_array(den, "den").astype(np.float64, copy=False)
    if num.ndim != 2 or num.shape != den.shape or num.shape[0] == 0:
        raise InvalidInputError(
            f"num and den must have one shape (n_rows >= 1, n_columns), got {num.shape} and {den.shape}")
    check_finite(num, "num")
    check_finite(den, "den")
    n_boot = check_int(n_boot, "n_boot")
    rng = check_random_state(seed, "seed")
    n = num.shape[0]
    if groups is None:
        groups = np.zeros(n, np.int64)
    else:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise InvalidInputError(f"groups must have shape ({n},), one label per row, got {groups.shape}")
        groups = np.unique(groups, return_inverse=True)[1].ravel()
    n_groups = int(groups.max()) + 1
    both = np.concatenate([num, den], axis=1)
    if n_groups == 1:
        picks = np.ones((n_boot, 1), np.int64)
    else:  # how often each group is drawn in each replicate
        picks = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    totals = np.zeros((n_boot, both.shape[1]))
    for g in range(n_groups):
        rows = both[groups == g]
        size = rows.shape[0]
        weights = rng.multinomial(picks[:, g] * size, np.full(size, 1.0 / size))  # (n_boot, size)
        totals += weights @ rows
    m = num.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = num.sum(0) / den.sum(0)
        draws = totals[:, :m] / totals[:, m:]
    return estimate, draws


def percentile_interval(draws, level=0.95):
    """Percentile interval of bootstrap draws along axis 0, ignoring NaN replicates.

    Parameters
    ----------
    draws : array_like, shape (n_boot, ...)
        Replicates, e.g. from :func:`bootstrap_ratios`.
    level : float
        Confidence level, in (0, 1).

    Returns
    -------
    lo, hi : ndarray, shape draws.shape[1:]
        NaN where a column has no finite replicate.
    """
    a = (1 - check_probability(level, "level")) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite replicate gives NaN
        lo, hi = np.nanquantile(np.asarray(draws, dtype=float), [a, 1 - a], axis=0)
    return lo, hi


def verdict(lo, hi, higher_is_claimed=True):
    """``"held"``, ``"not shown"`` or ``"reversed"`` from the interval of a measured difference.

    Parameters
    ----------
    lo, hi : float
        Interval of (claimed better) - (claimed worse).
    higher_is_claimed : bool
        The claim is that the difference is positive (else negative).

    Returns
    -------
    str
        One of :data:`VERDICTS`; ``"not shown"`` for a NaN interval.
    """
    if not higher_is_claimed:
        lo, hi = -hi, -lo
    if lo > 0:
        return "held"
    if hi < 0:
        return "reversed"
    return "not shown"


def estimate_with_ci(value, lo, hi):
    """The record of an estimate with its interval: ``{"value": value, "ci": [lo, hi]}`` as floats."""
    return {"value": float(value), "ci": [float(lo), float(hi)]}


def total_variation(observed, expected):
    """Total variation distance ``0.5 * sum |observed - expected|`` along the last axis.

    Parameters
    ----------
    observed : array_like, shape (..., n_layers)
        Shares (e.g. of a scorer's top filters per layer; bootstrap draws in the leading axes).
    expected : array_like, shape (n_layers,)
        Reference shares (e.g. each layer's share of the filters).

    Returns
    -------
    float or ndarray, shape observed.shape[:-1]
        0 when the shares agree, 1 when they have disjoint supports.
    """
    return 0.5 * np.abs(np.asarray(observed, dtype=float) - np.asarray(expected, dtype=float)).sum(-1)
