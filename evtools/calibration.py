"""Out-of-sample check of a tail model: do its tail probabilities hold on new data?

For a tail probability ``q`` the model gives each column the level ``z_q``
(:meth:`TailModel.isf`) that a new value exceeds with probability ``q``. On
``n`` held-out rows a calibrated column sees about ``n q`` values above it.
:func:`calibration` counts them: per level and column, and pooled over all
columns, the observed over expected ratio (1 when the tails hold, above 1
when the model is too light-tailed, below 1 when too heavy) with exact
(Clopper-Pearson) binomial intervals divided by ``n q``.

For a model fitted with ``decluster=run`` the tail probabilities are per
cluster (see :func:`evtools.fit_tails`): ``rate * GPD.sf(z_q - u)`` is the
share of rows that are the maximum of a cluster above the model's threshold
``u`` exceeding ``z_q``. The held-out columns are therefore declustered once,
at ``u`` with the model's run, and their cluster maxima above each ``z_q``
are counted (declustering at ``z_q`` itself would split clusters and count
too many). Where ``z_q`` is at or below ``u`` it lies in the empirical body,
which is that of all rows, and all held-out values above it are counted.

The intervals cover the sampling of the held-out rows only, not the error of
the fitted levels themselves: even a correct model puts more than ``alpha``
of its columns outside them, the more so the smaller the reference (at
20,000 reference rows, 10-14 % instead of 5 % at q = 0.1 to 0.01). The pooled
ratio averages that error out and is the sharper check. The pooled interval
treats the ``n * n_filters`` values as independent; where columns are
correlated (filters of one layer) it is too narrow, and the per-column
intervals are the ones to read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import InvalidInputError
from ._validation import as_matrix, check_columns, check_probability
from .declustering import cluster_maxima_blocks

DEFAULT_LEVELS = (0.1, 0.01, 0.001)


def exact_interval(k, n, alpha):
    """Clopper-Pearson interval of a binomial proportion, vectorised; ``(low, high)``."""
    from scipy import stats  # on use: scipy.stats costs 0.4 s to import

    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return low, high


@dataclass(frozen=True, repr=False)
class Calibration:
    """Observed over expected exceedances of held-out data, per tail probability.

    Attributes
    ----------
    level : float64 (L,)
        Tail probabilities ``q``.
    n : int
        Held-out rows.
    observed : int64 (L, n_filters)
        Held-out values above each column's ``z_q`` (when declustered: cluster maxima at
        the model's threshold, where ``z_q`` is above it).
    ratio, ratio_low, ratio_high : float64 (L, n_filters)
        ``observed / (n q)`` and its exact ``1 - alpha`` interval.
    pooled, pooled_low, pooled_high : float64 (L,)
        The same over all columns together.
    alpha : float
    """

    level: np.ndarray
    n: int
    observed: np.ndarray
    ratio: np.ndarray
    ratio_low: np.ndarray
    ratio_high: np.ndarray
    pooled: np.ndarray
    pooled_low: np.ndarray
    pooled_high: np.ndarray
    alpha: float

    @property
    def expected(self):
        """``n q`` per level, shape (L,)."""
        return self.n * self.level

    def outside(self):
        """Share of columns whose interval excludes 1, per level, shape (L,)."""
        return np.mean((self.ratio_low > 1) | (self.ratio_high < 1), axis=1)

    def to_dict(self):
        """Per-level summary as a dict of arrays (shape (L,))."""
        return {"level": self.level, "expected_per_column": self.expected,
                "observed_total": self.observed.sum(axis=1), "pooled": self.pooled,
                "pooled_low": self.pooled_low, "pooled_high": self.pooled_high,
                "median_ratio": np.median(self.ratio, axis=1), "outside": self.outside()}

    def __str__(self):
        conf = f"{100 * (1 - self.alpha):g}%"
        lines = [f"calibration on {self.n} held-out rows x {self.observed.shape[1]} filters "
                 f"(observed / expected; {conf} exact intervals)",
                 f"{'q':>8} {'expected/col':>12} {'observed':>9} {'pooled':>7} "
                 f"{'[' + conf + ' interval]':>20} {'median col':>10} {'cols outside':>12}"]
        d = self.to_dict()
        for i, q in enumerate(self.level):
            lines.append(f"{q:8.3g} {d['expected_per_column'][i]:12.4g} {d['observed_total'][i]:9d} "
                         f"{d['pooled'][i]:7.3f} [{d['pooled_low'][i]:8.3f}, {d['pooled_high'][i]:8.3f}] "
                         f"{d['median_ratio'][i]:10.3f} {100 * d['outside'][i]:11.1f}%")
        return "\n".join(lines)

    __repr__ = __str__


def calibration(model, G_holdout, levels=DEFAULT_LEVELS, *, alpha=0.05):
    """Check a :class:`TailModel` on held-out rows (see the module docstring).

    Parameters
    ----------
    model : TailModel
    G_holdout : array_like, shape (n, n_filters)
        Rows not used in the fit (in time order if the model was declustered).
    levels : sequence of float in (0, 1)
        Tail probabilities ``q``; the useful ones have ``n q`` of at least a few.
    alpha : float
        The intervals are ``1 - alpha`` exact binomial intervals.

    Returns
    -------
    Calibration
    """
    G = as_matrix(G_holdout, "G_holdout")
    check_columns(G, model.n_filters, "G_holdout")
    alpha = check_probability(alpha, "alpha")
    q = np.array([check_probability(v, "levels") for v in np.atleast_1d(levels)], dtype=np.float64)
    if q.size == 0:
        raise InvalidInputError("levels must hold at least one tail probability, such as (0.01, 0.001)")
    n = G.shape[0]
    z = np.stack([model.isf(qi) for qi in q])  # (L, n_filters)
    observed = np.empty((q.size, model.n_filters), dtype=np.int64)
    if model.decluster is None:
        for i in range(q.size):
            observed[i] = np.count_nonzero(G > z[i], axis=0)
    else:  # clusters at the model's threshold, once; their maxima above z_q (all values in the body)
        for j0, j1, T, maxima in cluster_maxima_blocks(G, model.threshold, model.decluster):
            for i in range(q.size):
                zi = z[i, j0:j1]
                observed[i, j0:j1] = np.where(zi > model.threshold[j0:j1], np.count_nonzero(maxima > zi, axis=0),
                                              np.count_nonzero(T > zi[:, None], axis=1))
    low, high = exact_interval(observed, n, alpha)  # intervals of the shares, then / q
    total = observed.sum(axis=1)
    n_all = n * model.n_filters
    p_low, p_high = exact_interval(total, n_all, alpha)
    return Calibration(level=q, n=n, observed=observed, ratio=observed / (n * q[:, None]),
                       ratio_low=low / q[:, None], ratio_high=high / q[:, None],
                       pooled=total / (n_all * q), pooled_low=p_low / q, pooled_high=p_high / q,
                       alpha=alpha)
