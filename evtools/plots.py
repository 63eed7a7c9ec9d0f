"""Diagnostic plots (needs the ``plot`` extra: matplotlib).

Each function draws on ``ax`` (a new figure's axes by default) and returns
the axes, so plots compose into a user's own figures:

- :func:`plot_qq_normal`: a column against the normal distribution (the
  z-score's assumption);
- :func:`plot_qq_gpd`: a column's exceedances against its fitted GPD (the POT
  score's assumption);
- :func:`plot_mean_residual_life` and :func:`plot_parameter_stability`: the
  classical threshold-choice plots, from :func:`evtools.mean_residual_life`
  and :func:`evtools.parameter_stability`;
- :func:`plot_depth_profile`: share of each layer among the top-k filters
  against its share of filters (:func:`evtools.depth_profile`).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._errors import InvalidInputError
from ._validation import as_matrix, as_sample
from .gpd import GPD


def _axes(ax, n=1):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError("plots need matplotlib: pip install 'evtools[plot]'") from exc
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), layout="constrained")
    return axes


def _positions(n):
    """Plotting positions ``(i - 0.5) / n`` (Hazen) of the sorted sample."""
    return (np.arange(1, n + 1) - 0.5) / n


def plot_qq_normal(x, ax=None):
    """QQ plot of a sample against the normal distribution with its mean and standard deviation.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
        One column of a gradient matrix; at least 3 values.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    x = np.sort(as_sample(x, "x", min_size=3))
    ax = _axes(ax)
    q = stats.norm.ppf(_positions(x.size))
    mean, sd = x.mean(), x.std(ddof=1)
    ax.plot(q, x, ".", ms=3, label="sample")
    ax.plot(q, mean + sd * q, "-", color="C3", label=f"normal({mean:.3g}, {sd:.3g})")
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel("sample quantile")
    ax.set_title("QQ plot against the normal")
    ax.legend(loc="upper left")
    return ax


def plot_qq_gpd(model, G_ref, column, ax=None):
    """QQ plot of a column's excesses over its threshold against its fitted GPD.

    Parameters
    ----------
    model : TailModel or fitted POTSaliency
        Gives the column's threshold, ``sigma`` and ``xi``.
    G_ref : array_like, shape (n_samples, n_filters)
        The reference matrix the model was fitted on.
    column : int
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    tail = getattr(model, "tail_", model)
    G_ref = as_matrix(G_ref, "G_ref")
    if not 0 <= column < G_ref.shape[1]:
        raise InvalidInputError(f"column must lie in [0, {G_ref.shape[1]}), got {column}")
    t, sigma, xi = tail.threshold[column], tail.sigma[column], tail.xi[column]
    x = np.asarray(G_ref[:, column], dtype=np.float64)
    excess = np.sort(x[x > t] - t)
    if excess.size < 2 or not np.isfinite(sigma):
        raise InvalidInputError(
            f"column {column} has {excess.size} exceedance(s) over its threshold: nothing to compare"
        )
    ax = _axes(ax)
    q = GPD(sigma, xi).ppf(_positions(excess.size))
    ax.plot(q, excess, ".", ms=3, label="excesses")
    top = max(q.max(), excess.max())
    ax.plot([0, top], [0, top], "-", color="C3", label=f"GPD(sigma={sigma:.3g}, xi={xi:.3g})")
    ax.set_xlabel("fitted GPD quantile")
    ax.set_ylabel(f"excess over threshold {t:.3g}")
    ax.set_title(f"QQ plot of column {column} against its GPD")
    ax.legend(loc="upper left")
    return ax


def plot_mean_residual_life(x, ax=None, **kwargs):
    """Mean excess over each candidate threshold, with its confidence band.

    Above a threshold where the GPD holds, the mean excess is linear in the
    threshold (slope ``xi / (1 - xi)``).

    Parameters
    ----------
    x : array_like, shape (n_samples,)
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`evtools.mean_residual_life`.

    Returns
    -------
    matplotlib Axes
    """
    from .diagnostics import mean_residual_life

    mrl = mean_residual_life(x, **kwargs)
    ax = _axes(ax)
    ax.plot(mrl["threshold"], mrl["mean_excess"], "-", label="mean excess")
    ax.fill_between(mrl["threshold"], mrl["lower"], mrl["upper"], alpha=0.25, label="confidence band")
    ax.set_xlabel("threshold")
    ax.set_ylabel("mean excess")
    ax.set_title("Mean residual life")
    ax.legend(loc="best")
    return ax


def plot_parameter_stability(x, axes=None, **kwargs):
    """Modified scale and shape of GPD fits over candidate thresholds, with confidence bands.

    Both are constant above a threshold where the GPD holds.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
    axes : pair of matplotlib Axes, optional
    **kwargs
        Passed to :func:`evtools.parameter_stability`.

    Returns
    -------
    ndarray of two matplotlib Axes
    """
    from .diagnostics import parameter_stability

    ps = parameter_stability(x, **kwargs)
    axes = _axes(axes, 2)
    for ax, name, label in (
        (axes[0], "scale_star", "modified scale sigma* = sigma - xi t"),
        (axes[1], "xi", "shape xi"),
    ):
        ax.plot(ps["threshold"], ps[name], "o-", ms=3)
        ax.fill_between(ps["threshold"], ps[f"{name}_lower"], ps[f"{name}_upper"], alpha=0.25)
        ax.set_xlabel("threshold")
        ax.set_ylabel(label)
    axes[0].set_title("Parameter stability")
    return np.asarray(axes)


def plot_depth_profile(profile, ax=None):
    """Bars of each layer's share of top-k filters against its share of all filters.

    Parameters
    ----------
    profile : DepthProfile
        From :func:`evtools.depth_profile`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    pos = np.arange(profile.layer.size)
    ax.bar(pos - 0.2, profile.observed_share, width=0.4, label=f"share of top-{profile.k}")
    ax.bar(pos + 0.2, profile.expected_share, width=0.4, label="share of filters")
    ax.set_xticks(pos, [str(name) for name in profile.layer], rotation=45, ha="right")
    ax.set_xlabel("layer (by depth)")
    ax.set_ylabel("share")
    ax.set_title(f"Layer depth of top-{profile.k} filters (chi2 p = {profile.pvalue:.2g})")
    ax.legend(loc="best")
    return ax
