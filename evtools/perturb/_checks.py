"""Input checking and batched model evaluation shared by :mod:`evtools.perturb`.

Every public function validates its arguments here, once, then works on a 4-D
batch ``(N, C, H, W)`` in the caller's array namespace (numpy, torch, JAX, ...)
and on the caller's device. Nothing in this package imports a framework: the
namespace comes from :func:`array_api_compat.array_namespace`.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from array_api_compat import array_namespace, is_torch_namespace
from array_api_compat import device as array_device
from tqdm.auto import tqdm

from .._errors import InvalidInputError
from .._validation import positive_int


@dataclass(frozen=True)
class Images:
    """A validated image batch.

    Attributes
    ----------
    xp : module
        The array namespace of the input.
    x : array, shape (N, C, H, W)
        The images, floating point, finite.
    single : bool
        True when the caller passed one image ``(C, H, W)``; results then drop
        the leading axis.
    device : object
        The device the input lives on; every array made here goes there.
    """

    xp: Any
    x: Any
    single: bool
    device: Any

    @property
    def shape(self):
        return tuple(int(d) for d in self.x.shape)

    def asarray(self, a, dtype=None):
        """Move a host array (numpy, list) to this batch's namespace and device."""
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def unbatch(self, a):
        """Drop the image axis of a result when the input was one image."""
        return a[0, ...] if self.single else a


def with_namespace(a, name):
    """``a`` (lists made numpy arrays) and its array namespace; raise for non-arrays."""
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    try:
        return a, array_namespace(a)
    except TypeError as exc:
        raise InvalidInputError(
            f"{name} must be an array (numpy, torch, JAX, ...), got {type(a).__name__}"
        ) from exc


def require_finite(xp, a, name):
    """Raise unless every value of ``a`` is finite."""
    if not bool(xp.all(xp.isfinite(a))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(a), xp.int64)))
        raise InvalidInputError(
            f"{name} holds {n_bad} non-finite value(s) (NaN or inf); clean it before explaining"
        )


def as_images(x, name="x") -> Images:
    """Validate one image ``(C, H, W)`` or a batch ``(N, C, H, W)`` of floating-point values."""
    x, xp = with_namespace(x, name)
    if x.ndim not in (3, 4):
        raise InvalidInputError(
            f"{name} must be one image (C, H, W) or a batch (N, C, H, W), got {x.ndim}-D shape "
            f"{tuple(x.shape)}; add a channel axis for gray images, e.g. x[None]"
        )
    if not xp.isdtype(x.dtype, "real floating"):
        raise InvalidInputError(
            f"{name} must hold floating-point values, got dtype {x.dtype}; convert it first "
            "(e.g. x.astype(np.float32) / 255), in the dtype your model expects"
        )
    if any(int(d) == 0 for d in x.shape):
        raise InvalidInputError(f"{name} is empty: shape {tuple(x.shape)}")
    require_finite(xp, x, name)
    x4 = x[None, ...] if x.ndim == 3 else x
    return Images(xp, x4, x.ndim == 3, array_device(x))


def as_maps(saliency, images: Images, name="saliency"):
    """Validate saliency maps for ``images``: ``(H, W)`` for one image, ``(N, H, W)`` for a batch.

    Returns
    -------
    array, shape (N, H, W)
        In the images' namespace, device and dtype.
    """
    saliency, sxp = with_namespace(saliency, name)
    n, _, h, w = images.shape
    want = (h, w) if images.single else (n, h, w)
    if tuple(int(d) for d in saliency.shape) != want:
        hint = ""
        if saliency.ndim == len(want) + 1:
            hint = " (a map per channel? reduce the channel axis first, e.g. attr.sum(axis=-3))"
        raise InvalidInputError(
            f"{name} must have shape {want} to match x of shape "
            f"{images.shape[1:] if images.single else images.shape}, got {tuple(saliency.shape)}{hint}"
        )
    if not sxp.isdtype(saliency.dtype, ("real floating", "integral", "bool")):
        raise InvalidInputError(f"{name} must be real-valued, got dtype {saliency.dtype}")
    s = images.xp.asarray(saliency, device=images.device)
    s = images.xp.astype(s, images.x.dtype)
    require_finite(images.xp, s, name)
    return s[None, ...] if images.single else s


def as_model(f, name="f"):
    """Raise unless ``f`` is callable."""
    if not callable(f):
        raise InvalidInputError(
            f"{name} must be a callable batch -> scores of shape (batch,), got {type(f).__name__}"
        )
    return f


