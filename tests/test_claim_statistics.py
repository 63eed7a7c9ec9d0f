"""The claim statistics of evtools_torch.experiments (Wilson and bootstrap intervals, verdicts)
against plain computations: statsmodels' Wilson interval and a plain resampling loop."""
import numpy as np
import pytest

pytest.importorskip("torch")

from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from evtools_torch.experiments import bootstrap_ratios, verdict, wilson_interval  # noqa: E402


def test_wilson_interval_equals_statsmodels():
    lo, hi = wilson_interval([0, 3, 10], [10, 10, 10])
    for s, a, b in zip((0, 3, 10), lo, hi):
        assert (a, b) == pytest.approx(proportion_confint(s, 10, method="wilson"))
    assert np.isnan(wilson_interval(0, 0)[0])


def test_bootstrap_ratios_match_a_plain_loop():
    rng = np.random.default_rng(1)
    num, den = rng.uniform(0, 1, (30, 2)), rng.uniform(1, 2, (30, 2))
    groups = np.repeat([0, 1, 2], 10)
    estimate, draws = bootstrap_ratios(num, den, groups, n_boot=300, seed=5)
    assert estimate == pytest.approx(num.sum(0) / den.sum(0))
    assert draws.shape == (300, 2)
    # plain two-stage resampling has the same mean and spread
    plain = []
    for _ in range(3000):
        chosen = rng.integers(0, 3, 3)
        rows = np.concatenate([g * 10 + rng.integers(0, 10, 10) for g in chosen])
        plain.append(num[rows].sum(0) / den[rows].sum(0))
    plain = np.asarray(plain)
    assert draws.mean(0) == pytest.approx(plain.mean(0), abs=0.02)
    assert draws.std(0) == pytest.approx(plain.std(0), rel=0.25)


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0.1, 0.3, "held"), (-0.1, 0.3, "not shown"), (-0.3, -0.1, "reversed"), (np.nan, np.nan, "not shown"),
])
def test_verdict(lo, hi, expected):
    assert verdict(lo, hi) == expected
    flipped = {"held": "reversed", "reversed": "held", "not shown": "not shown"}[expected]
    assert verdict(lo, hi, higher_is_claimed=False) == flipped
