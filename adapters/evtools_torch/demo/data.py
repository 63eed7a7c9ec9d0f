"""Procedurally generated demo images: ten classes of shapes and textures at 32x32.

Nothing is downloaded: every image is drawn from a seed with vectorised numpy,
so the same ``(n, seed, domain)`` gives the same images bit for bit on every
machine. Three kinds of data come out of this module:

* the **source domain** (:func:`make_shapes` with ``domain="source"``): bright,
  saturated shapes and textures on dark, plain backgrounds, at a random
  position, scale, rotation and colour, with a little pixel noise;
* **corrupted variants** of any images (:func:`corrupt`): Gaussian noise,
  Gaussian blur, contrast and brightness at severities 1 to 5, following the
  recipes of ImageNet-C (Hendrycks & Dietterich 2019) scaled to 32x32 images;
* a **shifted domain** (``domain="shifted"``): the same class geometry in dark
  colours on light, blotchy textured backgrounds never seen in the source
  domain, in the spirit of MNIST -> SVHN or PACS leave-one-domain-out.

Images are float32 in [0, 1] with shape ``(N, 3, 32, 32)``; labels are int64
class indices into :data:`CLASSES`.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from evtools.adapter import InvalidInputError, positive_int

CLASSES = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "horizontal_stripes",
    "vertical_stripes",
    "checkerboard",
    "diagonal_stripes",
    "dots",
)
"""Names of the ten classes, in label order."""

DOMAINS = ("source", "shifted")
"""Domains accepted by :func:`make_shapes`."""

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast", "brightness")
"""Corruptions accepted by :func:`corrupt`."""

IMAGE_SIZE = 32

# ImageNet-C style parameters per corruption, one per severity 1..5.
# Noise and brightness use ImageNet-C's values (images in [0, 1]); blur and
# contrast use values between CIFAR-10-C's and ImageNet-C's, because 32x32
# images blur away at ImageNet's blur widths.
_SEVERITY_PARAMS = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise standard deviation
    "gaussian_blur": (0.5, 0.75, 1.0, 1.5, 2.0),  # blur standard deviation, pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on the deviation from the mean
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to the HSV value channel
}


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; inputs of shape (n,), output (n, 3), all in [0, 1]."""
    n = np.array([5.0, 3.0, 1.0])
    k = (n[None, :] + 6.0 * h[:, None]) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _upsampling_matrix(n_in, n_out):
    """Matrix (n_out, n_in) of smooth (smoothstep-weighted linear) interpolation."""
    t = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    lo = np.minimum(np.floor(t).astype(int), n_in - 2)
    frac = t - lo
    frac = frac * frac * (3.0 - 2.0 * frac)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def _soft(sdf):
    """Anti-aliased coverage from a signed distance in pixels (positive inside)."""
    return np.clip(0.5 + sdf, 0.0, 1.0)


def _stripe_sdf(t, period):
    """Signed distance to stripes of half-width period/4 along coordinate ``t``."""
    return period / 4.0 - np.abs(np.mod(t, period) - period / 2.0)


