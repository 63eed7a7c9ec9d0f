"""Peaks-over-threshold tail models over all columns of a matrix at once.

``fit_tails(G_ref)`` chooses a threshold per column, fits a generalized Pareto
distribution (GPD) to the exceedances and returns a :class:`TailModel` that
gives, for new values, the probability of seeing something at least as large.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ._blocks import BLOCK_BYTES, column_blocks, thread_slices  # noqa: F401 (BLOCK_BYTES: fit_tails' working memory per block)
from ._dask import as_dask_matrix, fit_column_blocks, is_dask_array, map_column_blocks
from ._errors import InvalidInputError
from ._files import SavedFile, save_npz
from ._io import TableRecord
from ._kernels import decluster as decluster_kernels
from ._kernels import tails as tail_kernels
from ._kernels.sort import radix_keys
from ._status import Status
from ._validation import as_matrix, check_columns, check_int, check_probability
from .calibration import DEFAULT_LEVELS, calibration
from .declustering import check_run
from .gof import _check_pvalue, pvalues
from .gpd import check_method
from .return_levels import return_levels
from .threshold import Quantile, ThresholdRule, _OrderStatisticRule, as_rule

MAX_KNOTS = 2**16
"""Most body knots per column (``n_knots``)."""


def fit_tails(G, threshold=None, method="mle", *, min_exceed=10, n_samples=None,
              n_knots=64, block_size=None, progress=True, decluster=None):
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
    threshold : ThresholdRule, float or array_like of shape (n_filters,), default ``Quantile(0.98)``
        How each column's threshold is chosen. A number, or one number per
        column, is a fixed threshold (``Fixed(threshold)``). Exceedances are
        the values strictly above the threshold.
    method : {"mle", "pwm", "pwmb", "zhang", "mom"}
        GPD estimator (see :func:`evtools.gpd_fit`).
    min_exceed : int
        Fewest exceedances (cluster maxima when declustering) for a GPD fit; columns with fewer get status
        ``TOO_FEW`` and an exponential tail (see :class:`TailModel`).
    n_samples : int, optional
        Set when ``G`` holds only the largest rows of each column, sorted or
        not, out of ``n_samples`` rows (a streaming top-k summary such as
        :class:`evtools.TopKAccumulator`). Rates are then exceedances divided
        by ``n_samples``; the empirical body is known only above the smallest
        kept value.
    n_knots : int in [2, 65536]
        Order statistics stored per column to represent the empirical survival
        below the threshold (see :class:`TailModel`).
    block_size : int, optional
        Columns per block; default keeps the working copy near 64 MiB.
    progress : bool
        Show a progress bar over blocks (hidden when not on a terminal).
    decluster : float, optional
        Rows are times and each column a time series: fit each column's GPD
        to its cluster maxima by the runs method with this run length (see
        :func:`evtools.decluster`). ``n_exceed`` then counts clusters, and
        ``rate`` is clusters per row (R POT's convention: events per
        observation), so that return levels are levels exceeded by one event
        per period; ``n_above`` keeps all exceedances and
        ``extremal_index`` their ratio. The thresholds and the empirical body
        are those of all rows. Not with ``n_samples`` (a top-k summary has
        lost the time order).

    Returns
    -------
    TailModel
    """
    G = as_dask_matrix(G, "G") if is_dask_array(G) else as_matrix(G, "G")
    rule = as_rule(threshold, Quantile(0.98))
    code = check_method(method)
    min_exceed = check_int(min_exceed, "min_exceed", low=2)
    n_knots = check_int(n_knots, "n_knots", low=2, high=MAX_KNOTS)
    block_size = check_int(block_size, "block_size", none_ok=True)
    run = None if decluster is None else check_run(decluster)
    if run is not None and n_samples is not None:
        raise InvalidInputError("decluster needs the full time series; it cannot be used with n_samples "
                                "(a top-k summary has lost the time order)")
    n_rows, F = G.shape
    n_total = n_rows if n_samples is None else check_int(n_samples, "n_samples")
    if n_total < n_rows:
        raise InvalidInputError(f"n_samples ({n_total}) is smaller than the rows of G ({n_rows})")
    if is_dask_array(G):  # the same fit mapped over column blocks (evtools._dask)
        settings = {"method": method, "min_exceed": int(min_exceed), "n_samples": n_samples,
                    "n_knots": int(n_knots), "decluster": decluster, "progress": False}
        model = fit_column_blocks(
            G, fit_tails, lambda j0, j1: {**settings, "threshold": rule.for_columns(j0, j1, F)},
            concat_models, block_size=block_size)
        model.rule = rule
        return model
    t = np.empty(F)
    n_exceed = np.empty(F, dtype=np.int64)
    sigma, xi, loglik = np.empty(F), np.empty(F), np.empty(F)
    status = np.empty(F, dtype=np.int8)
    mass = np.empty(F)
    knot_x, knot_sf = np.empty((F, n_knots + 1)), np.empty((F, n_knots + 1))
    complete = np.empty(F, dtype=bool)
    ad, cvm = np.full(F, np.nan), np.full(F, np.nan)
    above = n_exceed if run is None else np.empty(F, dtype=np.int64)
    rel_cov = np.full((F, 3), np.nan)
    marker = tail_kernels.estimator_marker(method)  # None for "mle", which also writes rel_cov
    # Quantile and TopK place the threshold at an order statistic: order_block reads it
    # off the column it sorts. Other rules (ForwardStop, Fixed) read the sorted block first.
    by_rank = isinstance(rule, _OrderStatisticRule)
    rank, frac = rule.kept_position(n_rows, n_total) if by_rank else (-1, 0.0)
    for j0, j1, T in column_blocks(G, block_size, sort=not by_rank, progress=progress, desc="fit_tails"):
        c = slice(j0, j1)
        if not by_rank:
            t[c] = rule.for_columns(j0, j1, F).thresholds_from_sorted(T.T, n_total)

        def fit(a, b, j0=j0, T=T):
            s = slice(j0 + a, j0 + b)
            tail_kernels.order_block(T[a:b], *radix_keys(T.dtype), t[s], rank, frac, n_total - n_rows, n_total,
                                     int(n_knots), n_exceed[s], sigma[s], xi[s], loglik[s], status[s], mass[s],
                                     knot_x[s], knot_sf[s], complete[s])
            if not run:  # when declustering, the tails come from the time-ordered columns below
                tail_kernels.fit_block(T[a:b], t[s], n_exceed[s], marker, int(min_exceed), sigma[s], xi[s],
                                       loglik[s], status[s], ad[s], cvm[s], rel_cov[s] if marker is None else None)
        thread_slices(j1 - j0, fit)
        if run:
            X = np.asfortranarray(G[:, c])  # the block's time-ordered columns, each contiguous
            n_clusters, above[c], *tail, cov = decluster_kernels.fit_clusters_block(X, t[c], run, code,
                                                                                    int(min_exceed), n_total)
            has = n_clusters > 0  # columns without exceedances keep order_block's CONSTANT tail
            for old, new in zip((sigma, xi, loglik, status, mass, ad, cvm, rel_cov), (*tail, cov)):
                old[c][has] = new[has]
            n_exceed[c] = n_clusters
    return TailModel(
        threshold=t, n_exceed=n_exceed, sigma=sigma, xi=xi, loglik=loglik, status=status,
        tail_mass=mass, knot_x=knot_x, knot_sf=knot_sf, body_complete=complete,
        ad_stat=ad, cvm_stat=cvm, n_above=above, rel_cov=rel_cov,
        n_samples=n_total, method=method, rule=rule, min_exceed=int(min_exceed), decluster=run,
    )


