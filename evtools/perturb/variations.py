"""Variations of an input that keep its salient part: the reconstruction check.

Thakur & Fischmeister (2020) check a saliency map by generating inputs that
keep the salient pixels and change the rest, and asking whether the model's
outcome stays. They draw the rest from a generative model; here it is refilled
from noise, a blur, or other images, which needs no pretrained generator.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidInputError
from .._validation import check_int, check_probability
from ._checks import (
    Images,
    as_images,
    as_maps,
    as_model,
    descending_rank,
    evaluate,
    evaluate_images,
    positive_int,
    require_finite,
    with_namespace,
)
from .baselines import Baseline, resolve_baseline


@dataclass(frozen=True)
class Variations:
    """Inputs that keep the salient part of an image, and what the model makes of them.

    Attributes
    ----------
    inputs : array, shape (n, C, H, W) or (N, n, C, H, W)
    scores : array, shape (n,) or (N, n)
        ``f`` of each variation.
    original : float or array, shape (N,)
        ``f`` of the unchanged image.
    kept : array of bool, shape (n,) or (N, n)
        Whether the variation keeps the outcome: ``score >= threshold`` exactly
        when ``original >= threshold``.
    share : float or array, shape (N,)
        Share of the variations that keep the outcome.
    """

    inputs: Any
    scores: Any
    original: Any
    kept: Any
    share: Any


def _fill(images: Images, rep: Images, fill, seed):
    """Refill values for the repeated images ``rep``, shape (N * n, C, H, W)."""
    xp = images.xp
    if isinstance(fill, str) and fill in ("uniform", "gaussian"):
        return resolve_baseline(rep, Baseline(fill, seed=seed), name="fill")
    if isinstance(fill, (str, numbers.Real, Baseline)):
        return resolve_baseline(rep, fill, name="fill")
    fill, _ = with_namespace(fill, "fill")
    if fill.ndim != 4:
        return resolve_baseline(rep, fill, name="fill")
    if tuple(fill.shape[1:]) != images.shape[1:]:
        raise InvalidInputError(
            f"fill images must have the image shape {images.shape[1:]}, got {tuple(fill.shape[1:])}"
        )
    pool = xp.astype(xp.asarray(fill, device=images.device), images.x.dtype)
    require_finite(xp, pool, "fill")
    pick = np.random.default_rng(seed).integers(0, pool.shape[0], size=rep.shape[0])
    return xp.take(pool, images.asarray(pick), axis=0)


def variations(
    f, x, saliency, n=16, keep=0.2, fill="uniform", *,
    threshold=0.5, seed=0, batch_size=64, progress=False,
):
    """Inputs that keep the top ``keep`` share of the map and refill the rest.

    The ``round(keep * H * W)`` most salient pixels (all channels) keep their
    values; the others are refilled. If the map found what the model relies
    on, most variations keep the model's outcome (Thakur & Fischmeister 2020).

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``.
    x : array, shape (C, H, W) or (N, C, H, W)
    saliency : array, shape (H, W) or (N, H, W)
    n : int
        Variations per image.
    keep : float in [0, 1]
        Share of the pixels kept.
    fill : str, float, array or Baseline
        What the other pixels show. ``"uniform"`` or ``"gaussian"``: fresh
        noise per variation (seeded by ``seed``; see
        :class:`~evtools.perturb.Baseline` for the noise's range); any other
        baseline (``"blur"``, ``"mean"``, a number, a ``Baseline``) is applied
        as everywhere in this package and gives identical variations unless it
        is noise; an array ``(M, C, H, W)`` is a pool of other images, each
        variation refilled from one drawn at random.
    threshold : float
        The outcome is ``score >= threshold`` (0.5 for a probability).
    seed : int
        Seed of the noise or of the draws from the pool.
    batch_size : int
    progress : bool

    Returns
    -------
    Variations
    """
    images = as_images(x)
    as_model(f)
    s = as_maps(saliency, images)
    n = positive_int(n, "n")
    keep = check_probability(keep, "keep", open_low=False, open_high=False)
    batch_size = positive_int(batch_size, "batch_size")
    seed = check_int(seed, "seed", low=0)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold!r}")
    xp = images.xp
    n_img, c, h, w = images.shape
    rank = descending_rank(xp, xp.reshape(s, (n_img, h * w)))
    salient = xp.reshape(rank < int(round(keep * h * w)), (n_img, 1, h, w))
    rep_idx = images.asarray(np.repeat(np.arange(n_img), n))
    rep = Images(xp, xp.take(images.x, rep_idx, axis=0), False, images.device)
    inputs = xp.where(xp.take(salient, rep_idx, axis=0), rep.x, _fill(images, rep, fill, seed))
    scores = evaluate(
        f, images, n_img * n, lambda a, b: inputs[a:b, ...],
        batch_size=batch_size, progress=progress, desc="variations",
    )
    original = evaluate_images(f, images, batch_size=batch_size, progress=False)
    scores = xp.reshape(scores, (n_img, n))
    kept = (scores >= threshold) == (original[:, None] >= threshold)
    share = xp.mean(xp.astype(kept, images.x.dtype), axis=1)
    if images.single:
        return Variations(inputs, scores[0, :], float(original[0]), kept[0, :], float(share[0]))
    return Variations(xp.reshape(inputs, (n_img, n, c, h, w)), scores, original, kept, share)
