"""The claim statistics of evtools.claims (Wilson and bootstrap intervals, verdicts, depth bias)
against independent computations: statsmodels' Wilson interval, a plain resampling loop, numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from evtools import InvalidInputError
from evtools.claims import (
    VERDICTS,
    bootstrap_ratios,
    estimate_with_ci,
    percentile_interval,
    share_by_group,
    total_variation,
    verdict,
    wilson_interval,
)


def test_wilson_interval_equals_statsmodels():
    lo, hi = wilson_interval([0, 3, 10], [10, 10, 10])
    for s, a, b in zip((0, 3, 10), lo, hi):
        assert (a, b) == pytest.approx(proportion_confint(s, 10, method="wilson"))
    assert np.isnan(wilson_interval(0, 0)[0])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10_000), frac=st.floats(0, 1), level=st.floats(0.5, 0.999))
def test_wilson_interval_equals_statsmodels_everywhere(n, frac, level):
    s = int(round(frac * n))
    lo, hi = wilson_interval(s, n, level)
    ref_lo, ref_hi = proportion_confint(s, n, alpha=1 - level, method="wilson")
    assert float(lo) == pytest.approx(ref_lo, abs=1e-12)
    assert float(hi) == pytest.approx(ref_hi, abs=1e-12)


@pytest.mark.parametrize(("s", "n", "level"), [(5, 3, 0.95), (-1, 3, 0.95), (1, 3, 1.0), (1, 3, 0.0)])
def test_wilson_interval_refuses_impossible_counts_and_levels(s, n, level):
    with pytest.raises(InvalidInputError):
        wilson_interval(s, n, level)


def test_bootstrap_ratios_match_a_plain_loop():
    rng = np.random.default_rng(1)
    num, den = rng.uniform(0, 1, (30, 2)), rng.uniform(1, 2, (30, 2))
    groups = np.repeat([0, 1, 2], 10)
    estimate, draws = bootstrap_ratios(num, den, groups, n_boot=4000, seed=5)
    assert estimate == pytest.approx(num.sum(0) / den.sum(0))
    assert draws.shape == (4000, 2)
    # plain two-stage resampling (rows drawn again for every pick of a group) has the same mean and spread;
    # the tolerance (4 x the sampling error of two 4000-draw spreads) fails a bootstrap that reuses one row
    # resample for a group drawn twice (+20 %) or ignores the groups (-16 %)
    plain = []
    for _ in range(4000):
        chosen = rng.integers(0, 3, 3)
        rows = np.concatenate([g * 10 + rng.integers(0, 10, 10) for g in chosen])
        plain.append(num[rows].sum(0) / den[rows].sum(0))
    plain = np.asarray(plain)
    assert draws.mean(0) == pytest.approx(plain.mean(0), abs=0.02)
    assert draws.std(0) == pytest.approx(plain.std(0), rel=0.06)


def test_bootstrap_ratios_refuse_mismatched_shapes_and_groups():
    with pytest.raises(InvalidInputError, match="one shape"):
        bootstrap_ratios(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(InvalidInputError, match="groups"):
        bootstrap_ratios(np.ones((3, 2)), np.ones((3, 2)), groups=[0, 1])


def test_percentile_interval_is_numpy_quantile_ignoring_nan():
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(1000, 3))
    draws[::7, 1] = np.nan
    draws[:, 2] = np.nan
    lo, hi = percentile_interval(draws, 0.9)
    finite = draws[~np.isnan(draws[:, 1]), 1]
    assert lo[0] == pytest.approx(np.quantile(draws[:, 0], 0.05))
    assert hi[1] == pytest.approx(np.quantile(finite, 0.95))
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def test_total_variation_and_estimate_record():
    assert total_variation([0.5, 0.5, 0.0], [0.0, 0.0, 1.0]) == pytest.approx(1.0)
    draws = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert total_variation(draws, [0.5, 0.5]) == pytest.approx([0.3, 0.0])
    assert estimate_with_ci(np.float32(0.5), 0.25, 1) == {"value": 0.5, "ci": [0.25, 1.0]}


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0.1, 0.3, "held"), (-0.1, 0.3, "not shown"), (-0.3, -0.1, "reversed"), (np.nan, np.nan, "not shown"),
])
def test_verdict(lo, hi, expected):
    assert verdict(lo, hi) == expected in VERDICTS
    flipped = {"held": "reversed", "reversed": "held", "not shown": "not shown"}[expected]
    assert verdict(lo, hi, higher_is_claimed=False) == flipped


def test_share_by_group_matches_a_plain_loop_and_statsmodels():
    rng = np.random.default_rng(3)
    flags, groups = rng.random(50) < 0.3, rng.integers(0, 4, 50)
    groups[groups == 2] = 1  # group 2 has no unit
    out = share_by_group(flags, groups, 4, level=0.9)
    for g in range(4):
        members = flags[groups == g]
        if members.size == 0:
            assert np.isnan(out["share"][g]) and np.isnan(out["ci_low"][g])
            continue
        assert out["share"][g] == pytest.approx(members.mean())
        ref = proportion_confint(members.sum(), members.size, alpha=0.1, method="wilson")
        assert (out["ci_low"][g], out["ci_high"][g]) == pytest.approx(ref)
    assert out["overall"]["value"] == pytest.approx(flags.mean()) and out["count"] == flags.sum()
    assert out["overall"]["ci"] == pytest.approx(proportion_confint(flags.sum(), 50, alpha=0.1, method="wilson"))
    with pytest.raises(InvalidInputError, match="groups"):
        share_by_group(flags, groups, 2)
