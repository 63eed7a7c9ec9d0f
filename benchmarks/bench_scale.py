"""Beyond one in-memory matrix: a memory-mapped fit larger than half the RAM, and SPOT throughput.

Usage:
    python benchmarks/bench_scale.py                       # both parts
    python benchmarks/bench_scale.py --part memmap [--gib 13] [--dir /tmp] [--keep]
    python benchmarks/bench_scale.py --part spot [--cols 26560] [--init-rows 2000] [--rows 300]

memmap: writes a float32 gradient-norm-like matrix of 26,560 columns, larger
than ``--fraction`` (default 0.55) of the machine's memory, row block by row
block with the ``.npy`` row writer (as ``evtools_torch.filter_gradient_norms(...,
out=...)`` does), opens it with ``np.load(path, mmap_mode="r")`` and fits it
with ``ev.fit_tails``. It reports the time and the peak anonymous (private)
memory of the process, sampled every 5 ms, against the stated bound
``baseline + 3 x 64 MiB (fit_tails' block working copy) + the model's arrays
+ 64 MiB``; pages of the mapped file are the kernel's page cache (shared,
reclaimable) and are reported apart. A few columns are checked against an
in-memory fit. The file is deleted at the end unless ``--keep``.

spot: calibrates ev.SPOT(q=1e-4, level=0.98) on ``--init-rows`` rows of
``--cols`` columns, then updates it one row at a time (the monitoring case),
in a batch, and with ``refit_every=10``; the plain one-series reference
(tests/reference/spot_naive.py, exact MLE through evtools.gpd_fit) runs column
by column on a sample of columns over the same rows and is scaled to all
columns; the paper's code's own estimator (Grimshaw's trick with L-BFGS-B, as
restated in tests/reference/spot.py) is timed per refit. Calibration refits
every column once, which gives the cost of the "refit every column on every
row" alternative.
"""
import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import machine_report  # noqa: E402  (benchmarks/_machine.py)

import evtools as ev  # noqa: E402
from evtools.adapter import NpyRowWriter  # noqa: E402
from evtools.tails import BLOCK_BYTES  # noqa: E402
from tests.reference.spot import spot_grimshaw  # noqa: E402
from tests.reference.spot_naive import NaiveSPOT  # noqa: E402


def gradient_like(rng, rows, spread):
    """Lognormal columns of varying spread (float32), every 50th column dead (zeros)."""
    z = rng.standard_normal((rows, spread.size), dtype=np.float32)
    G = np.exp(z * spread)
    G[:, ::50] = 0.0
    return G


def proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class PeakSampler:
    """Peak RssAnon and RssFile of this process, sampled in a thread."""

    def __enter__(self):
        self.anon = proc_status("RssAnon")
        self.file = proc_status("RssFile")
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(0.005):
                self.anon = max(self.anon, proc_status("RssAnon"))
                self.file = max(self.file, proc_status("RssFile"))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.anon = max(self.anon, proc_status("RssAnon"))


def bench_memmap(args):
    GiB = 2**30
    total = mem_total()
    target = max(args.gib * GiB if args.gib else 0, args.fraction * total)
    cols = args.cols
    rows = math.ceil(target / (4 * cols))
    path = Path(args.dir) / f"evtools_bench_scale_{os.getpid()}.npy"
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.3, 1.2, cols).astype(np.float32)
    print(f"[memmap] machine memory {total / GiB:.1f} GiB; writing {rows} x {cols} float32 "
          f"({rows * cols * 4 / GiB:.2f} GiB = {rows * cols * 4 / total:.2f} x memory) to {path}")
    ev.fit_tails(gradient_like(rng, 500, spread[:64]), progress=False)  # compile / load the cache
    try:
        t0 = time.perf_counter()
        with NpyRowWriter(path, cols, np.float32) as writer:
            for i in range(0, rows, 1000):
                writer.write(gradient_like(rng, min(1000, rows - i), spread))
            writer.close()
        write_s = time.perf_counter() - t0
        M = np.load(path, mmap_mode="r")
        base = proc_status("RssAnon")
        with PeakSampler() as peak:
            t0 = time.perf_counter()
            tail = ev.fit_tails(M, threshold=ev.Quantile(0.98), method="mle", progress=False)
            fit_s = time.perf_counter() - t0
        model_bytes = sum(getattr(tail, k).nbytes for k in ev.TailModel._ARRAYS)
        bound = base + 3 * BLOCK_BYTES + model_bytes + 64 * 2**20
        check = ev.fit_tails(np.array(M[:, :64]), threshold=ev.Quantile(0.98), progress=False)
        same = all(np.array_equal(getattr(check, k), getattr(tail, k)[:64], equal_nan=True)
                   for k in ev.TailModel._ARRAYS)
        print(f"[memmap] write {write_s:.1f} s; fit_tails(memmap) {fit_s:.1f} s "
              f"({M.nbytes / GiB / fit_s:.3f} GiB/s)")
        print(f"[memmap] peak anonymous memory {peak.anon / 2**20:.0f} MiB (baseline {base / 2**20:.0f} MiB, "
              f"growth {(peak.anon - base) / 2**20:.0f} MiB = {(peak.anon - base) / M.nbytes:.4f} x file); "
              f"stated bound {bound / 2**20:.0f} MiB -> {'OK' if peak.anon <= bound else 'EXCEEDED'}")
        print(f"[memmap] peak resident file pages (page cache, reclaimable) {peak.file / GiB:.2f} GiB")
        print(f"[memmap] first 64 columns equal to an in-memory fit: {same}")
        print("[memmap] " + repr(tail).replace("\n", "\n[memmap] "))
    finally:
        if args.keep:
            print(f"[memmap] kept {path}")
        elif path.exists():
            path.unlink()


