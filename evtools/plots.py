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
- :func:`plot_return_levels`: a column's return levels against the return
  period, with their confidence band and the empirical points;
- :func:`plot_depth_profile`: share of each layer among the top-k filters
  against its share of filters (:func:`evtools.depth_profile`).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._errors import InvalidInputError
from ._validation import _as_float_array, as_matrix, as_sample
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


def plot_return_levels(model, column, G_ref=None, periods=None, alpha=0.05, method="delta",
                       per_year=None, ax=None):
    """Return-level plot of one column: level against return period (log scale) with its band.

    Parameters
    ----------
    model : TailModel or fitted POTSaliency (maximum-likelihood fit)
    column : int
    G_ref : array_like, shape (n_samples, n_filters), optional
        The reference matrix: adds the empirical points (the ``i``-th largest
        value at period ``(n + 1) / i``) and is needed by ``method="profile"``.
    periods : array_like, optional
        Return periods, in observations (or in years with ``per_year``);
        default 40 points from just above ``1 / rate`` to 1000 times the
        reference length.
    alpha, method, per_year
        As in :meth:`evtools.TailModel.return_level`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    from .tails import take_columns

    tail = getattr(model, "tail_", model)
    if not 0 <= column < tail.n_filters:
        raise InvalidInputError(f"column must lie in [0, {tail.n_filters}), got {column}")
    one = take_columns(tail, column, column + 1)
    col = None
    if G_ref is not None:  # the one column needed, checked against the model it was fitted with
        G_ref = _as_float_array(G_ref, "G_ref")
        if G_ref.shape != (tail.n_samples, tail.n_filters):
            raise InvalidInputError(
                f"G_ref has shape {G_ref.shape}, the model was fitted to ({tail.n_samples}, {tail.n_filters}): "
                "pass the reference matrix")
        col = as_sample(G_ref[:, column], "G_ref column").reshape(-1, 1)
        above = int((col > tail.threshold[column]).sum())
        if tail.decluster is None and above != tail.n_exceed[column]:
            raise InvalidInputError(
                f"G_ref is not the matrix this model was fitted to: column {column} has {above} values above "
                f"its threshold, the model {tail.n_exceed[column]}; pass the reference matrix")
    scale = 1.0 if per_year is None else float(per_year)
    if periods is None:
        lo = 1.05 * tail.n_samples / max(int(tail.n_exceed[column]), 1)
        periods = np.geomspace(lo, 1000.0 * tail.n_samples, 40) / scale
    periods = np.asarray(periods, dtype=np.float64)
    levels = [one.return_level(p, alpha=alpha, method=method, per_year=per_year, G=col) for p in periods]
    est = np.array([r.estimate[0] for r in levels])
    lower = np.array([r.lower[0] for r in levels])
    upper = np.array([r.upper[0] for r in levels])
    ax = _axes(ax)
    ax.plot(periods, est, "-", color="C0", label="return level")
    ax.fill_between(periods, lower, upper, color="C0", alpha=0.2,
                    label=f"{100 * (1 - alpha):g}% interval ({method})")
    if col is not None:
        x = np.sort(col[:, 0])[::-1]
        n = tail.n_samples
        i = np.arange(1, x.size + 1)
        emp = (n + 1) / i / scale
        keep = (emp >= periods.min()) & (emp <= periods.max())
        ax.plot(emp[keep], x[keep], ".", ms=3, color="k", label="data")
    ax.set_xscale("log")
    ax.set_xlabel("return period" + (" (years)" if per_year else " (observations)"))
    ax.set_ylabel("return level")
    ax.set_title(f"return levels of column {column}")
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
