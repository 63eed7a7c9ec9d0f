"""Threads and processes (docs/guarantees.md): no evtools call changes numba's settings;
kernels run from several threads on every threading layer; a fork-based pool that uses
evtools after the parent did finishes.

Each scenario runs in a fresh interpreter with a timeout: the failures guarded against
are a process abort (numba's workqueue layer) and a hang (GNU OpenMP in forked children),
neither of which a test in this process could survive.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import prange

from evtools._kernels.parallel import ParallelKernel
from tests.subprocess_helpers import ENV, ROOT

pytestmark = pytest.mark.slow  # fresh interpreters, a pool, compilation in children

LAYERS = ["default", "omp", "workqueue", "tbb"]

# Work shared by the scenarios: fit, score, z-scores, goodness of fit, SPOT, checked
# against the same calls made once in the main thread.
WORK = textwrap.dedent("""
    import numpy as np
    import evtools as ev

    rng = np.random.default_rng(0)
    G = rng.standard_normal((1500, 48))

    def work(i=0):
        tail = ev.fit_tails(G, threshold=ev.Quantile(0.9))
        z = ev.ZScoreSaliency().fit(G)
        spot = ev.SPOT(level=0.98).fit(G[:1000])
        return np.concatenate([tail.score(G).ravel(), z.score(G).ravel(), tail.gof()["ad_stat"],
                               spot.update(G[1000:]).alarm.ravel().astype(float)])
""")


def _run(code, layer="default", timeout=240):
    env = dict(ENV)  # tests/subprocess_helpers.py: this checkout first
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    try:
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s (a hang): {exc.stderr}")
    assert res.returncode == 0, f"exit code {res.returncode}\n{res.stdout}\n{res.stderr[-3000:]}"
    return res.stdout


def _skip_missing_layer(layer):
    if layer == "tbb":
        try:
            from numba.np.ufunc.parallel import _check_tbb_version_compatible
            _check_tbb_version_compatible()
            from numba.np.ufunc import tbbpool  # noqa: F401
        except ImportError:
            pytest.skip("numba's tbb threading layer is not installed (pip install tbb)")


@pytest.mark.parametrize("layer", LAYERS)
def test_kernels_from_four_threads_on_every_layer(layer):
    _skip_missing_layer(layer)
    out = _run(WORK + textwrap.dedent("""
        import threading, numba
        expected = work()
        results, errors = [], []
        def run():
            try:
                for _ in range(3):
                    results.append(work())
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not errors, errors
        assert len(results) == 12
        for r in results:
            np.testing.assert_array_equal(r, expected)
        print(numba.threading_layer())
    """), layer)
    if layer != "default":
        assert out.strip() == layer


@pytest.mark.parametrize("layer", LAYERS)
def test_fork_pool_after_parent_used_evtools(layer):
    _skip_missing_layer(layer)
    _run(WORK + textwrap.dedent("""
        import multiprocessing as mp
        expected = work()
        with mp.get_context("fork").Pool(2) as pool:
            results = pool.map_async(work, range(4)).get(timeout=200)
        for r in results:
            np.testing.assert_array_equal(r, expected)
        # the parent is unaffected: its kernels still run in parallel
        np.testing.assert_array_equal(work(), expected)
    """), layer)


def test_run_demo_changes_no_process_setting_then_threads_score():
    pytest.importorskip("torch")
    _run(WORK + textwrap.dedent("""
        import tempfile, threading, numba
        import evtools_torch.demo.run as demo
        demo._run = lambda out, quick, seed, progress: {}   # the pipeline itself is tested elsewhere
        layer, n_threads = numba.config.THREADING_LAYER, numba.get_num_threads()
        with tempfile.TemporaryDirectory() as out:
            demo.run_demo(out, quick=True, progress=False)
        assert numba.config.THREADING_LAYER == layer
        assert numba.get_num_threads() == n_threads
        expected = work()
        errors = []
        def run():
            try:
                np.testing.assert_array_equal(work(), expected)
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not errors, errors
    """))


def _add_rows(x):
    out = np.empty(x.shape[0])
    for i in prange(x.shape[0]):
        out[i] = x[i].sum()
    return out


def test_serial_twin_is_named_apart_and_agrees():
    # the twin's code gets its own name (co_qualname only where Python has it: 3.11+), so that
    # numba's disk cache keeps the threaded and the serial compilation apart
    kernel = ParallelKernel(_add_rows)
    twin = kernel.serial
    assert twin.py_func.__name__ == "_add_rows_serial" and twin.py_func.__qualname__ == "_add_rows_serial"
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(twin(x), kernel(x))
    np.testing.assert_array_equal(twin(x), x.sum(axis=1))
