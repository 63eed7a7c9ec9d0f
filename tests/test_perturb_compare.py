"""compare, sensitivity, variations and baselines."""
import numpy as np
import pytest
from scipy import ndimage, stats

from evtools.perturb import Baseline, compare, make_baseline, occlusion, sensitivity, variations
from tests.reference.perturb_naive import ssim_naive

# ------------------------------------------------------------------ baselines


def test_baselines(rng):
    x = rng.random((2, 3, 9, 11))
    np.testing.assert_array_equal(make_baseline(x, "zero"), 0)
    np.testing.assert_array_equal(make_baseline(x, 0.25), 0.25)
    np.testing.assert_allclose(make_baseline(x, "mean"), np.broadcast_to(x.mean(axis=(2, 3), keepdims=True), x.shape))
    blur = make_baseline(x, Baseline("blur", sigma=1.7))
    np.testing.assert_allclose(blur, ndimage.gaussian_filter(x, sigma=(0, 0, 1.7, 1.7)), atol=1e-12)
    np.testing.assert_allclose(make_baseline(x[0], "blur"), ndimage.gaussian_filter(x[0], (0, 5, 5)), atol=1e-12)
    u = make_baseline(x, "uniform")
    lo, hi = x.min(axis=(2, 3), keepdims=True), x.max(axis=(2, 3), keepdims=True)
    assert np.all(u >= lo) and np.all(u <= hi)
    np.testing.assert_array_equal(u, make_baseline(x, "uniform"))
    assert not np.array_equal(u, make_baseline(x, Baseline("uniform", seed=1)))
    g = make_baseline(np.zeros((1, 1, 200, 200)), Baseline("gaussian", mean=1.0, std=2.0, seed=3))
    assert g.mean() == pytest.approx(1.0, abs=0.05) and g.std() == pytest.approx(2.0, abs=0.05)
    arr = rng.random((3, 1, 1))
    np.testing.assert_array_equal(make_baseline(x, arr), np.broadcast_to(arr, x.shape))
    assert repr(Baseline("blur", sigma=2.0)) == "Baseline('blur', sigma=2.0)"


# ------------------------------------------------------------------ compare


def test_compare_against_scipy_and_a_plain_ssim(rng):
    a = rng.random((12, 14))
    b = a + 0.3 * rng.random((12, 14))
    b[0, :4] = b[0, 4]  # ties
    c = compare(a, b, k=0.25)
    assert c.spearman == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic)
    top_a = set(np.argsort(-a.ravel(), kind="stable")[:42])
    top_b = set(np.argsort(-b.ravel(), kind="stable")[:42])
    assert c.top_k == pytest.approx(len(top_a & top_b) / 42)
    assert c.ssim == pytest.approx(ssim_naive(a, b))
    same = compare(a, a)
    assert (same.spearman, same.top_k, same.ssim) == pytest.approx((1.0, 1.0, 1.0))
    assert compare(a, -a).spearman == pytest.approx(-1.0)


def test_ssim_equals_skimage_full_map_mean(rng):
    metrics = pytest.importorskip("skimage.metrics")
    a, b = rng.random((20, 17)), 3 * rng.random((20, 17)) - 1
    scale = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731  compare scales to [0, 1]
    _, full = metrics.structural_similarity(
        scale(a), scale(b), gaussian_weights=True, use_sample_covariance=False, data_range=1.0, full=True
    )
    assert compare(a, b).ssim == pytest.approx(full.mean())


def test_compare_batches_and_constant_maps(rng):
    a, b = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    c = compare(a, b)
    assert c.spearman.shape == c.top_k.shape == c.ssim.shape == (3,)
    assert c.spearman[1] == pytest.approx(compare(a[1], b[1]).spearman)
    assert np.isnan(compare(np.ones((5, 5)), a[0, :5, :5]).spearman)


# ------------------------------------------------------------------ sensitivity


def test_sensitivity_runs_the_grid_and_reports_agreement(rng):
    x = rng.random((3, 10, 10))
    w = rng.standard_normal((3, 10, 10))
    f = lambda b: np.tanh(np.tensordot(b, w, axes=3))  # noqa: E731
    res = sensitivity(f, x, "occlusion", {"baseline": ["zero", "mean"], "window": [1, 3]}, stride=1)
    assert len(res.maps) == 4 and res.spearman.shape == (4, 4)
    assert res.labels[1] == "baseline=zero, window=3"
    np.testing.assert_allclose(np.diag(res.ssim), 1.0)
    np.testing.assert_allclose(res.spearman, res.spearman.T)
    np.testing.assert_allclose(res.maps[3], occlusion(f, x, 3, 1, baseline="mean"))
    assert res.spearman[0, 1] == pytest.approx(compare(res.maps[0], res.maps[1]).spearman)
    assert "least agreement" in str(res)
    custom = sensitivity(f, x, lambda f, x, scale: scale * x.sum(0), [{"scale": 1.0}, {"scale": -1.0}])
    assert custom.spearman[0, 1] == pytest.approx(-1.0)


# ------------------------------------------------------------------ variations


def test_variations_keep_the_salient_part_and_count_kept_outcomes(rng):
    x = np.zeros((1, 10, 10))
    x[0, 2:5, 2:5] = 1.0
    s = x[0].copy()
    f = lambda b: b[:, 0, 2:5, 2:5].mean(axis=(1, 2))  # noqa: E731  outcome: the square is there
    v = variations(f, x, s, n=6, keep=0.09, fill="uniform", seed=1)
    assert v.inputs.shape == (6, 1, 10, 10)
    np.testing.assert_array_equal(v.inputs[:, 0, 2:5, 2:5], 1.0)
    assert not np.array_equal(v.inputs[0], v.inputs[1])  # fresh noise per variation
    assert v.share == 1.0 and v.original == 1.0 and v.kept.all()
    wrong = np.zeros((10, 10))
    wrong[6:9, 6:9] = 1.0
    bad = variations(f, x, wrong, n=6, keep=0.09, fill=0.0)
    assert bad.share == 0.0
    pool = rng.random((4, 1, 10, 10))
    p = variations(f, x, s, n=5, keep=0.09, fill=pool, seed=2)
    outside = np.ones((10, 10), bool)
    outside[2:5, 2:5] = False
    for i in range(5):
        assert any(np.array_equal(p.inputs[i, 0][outside], q[0][outside]) for q in pool)


def test_variations_of_a_batch(rng):
    xs = rng.random((2, 3, 6, 6))
    ss = rng.random((2, 6, 6))
    f = lambda b: b.mean(axis=(1, 2, 3))  # noqa: E731
    v = variations(f, xs, ss, n=4, keep=0.5, fill="blur", threshold=0.4)
    assert v.inputs.shape == (2, 4, 3, 6, 6) and v.scores.shape == (2, 4) and v.share.shape == (2,)
    np.testing.assert_allclose(v.original, f(xs))
