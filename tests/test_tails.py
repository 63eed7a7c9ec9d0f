import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import evtools as ev
from evtools._status import CONSTANT, OK, TOO_FEW
from tests.reference.tails_naive import fit_column, logsf_of


def mixed_matrix(rng, n=600, dtype=np.float64):
    """Columns of different tails, side by side: light, heavy, bounded, discrete."""
    cols = [
        rng.exponential(1.0, n),
        stats.genpareto.rvs(0.4, scale=2.0, size=n, random_state=rng),
        stats.genpareto.rvs(-0.3, scale=1.0, size=n, random_state=rng),
        rng.lognormal(0.0, 1.0, n),
        np.abs(rng.standard_normal(n)) * 1e-9,
        rng.standard_t(3, n) * 1e6,
        rng.uniform(size=n),
    ]
    return np.column_stack(cols).astype(dtype)


@pytest.mark.parametrize("rule", [ev.Quantile(0.9), ev.Quantile(0.98), ev.TopK(40)])
@pytest.mark.parametrize("method", ["mle", "pwm", "zhang", "mom"])
def test_fit_tails_equals_per_column_loop(rng, rule, method):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, threshold=rule, method=method, n_knots=16, progress=False)
    for j in range(G.shape[1]):
        ref = fit_column(G[:, j], rule, method, n_knots=16)
        assert tail.threshold[j] == pytest.approx(ref["threshold"], rel=1e-14)
        assert tail.n_exceed[j] == ref["n_exceed"]
        assert tail.status[j] == ref["status"]
        np.testing.assert_allclose(tail.sigma[j], ref["sigma"], rtol=1e-9)
        np.testing.assert_allclose(tail.xi[j], ref["xi"], rtol=1e-9, atol=1e-12)
        kx, ks = ref["knots"]
        np.testing.assert_array_equal(tail.knot_x[j], kx)
        np.testing.assert_allclose(tail.knot_sf[j], ks, rtol=1e-14)


def test_logsf_equals_reference_inside_and_below(rng):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.9), n_knots=16, progress=False)
    refs = [fit_column(G[:, j], ev.Quantile(0.9), n_knots=16) for j in range(G.shape[1])]
    probe = np.vstack([G[:50], np.quantile(G, [0.0, 0.5, 0.95, 0.999, 1.0], axis=0)])
    got = tail.logsf(probe)
    for j, ref in enumerate(refs):
        upper = ref["threshold"] + (ref["sigma"] / -ref["xi"] if ref["xi"] < 0 else np.inf)
        for i, g in enumerate(probe[:, j]):
            if g < upper:
                assert got[i, j] == pytest.approx(logsf_of(g, ref), rel=1e-9, abs=1e-12)


def test_float32_gives_the_float64_fit_of_the_same_values(rng):
    G32 = mixed_matrix(rng, dtype=np.float32)
    a = ev.fit_tails(G32, progress=False)
    b = ev.fit_tails(G32.astype(np.float64), progress=False)
    for name in ("threshold", "sigma", "xi", "n_exceed", "status"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_blocks_do_not_change_the_result(rng):
    G = mixed_matrix(rng)
    a = ev.fit_tails(G, progress=False)
    b = ev.fit_tails(G, block_size=2, progress=False)
    for name in TailModelArrays:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


TailModelArrays = ev.TailModel._ARRAYS


def test_gpd_data_recovers_parameters(rng):
    xi, sigma = 0.2, 1.5
    G = stats.genpareto.rvs(xi, scale=sigma, size=(20000, 4), random_state=rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.5), progress=False)
    # above its median a GPD is again GPD with the same xi, scale sigma + xi * t
    t = stats.genpareto.ppf(0.5, xi, scale=sigma)
    np.testing.assert_allclose(tail.xi, xi, atol=0.06)
    np.testing.assert_allclose(tail.sigma, sigma + xi * t, rtol=0.08)
    assert (tail.status == OK).all()


def test_sf_continuous_at_threshold_and_monotone(rng):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.95), progress=False)
    lo, hi = G.min(axis=0), G.max(axis=0)
    span = hi - lo
    grid = lo + span * np.linspace(-0.5, 3.0, 4001)[:, None]
    ls = tail.logsf(grid)
    assert np.isfinite(ls).all()
    assert (np.diff(ls, axis=0) <= 1e-12).all()
    just_above = tail.sf((tail.threshold + span * 1e-12)[None, :])[0]
    np.testing.assert_allclose(just_above, tail.rate, rtol=1e-6)


def test_logsf_finite_beyond_bounded_endpoint(rng):
    G = stats.genpareto.rvs(-0.5, scale=1.0, size=(5000, 2), random_state=rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.8), progress=False)
    assert (tail.xi < 0).all()
    end = tail.threshold + tail.sigma / -tail.xi
    g = end[None, :] + np.array([-1e-3, 0.0, 1e-9, 1.0, 1e3, 1e300])[:, None]
    ls = tail.logsf(g)
    assert np.isfinite(ls).all()
    assert (np.diff(ls, axis=0) < 0).all()


