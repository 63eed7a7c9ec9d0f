"""evtools.TopKAccumulator: streaming top k + 1 values per column."""
import numpy as np
import pytest

import evtools as ev


def _stream(acc, G, rng):
    start = 0
    while start < G.shape[0]:
        size = int(rng.integers(0, 40))
        acc.update(G[start:start + size])
        start += size
    return acc


def _top(G, k):
    return -np.sort(-G, axis=0)[:k + 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_equals_sorted_full_matrix(rng, dtype):
    G = rng.gamma(2.0, size=(500, 7)).astype(dtype)
    G[:50, 3] = 1.0  # ties
    acc = _stream(ev.TopKAccumulator(20), G, rng)
    assert acc.count == 500 and acc.n_filters == 7
    assert acc.top.dtype == dtype and acc.top.shape == (21, 7)
    np.testing.assert_array_equal(acc.top, _top(G, 20))
    acc.update(G[:5])  # keeps working after reading top
    np.testing.assert_array_equal(acc.top, _top(np.concatenate([G, G[:5]]), 20))


def test_fewer_rows_than_k(rng):
    G = rng.normal(size=(6, 3))
    acc = ev.TopKAccumulator(10).update(G)
    np.testing.assert_array_equal(acc.top, _top(G, 10))
    assert acc.top.shape == (6, 3)


def test_merge_equals_one_stream(rng):
    G = rng.standard_exponential((300, 5))
    a = _stream(ev.TopKAccumulator(15), G[:120], rng)
    b = _stream(ev.TopKAccumulator(15), G[120:], rng)
    a.merge(b).merge(ev.TopKAccumulator(15))
    assert a.count == 300
    np.testing.assert_array_equal(a.top, _top(G, 15))


def test_float64_block_promotes_float32_state(rng):
    G = rng.normal(size=(50, 2))
    acc = ev.TopKAccumulator(4).update(G[:25].astype(np.float32)).update(G[25:])
    assert acc.top.dtype == np.float64
    np.testing.assert_array_equal(acc.top, _top(np.concatenate([G[:25].astype(np.float32), G[25:]]), 4))


def test_bad_input(rng):
    with pytest.raises(ev.InvalidInputError, match="positive integer"):
        ev.TopKAccumulator(0)
    acc = ev.TopKAccumulator(3).update(rng.normal(size=(4, 2)))
    with pytest.raises(ev.InvalidInputError, match="same columns"):
        acc.update(rng.normal(size=(4, 3)))
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        acc.update(np.array([[1.0, np.nan]]))
    with pytest.raises(ev.InvalidInputError, match="k=3 and k=4"):
        acc.merge(ev.TopKAccumulator(4))
    with pytest.raises(ev.InvalidInputError, match="empty"):
        ev.TopKAccumulator(3).top
    assert repr(acc) == "TopKAccumulator(k=3, count=4, n_filters=2)"


@pytest.mark.parametrize("method", ["mle", "pwm"])
def test_fit_equals_fit_tails_on_full_matrix(rng, method):
    G = np.concatenate([rng.pareto(3.0, size=(2000, 4)), rng.gamma(2.0, size=(2000, 2)),
                        np.zeros((2000, 1))], axis=1)  # and a dead filter
    k = 100
    acc = _stream(ev.TopKAccumulator(k), G, rng)
    tail = acc.fit(method=method)
    full = ev.fit_tails(G, threshold=ev.TopK(k), method=method)
    for name in ("threshold", "rate", "sigma", "xi", "n_exceed", "status"):
        np.testing.assert_allclose(getattr(tail, name), getattr(full, name), rtol=1e-12, err_msg=name)
    above = np.maximum(G[:50], np.nextafter(full.threshold, np.inf))  # scores above the threshold
    np.testing.assert_allclose(tail.score(above), full.score(above), rtol=1e-12)
