"""Agreement between saliency maps, and the sensitivity of a method to its settings.

Brunke et al. (2021) found that perturbation maps change with the baseline and
with the hyperparameters, and that methods disagree. :func:`compare` measures
the agreement of two maps; :func:`sensitivity` runs a method over a grid of
baselines and hyperparameters and returns the pairwise agreement matrices:
their study, as one call.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from tqdm.auto import tqdm

from .._errors import InvalidInputError
from ._checks import descending_rank, fraction_count, require_finite, with_namespace
from .baselines import baseline_label, gaussian_matrix
from .maps import mask_search, occlusion, rise

METHODS = {"occlusion": occlusion, "rise": rise, "mask_search": mask_search}


@dataclass(frozen=True)
class Comparison:
    """Agreement of two saliency maps; floats for single maps, arrays of shape (N,) for batches.

    Attributes
    ----------
    spearman : float or array
        Spearman rank correlation over pixels (ties get their average rank);
        NaN when a map is constant.
    top_k : float or array
        Share of the ``k`` most salient pixels of one map that are also among
        the ``k`` most salient of the other (ties broken in raster order).
    ssim : float or array
        Structural similarity (Wang et al. 2004) of the maps, each min-max
        scaled to [0, 1] (a constant map becomes 0): Gaussian window sigma 1.5
        truncated at 3.5 sigma, reflected borders, K1 = 0.01, K2 = 0.03,
        population covariances, averaged over all pixels. This is the mean of
        ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
        use_sample_covariance=False, data_range=1, full=True)[1]``.
    """

    spearman: Any
    top_k: Any
    ssim: Any


def _as_map_pair(map_a, map_b):
    map_a, xp = with_namespace(map_a, "map_a")
    map_b, _ = with_namespace(map_b, "map_b")
    if map_a.ndim not in (2, 3):
        raise InvalidInputError(f"map_a must be (H, W) or (N, H, W), got shape {tuple(map_a.shape)}")
    if tuple(map_b.shape) != tuple(map_a.shape):
        raise InvalidInputError(
            f"the maps must have the same shape, got {tuple(map_a.shape)} and {tuple(map_b.shape)}"
        )
    for name, m in (("map_a", map_a), ("map_b", map_b)):
        if not array_namespace(m).isdtype(m.dtype, ("real floating", "integral", "bool")):
            raise InvalidInputError(f"{name} must be real-valued, got dtype {m.dtype}")
    dtype = map_a.dtype if xp.isdtype(map_a.dtype, "real floating") else xp.float64
    a = xp.astype(map_a, dtype)
    b = xp.astype(xp.asarray(map_b, device=array_device(a)), dtype)
    require_finite(xp, a, "map_a")
    require_finite(xp, b, "map_b")
    single = a.ndim == 2
    if single:
        a, b = a[None, ...], b[None, ...]
    return xp, a, b, single


def _average_rank(xp, v):
    """Ranks of a 1-D array, ties sharing their average rank."""
    s = xp.sort(v)
    left = xp.searchsorted(s, v, side="left")
    right = xp.searchsorted(s, v, side="right")
    return xp.astype(left + right, v.dtype) * 0.5


def _pearson(xp, a, b):
    a = a - xp.mean(a)
    b = b - xp.mean(b)
    den = xp.sqrt(xp.sum(a * a) * xp.sum(b * b))
    return float(xp.sum(a * b) / den) if float(den) > 0 else float("nan")


def _ssim(xp, a, b):
    """Mean SSIM per map of two (N, H, W) batches already scaled to [0, 1]."""
    _, h, w = a.shape
    gh = xp.asarray(gaussian_matrix(h, 1.5, 3.5), dtype=a.dtype, device=array_device(a))
    gw = xp.asarray(gaussian_matrix(w, 1.5, 3.5), dtype=a.dtype, device=array_device(a))

    def smooth(z):
        return xp.matmul(xp.matmul(gh, z), xp.matrix_transpose(gw))

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a * mu_a
    var_b = smooth(b * b) - mu_b * mu_b
    cov = smooth(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return xp.mean(xp.reshape(s, (s.shape[0], h * w)), axis=1)


def _unit_scale(xp, m):
    lo = xp.min(m, axis=(1, 2), keepdims=True)
    span = xp.max(m, axis=(1, 2), keepdims=True) - lo
    return (m - lo) / xp.where(span > 0, span, xp.ones_like(span))


def compare(map_a, map_b, *, k=0.1):
    """Agreement of two saliency maps: Spearman correlation, top-k overlap and SSIM.

    Parameters
    ----------
    map_a, map_b : array, shape (H, W) or (N, H, W)
        Maps of the same shape; higher means more salient.
    k : float in (0, 1] or int
        Size of the top set: a share of the pixels or a count (default 10 %).

    Returns
    -------
    Comparison
        Floats for two single maps, arrays of shape (N,) for batches.
    """
    xp, a, b, single = _as_map_pair(map_a, map_b)
    n, h, w = a.shape
    n_top = fraction_count(k, h * w, "k")
    fa, fb = xp.reshape(a, (n, h * w)), xp.reshape(b, (n, h * w))
    spearman = [_pearson(xp, _average_rank(xp, fa[i, :]), _average_rank(xp, fb[i, :])) for i in range(n)]
    in_top_a = descending_rank(xp, fa) < n_top
    in_top_b = descending_rank(xp, fb) < n_top
    top = xp.sum(xp.astype(in_top_a & in_top_b, a.dtype), axis=1) / n_top
    ssim = _ssim(xp, _unit_scale(xp, a), _unit_scale(xp, b))
    if single:
        return Comparison(spearman[0], float(top[0]), float(ssim[0]))
    return Comparison(np.asarray(spearman), np.asarray([float(t) for t in top]), np.asarray([float(s) for s in ssim]))


@dataclass(frozen=True)
class Sensitivity:
    """Maps of one method over a grid of settings and their pairwise agreement.

    Attributes
    ----------
    configs : tuple of dict
        The settings of each run, in grid order.
    labels : tuple of str
        Short text per run, e.g. ``"baseline=blur(sigma=5.0), window=4"``.
    maps : tuple of arrays
        The map of each run, ``(H, W)`` or ``(N, H, W)``.
    spearman, top_k, ssim : ndarray, shape (K, K)
        Pairwise agreement (see :class:`Comparison`), averaged over the images
        of a batch; symmetric with ones on the diagonal.
    """

    configs: tuple
    labels: tuple
    maps: tuple
    spearman: np.ndarray
    top_k: np.ndarray
    ssim: np.ndarray

    def least_agreement(self):
        """The pair of runs with the lowest Spearman correlation, and that correlation.

        Returns
        -------
        (str, str, float)
        """
        m = np.where(np.isnan(self.spearman), np.inf, self.spearman)
        i, j = np.unravel_index(np.argmin(m), m.shape)
        return self.labels[i], self.labels[j], float(self.spearman[i, j])

    def __str__(self):
        width = max(len(lab) for lab in self.labels)
        lines = [f"Sensitivity over {len(self.labels)} settings (Spearman | top-k | SSIM):"]
        for i, lab in enumerate(self.labels):
            row = "  ".join(
                f"{self.spearman[i, j]:5.2f}|{self.top_k[i, j]:4.2f}|{self.ssim[i, j]:4.2f}"
                for j in range(len(self.labels))
            )
            lines.append(f"  [{i}] {lab:<{width}}  {row}")
        a, b, r = self.least_agreement()
        lines.append(f"  least agreement: {a}  vs  {b}  (Spearman {r:.3f})")
        return "\n".join(lines)


def _configs(grid):
    if isinstance(grid, Mapping):
        if not grid:
            raise InvalidInputError("grid is empty; give e.g. {'baseline': ['zero', 'blur']}")
        for key, values in grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
                raise InvalidInputError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
        keys = list(grid)
        configs = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    else:
        configs = [dict(c) for c in grid]
    if len(configs) < 2:
        raise InvalidInputError(f"the grid gives {len(configs)} setting(s); need at least 2 to compare")
    return configs


def _label(config):
    parts = []
    for key, v in config.items():
        text = baseline_label(v) if key == "baseline" else (v.__name__ if callable(v) else repr(v))
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def sensitivity(f, x, method, grid, *, k=0.1, progress=False, **fixed):
    """Run a saliency method over a grid of settings and compare every pair of maps.

    Parameters
    ----------
    f : callable
        ``f(batch) -> scores`` of shape ``(B,)``.
    x : array, shape (C, H, W) or (N, C, H, W)
    method : {"occlusion", "rise", "mask_search"} or callable
        A callable is called as ``method(f, x, **fixed, **config)`` and must
        return maps ``(H, W)`` or ``(N, H, W)``.
    grid : dict of name -> list, or list of dict
        A dict is expanded to all combinations (in insertion order), e.g.
        ``{"baseline": ["zero", "mean", "blur"], "window": [4, 8]}``; a list
        gives the settings one by one.
    k : float or int
        Top set of the top-k overlap (see :func:`compare`).
    progress : bool
        Progress bar over the settings.
    **fixed
        Arguments passed to every run, e.g. ``stride=2, batch_size=128``.

    Returns
    -------
    Sensitivity
    """
    if isinstance(method, str):
        if method not in METHODS:
            raise InvalidInputError(f"unknown method {method!r}; choose one of {sorted(METHODS)} or pass a callable")
        method = METHODS[method]
    elif not callable(method):
        raise InvalidInputError(f"method must be a name or a callable, got {type(method).__name__}")
    configs = _configs(grid)
    clash = set(fixed) & set().union(*configs)
    if clash:
        raise InvalidInputError(f"{sorted(clash)} given both in the grid and as fixed arguments")
    maps = tuple(method(f, x, **fixed, **c) for c in tqdm(configs, desc="sensitivity", disable=not progress))
    n_cfg = len(configs)
    mats = {name: np.eye(n_cfg) for name in ("spearman", "top_k", "ssim")}
    for i, j in itertools.combinations(range(n_cfg), 2):
        c = compare(maps[i], maps[j], k=k)
        for name in mats:
            mats[name][i, j] = mats[name][j, i] = float(np.mean(getattr(c, name)))
    return Sensitivity(tuple(configs), tuple(_label(c) for c in configs), maps, **mats)