def test_far_tail_logsf_where_sf_underflows(rng):
    G = stats.genpareto.rvs(0.3, size=(3000, 1), random_state=rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.9), progress=False)
    assert tail.xi[0] > 0
    g = np.array([[1e200], [1e300]])
    assert (tail.sf(g) == 0).all()
    ls = tail.logsf(g)
    assert np.isfinite(ls).all() and ls[1, 0] < ls[0, 0]
    excess = g[:, 0] - tail.threshold[0]
    expected = math.log(tail.rate[0]) + stats.genpareto.logsf(excess, tail.xi[0], scale=tail.sigma[0])
    np.testing.assert_allclose(ls[:, 0], expected, rtol=1e-10)


def test_score_is_minus_log10_sf(rng):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, progress=False)
    np.testing.assert_allclose(tail.score(G[:20]), -np.log10(tail.sf(G[:20])), rtol=1e-12)


@pytest.mark.parametrize("q", [1e-6, 0.001, 0.02, 0.3, 0.7, 0.999])
def test_isf_inverts_sf(rng, q):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.95), progress=False)
    z = tail.isf(q)
    np.testing.assert_allclose(np.diag(tail.sf(np.tile(z, (G.shape[1], 1)))), q, rtol=1e-6)


def test_messy_columns_get_status_and_finite_scores(rng):
    n = 1000
    G = np.column_stack([
        np.zeros(n),                                   # dead filter
        np.where(rng.uniform(size=n) < 0.99, 0.0, 1.0),  # mostly zeros, few spikes
        np.round(rng.exponential(size=n), 1),           # heavy ties
        np.concatenate([rng.exponential(size=n - 3), [1e30, 1e30, 1e30]]),  # tiny and huge
        rng.exponential(size=n),
    ]).astype(np.float32)
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.98), progress=False)
    assert tail.status[0] == CONSTANT
    assert tail.status[1] in (TOO_FEW, CONSTANT)
    assert tail.status[4] == OK
    probe = np.array([[0.0] * 5, [1e-30] * 5, [1.0] * 5, [1e31] * 5, [-1.0] * 5], dtype=np.float32)
    sc = tail.score(probe)
    assert np.isfinite(sc).all() and (sc >= 0).all()
    # a dead filter: its usual value is unremarkable, anything above it maximally remarkable
    assert sc[0, 0] == pytest.approx(math.log10(2.0))
    assert sc[1, 0] == pytest.approx(math.log10(n + 1))
    assert sc[4, 0] == 0.0


def test_too_few_exceedances_uses_exponential_tail(rng):
    G = rng.exponential(size=(100, 1))
    tail = ev.fit_tails(G, threshold=ev.Quantile(0.95), min_exceed=10, progress=False)
    assert tail.status[0] == TOO_FEW and tail.xi[0] == 0.0
    y = np.sort(G[:, 0])[G[:, 0].size - tail.n_exceed[0]:] - tail.threshold[0]
    assert tail.sigma[0] == pytest.approx(y.mean())


@pytest.mark.parametrize("bad, msg", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "non-finite"),
    (np.array([[1.0, np.inf], [2.0, 3.0]]), "non-finite"),
    (np.ones(10), "2-D"),
    (np.ones((2, 3, 4)), "2-D"),
    (np.ones((0, 3)), "shape"),
    (np.ones((3, 0)), "shape"),
    (np.array([["a", "b"]]), "real numbers"),
])
def test_bad_input_raises(bad, msg):
    with pytest.raises(ev.EvtoolsError, match=msg) as info:
        ev.fit_tails(bad, progress=False)
    assert isinstance(info.value, ValueError)


def test_bad_arguments_raise(rng):
    G = rng.exponential(size=(50, 2))
    with pytest.raises(ev.InvalidInputError, match="method"):
        ev.fit_tails(G, method="bogus")
    with pytest.raises(ev.InvalidInputError, match="threshold rule"):
        ev.fit_tails(G, threshold="0.9")
    assert ev.fit_tails(G, threshold=2.0, progress=False).rule == ev.Fixed(2.0)  # a number is a fixed threshold
    with pytest.raises(ev.InvalidInputError, match=r"ambiguous.*Quantile\(0.9\).*Fixed\(0.9\)"):
        ev.fit_tails(G, threshold=0.9)  # a quantile level to POTSaliency: refused, never guessed
    assert ev.fit_tails(G, threshold=ev.Fixed(0.9), progress=False).rule == ev.Fixed(0.9)
    with pytest.raises(ev.InvalidInputError, match="TopK"):
        ev.fit_tails(G, threshold=ev.TopK(50))
    with pytest.raises(ev.InvalidInputError):
        ev.Quantile(1.5)
    tail = ev.fit_tails(G, progress=False)
    with pytest.raises(ev.InvalidInputError, match="columns"):
        tail.score(np.ones((3, 5)))
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        tail.score(np.full((1, 2), np.nan))


