"""Plain versions of runs declustering and the extremal-index estimators.

``clust`` follows R POT's ``clust(data, u, tim.cond, clust.max = TRUE)``
(R/clust.R and src/clust.c): exceedance indices, a cluster break wherever the
time between consecutive exceedances exceeds ``tim.cond``, and ``which.max``
(the first maximum) over each cluster's span.
"""
import numpy as np


def clust(obs, u, tim_cond, time=None):
    """(maxima, index, n_exceed) of POT's clust(..., clust.max = TRUE)."""
    obs = np.asarray(obs, dtype=float)
    tim = np.arange(obs.size, dtype=float) if time is None else np.asarray(time, dtype=float)
    idx = np.flatnonzero(obs > u)
    if idx.size == 0:
        return np.array([]), np.array([], dtype=int), 0
    breaks = np.flatnonzero(np.diff(tim[idx]) > tim_cond)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    index = np.array([s + int(np.argmax(obs[s:e + 1])) for s, e in zip(starts, ends)])
    return obs[index], index, idx.size


def ferro_segers(obs, u):
    """Ferro & Segers (2003), eq. (4): the intervals estimator, NaN below 2 exceedances."""
    T = np.diff(np.flatnonzero(np.asarray(obs) > u)).astype(float)
    N = T.size + 1
    if N < 2:
        return np.nan
    if T.max() <= 2:
        return min(1.0, 2 * T.sum() ** 2 / ((N - 1) * np.sum(T ** 2)))
    return min(1.0, 2 * np.sum(T - 1) ** 2 / ((N - 1) * np.sum((T - 1) * (T - 2))))
