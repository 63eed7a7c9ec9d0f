"""Fixed thresholds (ev.Fixed, plain numbers) everywhere a threshold rule is accepted, and the ties convention."""
import numpy as np
import pytest

import evtools as ev
from evtools._status import CONSTANT
from evtools.cli import main
from tests.reference.tails_naive import fit_column


@pytest.fixture
def G(rng):
    return rng.lognormal(0.0, 0.8, size=(1500, 6))


def test_fixed_number_array_and_shorthand(G):
    u = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    a = ev.fit_tails(G, threshold=ev.Fixed(u), progress=False)
    b = ev.fit_tails(G, threshold=u, progress=False)
    np.testing.assert_array_equal(a.threshold, u)
    np.testing.assert_array_equal(a.n_exceed, (G > u).sum(axis=0))
    for name in ("sigma", "xi", "loglik", "status"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for j in range(G.shape[1]):  # the exceedances are exactly the values strictly above u
        fit = ev.gpd_fit(G[G[:, j] > u[j], j] - u[j])
        np.testing.assert_allclose([a.sigma[j], a.xi[j]], [fit.sigma, fit.xi], rtol=1e-12)
    c = ev.fit_tails(G, threshold=2.0, progress=False)
    np.testing.assert_array_equal(c.threshold, np.full(6, 2.0))
    assert c.rule == ev.Fixed(2.0)


def test_ties_at_a_fixed_threshold_are_not_exceedances():
    x = np.r_[np.zeros(50), np.full(30, 5.0), np.arange(1.0, 41.0) + 5.0]
    G = np.column_stack([x, x])
    tail = ev.fit_tails(G, threshold=[5.0, 100.0], progress=False)
    assert tail.n_exceed.tolist() == [40, 0]
    assert tail.status[0] != CONSTANT and tail.status[1] == CONSTANT


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fixed_threshold_above_the_largest_value_keeps_a_coherent_model(rng, dtype, tmp_path):
    x = rng.exponential(size=(500, 4)).astype(dtype)
    x[:3, 3] = x[:, 3].max()  # a tied largest value: mass 1 / (n + 1), below its mid-p survival 1.5 / n
    u = np.array([2.0, 100.0, 5.0, 50.0])
    tail = ev.fit_tails(x, threshold=ev.Fixed(u), n_knots=16, progress=False)
    assert tail.n_exceed[1] == tail.n_exceed[3] == 0
    assert tail.status[1] == tail.status[3] == CONSTANT
    n = x.shape[0]
    assert tail.tail_mass[1] == 0.5 / n and tail.tail_mass[3] == 1.0 / (n + 1)
    for j in range(4):  # the documented rule, from the plain reference (order statistics bit for bit)
        naive = fit_column(x[:, j], float(u[j]), n_knots=16)
        assert tail.n_exceed[j] == naive["n_exceed"] and tail.tail_mass[j] == naive["mass"]
        np.testing.assert_array_equal(tail.knot_x[j], naive["knots"][0])
        np.testing.assert_array_equal(tail.knot_sf[j], naive["knots"][1])
        np.testing.assert_allclose([tail.sigma[j], tail.xi[j]], [naive["sigma"], naive["xi"]], rtol=1e-12)
    assert np.all(tail.knot_sf > 0) and np.all(np.diff(tail.knot_sf, axis=1) <= 0)
    g = np.linspace(-1.0, 300.0, 3001)[:, None].repeat(4, axis=1)
    logsf = tail.logsf(g)
    assert np.all(np.isfinite(logsf)) and np.all(np.diff(logsf, axis=0) <= 0)
    top = x[:, 1].astype(np.float64).max()
    np.testing.assert_allclose(tail.logsf(np.full((1, 4), (top + 100.0) / 2))[0, 1], np.log(0.5 / n))
    assert tail.isf(0.1 / n)[1] == 100.0  # below the mass: the threshold, as for a constant column
    assert tail.isf(0.75 / n)[1] < top  # within the body: below the largest value
    tail.save(tmp_path / "t.npz")
    back = ev.TailModel.load(tmp_path / "t.npz")
    for name in ev.TailModel._ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(tail, name), err_msg=name)


