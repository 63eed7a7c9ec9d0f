"""fit_tails by selection (introselect) equals the sort-based path, bit for bit, on messy columns."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import evtools as ev
from evtools._kernels.tails import _heapsort, select_ranks, sort_all
from tests.reference.tails_sorted import fit_column_sorted

FIELDS = ("threshold", "n_exceed", "sigma", "xi", "loglik", "status", "tail_mass", "knot_x", "knot_sf")
REF_KEY = {"tail_mass": "mass"}


def messy_matrix(rng, n=800, dtype=np.float64):
    """Dead filters, ties, 1e-30 next to 1e30, a single spike, heavy and light tails."""
    cols = [
        np.zeros(n),                                             # dead filter
        np.round(np.abs(rng.standard_normal(n)), 1),             # heavy ties
        np.where(np.arange(n) < n // 2, 0.0, rng.exponential(1.0, n)),  # half dead
        np.where(rng.random(n) < 0.5, 1e-30, 1e30) * rng.random(n),   # 1e-30 next to 1e30
        np.r_[np.full(n - 1, 5.0), 6.0],                         # one spike above a constant
        np.floor(rng.exponential(3.0, n)),                       # integer ties at the threshold
        np.abs(rng.standard_t(2, n)) * 1e6,                      # heavy tail
        rng.uniform(size=n),                                     # bounded tail
        np.sort(rng.exponential(size=n)),                        # already sorted
        np.sort(rng.exponential(size=n))[::-1].copy(),           # reversed
    ]
    return np.column_stack(cols).astype(dtype)


def assert_model_equals_reference(tail, G, rule, method, n_total=None, n_knots=64, min_exceed=10):
    n_total = G.shape[0] if n_total is None else n_total
    rank, frac = rule.position(n_total)
    for j in range(G.shape[1]):
        ref = fit_column_sorted(G[:, j], rank, frac, method, min_exceed, n_knots, n_total)
        for field in FIELDS:
            got = getattr(tail, field)[j]
            want = ref[REF_KEY.get(field, field)]
            assert np.array_equal(got, want, equal_nan=True), (j, field, got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", [ev.Quantile(0.98), ev.Quantile(0.9), ev.Quantile(0.5), ev.TopK(40)])
@pytest.mark.parametrize("method", ["mle", "pwm", "zhang", "mom"])
def test_selection_equals_sorted_reference(rng, dtype, rule, method):
    G = messy_matrix(rng, dtype=dtype)
    tail = ev.fit_tails(G, threshold=rule, method=method, block_size=3, progress=False)
    assert_model_equals_reference(tail, G, rule, method)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selection_on_top_k_summary(rng, dtype):
    G = messy_matrix(rng, n=2000, dtype=dtype)
    top = np.sort(G, axis=0)[-200:][::-1].copy()  # unsorted order within the kept rows
    rule = ev.Quantile(0.95)
    tail = ev.fit_tails(top, threshold=rule, n_samples=2000, n_knots=16, progress=False)
    assert_model_equals_reference(tail, top, rule, "mle", n_total=2000, n_knots=16)


def test_sorted_rules_use_the_same_kernels(rng):
    """ForwardStop reads sorted columns; its fit equals the per-column fit at its thresholds."""
    G = messy_matrix(rng, n=600)[:, 5:]
    rule = ev.ForwardStop()
    tail = ev.fit_tails(G, threshold=rule, progress=False)
    np.testing.assert_array_equal(tail.threshold, rule.select(G))
    for j in range(G.shape[1]):
        np.testing.assert_array_equal(tail.n_exceed[j], np.sum(G[:, j] > tail.threshold[j]))


@given(hnp.arrays(np.float64, st.integers(30, 300),
                  elements=st.sampled_from([0.0, 1e-30, 1.0, 1.5, 2.0, 7.0, 1e30])
                  | st.floats(0, 1e3, allow_nan=False)),
       st.sampled_from([np.float32, np.float64]),
       st.sampled_from([0.5, 0.8, 0.9, 0.97]))
def test_selection_equals_sorted_reference_hypothesis(x, dtype, q):
    G = x.astype(dtype)[:, None]
    rule = ev.Quantile(q)
    tail = ev.fit_tails(G, threshold=rule, method="mom", min_exceed=5, n_knots=8, progress=False)
    assert_model_equals_reference(tail, G, rule, "mom", n_knots=8, min_exceed=5)


@given(hnp.arrays(np.float32, st.integers(0, 400),
                  elements=st.sampled_from([0.0, 1.0, 2.0])
                  | st.floats(-float(np.float32(1e30)), float(np.float32(1e30)), width=32, allow_subnormal=False)),
       st.data())
def test_select_ranks_places_order_statistics(a, data):
    ranks = np.unique(np.asarray(data.draw(st.lists(st.integers(0, max(a.size - 1, 0)), max_size=20)),
                                 dtype=np.int64)) if a.size else np.empty(0, np.int64)
    b = a.copy()
    select_ranks(b, ranks)
    s = np.sort(a)
    np.testing.assert_array_equal(np.sort(b), s)  # a permutation
    for r in ranks:
        assert b[r] == s[r]
        assert np.all(b[:r] <= b[r]) and np.all(b[r + 1:] >= b[r])


@given(hnp.arrays(np.float64, st.integers(0, 300),
                  elements=st.floats(-1e300, 1e300, allow_subnormal=False) | st.just(0.0)))
def test_sorts_match_numpy(a):
    for sort in (_heapsort, sort_all):
        b = a.copy()
        sort(b)
        np.testing.assert_array_equal(b, np.sort(a))


def test_select_ranks_adversarial_inputs_fall_back_to_heapsort():
    """Many ranks over organ-pipe and sawtooth inputs (where median-of-three is weak) still select."""
    n = 5000
    for a in (np.r_[np.arange(n // 2), np.arange(n // 2)[::-1]], np.arange(n) % 7, np.arange(n)[::-1]):
        a = a.astype(np.float64)
        b = a.copy()
        ranks = np.arange(0, n, 37, dtype=np.int64)
        select_ranks(b, ranks)
        np.testing.assert_array_equal(b[ranks], np.sort(a)[ranks])
