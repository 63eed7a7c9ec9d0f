"""What every benchmark prints first: the machine, its load, and how fast it sorts.

Figures from different machines differ mostly by core count and by the speed
of ``np.sort`` (SIMD sorts make some CPUs several times faster); the sort
probe lets a reader compare a run with the README's figures.
"""
import os
import platform
import time

import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sort_probe(rows=20000, repeats=20):
    """Median seconds of ``np.sort`` on one float32 column of ``rows`` values."""
    x = np.random.default_rng(0).lognormal(size=rows).astype(np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.sort(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def machine_report():
    """One line: CPU model, cores usable here, load average, the sort probe."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"machine: {cpu_model()}, {cores} cores, load average {load}; "
            f"np.sort of one 20,000-row float32 column: {sort_probe() * 1e6:.0f} us "
            f"(numpy {np.__version__})")


if __name__ == "__main__":
    print(machine_report())