def _masks(label, p, gy, gx):
    """Foreground coverage of one class.

    Parameters
    ----------
    label : int
        Class index into :data:`CLASSES`.
    p : dict of ndarray, each of shape (m, 1, 1)
        Per-image geometry: centre ``cy, cx``, size ``s``, rotation ``theta``,
        texture ``period``, phases ``py, px`` and diagonal direction ``sign``.
    gy, gx : ndarray, shape (1, 32, 32)
        Pixel-centre coordinates.

    Returns
    -------
    ndarray, shape (m, 32, 32)
        Coverage in [0, 1].
    """
    dy, dx = gy - p["cy"], gx - p["cx"]
    s = p["s"]
    cos, sin = np.cos(p["theta"]), np.sin(p["theta"])
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    name = CLASSES[label]
    if name == "circle":
        return _soft(s - np.hypot(dx, dy))
    if name == "square":
        return _soft(0.85 * s - np.maximum(np.abs(u), np.abs(v)))
    if name == "triangle":
        # Equilateral, apex up (image y grows downwards), circumradius 1.25 s.
        r_in = 0.625 * s
        v = v - 0.3 * s  # centre the triangle's bounding box on (cx, cy)
        edges = np.minimum(r_in - v, np.minimum(r_in - (0.866 * u - 0.5 * v), r_in - (-0.866 * u - 0.5 * v)))
        return _soft(edges)
    if name == "cross":
        w = 0.3 * s
        au, av = np.abs(u), np.abs(v)
        return _soft(np.maximum(np.minimum(w - au, s - av), np.minimum(w - av, s - au)))
    if name == "ring":
        r = np.hypot(dx, dy)
        return _soft(np.minimum(r - 0.55 * s, s - r))
    # Textures fill a square window of half-size 1.4 s around the centre.
    window = _soft(1.4 * s - np.maximum(np.abs(dx), np.abs(dy)))
    period = p["period"]
    ty, tx = gy - p["py"], gx - p["px"]
    if name == "horizontal_stripes":
        tex = _stripe_sdf(ty, period)
    elif name == "vertical_stripes":
        tex = _stripe_sdf(tx, period)
    elif name == "checkerboard":
        fy, fx = _stripe_sdf(ty, period), _stripe_sdf(tx, period)
        tex = -fy * fx / (period / 4.0)
    elif name == "diagonal_stripes":
        tex = _stripe_sdf((tx + p["sign"] * ty) / np.sqrt(2.0), period / np.sqrt(2.0))
    else:  # dots
        ay = np.mod(ty, period) - period / 2.0
        ax = np.mod(tx, period) - period / 2.0
        tex = 0.28 * period - np.hypot(ay, ax)
    return _soft(tex) * window


def _check_domain(domain):
    if domain not in DOMAINS:
        raise InvalidInputError(f"domain must be one of {DOMAINS}, got {domain!r}")


def make_shapes(n, seed=0, *, domain="source"):
    """Draw ``n`` labelled images of the ten demo classes.

    Labels are exactly balanced (``n // 10`` or ``n // 10 + 1`` images per
    class) and shuffled. Each image gets its own position, scale, rotation
    (shapes only), texture period and phase (textures only), colours and noise.

    Parameters
    ----------
    n : int
        Number of images, at least 1.
    seed : int or sequence of int or numpy.random.SeedSequence
        Anything :func:`numpy.random.default_rng` accepts. The same seed,
        ``n`` and ``domain`` give bit-identical output.
    domain : {"source", "shifted"}
        ``"source"``: bright saturated foreground on a dark plain background.
        ``"shifted"``: dark foreground on a light background with coloured
        low-frequency blotches, a palette and texture the source never shows.

    Returns
    -------
    x : ndarray, shape (n, 3, 32, 32), float32
        Images in [0, 1].
    y : ndarray, shape (n,), int64
        Class indices into :data:`CLASSES`.

    Examples
    --------
    >>> x, y = make_shapes(1000, seed=0)
    >>> x.shape, y.shape
    ((1000, 3, 32, 32), (1000,))
    """
    n = positive_int(n, "n")
    _check_domain(domain)
    rng = np.random.default_rng(seed)
    n_cls = len(CLASSES)
    y = rng.permutation(np.arange(n) % n_cls).astype(np.int64)

    col = lambda a: a.reshape(n, 1, 1)  # noqa: E731  (per-image value, broadcast over pixels)
    s = rng.uniform(4.5, 11.0, n)
    p = {
        "s": col(s),
        "cy": col(rng.uniform(s, IMAGE_SIZE - s)),
        "cx": col(rng.uniform(s, IMAGE_SIZE - s)),
        "theta": col(rng.uniform(-0.4, 0.4, n)),
        "period": col(rng.uniform(4.0, 8.0, n)),
        "py": col(rng.uniform(0.0, 8.0, n)),
        "px": col(rng.uniform(0.0, 8.0, n)),
        "sign": col(rng.choice([-1.0, 1.0], n)),
    }
    if domain == "source":
        fg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.4, 1.0, n), rng.uniform(0.55, 1.0, n))
        bg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.0, 0.6, n), rng.uniform(0.0, 0.45, n))
    else:
        fg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.3, 1.0, n), rng.uniform(0.05, 0.3, n))
        bg = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.0, 0.4, n), rng.uniform(0.7, 1.0, n))
    noise_sd = rng.uniform(0.0, 0.12, n)

    g = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    gy, gx = g[None, :, None], g[None, None, :]
    mask = np.empty((n, IMAGE_SIZE, IMAGE_SIZE))
    for label in range(n_cls):
        rows = np.flatnonzero(y == label)
        if rows.size:
            mask[rows] = _masks(label, {k: v[rows] for k, v in p.items()}, gy, gx)

    # Composite in float32: the images are float32 anyway and this halves the time.
    mask = mask.astype(np.float32)[:, None]
    background = bg.astype(np.float32)[:, :, None, None]
    if domain == "shifted":
        # Coloured blotches: a 4x4 random field per channel, upsampled smoothly.
        field = rng.uniform(-0.3, 0.3, (n, 3, 4, 4)).astype(np.float32)
        up = _upsampling_matrix(4, IMAGE_SIZE).astype(np.float32)
        background = background + np.einsum("ia,ncab,jb->ncij", up, field, up, optimize=True)
    x = background + (fg.astype(np.float32)[:, :, None, None] - background) * mask
    x += noise_sd.astype(np.float32)[:, None, None, None] * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x, 0.0, 1.0, out=x), y