def int_pair(v, name):
    """An int or a pair of ints (height, width) as a tuple of two positive ints."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = positive_int(v, name)
        return v, v
    try:
        pair = tuple(v)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise InvalidInputError(f"{name} must be an int or a pair (height, width) of ints, got {v!r}")
    return positive_int(pair[0], f"{name}[0] (height)"), positive_int(pair[1], f"{name}[1] (width)")


def fraction_count(v, total, name):
    """A count from a fraction in (0, 1] of ``total`` or from an int in [1, total]."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        if not 1 <= v <= total:
            raise InvalidInputError(f"{name} as a count must lie in [1, {total}], got {v}")
        return int(v)
    if isinstance(v, numbers.Real) and 0 < v <= 1:
        return max(1, int(round(float(v) * total)))
    raise InvalidInputError(f"{name} must be a fraction in (0, 1] or a count in [1, {total}], got {v!r}")


def _inference_context(xp):
    """Gradient tracking off while the black box runs (torch); nothing to do elsewhere."""
    return xp.no_grad() if is_torch_namespace(xp) else contextlib.nullcontext()


def _as_scores(out, n, images: Images):
    """Check that a model returned ``n`` finite scores; return them in the images' namespace."""
    xp = images.xp
    if not hasattr(out, "shape"):
        raise InvalidInputError(
            f"f must return an array of shape ({n},), one score per input, got {type(out).__name__}"
        )
    if tuple(int(d) for d in out.shape) != (n,):
        raise InvalidInputError(
            f"f returned shape {tuple(out.shape)} for a batch of {n} inputs; it must return one "
            f"score per input, shape ({n},): select the class of interest, e.g. "
            "lambda b: softmax(model(b))[:, k]"
        )
    try:
        out = xp.asarray(out, device=images.device)
    except Exception as exc:  # another framework's array that this namespace cannot take
        raise InvalidInputError(
            f"f returned a {type(out).__name__} that the input's array namespace cannot convert; "
            "return the same kind of array as the input"
        ) from exc
    out = xp.astype(out, images.x.dtype)
    if not bool(xp.all(xp.isfinite(out))):
        raise InvalidInputError(
            "f returned non-finite scores (NaN or inf); check the model on perturbed inputs, "
            "e.g. with a baseline outside the training range"
        )
    return out


def evaluate(
    f: Callable,
    images: Images,
    n_jobs: int,
    build: Callable[[int, int], Any],
    *,
    batch_size: int,
    progress: bool,
    desc: str,
):
    """Run the black box over ``n_jobs`` perturbed inputs, ``batch_size`` at a time.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores``, batch ``(B, C, H, W)``, scores ``(B,)``.
    images : Images
    n_jobs : int
        Number of perturbed inputs.
    build : callable
        ``build(start, stop)`` returns the inputs of jobs ``start .. stop - 1``,
        shape ``(stop - start, C, H, W)``.
    batch_size : int
    progress : bool
        Show a tqdm progress bar over the batches.
    desc : str
        Label of the progress bar.

    Returns
    -------
    array, shape (n_jobs,)
    """
    xp = images.xp
    chunks = []
    starts = range(0, n_jobs, batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        stop = min(start + batch_size, n_jobs)
        batch = build(start, stop)
        with _inference_context(xp):
            out = f(batch)
        chunks.append(_as_scores(out, stop - start, images))
    return xp.concat(chunks) if len(chunks) > 1 else chunks[0]


def evaluate_images(f, images: Images, *, batch_size, progress):
    """Scores of the unperturbed images, shape (N,)."""
    return evaluate(
        f, images, images.shape[0], lambda a, b: images.x[a:b, ...],
        batch_size=batch_size, progress=progress, desc="f(x)",
    )


def job_indices(images: Images, start, stop, per_image):
    """Image index and within-image index of flat, image-major jobs, on the device."""
    j = np.arange(start, stop)
    return images.asarray(j // per_image), images.asarray(j % per_image)


def descending_rank(xp, s):
    """Rank of each entry along the last axis, 0 for the largest; ties keep their order.

    Parameters
    ----------
    s : array, shape (..., P)

    Returns
    -------
    array of int, shape (..., P)
        A permutation of ``0 .. P - 1`` along the last axis.
    """
    order = xp.argsort(s, axis=-1, descending=True, stable=True)
    return xp.argsort(order, axis=-1)


def window_indicator(size, window, stride):
    """Which pixels each window placement along one axis covers, Captum's placement rule.

    Windows start at ``0, stride, 2 stride, ...``; there are
    ``ceil((size - window) / stride) + 1`` of them, so the last may run past
    the edge and is then cut off.

    Returns
    -------
    ndarray of bool, shape (n_positions, size)
    """
    starts = np.arange(math.ceil((size - window) / stride) + 1) * stride
    pos = np.arange(size)
    return (pos[None, :] >= starts[:, None]) & (pos[None, :] < starts[:, None] + window)
