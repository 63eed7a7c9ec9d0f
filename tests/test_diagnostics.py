"""Threshold diagnostics: mean residual life and parameter stability."""
import numpy as np
import pytest
from scipy import stats

import evtools as ev
from evtools.diagnostics import mean_residual_life, parameter_stability
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


# ---------------------------------------------------------------- parameter stability

PS_KEYS = {"threshold", "xi", "xi_lower", "xi_upper", "scale_star", "scale_star_lower",
           "scale_star_upper", "n_exceed", "status"}


def test_parameter_stability_equals_per_threshold_fits(rng):
    x = stats.genpareto.rvs(0.15, scale=2.0, size=3000, random_state=rng)
    u = np.quantile(x, [0.0, 0.3, 0.6, 0.9])
    d = parameter_stability(x, u)
    assert set(d) == PS_KEYS
    z = stats.norm.ppf(0.975)
    for i, t in enumerate(u):
        y = x[x > t] - t
        c, _, scale = stats.genpareto.fit(y, floc=0)
        assert d["xi"][i] == pytest.approx(c, abs=2e-3)
        assert d["scale_star"][i] == pytest.approx(scale - c * t, rel=2e-3)
        sigma = d["scale_star"][i] + d["xi"][i] * t
        se_xi, se_star = naive.gpd_wald_naive(y, sigma, d["xi"][i], t)
        np.testing.assert_allclose(d["xi_upper"][i] - d["xi"][i], z * se_xi, rtol=1e-3)
        np.testing.assert_allclose(d["scale_star"][i] - d["scale_star_lower"][i], z * se_star, rtol=1e-3)
        assert d["n_exceed"][i] == y.size and d["status"][i] == ev.Status.OK


@pytest.mark.parametrize("xi", [-0.2, 0.0, 0.3])
def test_gpd_parameters_are_stable_over_thresholds(xi):
    x = stats.genpareto.rvs(xi, scale=1.5, size=20000, random_state=np.random.default_rng(3))
    d = parameter_stability(x)
    keep = d["n_exceed"] >= 300
    covered_xi = (d["xi_lower"] <= xi) & (xi <= d["xi_upper"])
    covered_s = (d["scale_star_lower"] <= 1.5) & (1.5 <= d["scale_star_upper"])
    assert covered_xi[keep].mean() > 0.8 and covered_s[keep].mean() > 0.8
    assert np.all(np.abs(d["xi"][keep] - xi) < 0.2)
    # the interval widens as exceedances get fewer
    width = (d["xi_upper"] - d["xi_lower"])[keep]
    assert width[-1] > 3 * width[0]


def test_parameter_stability_detects_a_change_point():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(0, 1, 6000), 1 + rng.exponential(0.5, 4000)])
    d = parameter_stability(x, [0.0, 0.3, 1.2, 1.6, 2.0])
    # below the change point the fits are off, far outside their intervals
    assert np.all(d["xi_upper"][:2] < -0.1) and np.all(d["scale_star_lower"][:2] > 0.8)
    # above it the estimates are flat and cover the tail's xi = 0, sigma* = 0.5
    assert np.all((d["xi_lower"][2:] <= 0) & (0 <= d["xi_upper"][2:]))
    assert np.all((d["scale_star_lower"][2:] <= 0.5) & (0.5 <= d["scale_star_upper"][2:]))


def test_too_few_exceedances_give_nan_and_status(rng):
    x = rng.exponential(size=200)
    d = parameter_stability(x, [0.0, np.sort(x)[-20], 100.0], min_exceed=30)
    assert d["status"][0] == ev.Status.OK
    assert list(d["status"][1:]) == [ev.Status.TOO_FEW] * 2
    assert np.isnan(d["xi"][1:]).all() and np.isnan(d["scale_star_upper"][1:]).all()
    assert list(d["n_exceed"][1:]) == [19, 0]
    dflt = parameter_stability(x, min_exceed=50)
    assert dflt["n_exceed"].min() >= 50 and np.all(dflt["status"] == ev.Status.OK)


@pytest.mark.parametrize(
    "x,kw,match",
    [
        ([1.0, np.inf, 2.0, 3.0], {}, "non-finite"),
        (np.ones(10), {}, "constant"),
        (np.arange(50.0), {"min_exceed": 2}, "min_exceed"),
        (np.arange(50.0), {"min_exceed": 10.5}, "min_exceed"),
        (np.arange(50.0), {"level": 0.0}, "level"),
        (np.arange(50.0), {"thresholds": [[1.0]]}, "1-D"),
    ],
)
def test_parameter_stability_bad_input(x, kw, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        parameter_stability(x, **kw)
