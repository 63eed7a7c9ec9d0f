"""fit_tails's radix-sorted blocks equal the plain sort-based path, bit for bit, on messy columns;
the radix sort equals np.sort."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import evtools as ev
from evtools._kernels.sort import radix_keys, sort_column, sort_rows
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
def test_fit_equals_sorted_reference(rng, dtype, rule, method):
    G = messy_matrix(rng, dtype=dtype)
    tail = ev.fit_tails(G, threshold=rule, method=method, block_size=3, progress=False)
    assert_model_equals_reference(tail, G, rule, method)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_on_top_k_summary(rng, dtype):
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
def test_fit_equals_sorted_reference_hypothesis(x, dtype, q):
    G = x.astype(dtype)[:, None]
    rule = ev.Quantile(q)
    tail = ev.fit_tails(G, threshold=rule, method="mom", min_exceed=5, n_knots=8, progress=False)
    assert_model_equals_reference(tail, G, rule, "mom", n_knots=8, min_exceed=5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_radix_sort_matches_numpy(dtype, data):
    """Every sign, +-0, subnormals, infinities, ties, sorted and reversed runs."""
    width = 32 if dtype == np.float32 else 64
    a = data.draw(hnp.arrays(dtype, st.integers(0, 600),
                             elements=st.sampled_from([0.0, -0.0, 1.0, 2.0, np.inf, -np.inf])
                             | st.floats(allow_nan=False, width=width)))
    order = data.draw(st.sampled_from(["as drawn", "sorted", "reversed"]))
    a = {"as drawn": a, "sorted": np.sort(a), "reversed": np.sort(a)[::-1].copy()}[order]
    b = a.copy()
    sort_column(b, *radix_keys(dtype))
    np.testing.assert_array_equal(b, np.sort(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_radix_sort_rows_of_messy_columns(rng, dtype):
    """Each row of a block sorted in place, rows independent; columns long enough for every digit pass."""
    G = messy_matrix(rng, n=5000, dtype=dtype)
    T = np.ascontiguousarray(G.T)
    sort_rows(T, *radix_keys(dtype))
    np.testing.assert_array_equal(T, np.sort(G.T, axis=1))
