"""Goodness of fit of GPD tails: statistics, tables, p-values, batched columns."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import evtools as ev
from evtools._kernels import gof as K
from evtools._kernels import gof_tables as T
from evtools._kernels.gpd import mle_fit
from evtools.gof import gof_columns, gpd_gof
from tests.reference import gof_naive as naive


def mle(y):
    """(sigma, xi) by the package's exact MLE kernel."""
    sigma, xi, _, status = mle_fit(np.ascontiguousarray(y, dtype=np.float64))
    assert status == 0
    return sigma, xi


# ---------------------------------------------------------------- statistics


@given(
    n=st.integers(5, 300),
    xi=st.floats(-0.45, 1.0),
    sigma=st.floats(0.1, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_statistics_equal_naive_formulae(n, xi, sigma, seed):
    y = stats.genpareto.rvs(xi, scale=sigma, size=n, random_state=np.random.default_rng(seed))
    # tested against slightly wrong parameters, so that z is not exactly uniform
    s, x = sigma * 1.1, xi - 0.05
    z = naive.gpd_cdf(y, s, x)
    if np.any(z <= K.Z_CLIP) or np.any(z >= 1 - K.Z_CLIP):
        return  # the kernel clips z there on purpose
    r = gpd_gof(y, s, x)
    np.testing.assert_allclose(r.statistic["ad"], naive.ad_statistic(z), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.statistic["cvm"], naive.cvm_statistic(z), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("xi", [-0.3, 0.0, 0.4])
def test_statistics_equal_scipy_with_known_parameters(xi, rng):
    y = stats.genpareto.rvs(xi, scale=2.0, size=80, random_state=rng)
    r = gpd_gof(y, 2.0, xi)
    known = {"c": xi, "loc": 0.0, "scale": 2.0}
    ad = stats.goodness_of_fit(stats.genpareto, y, known_params=known, statistic="ad", n_mc_samples=9, rng=rng)
    cvm = stats.cramervonmises(y, stats.genpareto(xi, scale=2.0).cdf)
    np.testing.assert_allclose(r.statistic["ad"], ad.statistic, rtol=1e-9)
    np.testing.assert_allclose(r.statistic["cvm"], cvm.statistic, rtol=1e-9)


def test_xi_zero_is_exponential(rng):
    y = rng.exponential(3.0, 100)
    z = 1 - np.exp(-y / 3.0)
    r = gpd_gof(y, 3.0, 0.0)
    np.testing.assert_allclose(r.statistic["ad"], naive.ad_statistic(z), rtol=1e-10)


def test_value_at_support_edge_gives_finite_large_statistic():
    # xi < 0: support ends at sigma / |xi| = 2; the last value sits beyond it
    y = np.array([0.1, 0.3, 0.5, 0.9, 1.2, 1.5, 2.5])
    r = gpd_gof(y, 1.0, -0.5)
    assert np.isfinite(r.statistic["ad"]) and r.statistic["ad"] > 5
    assert r.pvalue["ad"] == pytest.approx(T.P_MIN, rel=1e-12)


# ---------------------------------------------------------------- batched columns


def _padded(rng, counts, xis):
    k_max = max(counts)
    Y = np.full((k_max, len(counts)), np.nan, order="F")
    for j, (n, xi) in enumerate(zip(counts, xis)):
        Y[:n, j] = stats.genpareto.rvs(xi, scale=1.5, size=n, random_state=rng)
    return Y


def test_columns_equal_naive_loop_and_single_calls(rng):
    counts = np.array([50, 3, 120, 0, 7, 200, 64])
    xis = [0.1, 0.2, -0.2, 0.0, 0.5, 0.3, -0.4]
    Y = _padded(rng, counts, xis)
    sigma = np.array([1.4, 1.0, 1.6, 1.0, 1.3, 1.5, 1.7])
    xi = np.array(xis) + 0.02
    before = Y.copy()
    out = gof_columns(Y, counts, sigma, xi)
    np.testing.assert_array_equal(np.isnan(Y), np.isnan(before))
    np.testing.assert_array_equal(Y[~np.isnan(Y)], before[~np.isnan(before)])  # Y not sorted in place
    ad, cvm = naive.gof_columns_naive(Y, counts, sigma, xi)
    np.testing.assert_allclose(out["ad_stat"], ad, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["cvm_stat"], cvm, rtol=1e-9, equal_nan=True)
    assert np.isnan(out["ad_pvalue"][[1, 3]]).all() and np.isnan(out["cvm_stat"][[1, 3]]).all()
    for j in np.flatnonzero(counts >= 5):
        r = gpd_gof(Y[: counts[j], j], sigma[j], xi[j])
        assert out["ad_pvalue"][j] == r.pvalue["ad"]
        assert out["cvm_pvalue"][j] == r.pvalue["cvm"]


def test_columns_with_failed_fit_are_nan_not_errors(rng):
    counts = np.array([40, 40, 40])
    Y = _padded(rng, counts, [0.1, 0.1, 0.1])
    out = gof_columns(Y, counts, np.array([1.0, np.nan, -1.0]), np.array([0.1, 0.1, 0.1]))
    assert np.isfinite(out["ad_stat"][0])
    assert np.isnan(out["ad_stat"][1:]).all() and np.isnan(out["cvm_pvalue"][1:]).all()


def test_columns_accept_c_order_and_float32(rng):
    counts = np.array([30, 40])
    Y = _padded(rng, counts, [0.1, 0.2])
    Y[np.isnan(Y)] = 0.0
    a = gof_columns(Y, counts, np.ones(2), np.full(2, 0.1))
    b = gof_columns(np.ascontiguousarray(Y, dtype=np.float32).astype(np.float64), counts, np.ones(2), np.full(2, 0.1))
    c = gof_columns(np.ascontiguousarray(Y), counts.astype(np.int32), [1.0, 1.0], [0.1, 0.1])
    np.testing.assert_allclose(a["ad_stat"], b["ad_stat"], rtol=1e-6)
    np.testing.assert_array_equal(a["ad_stat"], c["ad_stat"])


# ---------------------------------------------------------------- tables


# Choulakian & Stephens (2001), Table 2, W2 for both parameters estimated, as
# printed, at p = 0.05 and p = 0.005, rows xi = -0.5, ..., 0.2, 0.5, 0.9
# (the paper's k = 0.5, ..., -0.2, -0.5, -0.9).
PUBLISHED_W2_005 = [0.222, 0.201, 0.184, 0.171, 0.160, 0.153, 0.144, 0.137, 0.124, 0.115]
PUBLISHED_W2_0005 = [0.390, 0.349, 0.317, 0.291, 0.270, 0.255, 0.240, 0.228, 0.204, 0.187]


def test_table_layout_is_monotone():
    assert np.all(np.diff(T.XI) > 0) and np.all(np.diff(T.PVALUES) < 0)
    for crit in (T.AD_CRIT, T.CVM_CRIT):
        assert crit.shape == (T.XI.size, T.PVALUES.size)
        assert np.all(np.diff(crit, axis=1) > 0)  # larger statistic, smaller p
        assert np.all(np.diff(crit, axis=0) < 0)  # heavier tail, smaller critical values


def test_w2_table_matches_published_columns():
    j05 = int(np.flatnonzero(T.PVALUES == 0.05)[0])
    j005 = int(np.flatnonzero(T.PVALUES == 0.005)[0])
    np.testing.assert_allclose(T.CVM_CRIT[:, j05], PUBLISHED_W2_005, atol=0.0025)
    np.testing.assert_allclose(T.CVM_CRIT[:, j005], PUBLISHED_W2_0005, atol=0.0025)


@pytest.mark.slow
@pytest.mark.parametrize("test", ["ad", "cvm"])
@pytest.mark.parametrize("row,col", [(0, 3), (5, 10), (8, 13), (9, 0)])
def test_tables_match_asymptotic_distribution(test, row, col):
    """Table entries equal the eigenvalue/Imhof computation of the limiting law."""
    crit = T.AD_CRIT if test == "ad" else T.CVM_CRIT
    c = naive.asymptotic_critical_value(T.XI[row], T.PVALUES[col], test)
    np.testing.assert_allclose(crit[row, col], c, atol=0.0015, rtol=0.002)


@pytest.mark.parametrize("test", ["ad", "cvm"])
def test_table_pvalue_at_table_points_and_ends(test):
    table = K.AD_CRIT if test == "ad" else K.CVM_CRIT
    crit = T.AD_CRIT if test == "ad" else T.CVM_CRIT
    for i, xi in enumerate(T.XI):
        for j, p in enumerate(T.PVALUES):
            np.testing.assert_allclose(K.table_pvalue(crit[i, j], xi, table), p, rtol=1e-12)
        assert K.table_pvalue(crit[i, 0] / 2, xi, table) == pytest.approx(T.P_MAX, rel=1e-14)
        assert K.table_pvalue(crit[i, -1] * 2, xi, table) == pytest.approx(T.P_MIN, rel=1e-12)
    # xi outside the table uses the nearest row
    assert K.table_pvalue(crit[0, 8], -3.0, table) == pytest.approx(T.PVALUES[8])
    assert K.table_pvalue(crit[-1, 8], 4.0, table) == pytest.approx(T.PVALUES[8])
    # between rows: linear in xi
    mid = 0.5 * (crit[5, 9] + crit[6, 9])
    assert K.table_pvalue(mid, 0.05, table) == pytest.approx(T.PVALUES[9])
    assert np.isnan(K.table_pvalue(np.nan, 0.1, table))


@pytest.mark.parametrize("test", ["ad", "cvm"])
def test_table_pvalue_is_monotone_in_statistic(test):
    table = K.AD_CRIT if test == "ad" else K.CVM_CRIT
    s = np.linspace(0, np.nanmax(table[1:, 1:]) * 1.2, 400)
    for xi in (-0.7, -0.25, 0.0, 0.33, 0.7, 1.5):
        p = K.table_pvalues(s, np.full(s.size, xi), table)
        assert np.all(np.diff(p) <= 0)


@pytest.mark.slow
def test_interpolated_pvalue_close_to_asymptotic_law():
    xi = 0.25  # between rows, between levels
    for test, crit in (("ad", K.AD_CRIT), ("cvm", K.CVM_CRIT)):
        lam = naive.asymptotic_eigenvalues(xi, test)
        for p_true in (0.6, 0.3, 0.07, 0.02):
            c = naive.asymptotic_critical_value(xi, p_true, test)
            p = K.table_pvalue(c, xi, crit)
            assert abs(p - p_true) / p_true < 0.05, (test, p_true, p)
            assert abs(naive.weighted_chi2_sf(c, lam) - p_true) < 1e-4


# ---------------------------------------------------------------- null and alternative


@pytest.mark.parametrize("xi", [-0.2, 0.0, 0.3])
def test_pvalues_uniform_under_null(xi):
    rng = np.random.default_rng(int(1000 * (xi + 1)))
    reps, n = 300, 150
    X = stats.genpareto.rvs(xi, scale=2.0, size=(n, reps), random_state=rng)
    fits = [mle(X[:, j]) for j in range(reps)]
    sigma = np.array([f[0] for f in fits])
    xih = np.array([f[1] for f in fits])
    out = gof_columns(np.asfortranarray(X), np.full(reps, n), sigma, xih)
    for key in ("ad_pvalue", "cvm_pvalue"):
        p = out[key]
        assert np.isfinite(p).all()
        assert stats.kstest(p, "uniform").pvalue > 0.01, key
        assert 0.02 < np.mean(p < 0.05) < 0.09, key


@pytest.mark.parametrize(
    "make",
    [
        # uniform body below 1 with an exponential tail, "threshold" 0 (too low)
        lambda rng: np.concatenate([rng.uniform(0, 1, 600), 1 + rng.exponential(1.0, 400)]),
        # a whole lognormal sample: GPD-like only far out in its tail
        lambda rng: rng.lognormal(0.0, 1.0, 1000),
        # a gamma(3) sample: mode away from 0, no GPD has that
        lambda rng: rng.gamma(3.0, 1.0, 1000),
    ],
)
def test_pvalues_small_under_wrong_model(make, rng):
    for _ in range(3):
        y = make(rng)
        r = gpd_gof(y, *mle(y))
        assert r.pvalue["ad"] < 0.01 and r.pvalue["cvm"] < 0.01


@pytest.mark.parametrize("xi,seed", [(-0.2, 1), (0.1, 2), (0.4, 3)])
def test_table_and_bootstrap_pvalues_agree_roughly(xi, seed):
    rng = np.random.default_rng(seed)
    y = stats.genpareto.rvs(xi, scale=1.0, size=150, random_state=rng)
    s, x = mle(y)
    table = gpd_gof(y, s, x)
    boot = gpd_gof(y, s, x, pvalue="bootstrap", n_boot=400, random_state=seed)
    assert boot.n_boot >= 390
    for t in ("ad", "cvm"):
        assert table.statistic[t] == boot.statistic[t]
        assert abs(table.pvalue[t] - boot.pvalue[t]) < 0.1, (t, table.pvalue[t], boot.pvalue[t])


def test_bootstrap_is_reproducible_and_columns_agree(rng):
    y = stats.genpareto.rvs(0.1, size=60, random_state=rng)
    s, x = mle(y)
    a = gpd_gof(y, s, x, pvalue="bootstrap", n_boot=99, random_state=7)
    b = gpd_gof(y, s, x, pvalue="bootstrap", n_boot=99, random_state=7)
    assert a.pvalue == b.pvalue
    out = gof_columns(y[:, None], [60], [s], [x], pvalue="bootstrap", n_boot=99, random_state=7)
    assert out["ad_pvalue"][0] == a.pvalue["ad"] and out["cvm_pvalue"][0] == a.pvalue["cvm"]


def test_worse_fit_gives_larger_statistic(rng):
    y = stats.genpareto.rvs(0.2, size=300, random_state=rng)
    good = gpd_gof(y, *mle(y))
    bad = gpd_gof(y, 3.0, 0.2)
    assert bad.statistic["ad"] > good.statistic["ad"] and bad.pvalue["ad"] < good.pvalue["ad"]


# ---------------------------------------------------------------- result object


def test_result_selects_tests_and_prints(rng):
    y = rng.exponential(size=50)
    r = gpd_gof(y, 1.0, 0.0, test="ad")
    assert set(r.statistic) == {"ad"} and set(r.pvalue) == {"ad"}
    assert "Anderson-Darling" in repr(r) and "Cramer" not in repr(r)
    d = gpd_gof(y, 1.0, 0.0).to_dict()
    assert set(d) == {"n", "sigma", "xi", "ad_stat", "ad_pvalue", "cvm_stat", "cvm_pvalue"}
    assert d["n"] == 50


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x,sigma,xi,kw,match",
    [
        ([1.0, np.nan, 2.0, 3.0, 4.0, 5.0], 1.0, 0.1, {}, "non-finite"),
        ([1.0, 2.0, 3.0], 1.0, 0.1, {}, "at least 5"),
        ([1.0, 2.0, 3.0, 4.0, -5.0], 1.0, 0.1, {}, "negative"),
        (np.ones(10), 0.0, 0.1, {}, "sigma must be finite and > 0"),
        (np.ones(10), -1.0, 0.1, {}, "sigma"),
        (np.ones(10), np.nan, 0.1, {}, "sigma"),
        (np.ones(10), 1.0, np.inf, {}, "xi must be finite"),
        (np.ones(10), 1.0, 0.1, {"test": "ks"}, "test must be"),
        (np.ones(10), 1.0, 0.1, {"pvalue": "exact"}, "pvalue must be"),
        (np.ones(10), 1.0, 0.1, {"pvalue": "bootstrap", "n_boot": 0}, "n_boot"),
        (np.ones((10, 2)), 1.0, 0.1, {}, "1-D"),
    ],
)
def test_gpd_gof_bad_input(x, sigma, xi, kw, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        gpd_gof(x, sigma, xi, **kw)


def test_gof_columns_bad_input():
    Y = np.ones((10, 2))
    ok = dict(counts=[10, 10], sigma=[1.0, 1.0], xi=[0.1, 0.1])
    with pytest.raises(ValueError, match="2-D"):
        gof_columns(np.ones(10), **ok)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        gof_columns(Y, [10], [1.0, 1.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="integers"):
        gof_columns(Y, [10.0, 10.0], [1.0, 1.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="lie in \\[0, 10\\]"):
        gof_columns(Y, [11, 10], [1.0, 1.0], [0.1, 0.1])
    bad = Y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Y\\[3, 1\\]"):
        gof_columns(bad, **ok)
    bad[3, 1] = -1.0
    with pytest.raises(ValueError, match="excess >= 0"):
        gof_columns(bad, **ok)
    bad[3, 1] = np.nan  # in the padding: ignored
    gof_columns(bad, [10, 3], [1.0, 1.0], [0.1, 0.1])
