"""Input-perturbation saliency maps, their evaluation and their comparison.

Framework-agnostic: the black box is any callable ``f(batch) -> (batch,)``
scores (say, the probability of the class of interest) and the input is one
image ``(C, H, W)`` or a batch ``(N, C, H, W)`` of numpy, torch (CPU or GPU),
JAX or any array-API arrays. Everything runs in the input's namespace and on
its device; perturbed inputs go to ``f`` ``batch_size`` at a time.

Maps
    :func:`occlusion` (Captum's conventions), :func:`rise` (Petsiuk et al.
    2018), :func:`mask_search` (Thakur & Fischmeister 2020).
Evaluation
    :func:`deletion`, :func:`insertion` (Petsiuk et al. 2018), :func:`morf`,
    :func:`lerf` with AOPC (Samek et al. 2017).
Comparison
    :func:`compare` (Spearman, top-k overlap, SSIM), :func:`sensitivity`
    (the baseline / hyperparameter study of Brunke et al. 2021 in one call).
Reconstruction check
    :func:`variations` (Thakur & Fischmeister 2020).
Baselines
    :class:`Baseline`, :func:`make_baseline`: one definition for all of the above.
"""
from .baselines import Baseline, make_baseline
from .compare import Comparison, Sensitivity, compare, sensitivity
from .curves import Curve, deletion, insertion, lerf, morf
from .maps import mask_search, occlusion, rise
from .variations import Variations, variations

__all__ = [
    "Baseline", "make_baseline",
    "occlusion", "rise", "mask_search",
    "Curve", "deletion", "insertion", "morf", "lerf",
    "Comparison", "compare", "Sensitivity", "sensitivity",
    "Variations", "variations",
]
