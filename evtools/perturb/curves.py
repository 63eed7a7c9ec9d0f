"""Perturbation curves that score a saliency map: deletion, insertion, MoRF and LeRF.

All four perturb the input cumulatively in the order the map gives and record
the score after each step:

* :func:`deletion` (Petsiuk et al. 2018): replace pixels with the baseline,
  most salient first; a good map makes the score fall fast (low area).
* :func:`insertion` (Petsiuk et al. 2018): start from the baseline and restore
  pixels, most salient first; a good map makes the score rise fast (high area).
* :func:`morf` and :func:`lerf` (Samek et al. 2017): replace square regions
  with the baseline, most relevant first (MoRF) or least relevant first (LeRF),
  scored by the area over the perturbation curve (AOPC).

A perturbed pixel covers all channels. Ties in the map keep raster order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidInputError
from ._checks import (
    as_images,
    as_maps,
    as_model,
    descending_rank,
    evaluate,
    int_pair,
    job_indices,
    positive_int,
    window_indicator,
)
from .baselines import resolve_baseline


@dataclass(frozen=True)
class Curve:
    """A perturbation curve.

    Attributes
    ----------
    fraction : array, shape (S,)
        Share of the pixels deleted (deletion) or restored (insertion), or of
        the regions replaced (MoRF, LeRF), at each step; starts at 0, ends at
        1 unless the curve was cut short (``n_steps``).
    scores : array, shape (S,) or (N, S)
        ``f`` after each step; ``scores[..., 0]`` is ``f`` of the unperturbed
        image (deletion, MoRF, LeRF) or of the baseline (insertion).
    auc : float or array, shape (N,)
        Area under the curve over ``fraction`` (trapezoid rule); Petsiuk et
        al.'s deletion / insertion score.
    aopc : float or array, shape (N,)
        Area over the perturbation curve, ``mean_k (scores[0] - scores[k])``
        over all S steps (Samek et al. 2017, eq. 12, for one image).
    """

    fraction: Any
    scores: Any
    auc: Any
    aopc: Any


def _scalar_or_array(images, a):
    return float(a[0]) if images.single else a


def _curve(f, images, base, pixel_rank, counts, fraction, restore, batch_size, progress, desc):
    """Evaluate cumulative perturbations.

    ``pixel_rank`` (N, P) orders the pixels of each image; step ``k`` perturbs
    the pixels of rank below ``counts[k]``: they show the baseline
    (``restore=False``) or, on a baseline background, the image (``restore=True``).
    ``fraction`` (host, one per step) is the x-axis of the curve.
    """
    xp = images.xp
    n, c, h, w = images.shape
    n_steps = len(counts)
    counts_d = images.asarray(np.asarray(counts))

    def build(start, stop):
        img, k = job_indices(images, start, stop, n_steps)
        hit = xp.take(pixel_rank, img, axis=0) < xp.take(counts_d, k, axis=0)[:, None]
        hit = xp.reshape(hit, (stop - start, 1, h, w))
        x_b, b_b = xp.take(images.x, img, axis=0), xp.take(base, img, axis=0)
        return xp.where(hit, x_b, b_b) if restore else xp.where(hit, b_b, x_b)

    scores = evaluate(f, images, n * n_steps, build, batch_size=batch_size, progress=progress, desc=desc)
    scores = xp.reshape(scores, (n, n_steps))
    fraction = images.asarray(fraction, dtype=images.x.dtype)
    dx = fraction[1:] - fraction[:-1]
    auc = xp.sum((scores[:, 1:] + scores[:, :-1]) * 0.5 * dx, axis=1)
    aopc = xp.mean(scores[:, :1] - scores, axis=1)
    return Curve(fraction, images.unbatch(scores), _scalar_or_array(images, auc), _scalar_or_array(images, aopc))


def _pixel_curve(f, x, saliency, baseline, step, restore, batch_size, progress, desc):
    images = as_images(x)
    as_model(f)
    s = as_maps(saliency, images)
    batch_size = positive_int(batch_size, "batch_size")
    xp = images.xp
    n, _, h, w = images.shape
    n_pix = h * w
    step = math.ceil(n_pix / 100) if step is None else positive_int(step, "step")
    counts = [min(k * step, n_pix) for k in range(math.ceil(n_pix / step) + 1)]
    rank = descending_rank(xp, xp.reshape(s, (n, n_pix)))
    base = resolve_baseline(images, baseline)
    fraction = np.asarray(counts, dtype=np.float64) / n_pix
    return _curve(f, images, base, rank, counts, fraction, restore, batch_size, progress, desc)


def deletion(f, x, saliency, baseline="zero", *, step=None, batch_size=64, progress=False):
    """Deletion curve (Petsiuk et al. 2018): remove the most salient pixels first.

    Step ``k`` replaces the ``k * step`` most salient pixels (all channels)
    with the baseline; the curve runs until every pixel is replaced. With
    ``step`` equal to Quantus' ``features_in_step`` on a one-channel image, the
    scores after step 0 equal Quantus' ``PixelFlipping`` curve.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``.
    x : array, shape (C, H, W) or (N, C, H, W)
    saliency : array, shape (H, W) or (N, H, W)
        Higher means more salient.
    baseline : str, float, array or Baseline
        Replacement of deleted pixels (default ``"zero"``, as Petsiuk et al.).
    step : int, optional
        Pixels removed per step; default ``ceil(H * W / 100)`` (about 100 steps).
    batch_size : int
    progress : bool

    Returns
    -------
    Curve
        Lower ``auc`` is better.
    """
    return _pixel_curve(f, x, saliency, baseline, step, False, batch_size, progress, "deletion")


def insertion(f, x, saliency, baseline="blur", *, step=None, batch_size=64, progress=False):
    """Insertion curve (Petsiuk et al. 2018): restore the most salient pixels first.

    Step 0 is the baseline image (default: the image blurred, as Petsiuk et
    al.); step ``k`` puts back the ``k * step`` most salient pixels of ``x``.

    Parameters
    ----------
    f, x, saliency, step, batch_size, progress
        As in :func:`deletion`.
    baseline : str, float, array or Baseline
        The starting image (default ``"blur"``).

    Returns
    -------
    Curve
        Higher ``auc`` is better.
    """
    return _pixel_curve(f, x, saliency, baseline, step, True, batch_size, progress, "insertion")


def _region_curve(f, x, saliency, region, baseline, n_steps, most_relevant_first, batch_size, progress):
    images = as_images(x)
    as_model(f)
    s = as_maps(saliency, images)
    batch_size = positive_int(batch_size, "batch_size")
    xp = images.xp
    n, _, h, w = images.shape
    rh, rw = int_pair(region, "region")
    if rh > h or rw > w:
        raise InvalidInputError(f"region {(rh, rw)} is larger than the image {(h, w)}")
    # Regions tile the image from its corner; the last row / column of regions may be cut off.
    row_tiles = window_indicator(h, rh, rh)  # (n_r, H)
    col_tiles = window_indicator(w, rw, rw)  # (n_c, W)
    n_rc = col_tiles.shape[0]
    n_regions = row_tiles.shape[0] * n_rc
    rt = images.asarray(row_tiles, dtype=images.x.dtype)
    ct = images.asarray(col_tiles, dtype=images.x.dtype)
    region_sum = xp.matmul(xp.matmul(rt, s), xp.matrix_transpose(ct))  # (N, n_r, n_c)
    region_size = xp.sum(rt, axis=1)[:, None] * xp.sum(ct, axis=1)[None, :]
    region_mean = xp.reshape(region_sum / region_size, (n, n_regions))
    rows, cols = np.divmod(np.arange(h * w), w)
    label = (rows // rh) * n_rc + cols // rw  # (P,) region of each pixel
    ranking = region_mean if most_relevant_first else -region_mean
    region_rank = descending_rank(xp, ranking)
    pixel_rank = xp.take(region_rank, images.asarray(label), axis=1)
    n_steps = n_regions if n_steps is None else min(positive_int(n_steps, "n_steps"), n_regions)
    counts = np.arange(n_steps + 1)
    base = resolve_baseline(images, baseline)
    desc = "MoRF" if most_relevant_first else "LeRF"
    return _curve(f, images, base, pixel_rank, counts, counts / n_regions, False, batch_size, progress, desc)


_REGION_DOC = """
    The image is tiled into ``region``-sized squares from its top-left corner
    (the last row and column of tiles may be cut off); tiles are ranked by
    their mean saliency and replaced by the baseline one per step, {order}.
    ``Curve.fraction`` is the share of tiles replaced so far.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``.
    x : array, shape (C, H, W) or (N, C, H, W)
    saliency : array, shape (H, W) or (N, H, W)
    region : int or (int, int)
        Tile size (Samek et al. use 9 x 9 on ImageNet).
    baseline : str, float, array or Baseline
        Replacement of the tiles (default ``"uniform"`` noise, as Samek et al.).
    n_steps : int, optional
        Stop after this many tiles (Samek et al.: L = 100); default all.
    batch_size : int
    progress : bool

    Returns
    -------
    Curve
        {better}
"""


def morf(f, x, saliency, region=8, baseline="uniform", *, n_steps=None, batch_size=64, progress=False):
    return _region_curve(f, x, saliency, region, baseline, n_steps, True, batch_size, progress)


def lerf(f, x, saliency, region=8, baseline="uniform", *, n_steps=None, batch_size=64, progress=False):
    return _region_curve(f, x, saliency, region, baseline, n_steps, False, batch_size, progress)


morf.__doc__ = "MoRF region-perturbation curve (Samek et al. 2017): most relevant first.\n" + _REGION_DOC.format(
    order="most relevant first", better="Higher ``aopc`` is better (the score falls fast)."
)
lerf.__doc__ = "LeRF region-perturbation curve (Samek et al. 2017): least relevant first.\n" + _REGION_DOC.format(
    order="least relevant first", better="Lower ``aopc`` is better (the score stays while irrelevant parts go)."
)