def bench_spot(args):
    cols = args.cols
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.3, 1.2, cols).astype(np.float32)
    X = gradient_like(rng, args.init_rows, spread)
    S = gradient_like(rng, args.rows, spread)
    q, level = 1e-4, 0.98
    ev.SPOT(q, level).fit(X[:200, :16]).update(S[:2, :16])  # compile / load the caches
    ref = NaiveSPOT(q, 0.9).fit(X[:200, 1])
    [ref.step(x) for x in S[:50, 1]]
    print(f"[spot] {cols} columns, calibration {args.init_rows} rows, {args.rows} streamed rows, "
          f"q={q}, level={level}")

    t0 = time.perf_counter()
    det = ev.SPOT(q, level).fit(X)
    fit_s = time.perf_counter() - t0
    peaks0 = det.n_peaks_.copy()
    t0 = time.perf_counter()
    alarms = np.stack([det.update(row).alarm for row in S])
    row_s = time.perf_counter() - t0
    refits = (det.n_peaks_ - peaks0).sum() / args.rows

    batch = ev.SPOT(q, level).fit(X)
    t0 = time.perf_counter()
    batch_alarms = batch.update(S).alarm
    batch_s = time.perf_counter() - t0

    lazy = ev.SPOT(q, level, refit_every=10).fit(X)
    t0 = time.perf_counter()
    lazy_alarms = np.stack([lazy.update(row).alarm for row in S])
    lazy_s = time.perf_counter() - t0

    sample = rng.choice(np.flatnonzero(det.status_ == 0), size=args.ref_cols, replace=False)
    t0 = time.perf_counter()
    ref_alarms = []
    for j in sample:
        ref = NaiveSPOT(q, level).fit(X[:, j])
        ref_alarms.append([ref.step(x)[0] for x in S[:, j]])
    ref_per_col = (time.perf_counter() - t0) / sample.size
    ref_rows_s = args.rows / (ref_per_col * cols)
    same = np.array_equal(np.array(ref_alarms).T, alarms[:, sample])

    print(f"[spot] fit (calibration: every column fitted once) {fit_s:.2f} s "
          f"-> refitting every column on every row would cap at {1 / fit_s:.2f} rows/s")
    print(f"[spot] update one row at a time, refit_every=1 (exact): {args.rows / row_s:8.1f} rows/s "
          f"({refits:.0f} columns refitted per row on average; {alarms.sum()} alarms)")
    print(f"[spot] update all rows in one call, refit_every=1:      {args.rows / batch_s:8.1f} rows/s "
          f"(same alarms: {np.array_equal(batch_alarms, alarms)})")
    print(f"[spot] update one row at a time, refit_every=10:       {args.rows / lazy_s:8.1f} rows/s "
          f"(alarms differing from exact: {int((lazy_alarms != alarms).sum())})")
    print(f"[spot] plain reference, column by column (scaled from {sample.size} columns): "
          f"{ref_rows_s:8.3f} rows/s ({ref_per_col * 1e3:.0f} ms per column for {args.rows} rows); "
          f"alarms equal on the sample: {same}")
    print(f"[spot] speed-up of SPOT.update (one row at a time) over the reference: "
          f"{(args.rows / row_s) / ref_rows_s:.0f} x")
    t0 = time.perf_counter()
    for j in sample:
        spot_grimshaw(det.peaks(j))
    grimshaw_s = (time.perf_counter() - t0) / sample.size
    print(f"[spot] the paper's code's fit (Grimshaw + L-BFGS-B, tests/reference/spot.py): "
          f"{grimshaw_s * 1e3:.1f} ms per refit -> at most {1 / (refits * grimshaw_s):.3f} rows/s "
          f"over {cols} columns, refits alone")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["memmap", "spot", "all"], default="all")
    ap.add_argument("--cols", type=int, default=26560)
    ap.add_argument("--gib", type=float, default=0.0, help="file size in GiB (at least --fraction of memory)")
    ap.add_argument("--fraction", type=float, default=0.55, help="file size as a fraction of memory")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--init-rows", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--ref-cols", type=int, default=20)
    args = ap.parse_args()
    print(machine_report())
    if args.part in ("spot", "all"):
        bench_spot(args)
    if args.part in ("memmap", "all"):
        bench_memmap(args)


if __name__ == "__main__":
    main()
