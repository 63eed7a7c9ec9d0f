"""fit_tails's radix-sorted blocks on messy columns: the order statistics (threshold, exceedance
counts, knots) equal the plain sort-based reference tails_naive.fit_column bit for bit, the GPD fits
equal the independent estimators of gpd_naive; the radix sort equals np.sort."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import evtools as ev
from evtools._kernels.sort import radix_keys, sort_column, sort_rows
from evtools._status import CONSTANT, OK, XI_BOUNDARY
from tests.reference import gpd_naive
from tests.reference.tails_naive import fit_column

# fields that follow from the order statistics alone: equal bit for bit
EXACT = ("threshold", "n_exceed", "status", "tail_mass", "knot_x", "knot_sf")
REF_KEY = {"tail_mass": "mass"}
METHODS = ("mle", "pwm", "pwmb", "zhang", "mom")
_MLE_CACHE = {}


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


def assert_fit_equals_independent(tail, j, x, method):
    """Column ``j``'s GPD fields against gpd_naive (the reference estimators, or the brute-force MLE)
    on its exceedances ``x[x > threshold] - threshold``, within rounding."""
    t, status = tail.threshold[j], tail.status[j]
    y = np.sort(x[x > t] - t)
    sigma, xi, loglik = tail.sigma[j], tail.xi[j], tail.loglik[j]
    if y.size == 0:
        assert (sigma, xi, status) == (np.inf, 0.0, CONSTANT) and np.isnan(loglik), (j, sigma, xi, loglik)
        return
    if status not in (OK, XI_BOUNDARY):  # the exponential with the mean excess
        assert xi == 0.0 and sigma == pytest.approx(y.mean(), rel=1e-12), (j, status, sigma, xi)
    elif method == "mle":
        key = y.tobytes()
        if key not in _MLE_CACHE:
            _MLE_CACHE[key] = gpd_naive.mle_bruteforce(y)
        ref_sigma, ref_xi, ref_ll = _MLE_CACHE[key]
        assert loglik >= ref_ll - 1e-9 * abs(ref_ll) - 1e-9, (j, loglik, ref_ll)
        # the likelihood is flat near its maximum: the brute-force search pins (sigma, xi) less closely
        np.testing.assert_allclose([sigma, xi], [ref_sigma, ref_xi], rtol=1e-4, atol=1e-5, err_msg=f"column {j}")
    else:
        ref = gpd_naive.ESTIMATORS[method](y)
        np.testing.assert_allclose([sigma, xi], ref, rtol=1e-9, atol=1e-12, err_msg=f"column {j}")
    assert loglik == pytest.approx(gpd_naive.loglik(y, sigma, xi), rel=1e-10, abs=1e-10), (j, status)


def assert_column_equals_reference(tail, j, ref, x, method):
    """Column ``j`` of ``tail``: the order-statistic fields equal the reference dict ``ref`` (of
    tails_naive.fit_column) bit for bit; the fit is checked by assert_fit_equals_independent on ``x``."""
    ref = {**ref, "knot_x": ref["knots"][0], "knot_sf": ref["knots"][1]}
    for field in EXACT:
        got = getattr(tail, field)[j]
        want = ref[REF_KEY.get(field, field)]
        assert np.array_equal(got, want), (j, field, got, want)
    assert_fit_equals_independent(tail, j, np.asarray(x, dtype=np.float64), method)


def assert_model_equals_reference(tail, G, rule, method, n_total=None, n_knots=64, min_exceed=10):
    """Every column of ``tail`` against tails_naive.fit_column at the rule's order-statistic position."""
    n_total = G.shape[0] if n_total is None else n_total
    position = rule.position(n_total)
    for j in range(G.shape[1]):
        ref = fit_column(G[:, j], rule, method, min_exceed, n_knots, n_total, position)
        assert_column_equals_reference(tail, j, ref, G[:, j], method)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", [ev.Quantile(0.98), ev.Quantile(0.9), ev.Quantile(0.5), ev.TopK(40)])
@pytest.mark.parametrize("method", METHODS)
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
    """ForwardStop reads sorted columns; each column's model equals the reference fit at its threshold."""
    G = messy_matrix(rng, n=600)[:, 5:]
    rule = ev.ForwardStop()
    tail = ev.fit_tails(G, threshold=rule, progress=False)
    np.testing.assert_array_equal(tail.threshold, rule.select(G))
    for j in range(G.shape[1]):
        assert tail.n_exceed[j] == np.sum(G[:, j] > tail.threshold[j])
        assert_column_equals_reference(tail, j, fit_column(G[:, j], ev.Fixed(tail.threshold[j])), G[:, j], "mle")


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