def _check_images(x):
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 3:
        raise InvalidInputError(f"x must have shape (N, 3, H, W), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInputError(f"x must be a float image array in [0, 1], got dtype {x.dtype}")
    return x


def corrupt(x, kind, severity, seed=0):
    """Apply an ImageNet-C style corruption to images.

    Parameters
    ----------
    x : array_like, shape (N, 3, H, W), float
        Images in [0, 1].
    kind : {"gaussian_noise", "gaussian_blur", "contrast", "brightness"}
        ``gaussian_noise``: add N(0, c^2) pixel noise, c in (0.08 .. 0.38).
        ``gaussian_blur``: Gaussian blur of standard deviation c in (0.5 .. 2) pixels.
        ``contrast``: ``(x - mean) * c + mean`` per image, c in (0.75 .. 0.15).
        ``brightness``: add c in (0.1 .. 0.5) to the HSV value channel, keeping
        hue and saturation (black pixels turn grey).
    severity : int
        1 (mild) to 5 (severe).
    seed : int or sequence of int
        Seed of the noise (only ``gaussian_noise`` draws random numbers).

    Returns
    -------
    ndarray, shape (N, 3, H, W), float32
        Corrupted images, clipped to [0, 1]. ``x`` is not modified.
    """
    x = _check_images(x)
    if kind not in CORRUPTIONS:
        raise InvalidInputError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise InvalidInputError(f"severity must be an integer from 1 to 5, got {severity!r}")
    c = _SEVERITY_PARAMS[kind][severity - 1]
    x = x.astype(np.float64)
    if kind == "gaussian_noise":
        out = x + c * np.random.default_rng(seed).standard_normal(x.shape)
    elif kind == "gaussian_blur":
        out = gaussian_filter(x, sigma=(0, 0, c, c), mode="reflect")
    elif kind == "contrast":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        out = (x - mean) * c + mean
    else:  # brightness: each RGB channel is proportional to V at fixed hue and saturation
        value = x.max(axis=1, keepdims=True)
        new_value = np.minimum(value + c, 1.0)
        safe = np.where(value > 0, value, 1.0)
        out = np.where(value > 0, x * (new_value / safe), new_value)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def as_tensors(x, y=None, *, device=None):
    """Turn demo arrays into torch tensors.

    Parameters
    ----------
    x : ndarray, shape (N, 3, H, W)
        Images, converted to float32.
    y : ndarray, shape (N,), optional
        Labels, converted to int64.
    device : torch.device or str, optional
        Where the tensors go (default: CPU).

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        ``x`` alone when ``y`` is None, else ``(x, y)``.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    if y is None:
        return xt
    return xt, torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
