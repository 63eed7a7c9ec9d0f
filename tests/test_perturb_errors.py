"""Bad input gets a clear InvalidInputError (a ValueError) that says what to fix."""
import numpy as np
import pytest

import evtools.perturb as P
from evtools import InvalidInputError

X = np.random.default_rng(0).random((3, 8, 8))
S = np.random.default_rng(1).random((8, 8))


def f(b):
    return b.mean(axis=(1, 2, 3))


def prob(b):
    return 1 / (1 + np.exp(-b.mean(axis=(1, 2, 3))))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: P.occlusion(lambda b: b.mean(axis=(2, 3)), X, 2), r"returned shape \(\d+, 3\).*one score per input"),
        (lambda: P.occlusion(lambda b: b.mean(axis=(1, 2, 3))[:-1], X, 2), "returned shape"),
        (lambda: P.occlusion(lambda b: np.where(b.sum(axis=(1, 2, 3)) < X.sum(), np.inf, 0.0), X, 2), "non-finite"),
        (lambda: P.occlusion(lambda b: "nope", X, 2), "must return an array"),
        (lambda: P.rise(lambda b: np.full(b.shape[0], np.nan), X, 4, 2), "non-finite"),
        (lambda: P.occlusion(f, X, 9), "larger than the image"),
        (lambda: P.occlusion(f, X, (2, 9)), "larger than the image"),
        (lambda: P.occlusion(f, X, 2, 0), "stride must be a positive integer, got 0"),
        (lambda: P.occlusion(f, X, 2, (1, 0)), r"stride\[1\]"),
        (lambda: P.occlusion(f, X, 2, 3), "exceeds the window"),
        (lambda: P.occlusion(f, X, 2.5), "window must be"),
        (lambda: P.occlusion(f, X, 2, batch_size=0), "batch_size"),
        (lambda: P.occlusion("f", X, 2), "callable"),
        (lambda: P.occlusion(f, X[0], 2), r"one image \(C, H, W\) or a batch"),
        (lambda: P.occlusion(f, X.astype(np.uint8), 2), "floating-point"),
        (lambda: P.occlusion(f, np.where(X > 0.5, np.nan, X), 2), "non-finite"),
        (lambda: P.occlusion(f, "x", 2), "must be an array"),
        (lambda: P.occlusion(f, X, 2, baseline="black"), "unknown baseline kind"),
        (lambda: P.occlusion(f, X, 2, baseline=np.ones((2, 8, 8))), "does not broadcast"),
        (lambda: P.occlusion(f, X, 2, baseline=np.inf), "finite"),
        (lambda: P.Baseline("blur", seed=3), r"takes no parameter\(s\) \['seed'\]"),
        (lambda: P.Baseline("blur", sigma=0), "sigma"),
        (lambda: P.Baseline("uniform", low=2, high=1), "low <= high"),
        (lambda: P.rise(f, X, 10, cells=9), "exceed the image"),
        (lambda: P.rise(f, X, 10, p=1.0), "p must lie in"),
        (lambda: P.rise(f, X, 0), "n_masks"),
        (lambda: P.mask_search(f, X + 5, 2, 2, cells=2), r"outside \[0, 1\]"),
        (lambda: P.deletion(f, X, S[:7]), r"saliency must have shape \(8, 8\)"),
        (lambda: P.deletion(f, X, np.stack([S] * 3)), "reduce the channel axis"),
        (lambda: P.deletion(f, X[None], S), r"shape \(1, 8, 8\)"),
        (lambda: P.deletion(f, X, np.where(S > 0.5, np.inf, S)), "saliency holds"),
        (lambda: P.deletion(f, X, S, step=0), "step"),
        (lambda: P.morf(f, X, S, region=9), "larger than the image"),
        (lambda: P.compare(S, S[:, :7]), "same shape"),
        (lambda: P.compare(S[0], S[0]), r"\(H, W\) or \(N, H, W\)"),
        (lambda: P.compare(S, S, k=0.0), "fraction in"),
        (lambda: P.compare(S, S, k=65), r"count must lie in \[1, 64\]"),
        (lambda: P.sensitivity(f, X, "lime", {"baseline": ["zero", "mean"]}), "unknown method"),
        (lambda: P.sensitivity(f, X, "occlusion", {"baseline": ["zero"]}, window=2), "at least 2"),
        (lambda: P.sensitivity(f, X, "occlusion", {"window": "23"}), "non-empty list"),
        (lambda: P.sensitivity(f, X, "occlusion", {"window": [1, 2]}, window=2), "both in the grid"),
        (lambda: P.variations(prob, X, S, keep=1.5), "keep must lie in"),
        (lambda: P.variations(prob, X, S, fill=np.ones((2, 3, 4, 4))), "fill images must have"),
        (lambda: P.variations(prob, X, S, seed=-1), "seed"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        P.occlusion(f, X, 0)
