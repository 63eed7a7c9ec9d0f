"""Peaks-over-threshold tail models over all columns of a matrix at once.

``fit_tails(G_ref)`` chooses a threshold per column, fits a generalized Pareto
distribution (GPD) to the exceedances and returns a :class:`TailModel` that
gives, for new values, the probability of seeing something at least as large.
"""
from __future__ import annotations

import json
import math
import numpy as np

from . import _gof_kernels as GK
from . import _tail_kernels as K
from ._blocks import column_blocks, thread_slices
from ._dask import as_dask_matrix, fit_tails_dask, is_dask_array, logsf_dask
from ._errors import InvalidInputError
from ._status import Status
from ._validation import as_matrix, check_columns, check_probability
from .threshold import Quantile, ThresholdRule, _OrderStatisticRule

def fit_tails(G, threshold=None, method="mle", *, min_exceed=10, n_samples=None,
              n_knots=64, block_size=None, progress=True):
    """Fit a peaks-over-threshold tail model to every column of ``G``.

    Parameters
    ----------
    G : array_like, shape (n_samples, n_filters)
        Reference values, float32 or float64 (other dtypes are converted).
        NaN and inf are rejected. ``G`` is never copied whole: columns are
        copied block by block in their own dtype (float32 stays float32), the
        order statistics the model needs are selected there (a full sort only
        for rules that read whole sorted columns, such as ForwardStop) and the
        exceedances are fitted in float64. A Dask array is fitted by column blocks on the
        current Dask scheduler and gives the same model (see ``docs/streaming.md``).
    threshold : ThresholdRule, default ``Quantile(0.98)``
        How each column's threshold is chosen.
    method : {"mle", "pwm", "zhang", "mom"}
        GPD estimator (see :func:`evtools.gpd_fit`).
    min_exceed : int
        Fewest exceedances for a GPD fit; columns with fewer get status
        ``TOO_FEW`` and an exponential tail (see :class:`TailModel`).
    n_samples : int, optional
        Set when ``G`` holds only the largest rows of each column, sorted or
        not, out of ``n_samples`` rows (a streaming top-k summary such as
        :class:`evtools.TopKAccumulator`). Rates are then exceedances divided
        by ``n_samples``; the empirical body is known only above the smallest
        kept value.
    n_knots : int
        Order statistics stored per column to represent the empirical survival
        below the threshold (see :class:`TailModel`).
    block_size : int, optional
        Columns per block; default keeps the working copy near 64 MiB.
    progress : bool
        Show a progress bar over blocks (hidden when not on a terminal).

    Returns
    -------
    TailModel
    """
    G = as_dask_matrix(G, "G") if is_dask_array(G) else as_matrix(G, "G")
    rule = Quantile(0.98) if threshold is None else threshold
    if not isinstance(rule, ThresholdRule):
        raise InvalidInputError(
            f"threshold must be a threshold rule such as ev.Quantile(0.98) or ev.TopK(500), got {rule!r}"
        )
    if method not in K.METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {sorted(K.METHODS)}")
    if int(min_exceed) < 2:
        raise InvalidInputError(f"min_exceed must be at least 2, got {min_exceed}")
    if int(n_knots) < 2:
        raise InvalidInputError(f"n_knots must be at least 2, got {n_knots}")
    n_rows, F = G.shape
    n_total = n_rows if n_samples is None else int(n_samples)
    if n_total < n_rows:
        raise InvalidInputError(f"n_samples ({n_total}) is smaller than the rows of G ({n_rows})")
    if is_dask_array(G):  # the same fit mapped over column blocks (evtools._dask)
        return fit_tails_dask(G, threshold=rule, method=method, min_exceed=int(min_exceed),
                              n_samples=n_samples, n_knots=int(n_knots), block_size=block_size)
    t = np.empty(F)
    n_exceed = np.empty(F, dtype=np.int64)
    sigma, xi, loglik = np.empty(F), np.empty(F), np.empty(F)
    status = np.empty(F, dtype=np.int8)
    mass = np.empty(F)
    knot_x, knot_sf = np.empty((F, n_knots + 1)), np.empty((F, n_knots + 1))
    complete = np.empty(F, dtype=bool)
    ad, cvm = np.full(F, np.nan), np.full(F, np.nan)
    marker = K.estimator_marker(method)
    # Quantile and TopK need a few order statistics per column: selected, not sorted.
    # Other rules read whole sorted columns.
    by_rank = isinstance(rule, _OrderStatisticRule)
    rank, frac = rule.kept_position(n_rows, n_total) if by_rank else (-1, 0.0)
    for j0, j1, T in column_blocks(G, block_size, sort=not by_rank, progress=progress, desc="fit_tails"):
        if not by_rank:
            t[j0:j1] = rule.thresholds_from_sorted(T.T, n_total)

        def fit(a, b, j0=j0, T=T):
            c = slice(j0 + a, j0 + b)
            K.select_block(T[a:b], t[c], rank, frac, n_total - n_rows, n_total, int(n_knots),
                           n_exceed[c], sigma[c], xi[c], loglik[c], status[c], mass[c],
                           knot_x[c], knot_sf[c], complete[c])
            K.fit_block(T[a:b], t[c], n_exceed[c], marker, int(min_exceed),
                        sigma[c], xi[c], loglik[c], status[c], ad[c], cvm[c])
        thread_slices(j1 - j0, fit)
    return TailModel(
        threshold=t, n_exceed=n_exceed, sigma=sigma, xi=xi, loglik=loglik, status=status,
        tail_mass=mass, knot_x=knot_x, knot_sf=knot_sf, body_complete=complete,
        ad_stat=ad, cvm_stat=cvm,
        n_samples=n_total, method=method, rule=rule, min_exceed=int(min_exceed),
    )


