"""ForwardStop automatic threshold selection (Bader, Yan & Zhang 2018)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import evtools as ev
from evtools._kernels import gof as K
from evtools._kernels.gpd import mle_fit
from evtools.gof import gpd_gof
from evtools.threshold import ForwardStop
from tests.reference import gof_naive as naive

PROBS = tuple(np.round(np.linspace(0.3, 0.9, 13), 2))


def change_point_sample(rng, n, n_cols=1):
    """Uniform(0, 1) below 1 (60 %), 1 + Lomax (GPD xi = 0.25, sigma = 0.25) above (40 %)."""
    n_body = int(0.6 * n)
    body = rng.uniform(0.0, 1.0, (n_body, n_cols))
    tail = 1.0 + 0.25 * rng.pareto(4.0, (n - n_body, n_cols))
    return np.concatenate([body, tail])


def fit(y):
    sigma, xi, _, _ = mle_fit(np.ascontiguousarray(y))
    return sigma, xi


# ---------------------------------------------------------------- the transform


@given(
    st.lists(st.one_of(st.floats(0.001, 0.999), st.just(np.nan)), min_size=1, max_size=30),
    st.floats(0.01, 0.5),
)
def test_pick_equals_plain_forwardstop(p, alpha):
    p = np.array(p, dtype=np.float64)
    idx, flag = K.forwardstop_pick(p, alpha)
    usable = np.flatnonzero(np.isfinite(p))
    if usable.size == 0:
        assert (idx, flag) == (0, ForwardStop.NO_CANDIDATE)
        return
    k_hat = naive.forwardstop_count(p[usable], alpha)
    if k_hat == usable.size:
        assert (idx, flag) == (usable[-1], ForwardStop.ALL_REJECTED)
    else:
        assert (idx, flag) == (usable[k_hat], ForwardStop.OK)


def test_pick_small_cases():
    assert K.forwardstop_pick(np.array([0.5, 0.6, 0.7]), 0.1) == (0, ForwardStop.OK)
    assert K.forwardstop_pick(np.array([0.001, 0.001, 0.9, 0.8]), 0.1) == (2, ForwardStop.OK)
    assert K.forwardstop_pick(np.array([0.001, 0.001, 0.001]), 0.1) == (2, ForwardStop.ALL_REJECTED)
    assert K.forwardstop_pick(np.array([np.nan, 0.001, 0.7, np.nan]), 0.1) == (2, ForwardStop.OK)


# ---------------------------------------------------------------- selection


def test_batched_select_equals_per_column_loop():
    rng = np.random.default_rng(3)
    X = np.column_stack([
        change_point_sample(rng, 1500)[:, 0],
        rng.exponential(2.0, 1500),
        rng.lognormal(0.0, 1.0, 1500),
        np.abs(rng.standard_t(3, 1500)),
        rng.gamma(3.0, 1.0, 1500),
    ])
    for test, alpha, min_exceed in (("ad", 0.1, 25), ("cvm", 0.05, 40)):
        rule = ForwardStop(alpha=alpha, candidates=PROBS, test=test, min_exceed=min_exceed)
        d = rule.select_details(X)
        np.testing.assert_array_equal(rule.select(X), d["threshold"])

        def gof(y, s, x, test=test):
            return gpd_gof(y, s, x, test=test).pvalue[test]

        for j in range(X.shape[1]):
            t, idx, p = naive.forwardstop_select_naive(X[:, j], PROBS, alpha, min_exceed, test, fit, gof)
            np.testing.assert_allclose(d["pvalue"][:, j], p, rtol=1e-9, equal_nan=True)
            assert d["chosen"][j] == idx
            assert d["threshold"][j] == pytest.approx(t, rel=1e-12)
            np.testing.assert_allclose(d["candidate_threshold"][:, j], np.quantile(X[:, j], PROBS), rtol=1e-12)
            counts = [np.sum(X[:, j] > u) for u in d["candidate_threshold"][:, j]]
            np.testing.assert_array_equal(d["n_exceed"][:, j], counts)


def test_selects_the_change_point():
    rng = np.random.default_rng(11)
    X = change_point_sample(rng, 4000, n_cols=12)
    rule = ForwardStop(candidates=np.round(np.arange(0.3, 0.951, 0.025), 3))
    d = rule.select_details(X)
    t = d["threshold"]
    # ForwardStop may keep rejecting through a streak of smallish (strongly
    # correlated) p-values above the change point; that is rare
    assert np.sum(d["flag"] != ForwardStop.OK) <= 1
    assert np.all(t > 0.97), t  # never inside the uniform body
    assert np.median(t) < 1.1, t
    assert np.mean(t < 1.3) >= 0.75, t
    # the body's candidates are rejected outright
    below = d["candidate_threshold"] < 0.9
    assert np.all(d["pvalue"][below] <= 0.01)


def test_pure_gpd_keeps_the_lowest_candidates():
    rng = np.random.default_rng(5)
    X = rng.pareto(4.0, (3000, 10))
    d = ForwardStop(candidates=PROBS).select_details(X)
    assert np.sum(d["flag"] != ForwardStop.OK) <= 1
    assert np.mean(d["chosen"] == 0) >= 0.6


def test_all_rejected_is_flagged_and_takes_the_highest():
    rng = np.random.default_rng(2)
    X = np.floor(rng.exponential(1.0, (20000, 2)) * 2.0) / 2.0  # heavy ties: no GPD anywhere
    X += 1e-9 * rng.random(X.shape)  # distinct values, still lumpy
    d = ForwardStop(candidates=(0.5, 0.7, 0.9)).select_details(X)
    assert np.all(d["flag"] == ForwardStop.ALL_REJECTED)
    assert np.all(d["chosen"] == 2)
    np.testing.assert_array_equal(d["threshold"], d["candidate_threshold"][2])


def test_too_few_exceedances_everywhere():
    X = np.random.default_rng(0).exponential(size=(40, 3))
    d = ForwardStop(candidates=(0.5, 0.8), min_exceed=25).select_details(X)
    assert np.all(d["flag"] == ForwardStop.NO_CANDIDATE)
    assert np.isnan(d["pvalue"]).all()
    np.testing.assert_array_equal(d["threshold"], np.quantile(X, 0.5, axis=0))


def test_float32_and_column_order_do_not_matter():
    X = change_point_sample(np.random.default_rng(8), 2000, n_cols=3)
    rule = ForwardStop(candidates=PROBS)
    a = rule.select(X)
    np.testing.assert_array_equal(a, rule.select(np.asfortranarray(X)))
    np.testing.assert_array_equal(a[::-1], rule.select(X[:, ::-1]))
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(rule.select(X32), rule.select(X32.astype(np.float64)))


def test_streaming_top_rows_give_the_same_thresholds():
    X = change_point_sample(np.random.default_rng(9), 2000, n_cols=3)
    rule = ForwardStop(candidates=(0.5, 0.6, 0.7, 0.8))
    S = np.sort(X, axis=0)
    full = rule.thresholds_from_sorted(np.asfortranarray(S))
    top = np.asfortranarray(S[-1100:])
    np.testing.assert_array_equal(rule.thresholds_from_sorted(top, n_samples=2000), full)
    with pytest.raises(ev.InvalidInputError, match="keep more values"):
        rule.thresholds_from_sorted(np.asfortranarray(S[-500:]), n_samples=2000)


def test_fit_tails_uses_forwardstop():
    X = change_point_sample(np.random.default_rng(4), 3000, n_cols=4)
    rule = ForwardStop(candidates=PROBS)
    tail = ev.fit_tails(X, threshold=rule, progress=False)
    np.testing.assert_allclose(tail.threshold, rule.select(X))


# ---------------------------------------------------------------- parameters


def test_repr_equality_and_defaults():
    rule = ForwardStop()
    assert rule.candidates[0] == 0.5 and rule.candidates[-1] == 0.98 and len(rule.candidates) == 25
    r = repr(rule)
    assert r.startswith("ForwardStop(alpha=0.1, candidates=(0.5, 0.52") and "test='ad'" in r and "min_exceed=25" in r
    assert ForwardStop(alpha=0.05, candidates=[0.5, 0.9]) == ForwardStop(alpha=0.05, candidates=(0.5, 0.9))
    assert ForwardStop(alpha=0.05) != ForwardStop(alpha=0.1)
    assert hash(ForwardStop()) == hash(ForwardStop())
    assert isinstance(rule, ev.ThresholdRule) and ev.ForwardStop is ForwardStop


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"candidates": [0.9, 0.5]}, "strictly increasing"),
        ({"candidates": [0.5, 0.5]}, "strictly increasing"),
        ({"candidates": [0.5, 1.0]}, "candidate"),
        ({"candidates": []}, "non-empty"),
        ({"candidates": [[0.5, 0.6]]}, "1-D"),
        ({"test": "ks"}, "test must be"),
        ({"min_exceed": 2}, "min_exceed"),
        ({"min_exceed": 30.0}, "min_exceed"),
    ],
)
def test_bad_parameters(kw, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        ForwardStop(**kw)


def test_bad_data():
    X = np.ones((100, 2))
    X[5, 1] = np.nan
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        ForwardStop().select(X)
    with pytest.raises(ev.InvalidInputError, match="2-D"):
        ForwardStop().select(np.ones(100))
