"""Plain one-series SPOT and DSPOT (Siffer et al., KDD 2017, Algorithms 1 and 2), slow and obvious.

Written from the paper and the documented rules of :class:`evtools.SPOT`,
independently of the numba kernels: Python floats and lists, one value at a
time. Where the paper leaves a choice, the choice of ``evtools.SPOT`` is
made here too, so that the two agree exactly, column for column:

- the threshold is the ``level`` quantile with linear interpolation between
  order statistics (``numpy.quantile``'s default rule);
- the GPD is fitted with ``evtools.gpd_fit(peaks, method)`` on the peaks in
  ascending order; with fewer than ``min_exceed`` peaks or a failed fit the
  tail is exponential with the mean excess as scale;
- ``z_q = t + (sigma / xi) ((q n / N_t)^(-xi) - 1)`` is computed as
  ``t + sigma expm1(-xi log r) / xi`` (the same number without cancellation),
  ``t - sigma log r`` for ``|xi| < 1e-12``, and ``t`` without peaks;
- means are sums from the oldest value to the newest, divided by the count.
"""
import bisect
import math
from collections import deque

import numpy as np

import evtools as ev
from evtools._status import CONSTANT, OK, TOO_FEW, XI_BOUNDARY


def linear_quantile(values, level):
    s = sorted(values)
    h = level * (len(s) - 1)
    lo = math.floor(h)
    if lo >= len(s) - 1:
        return s[-1]
    frac = h - lo
    return s[lo] if frac == 0.0 else s[lo] + frac * (s[lo + 1] - s[lo])


def plain_mean(values):
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


class NaiveSPOT:
    """SPOT on one series (Algorithm 1), with ``refit_every`` peaks between refits."""

    def __init__(self, q, level, min_exceed=10, method="mle", refit_every=1):
        self.q = q
        self.level = level
        self.min_exceed = min_exceed
        self.method = method
        self.refit_every = refit_every

    def fit(self, init):
        init = [float(v) for v in init]
        self.t = linear_quantile(init, self.level)
        self.peaks = sorted(x - self.t for x in init if x > self.t)
        self.n = len(init)
        self.pending = 0
        self._refit()
        if not self.peaks and min(init) == max(init):
            self.status = CONSTANT
        return self

    def _refit(self):
        k = len(self.peaks)
        if k == 0:
            self.sigma, self.xi, self.status, self.z_q = math.inf, 0.0, TOO_FEW, self.t
            return
        status = TOO_FEW
        if k >= self.min_exceed:
            fit = ev.gpd_fit(np.array(self.peaks), method=self.method)
            status = int(fit.status)
        if status in (OK, XI_BOUNDARY):
            sigma, xi = float(fit.sigma), float(fit.xi)
        else:
            sigma, xi = plain_mean(self.peaks), 0.0
        log_r = math.log(self.q * self.n / k)
        if abs(xi) < 1e-12:
            z_q = self.t - sigma * log_r
        else:
            try:
                growth = math.expm1(-xi * log_r)
            except OverflowError:  # numba (and IEEE) give inf
                growth = math.inf
            z_q = self.t + sigma * growth / xi
        self.sigma, self.xi, self.status, self.z_q = sigma, xi, status, z_q

    def step(self, x):
        """Score one value: ``(alarm, z_q it was compared with)``."""
        return self._step(float(x), float(x))

    def _step(self, v, x):
        z = self.z_q
        if v > z:
            return True, z
        self.n += 1
        self._counted(x)
        if v > self.t:
            bisect.insort(self.peaks, v - self.t)
            self.pending += 1
            if self.pending >= self.refit_every:
                self.pending = 0
                self._refit()
        return False, z

    def _counted(self, x):
        pass


class NaiveDSPOT(NaiveSPOT):
    """DSPOT on one series (Algorithm 2): SPOT on ``x - mean(last depth normal values)``."""

    def __init__(self, depth, q, level, **kwargs):
        super().__init__(q, level, **kwargs)
        self.depth = depth

    def fit(self, init):
        init = [float(v) for v in init]
        d = self.depth
        residuals = [init[i] - plain_mean(init[i - d:i]) for i in range(d, len(init))]
        super().fit(residuals)
        self.window = deque(init[-d:], maxlen=d)
        return self

    def step(self, x):
        """Score one value: ``(alarm, z_q it was compared with, local mean)``."""
        x = float(x)
        m = plain_mean(self.window)
        alarm, z = self._step(x - m, x)
        return alarm, z, m

    def _counted(self, x):
        self.window.append(x)


def run(detector, init, stream):
    """Fit on ``init`` and step through ``stream``; returns the per-value outputs as arrays."""
    detector.fit(init)
    out = [detector.step(x) for x in stream]
    return tuple(np.array(c) for c in zip(*out)) if out else ()
