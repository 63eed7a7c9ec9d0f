"""Occlusion, RISE and mask search: closed forms, plain-loop references, Captum."""
import math

import numpy as np
import pytest

from evtools.perturb import make_baseline, mask_search, occlusion, rise
from evtools.perturb.maps import _upsampling_crops
from tests.reference.perturb_naive import (
    bilinear_naive,
    mask_search_naive,
    occlusion_naive,
    rise_naive,
    smooth_mask_naive,
)


def linear_model(w, c=0.0):
    """f(batch) = <w, x> + c per image; w of shape (C, H, W)."""
    def f(b):
        return np.tensordot(b, w, axes=3) + c
    return f


def one_pixel_model(r, c):
    def f(b):
        return b[:, 0, r, c] * 1.0
    return f


def scalar(f):
    return lambda img: float(f(img[None])[0])


# ------------------------------------------------------------------ occlusion


def test_occlusion_window_one_is_gradient_times_input_for_a_linear_model(rng):
    x = rng.random((3, 9, 7))
    w = rng.standard_normal((3, 9, 7))
    for baseline in ("zero", "mean", 0.3):
        b = make_baseline(x, baseline)
        m = occlusion(linear_model(w, 2.0), x, 1, 1, baseline=baseline)
        np.testing.assert_allclose(m, (w * (x - b)).sum(0), atol=1e-12)


def test_occlusion_of_one_pixel_function(rng):
    r, c = 4, 2
    x = np.ones((2, 8, 6))
    m = occlusion(one_pixel_model(r, c), x, (3, 2), 1)
    assert m[r, c] == pytest.approx(1.0)
    rows, cols = np.indices(m.shape)
    far = (np.abs(rows - r) >= 3) | (np.abs(cols - c) >= 2)
    assert np.all(m[far] == 0)
    assert np.all(m[~far] > 0)


@pytest.mark.parametrize(
    "window, stride",
    [((1, 1), (1, 1)), ((3, 3), (1, 1)), ((3, 2), (2, 2)), ((4, 5), (3, 4)), ((9, 7), (5, 5)), ((9, 3), (1, 3))],
)
def test_occlusion_matches_plain_double_loop(rng, window, stride):
    x = rng.random((2, 9, 7))
    w = rng.standard_normal((2, 9, 7))
    f = lambda b: np.tanh(np.tensordot(b, w, axes=3))  # noqa: E731  nonlinear
    b = make_baseline(x, "blur")
    got = occlusion(f, x, window, stride, baseline="blur", batch_size=5)
    np.testing.assert_allclose(got, occlusion_naive(scalar(f), x, window, stride, b), atol=1e-12)


def test_occlusion_batch_equals_image_by_image(rng):
    xs = rng.random((3, 2, 6, 6))
    w = rng.standard_normal((2, 6, 6))
    f = lambda b: np.sin(np.tensordot(b, w, axes=3))  # noqa: E731
    batch = occlusion(f, xs, 2, 1, baseline="uniform", batch_size=7)
    for i in range(3):
        one = occlusion(f, xs[i], 2, 1, baseline=make_baseline(xs, "uniform")[i])
        np.testing.assert_allclose(batch[i], one, atol=1e-12)