@pytest.mark.parametrize("n_thresholds", [2, 10])
def test_fixed_thresholds_must_match_the_columns_exactly(rng, n_thresholds):
    # 10 thresholds on 5 columns were silently cut to the first 5 by select (and per block)
    G = rng.exponential(size=(200, 5))
    rule = ev.Fixed(np.linspace(0.5, 1.5, n_thresholds))
    message = f"Fixed has {n_thresholds} thresholds but the matrix has 5 columns"
    calls = {
        "select": lambda: rule.select(G),
        "fit_tails": lambda: ev.fit_tails(G, threshold=rule, progress=False),
        "fit_tails blocks": lambda: ev.fit_tails(G, threshold=rule, block_size=2, progress=False),
        "decluster": lambda: ev.fit_tails(G, threshold=rule, decluster=2, progress=False),
        "SPOT": lambda: ev.SPOT(q=1e-2, level=rule).fit(G),
        "DSPOT": lambda: ev.DSPOT(depth=3, q=1e-2, level=rule).fit(G),
        "decluster()": lambda: ev.decluster(G, rule, 2),
    }
    try:
        import dask.array as da
        calls["dask"] = lambda: ev.fit_tails(da.from_array(G, chunks=(200, 2)), threshold=rule, block_size=2)
    except ImportError:
        pass
    for name, call in calls.items():
        with pytest.raises(ev.InvalidInputError, match=message):
            call()
    u = np.linspace(0.5, 1.5, 5)
    np.testing.assert_array_equal(ev.Fixed(u).select(G), u)
    np.testing.assert_array_equal(ev.fit_tails(G, threshold=u, block_size=2, progress=False).threshold, u)


def test_topk_on_top_rows_with_n_samples_equals_full_fit(rng):
    G = mixed_matrix(rng, n=2000)
    k = 50
    full = ev.fit_tails(G, threshold=ev.TopK(k), progress=False)
    top = -np.sort(-G, axis=0)[: k + 1]
    part = ev.fit_tails(top, threshold=ev.TopK(k), n_samples=G.shape[0], progress=False)
    for name in ("threshold", "n_exceed", "sigma", "xi", "loglik", "status", "tail_mass"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name))
    above = full.threshold[None, :] + np.array([[0.0], [0.5], [5.0]]) * G.std(axis=0)
    np.testing.assert_array_equal(part.logsf(above), full.logsf(above))


def test_save_load_roundtrip(rng, tmp_path):
    G = mixed_matrix(rng)
    tail = ev.fit_tails(G, progress=False)
    tail.save(tmp_path / "t.npz")
    back = ev.TailModel.load(tmp_path / "t.npz")
    for name in TailModelArrays:
        np.testing.assert_array_equal(getattr(back, name), getattr(tail, name))
    assert repr(back) == repr(tail)
    np.testing.assert_array_equal(back.score(G), tail.score(G))
    with pytest.raises(ev.InvalidInputError):
        ev.TailModel.load(tmp_path / "missing.npz")


def test_repr_and_tables(rng):
    tail = ev.fit_tails(mixed_matrix(rng), progress=False)
    text = repr(tail)
    assert "TailModel(7 filters, 600 samples" in text and "status:" in text
    table = tail.to_dict()
    assert set(table) >= {"threshold", "rate", "sigma", "xi", "n_exceed", "loglik", "status"}
    frame = tail.to_frame()
    assert list(frame["status"].unique())[0] in {"OK", "TOO_FEW", "CONSTANT"}


@given(st.integers(2, 300), st.floats(0.5, 0.99), st.integers(0, 2**32 - 1))
def test_property_scores_finite_ordered(n, q, seed):
    rng = np.random.default_rng(seed)
    G = np.round(rng.lognormal(size=(n, 3)), rng.integers(0, 4))
    tail = ev.fit_tails(G, threshold=ev.Quantile(q), progress=False)
    grid = np.sort(np.concatenate([G, G * 2 + 1, -G]), axis=0)
    ls = tail.logsf(grid)
    assert np.isfinite(ls).all()
    assert (ls <= 1e-15).all()
    assert (np.diff(ls, axis=0) <= 1e-12).all()


@pytest.mark.parametrize("rule", [ev.Quantile(0.9), ev.TopK(30), ev.ForwardStop(alpha=0.2, candidates=[0.5, 0.7, 0.9])])
def test_saved_rule_comes_back_as_a_rule(rng, tmp_path, rule):
    tail = ev.fit_tails(mixed_matrix(rng), threshold=rule, progress=False)
    tail.save(tmp_path / "t.npz")
    back = ev.TailModel.load(tmp_path / "t.npz")
    assert back.rule == rule and repr(back.rule) == repr(rule)
