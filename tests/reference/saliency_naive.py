"""Slow, obviously correct versions of the saliency, selection, depth and normality code.

The tests compare evtools' vectorised and numba implementations with these.
"""
import math
import warnings
from fractions import Fraction

import numpy as np
from scipy import stats
from statsmodels.stats.diagnostic import lilliefors, normal_ad


def zscore_naive(G_ref, G, floor=1e-14):
    """Two-pass mean and unbiased std over the reference; std <= floor replaced by 1."""
    G_ref = np.asarray(G_ref, dtype=np.float64)
    mean = G_ref.mean(axis=0)
    std = G_ref.std(axis=0, ddof=1)
    std[std <= floor] = 1.0
    return (np.asarray(G, dtype=np.float64) - mean) / std


def zscore_exact(G_ref, G, floor=1e-14):
    """z-scores in exact rational arithmetic (fractions), rounded once at the end.

    Mean and unbiased variance of each reference column are exact; the square
    root is taken of the variance scaled into float range by an even power of
    two, so columns near +-1e308 and denormal columns are as right as floats
    allow. Returns ``(std, z)``; std <= floor replaced by 1.
    """
    G_ref = np.asarray(G_ref, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    n, m = G_ref.shape
    std = np.empty(m)
    z = np.empty(G.shape)
    for j in range(m):
        col = [Fraction(float(v)) for v in G_ref[:, j]]
        mean = sum(col) / n
        var = sum((v - mean) ** 2 for v in col) / (n - 1)
        if var == 0:
            s, s_exact = 0.0, Fraction(0)
        else:
            k = (var.numerator.bit_length() - var.denominator.bit_length()) // 2  # var / 4**k near 1
            root = math.sqrt(float(var / Fraction(4) ** k))
            s_exact = Fraction(root) * Fraction(2) ** k
            s = float(s_exact) if k < 1024 else math.inf
        if s <= floor:
            s, s_exact = 1.0, Fraction(1)
        std[j] = s
        for i in range(G.shape[0]):
            z[i, j] = float((Fraction(float(G[i, j])) - mean) / s_exact)
    return std, z


def normal_pvalue_naive(z):
    """One-sided upper normal tail probability of each z-score."""
    return np.vectorize(lambda v: 0.5 * math.erfc(v / math.sqrt(2)))(z)


def rank_naive(score_row, k):
    """Top-k columns of one row: highest score first, ties by the smaller column."""
    order = sorted(range(len(score_row)), key=lambda j: (-score_row[j], j))
    return np.array(order[:k])


def bh_naive(pvalue, alpha):
    """Benjamini-Hochberg step-up: reject the i smallest p-values for the largest i with p_(i) <= i alpha / m."""
    m = len(pvalue)
    order = np.argsort(pvalue, kind="stable")
    largest = 0
    for i, j in enumerate(order, start=1):
        if pvalue[j] <= i * alpha / m:
            largest = i
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:largest]] = True
    return rejected


def depth_counts_naive(index, layer_of_column, k):
    """Count, per distinct layer (in order of first appearance), the top-k picks over all rows."""
    layers = list(dict.fromkeys(layer_of_column))
    counts = dict.fromkeys(layers, 0)
    for row in np.atleast_2d(index):
        for j in row[:k]:
            counts[layer_of_column[j]] += 1
    sizes = [sum(1 for lay in layer_of_column if lay == name) for name in layers]
    return layers, np.array([counts[name] for name in layers]), np.array(sizes)


def normality_naive(G, name):
    """One normality test, column by column, with the single-column scipy/statsmodels function."""
    funcs = {
        "shapiro": lambda x: tuple(stats.shapiro(x)),
        "dagostino": lambda x: tuple(stats.normaltest(x)),
        "jarque_bera": lambda x: tuple(stats.jarque_bera(x)),
        "anderson": lambda x: normal_ad(x),
        "lilliefors": lambda x: lilliefors(x, dist="norm", pvalmethod="table"),
    }
    out = np.empty((2, G.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(G.shape[1]):
            out[:, j] = funcs[name](np.asarray(G[:, j], dtype=np.float64))
    return out[0], out[1]
