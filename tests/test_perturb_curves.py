"""Deletion, insertion, MoRF and LeRF: closed forms and plain-loop references."""
import numpy as np
import pytest

from evtools.perturb import deletion, insertion, lerf, make_baseline, morf
from tests.reference.perturb_naive import deletion_naive, region_curve_naive, trapezoid_naive


def mean_model(b):
    return b.mean(axis=(1, 2, 3))


def region_mean_model(rows, cols):
    return lambda b: b[:, :, rows, cols].mean(axis=(1, 2, 3))


def scalar(f):
    return lambda img: float(f(img[None])[0])


def test_deletion_and_insertion_of_the_mean_are_straight_lines(rng):
    x = np.ones((3, 10, 10))
    s = rng.random((10, 10))
    d = deletion(mean_model, x, s, baseline="zero", step=7)
    np.testing.assert_allclose(d.scores, 1 - d.fraction, atol=1e-12)
    assert d.fraction[0] == 0 and d.fraction[-1] == 1
    assert d.auc == pytest.approx(0.5)
    i = insertion(mean_model, x, s, baseline=0.0, step=7)
    np.testing.assert_allclose(i.scores, i.fraction, atol=1e-12)
    assert i.auc == pytest.approx(0.5)
    assert i.aopc == pytest.approx(-np.mean(i.fraction))


def test_deletion_of_a_one_region_function_with_the_right_map():
    x = np.ones((1, 8, 8))
    rows, cols = slice(2, 6), slice(2, 6)  # 16 pixels
    s = np.zeros((8, 8))
    s[rows, cols] = 1.0
    d = deletion(region_mean_model(rows, cols), x, s, step=4)
    expected = np.maximum(0.0, 1 - 4 * np.arange(17) / 16)
    np.testing.assert_allclose(d.scores, expected, atol=1e-12)
    assert d.auc == pytest.approx(16 / 64 / 2)
    i = insertion(region_mean_model(rows, cols), x, s, baseline="zero", step=4)
    np.testing.assert_allclose(i.scores, 1 - expected, atol=1e-12)


@pytest.mark.parametrize("step", [1, 5, 13])
@pytest.mark.parametrize("baseline", ["zero", "blur", "uniform"])
def test_deletion_and_insertion_match_plain_loops(rng, step, baseline):
    x = rng.random((2, 7, 9))
    w = rng.standard_normal((2, 7, 9))
    f = lambda b: np.tanh(np.tensordot(b, w, axes=3))  # noqa: E731
    s = np.round(rng.random((7, 9)), 1)  # ties: raster order decides
    b = make_baseline(x, baseline)
    d = deletion(f, x, s, baseline=baseline, step=step, batch_size=6)
    ref = deletion_naive(scalar(f), x, s, b, step)
    np.testing.assert_allclose(d.scores, ref, atol=1e-12)
    assert d.auc == pytest.approx(trapezoid_naive(ref, d.fraction))
    i = insertion(f, x, s, baseline=baseline, step=step, batch_size=6)
    np.testing.assert_allclose(i.scores, deletion_naive(scalar(f), x, s, b, step, insert=True), atol=1e-12)


def test_morf_and_lerf_of_a_one_tile_function():
    x = np.ones((2, 12, 12))
    rows, cols = slice(4, 8), slice(8, 12)  # exactly one 4 x 4 tile
    s = np.zeros((12, 12))
    s[rows, cols] = 1.0
    f = region_mean_model(rows, cols)
    mo = morf(f, x, s, region=4, baseline="zero")
    np.testing.assert_allclose(mo.scores, [1.0] + [0.0] * 9)
    assert mo.aopc == pytest.approx(9 / 10)
    np.testing.assert_allclose(mo.fraction, np.arange(10) / 9)
    le = lerf(f, x, s, region=4, baseline="zero")
    np.testing.assert_allclose(le.scores, [1.0] * 9 + [0.0])
    assert le.aopc == pytest.approx(1 / 10)


@pytest.mark.parametrize("region", [(3, 3), (4, 5), (7, 2)])
def test_region_curves_match_plain_loops(rng, region):
    x = rng.random((3, 10, 9))
    w = rng.standard_normal((3, 10, 9))
    f = lambda b: np.tanh(np.tensordot(b, w, axes=3))  # noqa: E731
    s = rng.random((10, 9))
    b = make_baseline(x, "uniform")
    for fn, first in ((morf, True), (lerf, False)):
        c = fn(f, x, s, region=region, batch_size=4)
        ref = region_curve_naive(scalar(f), x, s, region, b, most_relevant_first=first)
        np.testing.assert_allclose(c.scores, ref, atol=1e-12)
        assert c.aopc == pytest.approx(np.mean(ref[0] - ref))


def test_region_curve_can_stop_early(rng):
    x = rng.random((1, 8, 8))
    c = morf(mean_model, x, rng.random((8, 8)), region=2, n_steps=5)
    assert c.scores.shape == (6,) and c.fraction[-1] == pytest.approx(5 / 16)


def test_curves_of_a_batch_equal_image_by_image(rng):
    xs = rng.random((3, 2, 6, 6))
    ss = rng.random((3, 6, 6))
    w = rng.standard_normal((2, 6, 6))
    f = lambda b: np.sin(np.tensordot(b, w, axes=3))  # noqa: E731
    for fn, kw in ((deletion, dict(step=5)), (insertion, dict(step=5)), (morf, dict(region=3)), (lerf, dict(region=3))):
        batch = fn(f, xs, ss, baseline="mean", batch_size=7, **kw)
        assert batch.scores.shape[0] == 3 and batch.auc.shape == (3,)
        for i in range(3):
            one = fn(f, xs[i], ss[i], baseline="mean", **kw)
            np.testing.assert_allclose(batch.scores[i], one.scores, atol=1e-12)
            assert batch.aopc[i] == pytest.approx(one.aopc)


def test_deletion_matches_quantus_pixel_flipping():
    torch = pytest.importorskip("torch")
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()  # Quantus feeds float32
    x = torch.rand((2, 1, 8, 8), generator=g)
    a = torch.rand((2, 8, 8), generator=g)  # no ties
    y = np.array([2, 2])  # f scores one class for the whole batch
    black = x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)  # Quantus' "black"

    def f(b):
        return torch.softmax(net(b), dim=1)[:, 2]

    ours = deletion(f, x, a, baseline=black, step=4)
    metric = quantus.PixelFlipping(
        features_in_step=4, perturb_baseline="black", normalise=False, abs=False, disable_warnings=True
    )
    theirs = metric(
        model=net, x_batch=x.numpy(), y_batch=y, a_batch=a[:, None].numpy(), device="cpu", softmax=True,
        channel_first=True,
    )
    np.testing.assert_allclose(ours.scores[:, 1:].numpy(), np.asarray(theirs), rtol=1e-5)
