"""Streaming peaks-over-threshold anomaly detection: SPOT and DSPOT over many columns.

SPOT (Siffer et al., KDD 2017, "Anomaly Detection in Streams with Extreme
Value Theory") calibrates a GPD tail on an initial block of a series, derives
the level ``z_q`` that a value exceeds with probability ``q``, and then, for
each new value, flags it as an alarm if it exceeds ``z_q`` or else folds it
into the tail model. DSPOT does the same on the deviation of each value from
the mean of the last ``depth`` normal values, so that it follows drift.

:class:`SPOT` and :class:`DSPOT` run one such detector per column of a
matrix (one column per unit: a filter, a neuron), all at once: rows arrive
with :meth:`SPOT.update`, the numba kernels in :mod:`evtools._kernels.spot`
walk the columns in parallel and refit the GPD only where a new peak arrived.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ._errors import InvalidInputError, NotFittedError
from ._files import SavedFile, save_npz
from ._io import TableRecord
from ._kernels import spot as spot_kernels
from ._status import Status
from ._validation import INT_MAX, as_matrix, check_columns, check_finite, check_int, check_probability
from .gpd import check_method
from .threshold import Quantile, ThresholdRule

_MIN_CAPACITY = 16


@dataclass(repr=False)
class SPOTResult(TableRecord):
    """What :meth:`SPOT.update` saw in each new value.

    Attributes
    ----------
    alarm : ndarray, shape (n_rows, n_cols) (or (n_cols,) for one 1-D row), bool
        True where the value exceeded the anomaly threshold in force (SPOT:
        ``x > z_q``; DSPOT: ``x - local_mean > z_q``). Alarms are not added to
        the model.
    z_q : ndarray, same shape, float64
        The anomaly threshold each value was compared with: the column's
        ``z_q`` before that value arrived (for DSPOT in units of the deviation
        from the local mean; the level in units of the data is
        ``local_mean + z_q``).
    local_mean : ndarray, same shape, float64, or None
        DSPOT only: the mean of the column's last ``depth`` non-alarm values
        before each value arrived.
    """

    alarm: np.ndarray
    z_q: np.ndarray
    local_mean: np.ndarray | None = None

    def to_dict(self):
        """One line per alarm, by row then column: ``row``, ``column``, ``z_q`` (and ``local_mean``)."""
        rows, cols = np.nonzero(np.atleast_2d(self.alarm))
        table = {"row": rows, "column": cols, "z_q": np.atleast_2d(self.z_q)[rows, cols]}
        if self.local_mean is not None:
            table["local_mean"] = np.atleast_2d(self.local_mean)[rows, cols]
        return table

    def __repr__(self):
        shape = np.atleast_2d(self.alarm).shape
        return f"SPOTResult({int(self.alarm.sum())} alarm(s) in {shape[0]} row(s) x {shape[1]} column(s))"


class SPOT:
    """SPOT detectors, one per column, updated row by row (Siffer et al. 2017).

    :meth:`fit` calibrates each column on an initial block: the threshold
    ``t`` is its empirical ``level`` quantile (:class:`evtools.Quantile`), the
    peaks are the excesses ``x - t`` of the values above it, a GPD is fitted
    to them and the anomaly threshold is::

        z_q = t + (sigma / xi) ((q n / N_t)^(-xi) - 1)      (t - sigma log(q n / N_t) at xi = 0)

    with ``n`` the values counted and ``N_t`` the peaks. :meth:`update` then
    takes each new value ``x`` in turn: ``x > z_q`` is an alarm and is left
    out of the model; otherwise ``n`` grows by one, and if ``x > t`` the
    excess ``x - t`` joins the peaks, the GPD is refitted and ``z_q``
    recomputed. The threshold ``t`` stays fixed.

    Parameters
    ----------
    q : float in (0, 1)
        Risk: the probability of a value above ``z_q``, i.e. the false-alarm
        rate on a stationary stream. Keep it below ``1 - level`` (otherwise
        ``z_q`` falls below ``t``).
    level : float in (0, 1) or ThresholdRule
        Quantile of the calibration block used as the threshold ``t``; or
        any threshold rule applied to the calibration block, such as
        ``evtools.Fixed(u)`` (one threshold, or one per column) or
        ``evtools.TopK(k)``. Peaks are values strictly above ``t``.
    min_exceed : int >= 2
        Fewest peaks for a GPD fit. With fewer, or when the fit fails, the
        tail is exponential with the mean excess as scale (as in
        :class:`evtools.TailModel`); with no peak ``z_q = t``.
    method : {"mle", "pwm", "pwmb", "zhang", "mom"}
        GPD estimator (see :func:`evtools.gpd_fit`); default the exact MLE.
    refit_every : int >= 1
        Refit a column once this many new peaks have arrived in it. 1 (the
        default) is SPOT exactly; larger values refit less often, so ``z_q``
        lags behind the peaks by up to ``refit_every - 1`` of them, for speed.

    Attributes
    ----------
    threshold_ : ndarray, shape (n_cols,), float64
        ``t`` per column.
    z_q_ : ndarray, shape (n_cols,), float64
        Current anomaly threshold per column.
    sigma_, xi_ : ndarray, shape (n_cols,), float64
        Current GPD parameters (``sigma_ = inf`` for a column without peaks).
    status_ : ndarray, shape (n_cols,), int8
        :class:`evtools.Status` of the latest fit.
    n_peaks_, n_obs_, n_alarms_ : ndarray, shape (n_cols,), int64
        Peaks ``N_t``, values counted ``n`` (calibration values plus non-alarm
        updates), and alarms raised by :meth:`update`.
    n_features_in_ : int

    Notes
    -----
    Differences from Siffer et al.'s reference code, all deliberate:

    - The GPD fit is the exact maximum likelihood (:func:`evtools.gpd_fit`
      with ``"mle"``), not Grimshaw's grid search with L-BFGS-B (whose
      exponential log-likelihood also has the wrong sign; see
      :class:`evtools.POTSaliency`).
    - ``t`` interpolates between order statistics like ``numpy.quantile``
      (the code takes the order statistic at ``int(level * n)``), so the
      calibration fit equals ``evtools.fit_tails(X_init, Quantile(level))``.
    - Peaks are kept sorted, so a fit does not depend on arrival order.
    - Columns with few peaks fall back to an exponential tail (see
      ``min_exceed``), and a column without peaks alarms on anything above
      ``t``.

    Memory and refit time grow with the peaks, as in the paper: every
    non-alarm value above ``t`` (about ``1 - level`` of the stream) is kept.

    Examples
    --------
    >>> spot = SPOT(q=1e-4, level=0.98).fit(G_init)      # doctest: +SKIP
    >>> for row in stream:                                # doctest: +SKIP
    ...     alarms = spot.update(row).alarm               # (n_cols,) bool
    """

    _params = ("q", "level", "min_exceed", "method", "refit_every")
    _STATE = ("threshold_", "z_q_", "sigma_", "xi_", "status_", "n_peaks_", "n_obs_",
              "n_alarms_", "_pending", "_window", "_head")
    depth = 0

    def __init__(self, q=1e-4, level=0.98, *, min_exceed=10, method="mle", refit_every=1):
        self.q = q
        self.level = level
        self.min_exceed = min_exceed
        self.method = method
        self.refit_every = refit_every

    # ------------------------------------------------------------ parameters
    def _check_params(self):
        check_probability(self.q, "q")
        self._rule()
        check_method(self.method)
        check_int(self.min_exceed, "min_exceed", low=2)
        check_int(self.refit_every, "refit_every")

    def _rule(self):
        if isinstance(self.level, ThresholdRule):
            return self.level
        return Quantile(check_probability(self.level, "level"))

    def _kernel_args(self):
        return float(self.q), check_method(self.method), int(self.min_exceed)

    def __repr__(self):
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------ fitting
    def _calibration_values(self, XT):
        """(values the tail is calibrated on (n_cols, n), window (n_cols, depth))."""
        return XT, np.empty((XT.shape[0], 0))

    def fit(self, X_init):
        """Calibrate every column on an initial block.

        Parameters
        ----------
        X_init : array_like, shape (n_init, n_cols)
            Finite values, one column per series (DSPOT needs more than
            ``depth`` rows).

        Returns
        -------
        self
        """
        self._check_params()
        X = as_matrix(X_init, "X_init", min_rows=self.depth + 1)
        XT = np.ascontiguousarray(X.T, dtype=np.float64)
        T, self._window = self._calibration_values(XT)
        t = np.ascontiguousarray(self._rule().select(T.T), dtype=np.float64)  # sorted block by block
        capacity = max(_MIN_CAPACITY, 1 << int((T > t[:, None]).sum(axis=1).max()).bit_length())
        q, method, min_exceed = self._kernel_args()
        (self._peaks, self.n_peaks_, self.sigma_, self.xi_, self.status_,
         self.z_q_) = spot_kernels.calibrate(T, t, q, method, min_exceed, capacity)
        n_cols = XT.shape[0]
        self.threshold_ = t
        self.n_obs_ = np.full(n_cols, T.shape[1], dtype=np.int64)
        self.n_alarms_ = np.zeros(n_cols, dtype=np.int64)
        self._pending = np.zeros(n_cols, dtype=np.int64)
        self._head = np.zeros(n_cols, dtype=np.int64)
        self.n_features_in_ = n_cols
        return self

    def _check_is_fitted(self):
        if not hasattr(self, "z_q_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X_init) first")

    # ------------------------------------------------------------ streaming
    def _reserve(self, remaining):
        """Grow the peak buffer (doubling) if needed; return how many rows fit without overflow."""
        capacity = self._peaks.shape[1]
        most = int(self.n_peaks_.max())
        want = min(remaining, max(capacity // 2, 1))
        if capacity - most < want:
            grown = np.zeros((self._peaks.shape[0], max(2 * capacity, most + want)))
            grown[:, :capacity] = self._peaks
            self._peaks = grown
        return min(remaining, self._peaks.shape[1] - most)

    def update(self, rows):
        """Score new rows in arrival order and fold the non-alarm values into the model.

        Parameters
        ----------
        rows : array_like, shape (n_rows, n_cols) or (n_cols,)
            Finite values; a 1-D array is one row. ``n_rows`` may be 0.

        Returns
        -------
        SPOTResult
            ``alarm`` and ``z_q`` (and DSPOT's ``local_mean``), each of the
            shape of ``rows``.
        """
        self._check_is_fitted()
        one_row = np.ndim(rows) == 1
        X = as_matrix(np.atleast_2d(rows) if one_row else rows, "rows", min_rows=0, finite=False)
        check_columns(X, self.n_features_in_, "rows")
        XT = np.ascontiguousarray(X.T, dtype=np.float64)
        if not np.isfinite(XT).all():  # (a numpy pass: no parallel launch for a single row)
            check_finite(X, "rows")
        n_cols, n_rows = XT.shape
        q, method, min_exceed = self._kernel_args()
        parts = []
        start = 0
        while start < n_rows or not parts:
            stop = start + self._reserve(n_rows - start)
            chunk = np.ascontiguousarray(XT[:, start:stop])
            alarm = np.empty(chunk.shape, dtype=np.bool_)
            z_out = np.empty(chunk.shape)
            m_out = np.empty(chunk.shape if self.depth else (0, 0))
            spot_kernels.stream(chunk, q, method, min_exceed, int(self.refit_every), self.threshold_,
                      self._peaks, self.n_peaks_, self.n_obs_, self._pending, self.sigma_,
                      self.xi_, self.status_, self.z_q_, self._window, self._head,
                      alarm, z_out, m_out)
            parts.append((alarm, z_out, m_out))
            start = stop
        alarm, z_out, m_out = (np.concatenate(p, axis=1).T for p in zip(*parts))
        self.n_alarms_ += alarm.sum(axis=0)
        local_mean = m_out if self.depth else None
        if one_row:
            alarm, z_out = alarm[0], z_out[0]
            local_mean = None if local_mean is None else local_mean[0]
        return SPOTResult(alarm, z_out, local_mean)

    def peaks(self, column):
        """The peaks (excesses over the threshold) of one column, ascending.

        Parameters
        ----------
        column : int

        Returns
        -------
        ndarray, shape (n_peaks_[column],), float64 (a copy)
        """
        self._check_is_fitted()
        column = check_int(column, "column", low=-INT_MAX)
        if not -self.n_features_in_ <= column < self.n_features_in_:
            raise InvalidInputError(f"column {column} out of range for {self.n_features_in_} columns")
        return self._peaks[column, :self.n_peaks_[column]].copy()

    # ------------------------------------------------------------ I/O
    def save(self, path):
        """Write the parameters and the full streaming state to an ``.npz`` file, atomically.

        ``.npz`` is appended unless the name ends with it; returns the path written (pathlib.Path).
        """
        self._check_is_fitted()
        meta = {"kind": type(self).__name__, "format": 1,
                "params": {k: getattr(self, k) for k in self._params}}
        if isinstance(self.level, ThresholdRule):
            meta["params"]["level"] = self.level.to_dict()
        most = int(self.n_peaks_.max())
        return save_npz(path, {"meta": json.dumps(meta, default=lambda v: v.item()), "peaks": self._peaks[:, :most],
                               **{k.strip("_"): getattr(self, k) for k in self._STATE}})

    @classmethod
    def load(cls, path):
        """Read a detector written by :meth:`save` (a :class:`SPOT` or a :class:`DSPOT`).

        Updating the loaded detector gives what updating the saved one would have.
        The file (with or without its ``.npz`` suffix) is checked before any
        kernel sees it: damage raises :class:`evtools.FileFormatError`.
        """
        f = SavedFile(path, "detector", "SPOT.save")
        meta = f.meta()
        kinds = {"SPOT": SPOT, "DSPOT": DSPOT}
        f.check(meta.get("kind") in kinds, f"unknown detector kind {meta.get('kind')!r}")
        params = meta.get("params")
        f.check(isinstance(params, dict), "meta has no parameters")
        try:
            if isinstance(params.get("level"), dict):  # a threshold rule (ev.Fixed) saved by to_dict
                params["level"] = ThresholdRule.from_dict(params["level"])
            self = kinds[meta["kind"]](**params)
            self._check_params()
        except (TypeError, InvalidInputError) as exc:
            f.fail(f"bad parameters {params!r} ({exc})")
        t = f.array("threshold", np.float64, (None,))
        F = t.shape[0]
        f.check(F >= 1, "it has no columns")
        state = {"threshold_": t}
        for name, dtype in (("z_q_", np.float64), ("sigma_", np.float64), ("xi_", np.float64),
                            ("status_", np.int8), ("n_peaks_", np.int64), ("n_obs_", np.int64),
                            ("n_alarms_", np.int64), ("_pending", np.int64), ("_head", np.int64)):
            state[name] = f.array(name.strip("_"), dtype, (F,))
        state["_window"] = f.array("window", np.float64, (F, int(self.depth)))
        peaks = f.array("peaks", np.float64, (F, None))
        n_peaks, sigma = state["n_peaks_"], state["sigma_"]
        m = peaks.shape[1]
        kept = np.arange(m)[None, :] < n_peaks[:, None]
        with np.errstate(invalid="ignore"):
            ascending = np.where(kept[:, 1:], np.diff(peaks, axis=1) >= 0, True) if m > 1 else np.ones((F, 0), bool)
        checks = [
            (np.isfinite(t), "threshold is not finite"),
            (~np.isnan(state["z_q_"]), "z_q is NaN"),
            ((sigma > 0) & (np.isfinite(sigma) | (n_peaks == 0)), "sigma is not positive (or infinite with peaks)"),
            (np.isfinite(state["xi_"]), "xi is not finite"),
            (np.isin(state["status_"], [int(s) for s in Status]), "status is not a Status code"),
            ((n_peaks >= 0) & (n_peaks <= m), f"n_peaks is outside [0, {m}] (the peaks stored)"),
            ((state["n_obs_"] >= np.maximum(n_peaks, 1)), "n_obs is below the peaks (or 0)"),
            (state["n_alarms_"] >= 0, "n_alarms is negative"),
            ((state["_pending"] >= 0) & (state["_pending"] < int(self.refit_every)),
             "pending is outside [0, refit_every)"),
            ((state["_head"] >= 0) & (state["_head"] < max(int(self.depth), 1)), "head is outside the window"),
            (np.isfinite(state["_window"]).all(axis=1), "window is not finite"),
            (np.where(kept, np.isfinite(peaks) & (peaks > 0), True).all(axis=1), "a peak is not finite and > 0"),
            (ascending.all(axis=1), "peaks are not ascending"),
        ]
        f.check_columns(checks)
        for k, v in state.items():
            setattr(self, k, v.copy())
        self._peaks = np.zeros((F, max(_MIN_CAPACITY, 2 * m)))
        self._peaks[:, :m] = peaks
        self.n_features_in_ = F
        return self


class DSPOT(SPOT):
    """SPOT on the deviation from a moving local mean, to follow drift (Siffer et al. 2017).

    Each value ``x`` of a column is replaced by ``x - M``, where ``M`` is the
    mean of the column's last ``depth`` non-alarm values; SPOT (see
    :class:`SPOT`) then runs on these deviations. Calibration on ``X_init``
    uses its rows from ``depth`` on, each minus the mean of the ``depth``
    rows before it (as in the reference code); its last ``depth`` rows
    start the window. An alarm does not enter the window.

    Parameters
    ----------
    depth : int >= 1
        Length of the moving window.
    q, level, min_exceed, method, refit_every
        As for :class:`SPOT`.

    Attributes
    ----------
    As for :class:`SPOT`; ``threshold_`` and ``z_q_`` are in units of the
    deviation from the local mean, and ``n_obs_`` starts at
    ``n_init - depth``.
    """

    _params = ("depth",) + SPOT._params

    def __init__(self, depth, q=1e-4, level=0.98, *, min_exceed=10, method="mle", refit_every=1):
        super().__init__(q, level, min_exceed=min_exceed, method=method, refit_every=refit_every)
        self.depth = depth

    def _check_params(self):
        check_int(self.depth, "depth")
        super()._check_params()

    def _calibration_values(self, XT):
        d = int(self.depth)
        return spot_kernels.drift_residuals(XT, d), np.ascontiguousarray(XT[:, -d:])
