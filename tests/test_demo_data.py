"""Demo data: procedural shapes/textures, ImageNet-C style corruptions, shifted domain."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch: pip install 'evtools[torch]'")

from evtools import InvalidInputError  # noqa: E402
from evtools_torch.demo import CLASSES, CORRUPTIONS, DOMAINS, as_tensors, corrupt, make_shapes  # noqa: E402


@pytest.fixture(scope="module")
def images():
    return make_shapes(300, seed=3)


@pytest.mark.parametrize("domain", DOMAINS)
def test_shapes_dtypes_and_range(domain):
    x, y = make_shapes(57, seed=0, domain=domain)
    assert x.shape == (57, 3, 32, 32) and x.dtype == np.float32
    assert y.shape == (57,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) <= set(range(len(CLASSES)))


@pytest.mark.parametrize("domain", DOMAINS)
def test_deterministic_given_seed(domain):
    a = make_shapes(40, seed=7, domain=domain)
    b = make_shapes(40, seed=7, domain=domain)
    c = make_shapes(40, seed=8, domain=domain)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("n", [10, 1000, 1003])
def test_classes_balanced(n):
    _, y = make_shapes(n, seed=1)
    counts = np.bincount(y, minlength=len(CLASSES))
    assert counts.min() == n // 10 and counts.max() == -(-n // 10)
    assert not np.array_equal(y, np.sort(y))  # shuffled


def test_classes_are_distinct():
    # A nearest-centroid rule on the (translation-invariant) amplitude spectrum of grey
    # images recognises every class well above chance (10 %); a CNN does far better.
    x, y = make_shapes(2000, seed=11)
    grey = x.mean(axis=1)
    feats = np.log1p(np.abs(np.fft.rfft2(grey - grey.mean(axis=(1, 2), keepdims=True)))).reshape(len(x), -1)
    feats = (feats - feats.mean(0)) / feats.std(0)
    train, test = slice(0, 1000), slice(1000, None)
    centroids = np.stack([feats[train][y[train] == c].mean(0) for c in range(10)])
    pred = np.argmin(((feats[test, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    recall = np.array([(pred[y[test] == c] == c).mean() for c in range(10)])
    assert (pred == y[test]).mean() > 0.4
    assert recall.min() > 0.2, recall


def test_shifted_domain_differs_in_palette():
    src, y = make_shapes(500, seed=2, domain="source")
    dst, y2 = make_shapes(500, seed=2, domain="shifted")
    np.testing.assert_array_equal(y, y2)  # same labels and geometry, new look
    # Source: dark backgrounds; shifted: light, blotchy backgrounds (corners are mostly background).
    corner = (slice(None), slice(None), slice(0, 3), slice(0, 3))
    assert src[corner].mean() < 0.35 < 0.6 < dst[corner].mean()


def test_bad_arguments():
    for n in (0, -3, 2.5, True):
        with pytest.raises(InvalidInputError, match="positive integer"):
            make_shapes(n)
    with pytest.raises(InvalidInputError, match="domain"):
        make_shapes(10, domain="svhn")


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_keep_shape_range_and_input(images, kind):
    x = images[0]
    before = x.copy()
    for severity in range(1, 6):
        out = corrupt(x, kind, severity)
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.array_equal(out, x)
    np.testing.assert_array_equal(x, before)


def _total_variation(x):
    return np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean()


@pytest.mark.parametrize(
    "kind, measure, direction",
    [
        ("gaussian_noise", lambda x, c: np.abs(c - x).mean(), +1),
        ("gaussian_blur", lambda x, c: _total_variation(c), -1),
        ("contrast", lambda x, c: c.std(axis=(1, 2, 3)).mean(), -1),
        ("brightness", lambda x, c: c.mean(), +1),
    ],
)
def test_severity_is_monotone(images, kind, measure, direction):
    x = images[0]
    values = np.array([measure(x, corrupt(x, kind, s)) for s in range(1, 6)])
    assert np.all(direction * np.diff(values) > 0), values


def test_brightness_keeps_hue_and_noise_is_seeded(images):
    x = images[0][:20]
    out = corrupt(x, "brightness", 2)
    # Channel ratios (hue and saturation) are kept where nothing saturates at 1.
    keep = (x.max(axis=1) > 0.2) & (out.max(axis=1) < 0.999)
    ratio_in = x[:, 0] / x.max(axis=1).clip(1e-6)
    ratio_out = out[:, 0] / out.max(axis=1).clip(1e-6)
    np.testing.assert_allclose(ratio_in[keep], ratio_out[keep], atol=1e-5)
    np.testing.assert_array_equal(corrupt(x, "gaussian_noise", 3, seed=1), corrupt(x, "gaussian_noise", 3, seed=1))
    assert not np.array_equal(corrupt(x, "gaussian_noise", 3, seed=1), corrupt(x, "gaussian_noise", 3, seed=2))


def test_corrupt_bad_arguments(images):
    x = images[0]
    with pytest.raises(InvalidInputError, match="kind"):
        corrupt(x, "fog", 1)
    for severity in (0, 6, 2.0, True):
        with pytest.raises(InvalidInputError, match="severity"):
            corrupt(x, "contrast", severity)
    with pytest.raises(InvalidInputError, match="shape"):
        corrupt(x[0], "contrast", 1)


def test_as_tensors(images):
    x, y = images
    xt, yt = as_tensors(x, y)
    assert xt.dtype == torch.float32 and yt.dtype == torch.int64
    assert torch.equal(xt, torch.from_numpy(x))
    assert as_tensors(x).shape == (300, 3, 32, 32)