class TailModel:
    """Per-column peaks-over-threshold tail models.

    For column ``k`` with threshold ``t_k``, the survival function of a value
    ``g`` is::

        sf(g) = rate_k * GPD(sigma_k, xi_k).sf(g - t_k)     if g > t_k
        sf(g) = empirical survival of the reference column    if g <= t_k

    The empirical survival is the mid-p survival
    ``(#(ref > g) + #(ref == g) / 2) / n_samples``: a value tied with
    reference values counts half as exceeded, so a dead filter's usual value
    (0 in a column of zeros) gets probability 1/2, not 0. It is stored at
    ``n_knots`` order statistics up to the threshold (exact there) and
    interpolated linearly between them; below the smallest reference value it
    is 1. Just above the threshold the tail takes over at ``rate_k``; sf is
    non-increasing in ``g`` throughout.

    Columns whose ``status`` is not ``OK``:

    - ``TOO_FEW``, ``NOT_CONVERGED`` or ``CONSTANT`` with exceedances: the
      tail is exponential (``xi = 0``) with the mean excess as ``sigma``;
      ``loglik`` is that exponential's.
    - ``CONSTANT`` without exceedances (a constant column, such as a dead
      filter, or ties at the top): ``sigma = inf``, ``loglik = NaN``, and every value above
      the threshold has probability ``1 / (n_samples + 1)``, the smallest the
      reference can support (``score`` ``log10(n_samples + 1)``), or the
      mid-p survival at the threshold where that is smaller (a single
      largest value), so that sf never increases.
    - ``XI_BOUNDARY`` (MLE at xi = -1): the fit is used as it is.

    Beyond the upper end point of a bounded tail (xi < 0) the GPD gives
    probability 0. ``logsf`` instead continues from where
    ``1 + xi * y / sigma`` falls to machine epsilon as a straight line of
    slope ``-1 / sigma``, so it stays finite and decreasing: values beyond
    anything the model allows are ordered by how far beyond they are.

    Attributes (arrays of shape (n_filters,))
    -----------------------------------------
    threshold, rate, sigma, xi, n_exceed, loglik, status
    tail_mass : probability mass above the threshold used for scoring
        (``rate``, or ``1 / (n_samples + 1)`` where no value exceeds).
    knot_x, knot_sf : (n_filters, n_knots + 1) empirical body knots.
    ad_stat, cvm_stat : goodness-of-fit statistics computed at fit time (see :meth:`gof`).
    n_samples : int, rows of the reference matrix.
    rule : ThresholdRule, method : str, min_exceed : int, the fit's settings.
    """

    _ARRAYS = ("threshold", "n_exceed", "sigma", "xi", "loglik", "status", "tail_mass",
               "knot_x", "knot_sf", "body_complete", "ad_stat", "cvm_stat")

    def __init__(self, *, threshold, n_exceed, sigma, xi, loglik, status, tail_mass, knot_x,
                 knot_sf, body_complete, ad_stat, cvm_stat, n_samples, method, rule, min_exceed):
        self.threshold = threshold
        self.n_exceed = n_exceed
        self.sigma = sigma
        self.xi = xi
        self.loglik = loglik
        self.status = status
        self.tail_mass = tail_mass
        self.knot_x = knot_x
        self.knot_sf = knot_sf
        self.body_complete = body_complete
        self.ad_stat = ad_stat
        self.cvm_stat = cvm_stat
        self.n_samples = int(n_samples)
        self.method = method
        self.rule = rule
        self.min_exceed = int(min_exceed)

    @property
    def rate(self):
        """Exceedances per reference sample, shape (n_filters,)."""
        return self.n_exceed / self.n_samples

    @property
    def n_filters(self):
        return self.threshold.shape[0]

    def __len__(self):
        return self.n_filters

    # ------------------------------------------------------------ scoring
    def _left(self):
        return np.where(self.body_complete, 1.0, self.knot_sf[:, 0])

    def logsf(self, G):
        """Natural log of the tail probability P(S_k > g), shape (n_samples, n_filters).

        Finite for every finite input and non-increasing in ``g`` per column,
        even where ``sf`` underflows to 0 or lies beyond a bounded tail's end.
        """
        if is_dask_array(G):  # a lazy Dask array with G's chunks (evtools._dask)
            return logsf_dask(self, G)
        G = as_matrix(G, "G")
        check_columns(G, self.n_filters)
        return K.logsf_matrix(np.ascontiguousarray(G), self.threshold, self.tail_mass,
                              self.sigma, self.xi, self.knot_x, self.knot_sf, self._left())

    def sf(self, G):
        """Tail probability P(S_k > g) per entry, shape (n_samples, n_filters)."""
        return np.exp(self.logsf(G))

    def score(self, G):
        """Anomaly score ``-log10 P(S_k > g)`` per entry, shape (n_samples, n_filters); >= 0."""
        return self.logsf(G) / -math.log(10.0)

    def isf(self, q):
        """Per column the level exceeded with probability ``q`` (SPOT's z_q), shape (n_filters,)."""
        q = check_probability(q, "q", open_high=False)
        return K.isf_vector(q, self.threshold, self.tail_mass, self.sigma, self.xi,
                            self.knot_x, self.knot_sf)

    def gof(self):
        """Per-column goodness of fit of the GPD tails.

        Anderson-Darling (A2) and Cramer-von Mises (W2) statistics of each
        column's exceedances against its fitted GPD, computed during the fit,
        with p-values from the Choulakian & Stephens (2001) tables interpolated
        over xi (see :mod:`evtools.gof`; limited to [0.001, 0.999]). Columns
        without a GPD fit (status not OK or XI_BOUNDARY) or with fewer than 5
        exceedances get NaN. For a bootstrap p-value of one column, pass its
        exceedances to :func:`evtools.gpd_gof`.

        Returns
        -------
        dict of float64 arrays, shape (n_filters,)
            ``ad_stat``, ``ad_pvalue``, ``cvm_stat``, ``cvm_pvalue``.
        """
        return {
            "ad_stat": self.ad_stat, "ad_pvalue": GK.table_pvalues(self.ad_stat, self.xi, GK.AD_CRIT),
            "cvm_stat": self.cvm_stat, "cvm_pvalue": GK.table_pvalues(self.cvm_stat, self.xi, GK.CVM_CRIT),
        }

    # ------------------------------------------------------------ tables and I/O
    def to_dict(self):
        """Per-column results as a dict of arrays (no pandas needed)."""
        return {
            "threshold": self.threshold, "rate": self.rate, "n_exceed": self.n_exceed,
            "sigma": self.sigma, "xi": self.xi, "loglik": self.loglik, "status": self.status,
        }

    def to_frame(self):
        """Per-column results as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        frame = pd.DataFrame(self.to_dict())
        frame["status"] = [Status(s).name for s in self.status]
        return frame

    def save(self, path):
        """Write the model to ``path`` (``.npz``)."""
        meta = {"n_samples": self.n_samples, "method": self.method, "rule": self.rule.to_dict(),
                "min_exceed": self.min_exceed, "format": 1}
        np.savez(path, meta=json.dumps(meta), **{k: getattr(self, k) for k in self._ARRAYS})

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in cls._ARRAYS}
            meta["rule"] = ThresholdRule.from_dict(meta["rule"])
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"{path} is not a TailModel file written by TailModel.save: {exc}") from exc
        meta.pop("format")
        return cls(**arrays, **meta)

    def __repr__(self):
        counts = np.bincount(self.status.astype(np.intp), minlength=len(Status))
        status = ", ".join(f"{s.name}={counts[s]}" for s in Status if counts[s])
        ok = self.status == Status.OK
        lines = [
            f"TailModel({self.n_filters} filters, {self.n_samples} samples, "
            f"threshold={self.rule}, method={self.method!r})",
            f"  status: {status}",
            f"  exceedances per column: median {np.median(self.n_exceed):g}, "
            f"min {self.n_exceed.min()}, max {self.n_exceed.max()}",
        ]
        if ok.any():
            q = np.quantile(self.xi[ok], [0.05, 0.5, 0.95])
            lines.append(f"  xi (OK columns): 5% {q[0]:.3g}, median {q[1]:.3g}, 95% {q[2]:.3g}")
        return "\n".join(lines)
