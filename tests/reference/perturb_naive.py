"""Plain-loop numpy references for evtools.perturb: slow, one image at a time, obviously right.

Each function takes one image ``x`` of shape (C, H, W), a scalar model ``f``
(one image -> float) and a baseline image of the same shape, and loops.
"""
import math

import numpy as np
from scipy.ndimage import gaussian_filter


def occlusion_naive(f, x, window, stride, baseline):
    """Captum's occlusion as a double loop over window corners."""
    _, h, w = x.shape
    (wh, ww), (sh, sw) = window, stride
    f0 = f(x)
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    r = 0
    while True:
        c = 0
        while True:
            occluded = x.copy()
            occluded[:, r:r + wh, c:c + ww] = baseline[:, r:r + wh, c:c + ww]
            total[r:r + wh, c:c + ww] += f0 - f(occluded)
            count[r:r + wh, c:c + ww] += 1
            if c + ww >= w:
                break
            c += sw
        if r + wh >= h:
            break
        r += sh
    return total / count


def bilinear_naive(grid, out_h, out_w):
    """Upsample a 2-D grid with half-pixel centres and clamped edges, pixel by pixel."""
    gh, gw = grid.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        y = max((i + 0.5) * gh / out_h - 0.5, 0.0)
        y0 = min(int(math.floor(y)), gh - 1)
        y1 = min(y0 + 1, gh - 1)
        fy = y - y0
        for j in range(out_w):
            xx = max((j + 0.5) * gw / out_w - 0.5, 0.0)
            x0 = min(int(math.floor(xx)), gw - 1)
            x1 = min(x0 + 1, gw - 1)
            fx = xx - x0
            out[i, j] = (
                (1 - fy) * ((1 - fx) * grid[y0, x0] + fx * grid[y0, x1])
                + fy * ((1 - fx) * grid[y1, x0] + fx * grid[y1, x1])
            )
    return out


def smooth_mask_naive(grid, shift_h, shift_w, h, w):
    """A RISE mask: upsample to (cells + 1) * cell, crop at the shift."""
    gh, gw = grid.shape
    cell_h, cell_w = math.ceil(h / gh), math.ceil(w / gw)
    up = bilinear_naive(grid.astype(float), (gh + 1) * cell_h, (gw + 1) * cell_w)
    return up[shift_h:shift_h + h, shift_w:shift_w + w]


def rise_naive(f, x, n_masks, cells, p, baseline, seed):
    """RISE with the documented draws of evtools.perturb.rise, one mask at a time."""
    _, h, w = x.shape
    ch, cw = cells
    rng = np.random.default_rng(seed)
    grids = rng.random((n_masks, ch, cw)) < p
    sh = rng.integers(0, math.ceil(h / ch), size=n_masks)
    sw = rng.integers(0, math.ceil(w / cw), size=n_masks)
    sal = np.zeros((h, w))
    for i in range(n_masks):
        m = smooth_mask_naive(grids[i], sh[i], sw[i], h, w)
        sal += f(x * m + baseline * (1 - m)) * m
    return sal / (n_masks * p)


def mask_search_naive(f, x, n_iter, n_chains, cells, p, baseline, seed):
    """The mask search with the documented draws of evtools.perturb.mask_search, chain by chain."""
    _, h, w = x.shape
    ch, cw = cells
    rng = np.random.default_rng(seed)
    grids = rng.random((1, n_chains, ch, cw)) < p
    sal = np.zeros((h, w))
    for _ in range(n_iter):
        sh = rng.integers(0, math.ceil(h / ch), size=(1, n_chains))
        sw = rng.integers(0, math.ceil(w / cw), size=(1, n_chains))
        scores = np.zeros(n_chains)
        for c in range(n_chains):
            m = smooth_mask_naive(grids[0, c], sh[0, c], sw[0, c], h, w)
            scores[c] = f(x * m + baseline * (1 - m))
            sal += scores[c] * m
        u = rng.random((1, n_chains, ch, cw))
        new = np.zeros_like(grids)
        for c in range(n_chains):
            for i in range(ch):
                for j in range(cw):
                    if grids[0, c, i, j]:
                        new[0, c, i, j] = u[0, c, i, j] < scores[c]
                    else:
                        new[0, c, i, j] = u[0, c, i, j] < 1 - scores[c]
        grids = new
    return sal / (n_iter * n_chains)


def _order(saliency):
    """Pixels from most to least salient, ties in raster order."""
    flat = saliency.ravel()
    return sorted(range(flat.size), key=lambda i: (-flat[i], i))


def deletion_naive(f, x, saliency, baseline, step, insert=False):
    """Deletion (or insertion) scores, one step at a time."""
    _, h, w = x.shape
    order = _order(saliency)
    cur = baseline.copy() if insert else x.copy()
    src = x if insert else baseline
    scores = [f(cur)]
    for start in range(0, h * w, step):
        for i in order[start:start + step]:
            r, c = divmod(i, w)
            cur[:, r, c] = src[:, r, c]
        scores.append(f(cur))
    return np.array(scores)


def region_curve_naive(f, x, saliency, region, baseline, most_relevant_first=True):
    """MoRF / LeRF scores over non-overlapping tiles ranked by mean saliency."""
    _, h, w = x.shape
    rh, rw = region
    tiles = []
    for r in range(0, h, rh):
        for c in range(0, w, rw):
            tiles.append((saliency[r:r + rh, c:c + rw].mean(), len(tiles), r, c))
    sign = -1 if most_relevant_first else 1
    tiles.sort(key=lambda t: (sign * t[0], t[1]))
    cur = x.copy()
    scores = [f(cur)]
    for _, _, r, c in tiles:
        cur[:, r:r + rh, c:c + rw] = baseline[:, r:r + rh, c:c + rw]
        scores.append(f(cur))
    return np.array(scores)


def trapezoid_naive(y, xs):
    return sum((y[i] + y[i + 1]) / 2 * (xs[i + 1] - xs[i]) for i in range(len(y) - 1))


def ssim_naive(a, b):
    """Mean SSIM of two maps scaled to [0, 1], Gaussian window 1.5, over all pixels."""
    def scale(m):
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    a, b = scale(a), scale(b)
    g = lambda z: gaussian_filter(z, 1.5, mode="reflect", truncate=3.5)  # noqa: E731
    mu_a, mu_b = g(a), g(b)
    va, vb, cov = g(a * a) - mu_a**2, g(b * b) - mu_b**2, g(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return s.mean()
