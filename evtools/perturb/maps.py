"""Black-box saliency maps: occlusion, RISE and the mask search of Thakur & Fischmeister.

Every map answers "which part of the image is responsible for the score" by
perturbing the input and watching the output of ``f(batch) -> (batch,)``. The
maps have the spatial shape of the input: ``(H, W)`` for one image
``(C, H, W)``, ``(N, H, W)`` for a batch; a perturbation always covers all
channels of a pixel.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from tqdm.auto import trange

from .._errors import InvalidInputError
from .._validation import check_probability
from ._checks import (
    Images,
    as_images,
    as_model,
    evaluate,
    evaluate_images,
    int_pair,
    job_indices,
    positive_int,
    window_indicator,
)
from .baselines import resolve_baseline


def occlusion(f, x, window, stride=1, baseline="zero", *, batch_size=64, progress=False):
    """Occlusion saliency (Zeiler & Fergus 2014) with Captum's ``Occlusion`` conventions.

    A ``window`` slides over the image by ``stride``; each placement replaces
    the pixels under it (all channels) with the baseline, and every pixel gets
    the mean, over the placements that cover it, of ``f(x) - f(x_occluded)``.

    Placement follows Captum exactly: the first window has its corner at
    ``(0, 0)``; along an axis of size ``S`` there are
    ``ceil((S - window) / stride) + 1`` placements at ``0, stride, 2 stride, ...``,
    so the last one may run past the edge and is then cut off (smaller). The
    result equals Captum's ``Occlusion(f).attribute(x, sliding_window_shapes=(C, h, w),
    strides=(C, sh, sw), baselines=b, perturbations_per_eval=batch_size)`` in
    every channel.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores``: batch ``(B, C, H, W)`` in the namespace of ``x``,
        scores ``(B,)``, e.g. the probability of the class of interest.
    x : array, shape (C, H, W) or (N, C, H, W)
    window : int or (int, int)
        Window height and width; at most the image's.
    stride : int or (int, int)
        Step between placements (default 1). As in Captum it may not exceed the
        window along an axis that the window does not span entirely (pixels
        would be left uncovered).
    baseline : str, float, array or Baseline
        Replacement of occluded pixels; see :func:`evtools.perturb.make_baseline`.
    batch_size : int
        Occluded inputs per call of ``f``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    array, shape (H, W) or (N, H, W)
        Same namespace, device and dtype as ``x``.
    """
    images = as_images(x)
    as_model(f)
    batch_size = positive_int(batch_size, "batch_size")
    xp = images.xp
    n, _, h, w = images.shape
    wh, ww = int_pair(window, "window")
    sh, sw = int_pair(stride, "stride")
    if wh > h or ww > w:
        raise InvalidInputError(
            f"window {(wh, ww)} is larger than the image {(h, w)}; use a window of at most the image size"
        )
    for size, win, st, axis in ((h, wh, sh, "height"), (w, ww, sw, "width")):
        if st > win and win < size:
            raise InvalidInputError(
                f"stride {st} exceeds the window {win} along the {axis}: pixels between windows "
                "would never be occluded; use stride <= window (Captum's rule)"
            )
    rows = window_indicator(h, wh, sh)  # (n_r, H)
    cols = window_indicator(w, ww, sw)  # (n_c, W)
    n_r, n_c = rows.shape[0], cols.shape[0]
    per_image = n_r * n_c
    base = resolve_baseline(images, baseline)
    rows_d, cols_d = images.asarray(rows), images.asarray(cols)

    def build(start, stop):
        img, k = job_indices(images, start, stop, per_image)
        r = xp.take(rows_d, k // n_c, axis=0)
        c = xp.take(cols_d, k % n_c, axis=0)
        occluded = (r[:, :, None] & c[:, None, :])[:, None, :, :]
        return xp.where(occluded, xp.take(base, img, axis=0), xp.take(images.x, img, axis=0))

    f0 = evaluate_images(f, images, batch_size=batch_size, progress=False)
    scores = evaluate(f, images, n * per_image, build, batch_size=batch_size, progress=progress, desc="occlusion")
    diff = xp.reshape(f0, (n, 1, 1)) - xp.reshape(scores, (n, n_r, n_c))
    rows_f = images.asarray(rows, dtype=images.x.dtype)
    cols_f = images.asarray(cols, dtype=images.x.dtype)
    total = xp.matmul(xp.matmul(xp.matrix_transpose(rows_f), diff), cols_f)
    count = xp.sum(rows_f, axis=0)[:, None] * xp.sum(cols_f, axis=0)[None, :]
    return images.unbatch(total / count)


# ---------------------------------------------------------------- RISE masks


@lru_cache(maxsize=32)
def _upsampling_crops(n_cells, size):
    """Bilinear upsampling of ``n_cells`` cells, cropped at every shift (Petsiuk et al. 2018).

    A grid of ``n_cells`` cells is upsampled to ``(n_cells + 1) * cell`` pixels
    (``cell = ceil(size / n_cells)``), bilinearly with half-pixel centres and
    clamped edges (torch's ``interpolate(mode="bilinear", align_corners=False)``),
    then cropped to ``size`` pixels starting at a shift in ``[0, cell)``.

    Returns
    -------
    ndarray, shape (cell, size, n_cells), float64
        ``crops[shift] @ grid_axis`` is the upsampled, cropped profile.
        Cached and shared between calls: read it, never write to it.
    """
    cell = math.ceil(size / n_cells)
    up = (n_cells + 1) * cell
    src = np.clip((np.arange(up) + 0.5) * (n_cells / up) - 0.5, 0.0, n_cells - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_cells - 1)
    frac = src - i0
    u = np.zeros((up, n_cells))
    np.add.at(u, (np.arange(up), i0), 1.0 - frac)
    np.add.at(u, (np.arange(up), i1), frac)
    return np.stack([u[s:s + size] for s in range(cell)])


class _SmoothMasks:
    """RISE-style masks from binary cell grids: bilinear upsampling then a random shift.

    Built once per call; the upsampling matrices, shifts and grids live on the
    images' device, so building a batch of masks is two batched matrix
    products there.
    """

    def __init__(self, images: Images, cells):
        _, _, h, w = images.shape
        self.images = images
        crops_h, crops_w = _upsampling_crops(cells[0], h), _upsampling_crops(cells[1], w)
        self.cell_h, self.cell_w = crops_h.shape[0], crops_w.shape[0]
        self.crops_h = images.asarray(crops_h, dtype=images.x.dtype)
        self.crops_w = images.asarray(crops_w, dtype=images.x.dtype)

    def draw_shifts(self, rng, shape):
        """Draw the row shifts, then the column shifts, of masks of the given shape (flattened)."""
        self.shift_h = self.images.asarray(rng.integers(0, self.cell_h, size=shape).reshape(-1))
        self.shift_w = self.images.asarray(rng.integers(0, self.cell_w, size=shape).reshape(-1))

    def masks(self, grids, idx):
        """Masks ``idx`` (flat indices), shape (B, H, W), for grids of shape (n_masks, ch, cw)."""
        xp = self.images.xp
        a = xp.take(self.crops_h, xp.take(self.shift_h, idx, axis=0), axis=0)  # (B, H, ch)
        b = xp.take(self.crops_w, xp.take(self.shift_w, idx, axis=0), axis=0)  # (B, W, cw)
        g = xp.astype(xp.take(grids, idx, axis=0), self.images.x.dtype)
        return xp.matmul(xp.matmul(a, g), xp.matrix_transpose(b))


def _check_cells(cells, h, w):
    ch, cw = int_pair(cells, "cells")
    if ch > h or cw > w:
        raise InvalidInputError(f"cells {(ch, cw)} exceed the image size {(h, w)}; use at most one cell per pixel")
    return ch, cw


def _masked(images, base, m, img):
    """Inputs that keep ``x`` where the mask is 1 and show the baseline where it is 0."""
    xp = images.xp
    b = xp.take(base, img, axis=0)
    return b + (xp.take(images.x, img, axis=0) - b) * m[:, None, :, :]


def _weighted_mask_sum(images, weights, masks_of, per_image, batch_size):
    """``sum_j weights[j] * mask_j`` per image over flat, image-major jobs.

    ``masks_of(start, stop)`` gives the masks of jobs ``start .. stop - 1``,
    shape ``(stop - start, H, W)``; ``weights`` has one entry per job.

    Returns
    -------
    array, shape (N, H, W)
    """
    xp = images.xp
    n, _, h, w = images.shape
    total = xp.zeros((n, h * w), dtype=images.x.dtype, device=images.device)
    image_ids = images.asarray(np.arange(n))
    n_jobs = n * per_image
    for start in range(0, n_jobs, batch_size):
        stop = min(start + batch_size, n_jobs)
        img, _ = job_indices(images, start, stop, per_image)
        m = xp.reshape(masks_of(start, stop), (stop - start, h * w))
        onehot = xp.astype(image_ids[:, None] == img[None, :], images.x.dtype)  # (N, B)
        total = total + xp.matmul(onehot * weights[None, start:stop], m)
    return xp.reshape(total, (n, h, w))


def rise(f, x, n_masks=4000, cells=7, p=0.5, baseline="zero", *, seed=None, batch_size=64, progress=False):
    """RISE: randomized input sampling for explanation (Petsiuk et al. 2018).

    ``n_masks`` binary grids of ``cells x cells`` cells, each cell kept with
    probability ``p``, are upsampled bilinearly to slightly more than the
    image and cropped at a random shift (see ``_upsampling_crops``), giving
    smooth masks ``M_i`` in ``[0, 1]``. The map is the Monte Carlo estimate

        S = 1 / (n_masks * p) * sum_i f(x * M_i + b * (1 - M_i)) * M_i

    with ``b`` the baseline. The same masks explain every image of a batch.

    Random draws, in this order, from ``numpy.random.default_rng(seed)``:
    ``grids = rng.random((n_masks, ch, cw)) < p``, then the row shifts
    ``rng.integers(0, cell_h, n_masks)``, then the column shifts. Same seed,
    same masks, whatever the array namespace or device.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``.
    x : array, shape (C, H, W) or (N, C, H, W)
    n_masks : int
        Number of masks (Petsiuk et al. use 4000 on ImageNet).
    cells : int or (int, int)
        Cells of the coarse grid along height and width (paper: 7).
    p : float in (0, 1)
        Probability that a cell is kept (paper: 0.5).
    baseline : str, float, array or Baseline
        What masked pixels show; see :func:`evtools.perturb.make_baseline`.
    seed : int or None
        Seed of the masks; None draws fresh ones.
    batch_size : int
    progress : bool

    Returns
    -------
    array, shape (H, W) or (N, H, W)
    """
    images = as_images(x)
    as_model(f)
    n_masks = positive_int(n_masks, "n_masks")
    batch_size = positive_int(batch_size, "batch_size")
    p = check_probability(p, "p")
    n, _, h, w = images.shape
    cells = _check_cells(cells, h, w)
    base = resolve_baseline(images, baseline)
    rng = np.random.default_rng(seed)
    grids = images.asarray(rng.random((n_masks,) + cells) < p)
    smooth = _SmoothMasks(images, cells)
    smooth.draw_shifts(rng, (n_masks,))

    def masks_of(start, stop):
        return smooth.masks(grids, job_indices(images, start, stop, n_masks)[1])

    def build(start, stop):
        img, _ = job_indices(images, start, stop, n_masks)
        return _masked(images, base, masks_of(start, stop), img)

    scores = evaluate(f, images, n * n_masks, build, batch_size=batch_size, progress=progress, desc="RISE")
    sal = _weighted_mask_sum(images, scores, masks_of, n_masks, batch_size)
    return images.unbatch(sal / (n_masks * p))


def mask_search(
    f, x, n_iter=50, n_chains=32, cells=7, p=0.5, baseline="zero", *,
    seed=None, batch_size=64, progress=False,
):
    """Black-box mask search of Thakur & Fischmeister (2020).

    A coarse random binary mask (``cells x cells``, each cell on with
    probability ``p``) is updated over ``n_iter`` iterations from the class
    score it obtains; at each iteration it is upsampled and shifted at random
    as in RISE (giving ``M_t``). With ``s_t = f(x * M_t + b * (1 - M_t))`` in
    ``[0, 1]``:

    * each cell that is on stays on with probability ``s_t``;
    * each cell that is off is switched on with probability ``1 - s_t``.

    A mask that keeps the evidence scores high and is kept almost unchanged;
    one that hides it scores low and is reshuffled. This is the update of the
    authors ("randomly retaining p% of the unmasked pixels and (1-p)% of the
    masked pixels", p the model's confidence, in their public notebook). The
    map accumulates the masks weighted by their scores ("followed by weighing
    the pixels using the class score"):

        S = 1 / (n_iter * n_chains) * sum_t sum_c s_{t,c} * M_{t,c}

    Not kept from the notebook: its small learning-rate correction of the
    changed cells by the change in score, which makes the mask non-binary.
    ``n_chains`` independent searches run at once, so each iteration is one
    batched evaluation.

    Random draws, in this order, from ``numpy.random.default_rng(seed)``:
    the initial grids ``rng.random((N, n_chains, ch, cw)) < p``; then per
    iteration the row shifts ``rng.integers(0, cell_h, (N, n_chains))``, the
    column shifts, and the uniforms ``rng.random((N, n_chains, ch, cw))`` of
    the update.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``, values in ``[0, 1]`` (a
        probability, e.g. softmax or sigmoid output): the score is used as a
        probability.
    x : array, shape (C, H, W) or (N, C, H, W)
    n_iter : int
        Iterations of the search.
    n_chains : int
        Masks searched in parallel per image.
    cells : int or (int, int)
        Cells of the coarse mask.
    p : float in (0, 1)
        Probability that a cell is on in the initial mask.
    baseline : str, float, array or Baseline
        What masked pixels show (the paper sets them to zero).
    seed : int or None
    batch_size : int
    progress : bool
        Progress bar over the iterations.

    Returns
    -------
    array, shape (H, W) or (N, H, W)
    """
    images = as_images(x)
    as_model(f)
    n_iter = positive_int(n_iter, "n_iter")
    n_chains = positive_int(n_chains, "n_chains")
    batch_size = positive_int(batch_size, "batch_size")
    p = check_probability(p, "p")
    xp = images.xp
    n, _, h, w = images.shape
    cells = _check_cells(cells, h, w)
    base = resolve_baseline(images, baseline)
    rng = np.random.default_rng(seed)
    grid_shape = (n, n_chains) + cells
    grids = images.asarray(rng.random(grid_shape) < p)
    smooth = _SmoothMasks(images, cells)
    n_jobs = n * n_chains
    sal = xp.zeros((n, h, w), dtype=images.x.dtype, device=images.device)

    for _ in trange(n_iter, desc="mask search", disable=not progress, leave=False):
        smooth.draw_shifts(rng, (n, n_chains))
        flat = xp.reshape(grids, (n_jobs,) + cells)

        def masks_of(start, stop, flat=flat):
            return smooth.masks(flat, images.asarray(np.arange(start, stop)))

        def build(start, stop):
            img, _ = job_indices(images, start, stop, n_chains)
            return _masked(images, base, masks_of(start, stop), img)

        scores = evaluate(f, images, n_jobs, build, batch_size=batch_size, progress=False, desc="")
        if bool(xp.any(scores < 0)) or bool(xp.any(scores > 1)):
            raise InvalidInputError(
                "mask_search uses the score as a probability, but f returned values outside [0, 1]; "
                "return a probability (softmax or sigmoid of the logits)"
            )
        sal = sal + _weighted_mask_sum(images, scores, masks_of, n_chains, batch_size)
        s = xp.reshape(scores, (n, n_chains, 1, 1))
        u = images.asarray(rng.random(grid_shape), dtype=images.x.dtype)
        grids = xp.where(grids, u < s, u < 1 - s)
    return images.unbatch(sal / (n_iter * n_chains))
