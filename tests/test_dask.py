"""fit_tails, TailModel scoring and POTSaliency on Dask arrays: the in-memory results, exactly."""
import subprocess
import sys

import numpy as np
import pytest

import evtools as ev

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def make_matrix(rng, n=1500, m=23, dtype=np.float64):
    G = rng.lognormal(sigma=rng.uniform(0.3, 1.0, m), size=(n, m))
    G[:, 3] = 0.0                                   # dead filter
    G[:, 5] = np.round(G[:, 5], 1)                  # ties
    return G.astype(dtype)


def assert_same_model(a, b):
    for name in ev.TailModel._ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.n_samples, a.method, a.rule, a.min_exceed) == (b.n_samples, b.method, b.rule, b.min_exceed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks, block_size", [((200, 23), None), ((1500, 4), None), ((333, 7), 5)])
def test_threaded_fit_equals_in_memory(rng, dtype, chunks, block_size):
    G = make_matrix(rng, dtype=dtype)
    expected = ev.fit_tails(G, progress=False)
    with dask.config.set(scheduler="threads"):
        got = ev.fit_tails(da.from_array(G, chunks=chunks), block_size=block_size)
    assert_same_model(got, expected)


def test_options_pass_through(rng):
    G = make_matrix(rng)
    kw = dict(threshold=ev.TopK(40), method="mle", min_exceed=15, n_knots=9)
    assert_same_model(ev.fit_tails(da.from_array(G, chunks=(500, 6)), **kw),
                      ev.fit_tails(G, progress=False, **kw))
    top = np.sort(G, axis=0)[-60:]
    assert_same_model(ev.fit_tails(da.from_array(top, chunks=(60, 8)), n_samples=G.shape[0], **kw),
                      ev.fit_tails(top, n_samples=G.shape[0], progress=False, **kw))


def test_integer_dask_array_is_cast(rng):
    G = rng.integers(0, 50, size=(400, 6))
    assert_same_model(ev.fit_tails(da.from_array(G, chunks=(100, 3))), ev.fit_tails(G, progress=False))


def test_scoring_returns_dask_arrays(rng):
    G = make_matrix(rng)
    tail = ev.fit_tails(G, progress=False)
    D = da.from_array(G[:700] * 1.3, chunks=(250, 6))
    for method in ("logsf", "sf", "score"):
        out = getattr(tail, method)(D)
        assert isinstance(out, da.Array) and out.chunks == D.chunks and out.dtype == np.float64
        np.testing.assert_array_equal(out.compute(), getattr(tail, method)(G[:700] * 1.3))


def test_pot_saliency_fit_on_dask(rng):
    G = make_matrix(rng)
    a = ev.POTSaliency(threshold=0.9).fit(da.from_array(G, chunks=(300, 10)))
    b = ev.POTSaliency(threshold=0.9).fit(G)
    assert_same_model(a.tail_, b.tail_)
    np.testing.assert_array_equal(a.score(G[:50]), b.score(G[:50]))


def test_bad_dask_input(rng):
    G = make_matrix(rng)
    with pytest.raises(ev.InvalidInputError, match="2-D"):
        ev.fit_tails(da.from_array(G[:, 0], chunks=100))
    with pytest.raises(ev.InvalidInputError, match="unknown method"):
        ev.fit_tails(da.from_array(G, chunks=(500, 5)), method="nope")
    unknown = da.from_array(G, chunks=(500, 5))
    unknown = unknown[unknown[:, 0] > 1]
    with pytest.raises(ev.InvalidInputError, match="compute_chunk_sizes"):
        ev.fit_tails(unknown)
    bad = G.copy()
    bad[7, 12] = np.nan
    with pytest.raises(ev.InvalidInputError, match="starting at column 10.*row 7, column 2"):
        ev.fit_tails(da.from_array(bad, chunks=(500, 5)), block_size=5)
    tail = ev.fit_tails(G, progress=False)
    with pytest.raises(ev.InvalidInputError, match="columns"):
        tail.score(da.from_array(G[:, :4], chunks=(500, 4)))
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        tail.score(da.from_array(bad, chunks=(500, 5))).compute()


@pytest.mark.slow
def test_numpy_path_does_not_import_dask():
    code = ("import sys, numpy as np, evtools as ev; "
            "t = ev.fit_tails(np.random.default_rng(0).random((60, 3)), progress=False); t.score(np.ones((2, 3))); "
            "print('dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.slow
def test_local_cluster_fit_and_score_equal_in_memory(client, rng):
    G = make_matrix(rng, n=2000, m=31, dtype=np.float32)
    expected = ev.fit_tails(G, progress=False)
    D = da.from_array(G, chunks=(400, 31))
    got = ev.fit_tails(D, block_size=8)
    assert_same_model(got, expected)
    assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_array_equal(got.score(D[:300]).compute(), expected.score(G[:300]))
    pot = ev.POTSaliency().fit(D)
    assert_same_model(pot.tail_, ev.POTSaliency().fit(G).tail_)
