"""Multiple-testing corrections over columns (statsmodels' ``multipletests``).

Used wherever one test per column is run: :func:`evtools.normality_tests`, the
scorers' ``select`` (:class:`evtools.POTSaliency`, :class:`evtools.ZScoreSaliency`)
and the experiments' per-layer summaries.
"""
from __future__ import annotations

import numpy as np

from ._validation import check_choice

CORRECTIONS = (
    "bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel",
    "fdr_bh", "fdr_by", "fdr_tsbh", "fdr_tsbky",
)
"""Names of the corrections: the ``method`` values of ``statsmodels.stats.multitest.multipletests``."""


def check_correction(correction):
    """Return ``correction`` after checking it names a ``multipletests`` method (or is None)."""
    return None if correction is None else check_choice(correction, "correction", CORRECTIONS)


def correct_pvalues(pvalue, alpha, correction):
    """Multiple-testing correction over the finite entries of a 1-D p-value array.

    Parameters
    ----------
    pvalue : ndarray, shape (n,)
    alpha : float
        Family-wise error rate or false discovery rate, as the method controls.
    correction : str
        A ``statsmodels.stats.multitest.multipletests`` method.

    Returns
    -------
    rejected : ndarray, shape (n,), bool
        False where ``pvalue`` is NaN.
    pvalue_corrected : ndarray, shape (n,)
        NaN where ``pvalue`` is NaN.
    """
    from statsmodels.stats.multitest import multipletests  # statsmodels imports pandas: load on use

    rejected = np.zeros(pvalue.shape, dtype=bool)
    corrected = np.full(pvalue.shape, np.nan)
    ok = np.isfinite(pvalue)
    if ok.any():
        rejected[ok], corrected[ok] = multipletests(pvalue[ok], alpha=alpha, method=correction)[:2]
    return rejected, corrected