def _model_meta(model):
    return {"n_samples": model.n_samples, "method": model.method, "rule": model.rule,
            "min_exceed": model.min_exceed, "decluster": model.decluster}


def take_columns(model, j0, j1):
    """The TailModel of columns ``j0:j1`` of ``model`` (views of its arrays)."""
    return TailModel(**{k: getattr(model, k)[j0:j1] for k in TailModel._ARRAYS}, **_model_meta(model))


def concat_models(models):
    """One TailModel of the columns of ``models`` side by side (same settings)."""
    return TailModel(**{k: np.concatenate([getattr(m, k) for m in models], axis=0)
                        for k in TailModel._ARRAYS}, **_model_meta(models[0]))


def _logsf_columns(block, model, j0, j1):
    """logsf of a block of G's columns ``j0:j1`` (one Dask block)."""
    return take_columns(model, j0, j1).logsf(block)


class TailModel(TableRecord):
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

    - ``TOO_FEW``, ``NOT_CONVERGED``, ``NO_MAXIMUM`` (maximum likelihood
      only: the likelihood has no interior maximum, it rises towards
      ``xi -> inf``, as with zeros among heavy-tailed exceedances) or
      ``CONSTANT`` with exceedances: the
      tail is exponential (``xi = 0``) with the mean excess as ``sigma``;
      ``loglik`` is that exponential's.
    - ``CONSTANT`` without exceedances (a constant column, such as a dead
      filter, or ties at the top): ``sigma = inf``, ``loglik = NaN``, and every value above
      the threshold has probability ``1 / (n_samples + 1)``, the smallest the
      reference can support (``score`` ``log10(n_samples + 1)``), or the
      mid-p survival at the threshold where that is smaller (a single
      largest value), so that sf never increases. A fixed threshold above
      every value takes the largest value's mid-p survival instead (sf is
      flat from there up to the threshold).
    - ``XI_BOUNDARY`` (MLE at xi = -1): the fit is used as it is.

    Beyond the upper end point of a bounded tail (xi < 0) the GPD gives
    probability 0. ``logsf`` instead continues from where
    ``1 + xi * y / sigma`` falls to machine epsilon as a straight line of
    slope ``-1 / sigma``, so it stays finite and decreasing: values beyond
    anything the model allows are ordered by how far beyond they are.

    Attributes
    ----------
    threshold, rate, sigma, xi, loglik, status : ndarray, shape (n_filters,)
        Per column: the threshold, the exceedance rate, the GPD fit and its status.
    n_exceed : ndarray, shape (n_filters,)
        Values fitted: exceedances, or cluster maxima when declustered.
    n_above : ndarray, shape (n_filters,)
        All values above the threshold (equal to ``n_exceed`` unless declustered).
    extremal_index : ndarray, shape (n_filters,)
        ``n_exceed / n_above``, the runs estimate when declustered.
    tail_mass : ndarray, shape (n_filters,)
        Probability mass above the threshold used for scoring: ``rate``, or
        where no value exceeds, the ``CONSTANT`` rule above (at most
        ``1 / (n_samples + 1)``).
    knot_x, knot_sf : ndarray, shape (n_filters, n_knots + 1)
        Empirical body knots.
    ad_stat, cvm_stat : ndarray, shape (n_filters,)
        Goodness-of-fit statistics computed at fit time (see :meth:`gof`).
    n_samples : int
        Rows of the reference matrix.
    rule, method, min_exceed : ThresholdRule, str, int
        The fit's settings.
    rel_cov : ndarray, shape (n_filters, 3)
        Covariance of ``(sigma_hat / sigma, xi_hat)`` from the observed
        information, entries (sigma, sigma), (sigma, xi), (xi, xi): the MLE's
        standard errors are ``sigma * sqrt(rel_cov[:, 0])`` and
        ``sqrt(rel_cov[:, 2])``. NaN for non-MLE fits, columns whose status is
        not OK, ``xi <= -1/2``, and models saved before it was stored (refit
        them for delta-method return-level intervals).
    decluster : float or None
        The run length when the tails were fitted to cluster maxima (see
        :func:`fit_tails`); ``rate`` is then clusters per sample and ``sf``
        above the threshold the probability that a sample is the maximum of a
        cluster exceeding ``g``.
    """

    _ARRAYS = ("threshold", "n_exceed", "sigma", "xi", "loglik", "status", "tail_mass",
               "knot_x", "knot_sf", "body_complete", "ad_stat", "cvm_stat", "n_above", "rel_cov")

    def __init__(self, *, threshold, n_exceed, sigma, xi, loglik, status, tail_mass, knot_x,
                 knot_sf, body_complete, ad_stat, cvm_stat, n_samples, method, rule, min_exceed,
                 n_above=None, decluster=None, rel_cov=None):
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
        self.rel_cov = np.full((threshold.shape[0], 3), np.nan) if rel_cov is None else rel_cov
        self.n_samples = int(n_samples)
        self.method = method
        self.rule = rule
        self.min_exceed = int(min_exceed)
        self.n_above = n_exceed if n_above is None else n_above
        self.decluster = None if decluster is None else float(decluster)

    @property
    def rate(self):
        """Exceedances (clusters when declustered) per reference sample, shape (n_filters,)."""
        return self.n_exceed / self.n_samples

    @property
    def extremal_index(self):
        """Runs estimate ``n_exceed / n_above`` (clusters per exceedance; 1 without declustering,
        NaN where nothing exceeds), shape (n_filters,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.n_exceed / self.n_above

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
            return map_column_blocks(G, _logsf_columns, self, self.n_filters)
        G = as_matrix(G, "G")
        check_columns(G, self.n_filters)
        return tail_kernels.logsf_matrix(np.ascontiguousarray(G), self.threshold, self.tail_mass,
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
        return tail_kernels.isf_vector(q, self.threshold, self.tail_mass, self.sigma, self.xi,
                            self.knot_x, self.knot_sf)

    def gof(self, pvalue="table", *, n_boot=999, random_state=None):
        """Per-column goodness of fit of the GPD tails.

        Anderson-Darling (A2) and Cramer-von Mises (W2) statistics of each
        column's exceedances (cluster maxima when declustered) against its
        fitted GPD, computed during the fit. P-values (see :func:`evtools.gpd_gof`):

        - ``pvalue="table"``: Choulakian & Stephens (2001) tables, interpolated
          over xi and limited to [0.001, 0.999]. They hold for maximum
          likelihood only: for a model fitted with ``"pwm"``, ``"pwmb"``,
          ``"zhang"`` or ``"mom"`` every table p-value is NaN.
        - ``pvalue="bootstrap"``: parametric bootstrap, ``n_boot`` samples of
          each column's size drawn from its fitted GPD and refitted with the
          model's own estimator; valid for every method. Costs ``n_boot`` fits
          per column (all in parallel).

        Columns without a GPD fit (status not OK or XI_BOUNDARY) or with
        fewer than 5 exceedances get NaN.

        Returns
        -------
        dict of float64 arrays, shape (n_filters,)
            ``ad_stat``, ``ad_pvalue``, ``cvm_stat``, ``cvm_pvalue``.
        """
        n_boot = _check_pvalue(pvalue, n_boot)
        p_ad, p_cvm, _ = pvalues(self.ad_stat, self.cvm_stat, self.n_exceed, self.sigma, self.xi,
                                 self.method, pvalue, n_boot, random_state)
        return {"ad_stat": self.ad_stat, "ad_pvalue": p_ad, "cvm_stat": self.cvm_stat, "cvm_pvalue": p_cvm}

    def calibration(self, G_holdout, levels=DEFAULT_LEVELS, *, alpha=0.05):
        """Out-of-sample check: observed over expected held-out values beyond ``isf(q)``.

        Parameters
        ----------
        G_holdout : array_like, shape (n, n_filters)
            Rows not used in the fit (time-ordered if declustered).
        levels : sequence of float in (0, 1)
            Tail probabilities ``q``.
        alpha : float
            Exact (Clopper-Pearson) ``1 - alpha`` intervals.

        Returns
        -------
        Calibration
            Per level and column and pooled over columns; ``print`` shows a
            table (see :class:`evtools.Calibration`).
        """
        return calibration(self, G_holdout, levels, alpha=alpha)

    def return_level(self, period, alpha=0.05, method="delta", per_year=None, G=None):
        """Per-column return levels with ``1 - alpha`` confidence intervals.

        The ``m``-observation return level is exceeded on average once every
        ``m`` observations: ``x_m = u + sigma / xi * ((m * rate) ** xi - 1)``
        (Coles 2001, section 4.3.3), equal to ``isf(1 / m)``.

        Parameters
        ----------
        period : float
            Return period: in observations, or in years (any unit) when
            ``per_year`` is given; ``m = period * per_year`` observations.
        alpha : float in (0, 1)
            1 - confidence level (0.05: 95 % intervals).
        method : {"delta", "profile"}
            * ``"delta"``: ``x_m -+ z * se`` with the delta-method variance of
              ``(rate, sigma, xi)``: the binomial ``rate (1 - rate) / n`` for
              the rate and the inverse observed information for the GPD
              (stored at fit time, ``rel_cov``). Symmetric; too narrow
              on the upper side for heavy tails.
            * ``"profile"``: ``{x : 2 (loglik - profile(x)) <= chi2_1(1 - alpha)}``,
              with ``sigma`` written in terms of ``x_m`` and the likelihood
              maximised over ``xi`` (``xi >= -1``), the rate held at its
              estimate (as Coles and ismev's ``gpd.prof`` do). Needs ``G``.
        per_year : float, optional
            Observations per unit of ``period`` (365.25 for daily data and a
            period in years).
        G : array_like, shape (n_rows, n_filters), optional
            The reference matrix the model was fitted to (needed, and
            checked, for ``"profile"``: the model does not keep the
            exceedances; a declustered model's cluster maxima are found
            again at its threshold with its run).

        Returns
        -------
        ReturnLevels
            ``estimate``, ``lower``, ``upper``, ``se`` of shape (n_filters,);
            intervals are NaN where the column's status is not OK or the
            level is not above the threshold (see :class:`evtools.ReturnLevels`).

        Raises
        ------
        InvalidInputError
            The model was not fitted by maximum likelihood (the intervals
            are likelihood-based), ``m < 1``, or ``G`` is missing or not the
            reference matrix for ``"profile"``.
        """
        return return_levels(self, period, alpha=alpha, method=method, per_year=per_year, G=G)

    # ------------------------------------------------------------ tables and I/O
    def to_dict(self):
        """Per-column results as a dict of arrays (no pandas needed)."""
        return {
            "threshold": self.threshold, "rate": self.rate, "n_exceed": self.n_exceed,
            "sigma": self.sigma, "xi": self.xi, "loglik": self.loglik, "status": self.status,
            "n_above": self.n_above,
        }

    def save(self, path):
        """Write the model to an ``.npz`` file, atomically (a failed save leaves the old file).

        Parameters
        ----------
        path : str or os.PathLike
            ``.npz`` is appended unless the name ends with it (as ``numpy.savez`` does).

        Returns
        -------
        pathlib.Path
            The path written; :meth:`load` accepts it with or without the suffix.
        """
        meta = {"n_samples": self.n_samples, "method": self.method, "rule": self.rule.to_dict(),
                "min_exceed": self.min_exceed, "decluster": self.decluster, "format": 1}
        return save_npz(path, {"meta": json.dumps(meta), **{k: getattr(self, k) for k in self._ARRAYS}})

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`, checked before any kernel sees it.

        Parameters
        ----------
        path : str or os.PathLike
            The file, with or without its ``.npz`` suffix.

        Raises
        ------
        FileFormatError
            Missing, truncated or damaged file, another format version, or
            arrays whose dtypes, shapes or values a saved model cannot have.
        """
        return cls._from_file(SavedFile(path, "TailModel", "TailModel.save"))

    @classmethod
    def _from_file(cls, f):
        meta = f.meta()
        for key in ("n_samples", "method", "rule", "min_exceed"):
            f.check(key in meta, f"meta has no {key!r}")
        n = f.integer(meta["n_samples"], "n_samples", 1)
        min_exceed = f.integer(meta["min_exceed"], "min_exceed", 2)
        f.check(meta["method"] in tail_kernels.METHODS, f"unknown method {meta['method']!r}")
        try:
            rule = ThresholdRule.from_dict(meta["rule"])
        except Exception as exc:  # TypeError, AttributeError, InvalidInputError from a garbled spec
            f.fail(f"bad threshold rule {meta['rule']!r} ({exc})")
        t = f.array("threshold", np.float64, (None,))
        F = t.shape[0]
        f.check(F >= 1, "it has no columns")
        a = {"threshold": t}
        for name, dtype in (("n_exceed", np.int64), ("sigma", np.float64), ("xi", np.float64),
                            ("loglik", np.float64), ("status", np.int8), ("tail_mass", np.float64),
                            ("body_complete", np.bool_), ("ad_stat", np.float64), ("cvm_stat", np.float64)):
            a[name] = f.array(name, dtype, (F,))
        knot_x = a["knot_x"] = f.array("knot_x", np.float64, (F, None))
        knot_sf = a["knot_sf"] = f.array("knot_sf", np.float64, (F, knot_x.shape[1]))
        f.check(knot_x.shape[1] >= 3, f"knot_x has {knot_x.shape[1]} knots per column, at least 3 are written")
        sigma, k = a["sigma"], a["n_exceed"]
        above = a["n_above"] = f.array("n_above", np.int64, (F,)) if "n_above" in f.arrays else k  # older files
        if "rel_cov" in f.arrays:  # older files lack it: NaN, no delta-method intervals
            a["rel_cov"] = f.array("rel_cov", np.float64, (F, 3))
        rel_cov = a.get("rel_cov", np.zeros((F, 3)))
        decluster = meta.get("decluster")
        if decluster is not None:
            try:
                decluster = check_run(decluster)
            except InvalidInputError:
                f.fail(f"decluster {decluster!r} is not a positive run length")
        checks = [
            (np.isfinite(t), "threshold is not finite"),
            ((k >= 0) & (k <= n), f"n_exceed is outside [0, n_samples = {n}]"),
            ((above >= k) & (above <= n), "n_above is outside [n_exceed, n_samples]"),
            (~np.isinf(rel_cov).any(axis=1) & ~(rel_cov[:, [0, 2]] < 0).any(axis=1),
             "rel_cov is infinite or has a negative variance"),
            ((sigma > 0) & (np.isfinite(sigma) | (k == 0)), "sigma is not positive (or infinite with exceedances)"),
            (np.isfinite(a["xi"]), "xi is not finite"),
            (np.isin(a["status"], [int(s) for s in Status]), "status is not a Status code"),
            ((a["tail_mass"] > 0) & (a["tail_mass"] <= 1), "tail_mass is outside (0, 1]"),
            (np.isfinite(knot_x).all(axis=1), "knot_x is not finite"),
            ((np.diff(knot_x, axis=1) >= 0).all(axis=1), "knot_x is not ascending"),
            (knot_x[:, -1] == t, "the last knot is not the threshold"),
            (((knot_sf > 0) & (knot_sf <= 1)).all(axis=1), "knot_sf is outside (0, 1]"),
            ((np.diff(knot_sf, axis=1) <= 0).all(axis=1), "knot_sf is not non-increasing"),
        ]
        f.check_columns(checks)
        return cls(**a, n_samples=n, method=meta["method"], rule=rule, min_exceed=min_exceed, decluster=decluster)

    def __repr__(self):
        counts = np.bincount(self.status.astype(np.intp), minlength=len(Status))
        status = ", ".join(f"{s.name}={counts[s]}" for s in Status if counts[s])
        ok = self.status == Status.OK
        lines = [
            f"TailModel({self.n_filters} filters, {self.n_samples} samples, "
            f"threshold={self.rule}, method={self.method!r}"
            + ("" if self.decluster is None else f", decluster={self.decluster:g}") + ")",
            f"  status: {status}",
            f"  exceedances per column: median {np.median(self.n_exceed):g}, "
            f"min {self.n_exceed.min()}, max {self.n_exceed.max()}",
        ]
        if ok.any():
            q = np.quantile(self.xi[ok], [0.05, 0.5, 0.95])
            lines.append(f"  xi (OK columns): 5% {q[0]:.3g}, median {q[1]:.3g}, 95% {q[2]:.3g}")
        return "\n".join(lines)