def test_topk_threshold_is_the_k_plus_first_largest_and_ties_reduce_it():
    x = np.r_[np.arange(100.0), np.full(5, 200.0)]
    tail = ev.fit_tails(x[:, None], threshold=ev.TopK(10), progress=False)
    assert tail.threshold[0] == np.sort(x)[-11] and tail.n_exceed[0] == 10
    tied = ev.fit_tails(np.r_[np.arange(90.0), np.full(15, 95.0)][:, None], threshold=ev.TopK(10),
                        progress=False)
    assert tied.threshold[0] == 95.0 and tied.n_exceed[0] == 0  # ties at the threshold do not exceed


def test_fixed_rejects_bad_values(G):
    for bad in (np.nan, [1.0, np.inf], "3", [[1.0]], []):
        with pytest.raises(ev.InvalidInputError):
            ev.Fixed(bad)
    with pytest.raises(ev.InvalidInputError, match="6 columns"):
        ev.fit_tails(G, threshold=[1.0, 2.0], progress=False)
    with pytest.raises(ev.InvalidInputError):
        ev.fit_tails(G, threshold="high", progress=False)


def test_fixed_on_a_topk_summary_needs_the_threshold_above_the_kept_values(G):
    top = np.sort(G, axis=0)[-300:]
    u = np.quantile(G, 0.9, axis=0)
    a = ev.fit_tails(top, threshold=u, n_samples=G.shape[0], progress=False)
    b = ev.fit_tails(G, threshold=u, progress=False)
    np.testing.assert_array_equal(a.n_exceed, b.n_exceed)
    np.testing.assert_array_equal(a.sigma, b.sigma)
    with pytest.raises(ev.InvalidInputError, match="below the smallest"):
        ev.fit_tails(top, threshold=ev.Fixed(0.5), n_samples=G.shape[0], progress=False)


def test_fixed_round_trips_through_save_and_blocks(G, tmp_path):
    u = np.linspace(1.0, 3.0, 6)
    tail = ev.fit_tails(G, threshold=u, block_size=4, progress=False)  # the per-column values follow the blocks
    np.testing.assert_array_equal(tail.threshold, u)
    tail.save(tmp_path / "t.npz")
    back = ev.TailModel.load(tmp_path / "t.npz")
    assert back.rule == tail.rule
    np.testing.assert_array_equal(back.rel_cov, tail.rel_cov)
    np.testing.assert_array_equal(ev.Fixed(u).select(G), u)


def test_fixed_on_dask_blocks_equals_in_memory(G):
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    u = np.linspace(1.0, 3.0, 6)
    expected = ev.fit_tails(G, threshold=u, progress=False)
    with dask.config.set(scheduler="sync"):
        got = ev.fit_tails(da.from_array(G, chunks=(500, 4)), threshold=ev.Fixed(u), block_size=4)
    for name in ev.TailModel._ARRAYS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert got.rule == ev.Fixed(u)


def test_pot_saliency_and_spot_take_fixed_thresholds(G, tmp_path):
    u = np.linspace(1.0, 3.0, 6)
    pot = ev.POTSaliency(threshold=ev.Fixed(u)).fit(G)
    np.testing.assert_array_equal(pot.tail_.threshold, u)
    np.testing.assert_array_equal(ev.POTSaliency(threshold=u).fit(G).tail_.sigma, pot.tail_.sigma)
    spot = ev.SPOT(q=1e-3, level=ev.Fixed(u)).fit(G)
    np.testing.assert_array_equal(spot.threshold_, u)
    np.testing.assert_array_equal(spot.n_peaks_, (G > u).sum(axis=0))
    spot.save(tmp_path / "s.npz")
    assert ev.SPOT.load(tmp_path / "s.npz").level == ev.Fixed(u)
    assert ev.DSPOT(depth=5, level=ev.Fixed(0.5)).fit(G).threshold_.tolist() == [0.5] * 6


def test_cli_fixed_threshold(G, tmp_path, capsys):
    np.save(tmp_path / "G.npy", G)
    np.savetxt(tmp_path / "u.txt", np.linspace(1.0, 3.0, 6))
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "a.npz"), "--threshold", "fixed:2"]) == 0
    assert ev.TailModel.load(tmp_path / "a.npz").rule == ev.Fixed(2.0)
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "b.npz"),
                 "--threshold", f"fixed:{tmp_path / 'u.txt'}"]) == 0
    np.testing.assert_array_equal(ev.TailModel.load(tmp_path / "b.npz").threshold, np.linspace(1.0, 3.0, 6))
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "c.npz"), "--threshold", "fixed:nope"]) == 2