@pytest.mark.parametrize("window, stride", [((3, 3), (1, 1)), ((4, 3), (3, 2)), ((5, 7), (2, 7)), ((2, 2), (2, 2))])
def test_occlusion_matches_captum(window, stride):
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 3, 10, 7), generator=g, dtype=torch.float64)
    w = torch.randn((3, 10, 7), generator=g, dtype=torch.float64)
    base = torch.rand((2, 3, 10, 7), generator=g, dtype=torch.float64)

    def f(b):
        return torch.tanh((b * w).sum(dim=(1, 2, 3)))

    ref = captum_attr.Occlusion(f).attribute(
        x, sliding_window_shapes=(3,) + window, strides=(3,) + stride, baselines=base,
        perturbations_per_eval=16,
    )
    got = occlusion(f, x, window, stride, baseline=base, batch_size=16)
    for ch in range(3):  # Captum divides in float32
        torch.testing.assert_close(got, ref[:, ch].double(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ RISE


@pytest.mark.parametrize("n_cells, size", [(3, 6), (4, 10), (7, 7), (5, 13)])
def test_upsampling_matches_naive_and_torch(n_cells, size):
    crops = _upsampling_crops(n_cells, size)
    cell = math.ceil(size / n_cells)
    assert crops.shape == (cell, size, n_cells)
    np.testing.assert_allclose(crops.sum(axis=2), 1.0)
    grid = np.random.default_rng(1).random((n_cells, 2))
    up = bilinear_naive(grid, (n_cells + 1) * cell, 2)
    for s in range(cell):
        np.testing.assert_allclose(crops[s] @ grid, up[s:s + size], atol=1e-12)
    torch = pytest.importorskip("torch")
    g2 = np.random.default_rng(2).random((n_cells, n_cells))
    t = torch.nn.functional.interpolate(
        torch.from_numpy(g2)[None, None], size=((n_cells + 1) * cell,) * 2, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(bilinear_naive(g2, (n_cells + 1) * cell, (n_cells + 1) * cell), t, atol=1e-12)


def test_rise_matches_plain_loop(rng):
    x = rng.random((2, 9, 8))
    w = rng.standard_normal((2, 9, 8))
    f = lambda b: 1 / (1 + np.exp(-np.tensordot(b, w, axes=3)))  # noqa: E731
    b = make_baseline(x, "mean")
    got = rise(f, x, n_masks=37, cells=(3, 4), p=0.4, baseline="mean", seed=5, batch_size=10)
    ref = rise_naive(scalar(f), x, 37, (3, 4), 0.4, b, seed=5)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_rise_converges_to_its_expectation_for_a_linear_model(rng):
    """E S(u) = f(b) + sum_v a_v (p + (1 - p) K(u, v)), a = w (x - b), K the mask kernel."""
    h = w_ = 6
    cells, p = (3, 3), 0.5
    x = rng.random((1, h, w_))
    wts = rng.standard_normal((1, h, w_)) / 10
    b = make_baseline(x, "mean")
    c = 0.7
    f = linear_model(wts, c)
    a = ((x - b) * wts).sum(0).ravel()
    cell = 2
    kernel = np.zeros((h * w_, h * w_))
    for sh in range(cell):
        for sw in range(cell):
            feats = np.stack([
                smooth_mask_naive(np.eye(9)[k].reshape(3, 3), sh, sw, h, w_).ravel() for k in range(9)
            ])  # (cells, pixels): interpolation weight of each cell at each pixel
            kernel += feats.T @ feats
    kernel /= cell * cell
    expected = (f(b[None])[0] + (p + (1 - p) * kernel) @ a).reshape(h, w_)
    got = rise(f, x, n_masks=40000, cells=cells, p=p, baseline="mean", seed=0, batch_size=4000)
    np.testing.assert_allclose(got, expected, atol=0.02)


def test_rise_of_a_constant_model_is_that_constant():
    x = np.ones((1, 14, 14))
    got = rise(lambda b: np.full(b.shape[0], 2.5), x, n_masks=3000, cells=7, seed=1, batch_size=500)
    np.testing.assert_allclose(got, 2.5, atol=0.1)


def region_model(rows, cols, sharp=20.0):
    """A probability that is high only when the region keeps its (bright) values."""
    def f(b):
        return 1 / (1 + np.exp(-sharp * (b[:, :, rows, cols].mean(axis=(1, 2, 3)) - 0.6)))
    return f


@pytest.mark.parametrize("method", ["rise", "mask_search"])
def test_maps_localise_a_one_region_function(method):
    x = np.ones((1, 16, 16))
    rows, cols = slice(8, 13), slice(2, 7)
    f = region_model(rows, cols)
    if method == "rise":
        m = rise(f, x, n_masks=1500, cells=4, seed=0, batch_size=500)
    else:
        m = mask_search(f, x, n_iter=40, n_chains=32, cells=4, seed=0)
    region = np.zeros((16, 16), bool)
    region[rows, cols] = True
    top = np.argsort(-m.ravel(), kind="stable")[: region.sum()]
    assert region.ravel()[top].mean() >= 0.8
    assert m[region].mean() - m[~region].mean() > 0.1


def test_mask_search_matches_plain_loop(rng):
    x = rng.random((2, 8, 9))
    w = rng.standard_normal((2, 8, 9))
    f = lambda b: 1 / (1 + np.exp(-np.tensordot(b, w, axes=3)))  # noqa: E731
    b = make_baseline(x, "zero")
    got = mask_search(f, x, n_iter=6, n_chains=5, cells=(3, 2), p=0.5, seed=11, batch_size=4)
    ref = mask_search_naive(scalar(f), x, 6, 5, (3, 2), 0.5, b, seed=11)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_seeds_make_rise_and_mask_search_reproducible(rng):
    x = rng.random((2, 8, 8))
    f = region_model(slice(0, 4), slice(0, 4))
    for method, kw in ((rise, dict(n_masks=50, cells=3)), (mask_search, dict(n_iter=4, n_chains=4, cells=3))):
        a = method(f, x, seed=3, **kw)
        np.testing.assert_array_equal(a, method(f, x, seed=3, **kw))
        assert not np.array_equal(a, method(f, x, seed=4, **kw))
