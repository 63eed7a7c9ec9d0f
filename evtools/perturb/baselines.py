"""Baselines: what an occluded, masked or deleted pixel is replaced with.

One definition serves every map (occlusion, RISE, mask search), every curve
(deletion, insertion, MoRF, LeRF) and the variations. A baseline is given as

* a name: ``"zero"``, ``"mean"`` (per-channel mean of each image), ``"blur"``
  (Gaussian blur of the image, sigma 5 pixels), ``"uniform"`` (noise uniform
  between each channel's min and max), ``"gaussian"`` (noise with each
  channel's mean and standard deviation); noise is seeded (seed 0);
* a number: that constant everywhere;
* an array broadcastable to the image batch ``(N, C, H, W)``, e.g. ``(C, H, W)``;
* a :class:`Baseline`, to set parameters: ``Baseline("blur", sigma=2)``,
  ``Baseline("uniform", low=0, high=1, seed=3)``.

Brunke et al. (2021) show that no baseline is neutral: the maps and the scores
that perturbation curves give them change with it. :func:`evtools.perturb.sensitivity`
measures by how much.
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .._errors import InvalidInputError
from .._validation import check_int
from ._checks import Images, as_images, require_finite, with_namespace

_PARAMS = {
    "zero": {},
    "mean": {},
    "blur": {"sigma": 5.0},
    "uniform": {"low": None, "high": None, "seed": 0},
    "gaussian": {"mean": None, "std": None, "seed": 0},
    "constant": {"value": 0.0},
}


class Baseline:
    """A named baseline with its parameters.

    Parameters
    ----------
    kind : {"zero", "mean", "blur", "uniform", "gaussian", "constant"}
    sigma : float, kind "blur"
        Standard deviation of the Gaussian blur in pixels (default 5). The blur
        is separable, per channel, with scipy's ``mode="reflect"`` borders and
        ``truncate=4``: it equals ``scipy.ndimage.gaussian_filter``.
    low, high : float, kind "uniform"
        Range of the noise; default: each image channel's min and max.
    mean, std : float, kind "gaussian"
        Mean and standard deviation of the noise; default: each image
        channel's mean and standard deviation.
    seed : int, kinds "uniform" and "gaussian"
        Seed of the noise (default 0). Noise is drawn with numpy's
        ``default_rng(seed)`` in shape ``(N, C, H, W)`` and moved to the
        input's device, so numpy, torch and JAX inputs get the same baseline.
    value : float, kind "constant"

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((3, 8, 8))
    >>> float(Baseline("constant", value=0.5)(x).mean())
    0.5
    """

    def __init__(self, kind, **params):
        if kind not in _PARAMS:
            raise InvalidInputError(f"unknown baseline kind {kind!r}; choose one of {sorted(_PARAMS)}")
        unknown = set(params) - set(_PARAMS[kind])
        if unknown:
            allowed = sorted(_PARAMS[kind]) or "none"
            raise InvalidInputError(
                f"baseline {kind!r} takes no parameter(s) {sorted(unknown)}; its parameters: {allowed}"
            )
        values = {**_PARAMS[kind], **params}
        for key, v in values.items():
            if key == "seed":
                check_int(v, "seed", low=0)
            elif v is not None and (not isinstance(v, numbers.Real) or isinstance(v, bool) or not np.isfinite(v)):
                raise InvalidInputError(f"{key} of baseline {kind!r} must be a finite number, got {v!r}")
        if kind == "blur" and not values["sigma"] > 0:
            raise InvalidInputError(f"sigma of the blur baseline must be > 0, got {values['sigma']}")
        if kind == "gaussian" and values["std"] is not None and values["std"] < 0:
            raise InvalidInputError(f"std of the gaussian baseline must be >= 0, got {values['std']}")
        if kind == "uniform" and None not in (values["low"], values["high"]) and values["low"] > values["high"]:
            raise InvalidInputError(f"uniform baseline needs low <= high, got {values['low']} > {values['high']}")
        self.kind = kind
        self.params = values

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Baseline({self.kind!r}{args})"

    def __eq__(self, other):
        return isinstance(other, Baseline) and (self.kind, self.params) == (other.kind, other.params)

    def __hash__(self):
        return hash((self.kind, tuple(self.params.items())))

    def __call__(self, x):
        """The baseline for ``x`` (one image ``(C, H, W)`` or a batch), same shape, namespace, device."""
        images = as_images(x)
        return images.unbatch(self._fill(images))

    def _fill(self, images: Images):
        xp, x = images.xp, images.x
        p = self.params
        if self.kind == "zero":
            return xp.zeros_like(x)
        if self.kind == "constant":
            return xp.full_like(x, p["value"])
        if self.kind == "mean":
            return xp.zeros_like(x) + xp.mean(x, axis=(2, 3), keepdims=True)
        if self.kind == "blur":
            _, _, h, w = images.shape
            kh = images.asarray(gaussian_matrix(h, float(p["sigma"])), dtype=x.dtype)
            kw = images.asarray(gaussian_matrix(w, float(p["sigma"])), dtype=x.dtype)
            return xp.matmul(xp.matmul(kh, x), xp.matrix_transpose(kw))
        rng = np.random.default_rng(p["seed"])
        if self.kind == "uniform":
            u = images.asarray(rng.random(images.shape), dtype=x.dtype)
            low = xp.min(x, axis=(2, 3), keepdims=True) if p["low"] is None else p["low"]
            high = xp.max(x, axis=(2, 3), keepdims=True) if p["high"] is None else p["high"]
            return low + (high - low) * u
        z = images.asarray(rng.standard_normal(images.shape), dtype=x.dtype)
        mean = xp.mean(x, axis=(2, 3), keepdims=True) if p["mean"] is None else p["mean"]
        std = xp.std(x, axis=(2, 3), keepdims=True) if p["std"] is None else p["std"]
        return mean + std * z


@lru_cache(maxsize=64)
def gaussian_matrix(n, sigma, truncate=4.0):
    """The (n, n) matrix of a 1-D Gaussian filter with scipy's ``mode="reflect"`` borders.

    ``gaussian_matrix(n, s) @ v`` equals ``scipy.ndimage.gaussian_filter1d(v, s)``
    for any ``v`` of length ``n``, so a separable 2-D blur is two matrix
    products that run in any array namespace, on any device.

    Returns
    -------
    ndarray, shape (n, n), float64
        Cached and shared between calls: read it, never write to it.
    """
    return gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect", truncate=truncate)


def as_baseline(baseline):
    """Normalise a name or a :class:`Baseline`; numbers and arrays pass through."""
    if isinstance(baseline, str):
        if baseline == "constant":
            raise InvalidInputError('give a constant baseline as a number, e.g. baseline=0.5')
        return Baseline(baseline)
    return baseline


def resolve_baseline(images: Images, baseline, name="baseline"):
    """The baseline batch for validated images.

    Parameters
    ----------
    images : Images
    baseline : str, float, array or Baseline
        See the module docstring.

    Returns
    -------
    array, shape (N, C, H, W)
        In the images' namespace, device and dtype.
    """
    xp, x = images.xp, images.x
    baseline = as_baseline(baseline)
    if isinstance(baseline, Baseline):
        return baseline._fill(images)
    if isinstance(baseline, bool):
        raise InvalidInputError(f"{name} must be a name, a number or an array, got a bool")
    if isinstance(baseline, numbers.Real):
        if not math.isfinite(baseline):  # math: Python ints beyond int64 too
            raise InvalidInputError(f"{name} must be finite, got {baseline}")
        return xp.full_like(x, float(baseline))
    baseline, _ = with_namespace(baseline, name)
    try:
        b = xp.asarray(baseline, device=images.device)
        b = xp.broadcast_to(xp.astype(b, x.dtype), x.shape)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"{name} of shape {tuple(baseline.shape)} does not broadcast to the image batch "
            f"{images.shape}; give (C, H, W), (N, C, H, W) or a per-channel (C, 1, 1) array"
        ) from exc
    require_finite(xp, b, name)
    return b


def make_baseline(x, baseline="zero"):
    """The baseline that every method and metric of :mod:`evtools.perturb` would use for ``x``.

    Parameters
    ----------
    x : array, shape (C, H, W) or (N, C, H, W)
    baseline : str, float, array or Baseline
        See the module docstring.

    Returns
    -------
    array, same shape, namespace and device as ``x``
    """
    images = as_images(x)
    return images.unbatch(resolve_baseline(images, baseline))


def baseline_label(baseline):
    """A short text for a baseline, for tables and plots."""
    baseline = as_baseline(baseline)
    if isinstance(baseline, Baseline):
        args = ", ".join(f"{k}={v}" for k, v in baseline.params.items() if v is not None)
        return f"{baseline.kind}({args})" if args else baseline.kind
    if isinstance(baseline, numbers.Real):
        return f"constant({baseline})"
    return f"array{tuple(baseline.shape)}"
