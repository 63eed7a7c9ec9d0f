"""The generalized Pareto distribution (GPD) and its single-sample estimators.

:class:`GPD` is a vectorised GPD with location 0, equal to
``scipy.stats.genpareto(xi, loc=0, scale=sigma)``; :func:`gpd_fit` fits one
sample of exceedances. The math lives in the numba kernels of
``evtools._kernels.gpd``, which column-wise code calls directly.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numba import vectorize

from ._errors import InvalidInputError
from ._kernels import gpd as gpd_kernels
from ._kernels import return_levels as return_kernels
from ._status import OK, XI_BOUNDARY, Status
from ._validation import _as_float_array, as_sample, check_int, check_probability, check_random_state

MAX_DRAWS = 2**40
"""Largest ``size`` per axis of :meth:`GPD.rvs`."""

__all__ = ["GPD", "GPDFit", "gpd_fit"]

_SIG = ["float64(float64, float64, float64)"]


@functools.cache
def _ufunc(scalar):
    """The float64 ufunc of a scalar function below, compiled (or loaded from numba's cache) on first use."""
    return vectorize(_SIG, cache=True)(scalar)


def _logsf(x, sigma, xi):
    return gpd_kernels.gpd_logsf_scalar(x, sigma, xi)


def _sf(x, sigma, xi):
    return math.exp(gpd_kernels.gpd_logsf_scalar(x, sigma, xi))


def _cdf(x, sigma, xi):
    return -math.expm1(gpd_kernels.gpd_logsf_scalar(x, sigma, xi))


def _logpdf(x, sigma, xi):
    return gpd_kernels.gpd_logpdf_scalar(x, sigma, xi)


def _pdf(x, sigma, xi):
    return math.exp(gpd_kernels.gpd_logpdf_scalar(x, sigma, xi))


def _isf(q, sigma, xi):
    if not (q >= 0.0 and q <= 1.0):
        return math.nan
    return gpd_kernels.gpd_quantile_from_logsf(math.log(q), sigma, xi)


def _ppf(p, sigma, xi):
    if not (p >= 0.0 and p <= 1.0):
        return math.nan
    return gpd_kernels.gpd_quantile_from_logsf(math.log1p(-p), sigma, xi)


def _from_exponential(e, sigma, xi):
    return gpd_kernels.gpd_quantile_from_logsf(-e, sigma, xi)


def _as_param(value, name):
    arr = _as_float_array(value, name).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return arr


def _scalar_or_array(arr):
    return arr[()] if arr.ndim == 0 else arr


class GPD:
    """Generalized Pareto distribution with location 0, vectorised over parameters.

    ``S(x) = (1 + xi x / sigma) ** (-1 / xi)`` for ``x >= 0``, ``exp(-x / sigma)``
    at ``xi = 0``; for ``xi < 0`` the support ends at ``sigma / -xi``. Every
    method equals the same method of
    ``scipy.stats.genpareto(xi, loc=0, scale=sigma)`` (except :meth:`var`,
    see there), and is computed without cancellation at and near ``xi = 0``
    (scipy's ``cdf`` loses every digit for ``0 < |xi| < ~1e-200``; this one
    does not).

    Parameters
    ----------
    sigma : array_like of float
        Scale, finite and ``> 0``.
    xi : array_like of float
        Shape, finite. Broadcasts with ``sigma``.

    Notes
    -----
    Methods broadcast their argument against ``sigma`` and ``xi`` (numpy
    rules) and return a float for all-scalar input, else an ndarray. NaN
    arguments give NaN.

    Examples
    --------
    >>> import evtools as ev
    >>> d = ev.GPD(sigma=2.0, xi=0.25)
    >>> float(d.isf(0.01))
    17.29...
    """

    def __init__(self, sigma, xi):
        sigma = _as_param(sigma, "sigma")
        xi = _as_param(xi, "xi")
        if np.any(sigma <= 0):
            raise InvalidInputError(
                f"sigma must be > 0, got {sigma[sigma <= 0].ravel()[0]}; the GPD scale is positive"
            )
        try:
            sigma, xi = np.broadcast_arrays(sigma, xi)
        except ValueError as exc:
            raise InvalidInputError(
                f"sigma (shape {sigma.shape}) and xi (shape {xi.shape}) do not broadcast together"
            ) from exc
        self._sigma = sigma
        self._xi = xi

    @property
    def sigma(self):
        """Scale (float, or ndarray of the broadcast parameter shape)."""
        return _scalar_or_array(self._sigma)

    @property
    def xi(self):
        """Shape (float, or ndarray of the broadcast parameter shape)."""
        return _scalar_or_array(self._xi)

    def __repr__(self):
        if self._sigma.ndim == 0:
            return f"GPD(sigma={float(self._sigma):.6g}, xi={float(self._xi):.6g})"
        return f"GPD(sigma=<array {self._sigma.shape}>, xi=<array {self._xi.shape}>)"

    def _apply(self, ufunc, x, name):
        x = _as_float_array(x, name)
        try:
            np.broadcast_shapes(x.shape, self._sigma.shape)
        except ValueError as exc:
            raise InvalidInputError(
                f"{name} (shape {x.shape}) does not broadcast with the parameters "
                f"(shape {self._sigma.shape})"
            ) from exc
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf is an answer
            return _scalar_or_array(np.asarray(ufunc(x, self._sigma, self._xi)))

    def pdf(self, x):
        """Density at ``x``; 0 outside the support (``+inf`` at the end point if ``xi < -1``)."""
        return self._apply(_ufunc(_pdf), x, "x")

    def logpdf(self, x):
        """Log density at ``x``; ``-inf`` outside the support."""
        return self._apply(_ufunc(_logpdf), x, "x")

    def cdf(self, x):
        """``P(X <= x)``."""
        return self._apply(_ufunc(_cdf), x, "x")

    def sf(self, x):
        """Survival function ``P(X > x)``."""
        return self._apply(_ufunc(_sf), x, "x")

    def logsf(self, x):
        """``log P(X > x)``: finite wherever it is representable, ``-inf`` beyond the end point."""
        return self._apply(_ufunc(_logsf), x, "x")

    def isf(self, q):
        """Inverse survival function: ``x`` with ``P(X > x) = q``; NaN for ``q`` outside [0, 1]."""
        return self._apply(_ufunc(_isf), q, "q")

    def ppf(self, p):
        """Quantile function: ``x`` with ``P(X <= x) = p``; NaN for ``p`` outside [0, 1]."""
        return self._apply(_ufunc(_ppf), p, "p")

    def mean(self):
        """``sigma / (1 - xi)``; ``inf`` for ``xi >= 1``."""
        with np.errstate(divide="ignore"):
            out = np.where(self._xi < 1, self._sigma / (1 - self._xi), np.inf)
        return _scalar_or_array(out)

    def var(self):
        """``sigma**2 / ((1 - xi)**2 (1 - 2 xi))``; ``inf`` for ``xi >= 1/2``.

        scipy returns NaN for ``xi >= 1/2``; the second moment is infinite there,
        so this returns ``inf``.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(
                self._xi < 0.5,
                self._sigma**2 / ((1 - self._xi) ** 2 * (1 - 2 * self._xi)),
                np.inf,
            )
        return _scalar_or_array(out)

    def rvs(self, size=None, random_state=None):
        """Random draws, as ``isf`` of uniforms (exactly: of ``exp(-E)``, E ~ Exp(1)).

        Parameters
        ----------
        size : int or tuple of int, optional
            Output shape; the parameters must broadcast to it. Default: the
            parameter shape.
        random_state : None, int, numpy.random.Generator or RandomState
            Seed or generator.

        Returns
        -------
        float or ndarray, shape ``size``
        """
        if size is None:
            shape = self._sigma.shape
        else:
            dims = (size,) if np.ndim(size) == 0 else size
            shape = tuple(check_int(d, "size", low=0, high=MAX_DRAWS) for d in dims)
        try:
            sigma = np.broadcast_to(self._sigma, shape)
            xi = np.broadcast_to(self._xi, shape)
        except ValueError as exc:
            raise InvalidInputError(
                f"size {shape} does not fit the parameter shape {self._sigma.shape}; "
                "pass a size the parameters broadcast to"
            ) from exc
        e = check_random_state(random_state).standard_exponential(shape)
        with np.errstate(over="ignore"):  # heavy tails: draws beyond 1.8e308 are inf
            return _scalar_or_array(np.asarray(_ufunc(_from_exponential)(e, sigma, xi)))


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class GPDFit:
    """Result of :func:`gpd_fit`.

    Attributes
    ----------
    sigma, xi : float
        Estimates (NaN when ``status == CONSTANT``).
    loglik : float
        GPD log-likelihood of the sample at the estimate (``-inf`` when an
        estimator other than MLE puts a value outside the fitted support).
    n : int
        Sample size.
    method : str
        ``"mle"``, ``"pwm"``, ``"pwmb"``, ``"zhang"`` or ``"mom"``.
    converged : bool
        The estimate is usable: status ``OK`` or ``XI_BOUNDARY``.
    status : evtools._status.Status
        ``OK``, ``CONSTANT``, ``NOT_CONVERGED``, ``XI_BOUNDARY`` or
        ``NO_MAXIMUM`` (MLE only: the likelihood has no interior maximum; the
        exponential ``sigma = mean(x)``, ``xi = 0`` is returned, not converged).
    se_sigma, se_xi : float
        Standard errors (MLE only; NaN otherwise and where not available).
    cov : ndarray, shape (2, 2)
        Covariance of ``(sigma, xi)`` (MLE only; NaN otherwise). Its
        ``(sigma, sigma)`` entry is in the data's squared units: inf (or 0)
        where ``sigma**2`` leaves the float64 range; ``se_sigma`` stays finite.
    sample : ndarray, shape (n,)
        The exceedances fitted (float64; used by :meth:`confint`).
    """

    sigma: float
    xi: float
    loglik: float
    n: int
    method: str
    converged: bool
    status: Status
    se_sigma: float
    se_xi: float
    cov: np.ndarray
    sample: np.ndarray = None

    def confint(self, alpha=0.05, method="profile"):
        """Confidence intervals of ``sigma`` and ``xi``.

        Parameters
        ----------
        alpha : float in (0, 1)
            1 - confidence level.
        method : {"profile", "wald"}
            * ``"profile"``: ``{psi : 2 (loglik - profile(psi)) <= chi2_1(1 - alpha)}``,
              the other parameter maximised out (Coles 2001, section 2.6.6).
              ``xi`` is searched down to -1 (where the likelihood becomes
              unbounded): a lower end of exactly -1 means the profile is
              still above the cut there. An upper end the profile never
              reaches is ``inf``.
            * ``"wald"``: estimate -+ ``z * se`` from the observed information.

        Returns
        -------
        dict
            ``{"sigma": (lower, upper), "xi": (lower, upper)}`` of floats; NaN
            where the status is not OK (and for ``"wald"`` where the standard
            errors are NaN, ``xi <= -1/2``).

        Raises
        ------
        InvalidInputError
            The fit is not maximum likelihood, or ``method``/``alpha`` is invalid.
        """
        alpha = check_probability(alpha, "alpha")
        if method not in ("profile", "wald"):
            raise InvalidInputError(f"unknown method {method!r}; choose 'profile' or 'wald'")
        if self.method != "mle":
            raise InvalidInputError(
                f"likelihood-based intervals need a maximum-likelihood fit, this one is {self.method!r}; "
                "use gpd_fit(x, method='mle')")
        nan = (math.nan, math.nan)
        if self.status != OK:
            return {"sigma": nan, "xi": nan}
        from scipy import stats  # on use: scipy.stats costs 0.4 s to import

        if method == "wald":
            z = float(stats.norm.isf(alpha / 2))
            return {"sigma": (self.sigma - z * self.se_sigma, self.sigma + z * self.se_sigma),
                    "xi": (self.xi - z * self.se_xi, self.xi + z * self.se_xi)}
        half = float(stats.chi2.isf(alpha, 1)) / 2
        y = np.ascontiguousarray(self.sample, dtype=np.float64)
        step_s = self.se_sigma if np.isfinite(self.se_sigma) else 0.5 * self.sigma
        step_x = self.se_xi if np.isfinite(self.se_xi) else 0.1
        s_lo, s_hi = return_kernels.profile_interval(y, return_kernels.PROF_SIGMA, self.sigma, 1.0, self.xi, self.sigma,
                                          self.loglik, half, step_s, 0.0)
        x_lo, x_hi = return_kernels.profile_interval(y, return_kernels.PROF_XI, self.xi, 1.0, self.xi, self.sigma,
                                          self.loglik, half, step_x, -1.0)
        return {"sigma": (float(s_lo), float(s_hi)), "xi": (float(x_lo), float(x_hi))}

    @property
    def dist(self):
        """The fitted distribution, ``GPD(sigma, xi)``."""
        if not (np.isfinite(self.sigma) and np.isfinite(self.xi)):
            raise InvalidInputError(
                f"this fit has no distribution (status {self.status.name}): the sample had no spread"
            )
        return GPD(self.sigma, self.xi)

    def __repr__(self):
        def se(v):
            return f" ± {v:.3g}" if np.isfinite(v) else ""

        return (
            f"GPDFit(method={self.method!r}, sigma={self.sigma:.6g}{se(self.se_sigma)}, "
            f"xi={self.xi:.6g}{se(self.se_xi)}, loglik={self.loglik:.6g}, n={self.n}, "
            f"status={self.status.name})"
        )


METHODS = tuple(gpd_kernels.METHODS)  #: the estimators' names (the registry is ``_kernels.gpd.METHODS``)


def check_method(method, name="method"):
    """The kernel code of the GPD estimator named ``method``; InvalidInputError if there is none.

    The one check of an estimator name (``gpd_fit``, ``fit_tails``, ``SPOT``,
    the goodness-of-fit tests), against the registry ``_kernels.gpd.METHODS``.
    """
    if not isinstance(method, str) or method not in gpd_kernels.METHODS:
        raise InvalidInputError(f"unknown {name} {method!r}; {name} must be one of "
                                f"{', '.join(map(repr, METHODS))} (the GPD estimators)")
    return gpd_kernels.METHODS[method]


def gpd_fit(x, method="mle"):
    """Fit a GPD (location 0) to one sample of exceedances.

    Parameters
    ----------
    x : array_like, shape (n,)
        Exceedances over a threshold: finite, ``>= 0``, at least 2 values.
        float32 and integer input is converted to float64.
    method : {"mle", "pwm", "pwmb", "zhang", "mom"}
        * ``"mle"``: exact maximum likelihood (Grimshaw 1993): the profile
          likelihood over ``theta = xi / sigma`` is searched on both sides of
          the exponential and every local maximum is compared with the
          exponential and the ``xi = -1`` boundary. The likelihood is
          unbounded for ``xi < -1`` (as ``sigma / -xi`` approaches
          ``max(x)``), so ``xi`` is restricted to ``>= -1``; when the best fit
          is on that boundary it is the uniform ``sigma = max(x)``,
          ``xi = -1`` with status ``XI_BOUNDARY``. With zeros in the sample
          the likelihood also grows without bound as ``xi -> inf``; that
          degenerate direction is left out; when no interior maximum remains
          (e.g. ``[0, 0, 0.5, 1, 2, 3.5]``) the exponential is returned with
          status ``NO_MAXIMUM``. Standard errors come from the
          observed information (the analytic Hessian of the log-likelihood
          in ``(sigma, xi)`` at the estimate, inverted); they are NaN for
          ``xi <= -1/2``, where the usual asymptotics fail, and where the
          information is singular.
        * ``"pwm"``: probability-weighted moments with the unbiased
          estimator ``a1 = mean((n - i) / (n - 1) x_(i))`` (ascending order
          statistics), i.e. the L-moment estimator (R POT's ``"pwmu"``).
        * ``"pwmb"``: probability-weighted moments with the plotting
          positions ``(i - 0.35) / n`` of Hosking & Wallis (1987) (R POT's
          ``"pwmb"``). On the Danish fire losses above 10 the two give xi
          0.517 and 0.510.
        * ``"zhang"``: the empirical Bayes estimator of Zhang & Stephens
          (2009) with their grid of ``m = 20 + floor(sqrt(n))`` points.
        * ``"mom"``: method of moments (mean and variance with ``ddof=1``).

    Returns
    -------
    GPDFit
        A sample without spread (all values equal, e.g. all zero) is not an
        error: it returns status ``CONSTANT`` with NaN estimates.

    Raises
    ------
    InvalidInputError
        ``x`` is not 1-D, holds NaN, inf or negative values, has fewer than
        2 values, or ``method`` is unknown.
    """
    code = check_method(method)
    y = as_sample(x, "x", min_size=2)
    if y.min() < 0:
        i = int(np.argmin(y))
        raise InvalidInputError(
            f"x holds a negative value ({y[i]}) at index {i}; pass exceedances "
            "(values minus the threshold, all >= 0)"
        )
    rel_cov = np.full((2, 2), np.nan)
    sigma, xi, loglik, status = gpd_kernels.fit_by_code(y, code)
    if method == "mle" and status == OK:  # of (sigma_hat / sigma, xi_hat), computed in units of sigma
        c_ss, c_sx, c_xx = return_kernels.relative_cov(y, sigma, xi)
        rel_cov = np.array([[c_ss, c_sx], [c_sx, c_xx]])
    status = Status(status)
    scale = np.array([sigma, 1.0])
    with np.errstate(over="ignore", under="ignore"):  # sigma**2 beyond float64: inf or 0, as documented
        cov = rel_cov * np.outer(scale, scale)
    return GPDFit(
        sigma=float(sigma),
        xi=float(xi),
        loglik=float(loglik),
        n=int(y.size),
        method=method,
        converged=status in (OK, XI_BOUNDARY),
        status=status,
        se_sigma=float(sigma * np.sqrt(rel_cov[0, 0])),
        se_xi=float(np.sqrt(rel_cov[1, 1])),
        cov=cov,
        sample=np.array(y),  # a copy: the fit does not follow later changes to x
    )
