"""Start-up costs of evtools as a new user meets them, each in a new process.

Usage:  python benchmarks/bench_startup.py [--rows 2000] [--cols 500] [--repeats 3]

Prints a table of wall-clock and CPU seconds (user + system of the child
process; on a busy machine CPU time is the steadier figure) for:

* the interpreter alone, ``import numpy, numba`` (the floor of any command
  that runs a numba kernel) and ``import evtools``, timed inside the process;
* the first ``evtools fit`` of a (rows x cols) float32 matrix with an empty
  numba cache (``NUMBA_CACHE_DIR`` set to a fresh temporary directory): every
  kernel the command needs is compiled;
* the same and the other CLI commands again with that cache warm.

evtools' modules are byte-compiled first, as an install leaves them.

Run it from the repository root (or with evtools installed).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(args, env, repeats=1):
    """Median wall and CPU seconds of a child process over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = os.times()
        t0 = time.perf_counter()
        out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, args))} failed:\n{out.stderr}")
    return statistics.median(walls), statistics.median(cpus), out.stdout


def in_process(code, env, repeats):
    """Median seconds that ``code`` reports (it prints one number)."""
    return statistics.median(float(run([sys.executable, "-c", code], env)[2]) for _ in range(repeats))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cols", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine_report())
    work = Path(tempfile.mkdtemp(prefix="evtools_startup_"))
    rng = np.random.default_rng(0)
    G = np.abs(rng.standard_t(4, size=(args.rows, args.cols))).astype(np.float32)
    np.save(work / "G.npy", G)
    np.save(work / "G_new.npy", G[:20])
    cache = work / "numba_cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # an installed package has its bytecode (pip compiles it at install): with PYTHONDONTWRITEBYTECODE set,
    # as on some CI machines, every command would compile evtools' modules from source (about 0.05 s)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "evtools")], env=env, check=True)
    cli = [sys.executable, "-m", "evtools"]
    timer = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    rows = []
    wall, cpu, _ = run([sys.executable, "-c", "pass"], env, args.repeats)
    rows.append(("python -c pass (interpreter start)", wall, cpu))
    rows.append(("import numpy, numba (in process)", in_process(timer.format("numpy, numba"), env, args.repeats), None))
    rows.append(("import evtools (in process)", in_process(timer.format("evtools"), env, args.repeats), None))
    fit = [*cli, "fit", str(work / "G.npy"), "-o", str(work / "model.npz")]
    wall, cpu, _ = run(fit, env)
    rows.append((f"evtools fit {args.rows}x{args.cols}: cold, empty numba cache", wall, cpu))
    commands = {
        "evtools --version": [*cli, "--version"],
        "evtools fit (warm)": fit,
        "evtools fit --method pwm (compiles pwm once)": [*fit[:-2], "--method", "pwm", "-o", str(work / "pwm.npz")],
        "evtools fit --method pwm (warm)": [*fit[:-2], "--method", "pwm", "-o", str(work / "pwm.npz")],
        "evtools fit --scorer zscore (warm)": [*fit[:-2], "--scorer", "zscore", "-o", str(work / "z.npz")],
        "evtools score, 20 rows (warm)": [*cli, "score", str(work / "model.npz"), str(work / "G_new.npy")],
        "evtools normality (warm)": [*cli, "normality", str(work / "G.npy")],
    }
    run(commands["evtools score, 20 rows (warm)"], env)  # compile the scoring kernel once
    run(commands["evtools normality (warm)"], env)
    for name, command in commands.items():
        repeats = 1 if "compiles" in name else args.repeats
        wall, cpu, _ = run(command, env, repeats)
        rows.append((name, wall, cpu))
    print(f"\n{'step':58s} {'wall s':>8s} {'CPU s':>8s}")
    for name, wall, cpu in rows:
        print(f"{name:58s} {wall:8.3f} {'' if cpu is None else f'{cpu:8.3f}':>8s}")
    print(f"(median of {args.repeats} runs where repeated; load average after: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
