"""The exact GPD MLE kernel per column: today's ``mle_fit`` against the kernel before issue 14.

Usage:  python benchmarks/bench_mle.py [--cols 2000] [--repeats 5]

Builds exceedance samples the way ``fit_tails`` does (a 20,000-row float32
column, threshold at its 0.98 quantile, excesses in float64) from several
families, plus short samples of 30 and 100 exceedances, and times both
kernels on the same samples in one thread (best of ``--repeats`` passes).
Prints microseconds per column, the ratio, and the largest differences
between the two fits (sigma relative, xi absolute, the log-likelihood's
least and largest gain; statuses must agree). The old kernel stopped its
root search at 1e-10 in ``v = log1p(theta max(y))``, so its ``xi`` is off by
up to about 1e-10 (tests/test_gpd_fit.py checks against 40-digit roots).
The old kernel is ``tests/reference/gpd_mle_v1.py``, which also hands over
today's (run from the repository root so that ``tests`` is importable).
"""
import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _machine import machine_report  # noqa: E402  (benchmarks/_machine.py)

from tests.reference.gpd_mle_v1 import mle_fit as mle_fit_v1  # noqa: E402
from tests.reference.gpd_mle_v1 import mle_fit_now as mle_fit  # noqa: E402 (today's evtools kernel)

FAMILIES = {
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "student_t10": lambda rng, n: rng.standard_t(10, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, rng.uniform(0.3, 1.2), n),
    "exponential": lambda rng, n: rng.exponential(1.0, n),
    "uniform": lambda rng, n: rng.uniform(0.0, 1.0, n),
    "normal": lambda rng, n: rng.normal(size=n),
}


def exceedance_block(family, cols, rows, k, seed):
    """(cols, k) float64: the ``k`` largest excesses over the next value of float32 columns, ascending."""
    rng = np.random.default_rng(seed)
    out = np.empty((cols, k))
    for j in range(cols):
        x = np.sort(FAMILIES[family](rng, rows).astype(np.float32))
        t = np.float64(x[-k - 1])
        out[j] = x[-k:].astype(np.float64) - t
    return out


@njit  # no cache: numba would not see a change in the kernels it calls
def _run_new(Y, out):
    for j in range(Y.shape[0]):
        s, x, ll, st = mle_fit(Y[j])
        out[j, 0], out[j, 1], out[j, 2], out[j, 3] = s, x, ll, st


@njit  # no cache: numba would not see a change in the kernels it calls
def _run_old(Y, out):
    for j in range(Y.shape[0]):
        s, x, ll, st = mle_fit_v1(Y[j])
        out[j, 0], out[j, 1], out[j, 2], out[j, 3] = s, x, ll, st


def best_time(fn, Y, out, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(Y, out)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cols", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(machine_report())
    small = np.random.default_rng(0).exponential(size=(2, 50))
    _run_new(small, np.empty((2, 4)))  # compile / load cache
    _run_old(small, np.empty((2, 4)))
    print(f"{'family':<12} {'k':>4} {'old us/col':>11} {'new us/col':>11} {'ratio':>6} "
          f"{'|dsigma|/sigma':>14} {'|dxi|':>8} {'new ll - old ll (min, max)':>27}")
    cases = [(f, 400, 20000) for f in FAMILIES] + [(f, k, 20000) for k in (30, 100)
                                                    for f in ("student_t3", "lognormal", "uniform")]
    tot_old = tot_new = 0.0
    for i, (family, k, rows) in enumerate(cases):
        Y = exceedance_block(family, args.cols, rows, k, seed=i)
        a, b = np.empty((args.cols, 4)), np.empty((args.cols, 4))
        t_old = best_time(_run_old, Y, a, args.repeats)
        t_new = best_time(_run_new, Y, b, args.repeats)
        tot_old += t_old
        tot_new += t_new
        assert np.array_equal(a[:, 3], b[:, 3]), "statuses differ"
        dll = b[:, 2] - a[:, 2]
        print(f"{family:<12} {k:>4} {1e6 * t_old / args.cols:>11.1f} {1e6 * t_new / args.cols:>11.1f} "
              f"{t_old / t_new:>6.2f} {np.nanmax(np.abs(b[:, 0] / a[:, 0] - 1)):>14.1e} "
              f"{np.nanmax(np.abs(b[:, 1] - a[:, 1])):>8.1e} {np.nanmin(dll):>13.1e} {np.nanmax(dll):>13.1e}")
    print(f"all cases: old {1e6 * tot_old / args.cols / len(cases):.1f} us/col, "
          f"new {1e6 * tot_new / args.cols / len(cases):.1f} us/col, ratio {tot_old / tot_new:.2f}")


if __name__ == "__main__":
    main()
