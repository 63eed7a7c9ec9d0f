"""evtools.depth_profile: how often each layer reaches the top-k, against its share of filters."""
import types

import numpy as np
import pytest
from scipy import stats

import evtools as ev
from evtools.depth import depth_profile, layer_codes
from tests.reference.saliency_naive import depth_counts_naive


def _layers():
    return np.array(["conv1"] * 8 + ["conv2"] * 16 + ["conv3"] * 32 + ["fc"] * 8)


def test_counts_and_chi_square_match_naive(rng):
    layers = _layers()
    index = np.array([rng.permutation(layers.size)[:5] for _ in range(200)])
    prof = depth_profile(index, layers, k=3)
    names, counts, sizes = depth_counts_naive(index, list(layers), 3)
    np.testing.assert_array_equal(prof.layer, names)
    np.testing.assert_array_equal(prof.observed_count, counts)
    np.testing.assert_array_equal(prof.n_filters, sizes)
    np.testing.assert_allclose(prof.expected_share, sizes / sizes.sum())
    np.testing.assert_allclose(prof.observed_share, counts / (200 * 3))
    np.testing.assert_allclose(prof.enrichment, prof.observed_share / prof.expected_share)
    chi2, p = stats.chisquare(counts, sizes / sizes.sum() * 600)
    assert prof.chi2 == pytest.approx(chi2) and prof.pvalue == pytest.approx(p)
    assert prof.k == 3 and prof.n_rows == 200


def test_unbiased_ranking_is_not_rejected_and_biased_one_is():
    rng = np.random.default_rng(7)
    layers = _layers()
    pvals = [depth_profile(np.array([rng.permutation(64)[:10] for _ in range(100)]), layers).pvalue
             for _ in range(40)]
    assert np.mean(np.array(pvals) < 0.05) <= 0.15
    # a scorer that favours the first layer (Wang & Sato's bias of z-scores)
    weights = np.where(layers == "conv1", 6.0, 1.0)
    biased = np.array([rng.choice(64, 10, replace=False, p=weights / weights.sum()) for _ in range(100)])
    prof = depth_profile(biased, layers)
    assert prof.pvalue < 1e-6
    assert prof.layer[np.argmax(prof.enrichment)] == "conv1"
    assert "conv1" in repr(prof)


def test_accepts_ranking_and_filter_index_objects(rng):
    layers = _layers()
    index = np.array([rng.permutation(64)[:4] for _ in range(10)])
    ranking = types.SimpleNamespace(index=index)
    depth = np.repeat([3, 2, 1, 0], [8, 16, 32, 8])
    filt = types.SimpleNamespace(layer=layers, depth=depth)
    prof = depth_profile(ranking, filt)
    np.testing.assert_array_equal(prof.layer, ["fc", "conv3", "conv2", "conv1"])
    plain = depth_profile(index, layers)
    np.testing.assert_array_equal(prof.observed_count, plain.observed_count[::-1])
    one_row = depth_profile(index[0], layers)
    assert one_row.n_rows == 1 and one_row.observed_count.sum() == 4


def test_layer_codes_orders_by_first_appearance():
    layers, codes = layer_codes(["b", "b", "a", "c", "a"])
    np.testing.assert_array_equal(layers, ["b", "a", "c"])
    np.testing.assert_array_equal(codes, [0, 0, 1, 2, 1])


def test_tables(rng):
    prof = depth_profile(np.array([[0, 9], [20, 63]]), _layers())
    table = prof.to_dict()
    assert list(table) == ["layer", "n_filters", "expected_share", "observed_count", "observed_share", "enrichment"]
    assert prof.to_frame().shape == (4, 6)
    single = depth_profile(np.array([[0, 1]]), np.zeros(4, dtype=int))
    assert single.chi2 == 0.0 and single.pvalue == 1.0


@pytest.mark.parametrize(
    "ranks, layers, k, match",
    [
        (np.array([[0, 70]]), _layers(), None, "outside"),
        (np.array([[0.0, 1.0]]), _layers(), None, "integer column indices"),
        (np.array([[0, 1]]), _layers(), 3, "k must be"),
        (np.array([[0, 12]]), _layers()[:10], None, "outside"),
        (np.array([[0, 1]]), np.zeros((2, 2)), None, "1-D"),
    ],
)
def test_bad_input(ranks, layers, k, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        depth_profile(ranks, layers, k=k)
