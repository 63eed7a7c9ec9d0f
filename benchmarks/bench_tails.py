"""fit_tails against a per-column scipy.stats.genpareto.fit loop and a one-pass floor.

Usage:  python benchmarks/bench_tails.py [--rows 20000] [--cols 26560] [--scipy-cols 60]

Prints, from one run: the floor (one pass over the matrix, ``G.max(axis=0)``),
fit_tails(Quantile(0.98), MLE), the scipy loop timed on a sample of columns
and scaled to all of them, the ratios, the peak memory traced during the fit
relative to the matrix, how often the MLE's log-likelihood is at least
scipy's on the sampled columns, and return levels with intervals: the delta
method on every column (from the covariance stored at fit time) against the
fit's time, and profile likelihood on ``--profile-cols`` columns, scaled.
"""
import argparse
import resource
import time
import tracemalloc

import numpy as np
from _machine import machine_report  # noqa: E402  (benchmarks/_machine.py)
from scipy import stats

import evtools as ev


def make_matrix(rows, cols, seed=0):
    """Gradient-norm-like float32 matrix: lognormal columns of varying spread, a few dead ones."""
    rng = np.random.default_rng(seed)
    G = np.empty((rows, cols), dtype=np.float32)
    spread = rng.uniform(0.3, 1.2, cols).astype(np.float32)
    for i in range(0, rows, 2000):
        z = rng.standard_normal((min(2000, rows - i), cols), dtype=np.float32)
        G[i:i + z.shape[0]] = np.exp(z * spread)
    G[:, :: max(1, cols // 50)] = 0.0  # dead filters
    return G


def scipy_loop(G, columns, q):
    out = []
    for j in columns:
        x = G[:, j].astype(np.float64)
        t = np.quantile(x, q)
        y = x[x > t] - t
        if y.size < 10 or np.ptp(y) == 0:
            out.append(None)
            continue
        xi, _, sigma = stats.genpareto.fit(y, floc=0)
        out.append((sigma, xi, stats.genpareto.logpdf(y, xi, 0, sigma).sum()))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--cols", type=int, default=26560)
    ap.add_argument("--scipy-cols", type=int, default=60)
    ap.add_argument("--profile-cols", type=int, default=200)
    args = ap.parse_args()
    print(machine_report())
    q = 0.98
    G = make_matrix(args.rows, args.cols)
    gb = G.nbytes / 2**30
    print(f"matrix {args.rows} x {args.cols} float32 ({gb:.2f} GiB)")

    ev.fit_tails(G[:200, :64], threshold=ev.Quantile(q), progress=False)  # compile / load cache

    t0, c0 = time.perf_counter(), time.process_time()
    G.max(axis=0)
    floor, floor_cpu = time.perf_counter() - t0, time.process_time() - c0

    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    tail = ev.fit_tails(G, threshold=ev.Quantile(q), method="mle", progress=False)
    fit, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    rng = np.random.default_rng(1)
    live = np.flatnonzero(tail.status == 0)
    sample = rng.choice(live, size=min(args.scipy_cols, live.size), replace=False)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = scipy_loop(G, sample, q)
    per_col = (time.perf_counter() - t0) / sample.size
    per_col_cpu = (time.process_time() - c0) / sample.size
    scipy_all = per_col * args.cols
    better = sum(1 for j, r in zip(sample, ref) if r is not None and tail.loglik[j] >= r[2] - 1e-9 * abs(r[2]))
    worse_gap = max((r[2] - tail.loglik[j] for j, r in zip(sample, ref) if r is not None), default=0.0)

    tail.return_level(1e6, method="delta")  # compile / load cache
    t0 = time.perf_counter()
    tail.return_level(100 * args.rows, method="delta")
    delta = time.perf_counter() - t0
    k = min(args.profile_cols, args.cols)
    sub = ev.fit_tails(G[:, :k], threshold=ev.Quantile(q), method="mle", progress=False)
    sub.return_level(100 * args.rows, method="profile", G=G[:, :k])  # compile / load cache
    t0 = time.perf_counter()
    sub.return_level(100 * args.rows, method="profile", G=G[:, :k])
    profile = (time.perf_counter() - t0) / k * args.cols

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{'floor G.max(axis=0)':34s} {floor:9.3f} s")
    print(f"{'fit_tails (Quantile 0.98, mle)':34s} {fit:9.3f} s   {fit / floor:6.1f} x floor")
    print(f"{'scipy genpareto.fit loop (scaled)':34s} {scipy_all:9.1f} s   "
          f"({per_col * 1e3:.2f} ms/column on {sample.size} columns)")
    print(f"speed-up over scipy loop: {scipy_all / fit:.0f} x")
    print(f"CPU seconds (all threads; steadier on a busy machine): floor {floor_cpu:.3f}, "
          f"fit_tails {fit_cpu:.3f} ({fit_cpu / floor_cpu:.1f} x floor), scipy loop scaled "
          f"{per_col_cpu * args.cols:.1f} ({per_col_cpu * args.cols / fit_cpu:.0f} x fit_tails)")
    print(f"peak memory traced during fit: {peak / 2**30:.3f} GiB = {peak / G.nbytes:.3f} x matrix; "
          f"process max RSS {rss:.2f} GiB = {rss / gb:.2f} x matrix (matrix included)")
    print(f"MLE loglik >= scipy's on {better}/{sum(r is not None for r in ref)} sampled columns "
          f"(largest shortfall {max(worse_gap, 0):.2e})")
    print(f"{'return levels, delta intervals':34s} {delta:9.3f} s   {delta / fit:6.4f} x fit "
          "(the observed information is computed in the fit, and timed there)")
    print(f"{'return levels, profile (scaled)':34s} {profile:9.1f} s   {profile / fit:6.1f} x fit "
          f"(measured on {k} columns)")
    print(repr(tail))


if __name__ == "__main__":
    main()
