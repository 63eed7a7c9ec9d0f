"""Threshold diagnostics: mean residual life and parameter stability."""
import numpy as np
import pytest
from scipy import stats

import evtools as ev
from evtools.diagnostics import mean_residual_life
from tests.reference import gof_naive as naive

MRL_KEYS = {"threshold", "mean_excess", "lower", "upper", "n_exceed"}


# ---------------------------------------------------------------- mean residual life


def test_mean_excess_equals_naive(rng):
    x = rng.lognormal(size=3000)
    u = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 5.0, np.sort(x)[-2], 1e9])
    d = mean_residual_life(x, u)
    assert set(d) == MRL_KEYS
    me, n = naive.mean_excess_naive(x, u)
    np.testing.assert_allclose(d["mean_excess"], me, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(d["n_exceed"], n)
    assert d["n_exceed"].dtype == np.int64
    # interval: mean +- 1.96 sd / sqrt(n); NaN with one exceedance, all NaN with none
    ok = n >= 2
    sd = np.array([np.std(x[x > t] - t, ddof=1) for t in u[ok]])
    np.testing.assert_allclose(d["upper"][ok] - d["mean_excess"][ok], stats.norm.ppf(0.975) * sd / np.sqrt(n[ok]))
    np.testing.assert_allclose(d["mean_excess"][ok] - d["lower"][ok], d["upper"][ok] - d["mean_excess"][ok])
    assert np.isnan(d["lower"][-2]) and np.isfinite(d["mean_excess"][-2])
    assert np.isnan(d["mean_excess"][-1]) and d["n_exceed"][-1] == 0


def test_default_grid_keeps_at_least_ten_exceedances(rng):
    x = rng.normal(size=500)
    d = mean_residual_life(x)
    assert d["threshold"].size == 100
    assert np.all(np.diff(d["threshold"]) >= 0)
    assert d["threshold"][0] == x.min() and d["n_exceed"][-1] >= 10
    me, _ = naive.mean_excess_naive(x, d["threshold"])
    np.testing.assert_allclose(d["mean_excess"], me, rtol=1e-12)


def test_level_widens_interval(rng):
    x = rng.exponential(size=400)
    a = mean_residual_life(x, [0.5], level=0.9)
    b = mean_residual_life(x, [0.5], level=0.99)
    assert b["upper"][0] - b["lower"][0] > a["upper"][0] - a["lower"][0]


def test_exponential_mean_excess_is_constant():
    x = np.random.default_rng(1).exponential(2.0, 20000)
    d = mean_residual_life(x)
    keep = d["n_exceed"] >= 1000
    slope, intercept = np.polyfit(d["threshold"][keep], d["mean_excess"][keep], 1)
    assert abs(slope) < 0.03
    assert intercept == pytest.approx(2.0, abs=0.05)
    covered = (d["lower"] <= 2.0) & (2.0 <= d["upper"])
    assert covered.mean() > 0.8


@pytest.mark.parametrize("xi", [-0.3, 0.1, 0.25])
def test_gpd_mean_excess_is_linear_with_slope_xi_over_one_minus_xi(xi):
    x = stats.genpareto.rvs(xi, scale=1.0, size=40000, random_state=np.random.default_rng(7))
    d = mean_residual_life(x)
    keep = d["n_exceed"] >= 2000
    slope, intercept = np.polyfit(d["threshold"][keep], d["mean_excess"][keep], 1)
    assert slope == pytest.approx(xi / (1 - xi), abs=0.06)
    assert intercept == pytest.approx(1.0 / (1 - xi), rel=0.05)


@pytest.mark.parametrize(
    "x,kw,match",
    [
        ([1.0, np.nan, 2.0, 3.0], {}, "non-finite"),
        ([1.0, 2.0], {}, "at least 3"),
        (np.ones(10), {}, "constant"),
        (np.ones((10, 2)), {}, "1-D"),
        (np.arange(10.0), {"thresholds": [1.0, np.inf]}, "thresholds"),
        (np.arange(10.0), {"level": 1.0}, "level"),
    ],
)
def test_mean_residual_life_bad_input(x, kw, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        mean_residual_life(x, **kw)
