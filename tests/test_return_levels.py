"""Return levels with delta-method and profile-likelihood intervals; GPDFit.confint.

Published figures (Coles 2001, rain data at u = 30), a scipy reference kept in
tests/reference/return_level_naive.py, a plain numpy delta method for the
kernel, and coverage by simulation.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import evtools as ev
from evtools._kernels import return_levels as RK
from evtools._status import OK
from evtools.cli import main
from tests.reference import decluster_naive as dnaive
from tests.reference import return_level_naive as R
from tests.reference.published import load_published

RAIN_DAYS = 17531  # days in ismev's `rain` (1914-1962)
RAIN_SHA256 = "2411d4d4dd4dfecfbf2814477804577cf328499a42c17cd6a7c05a8e96383aff"  # of the copied source text


def load_rain():
    """The full `rain` series (mm, one value a day) from tests/data/rain.csv.gz, checked against its source."""
    text = load_published("rain.csv.gz", 53535, RAIN_SHA256)
    header, *values = text.splitlines()
    assert header == '"x"'
    return np.array(values, dtype=float)


@pytest.fixture(scope="module")
def rain():
    x = load_rain()
    assert x.shape == (RAIN_DAYS,)
    tail = ev.fit_tails(x[:, None], threshold=ev.Fixed(30.0), progress=False)
    return x, tail


def test_rain_data_is_the_published_series():
    x = load_rain()
    assert x.size == RAIN_DAYS and x.min() == 0 and x.max() == 86.6
    assert (x > 30).sum() == 152 and (x == 30).sum() == 4


def test_rain_fit_reproduces_coles(rain):
    """Coles (2001), section 4.4.1: 152 exceedances, sigma 7.44 (0.958), xi 0.184 (0.101)."""
    x, tail = rain
    assert tail.n_samples == RAIN_DAYS
    assert tail.n_exceed[0] == 152 and tail.status[0] == OK
    assert round(tail.sigma[0], 2) == 7.44 and round(tail.xi[0], 3) == 0.184
    assert tail.sigma[0] * math.sqrt(tail.rel_cov[0, 0]) == pytest.approx(0.958, abs=1e-3)
    assert math.sqrt(tail.rel_cov[0, 2]) == pytest.approx(0.101, abs=1e-3)
    fit = ev.gpd_fit(x[x > 30] - 30)
    assert (fit.se_sigma, fit.se_xi) == pytest.approx((0.958, 0.101), abs=1e-3)


def test_rain_100_year_return_level_and_intervals_match_coles(rain):
    """Coles (2001), section 4.4.1: x_100 = 106.3, delta [65.0, 147.6], profile about [81.6, 185.5].

    Coles' delta interval used a numerical Hessian (ismev); the exact
    observed information gives [65.5, 147.2] (checked against the scipy
    reference below), within 0.6 of the book. His profile interval is read
    off a graph.
    """
    x, tail = rain
    for per_year in (365, 365.25):
        rl = tail.return_level(100, per_year=per_year)
        assert round(rl.estimate[0], 1) == 106.3
    rl = tail.return_level(100, per_year=365)
    assert rl.lower[0] == pytest.approx(65.0, abs=0.6) and rl.upper[0] == pytest.approx(147.6, abs=0.6)
    prof = tail.return_level(100, per_year=365, method="profile", G=x[:, None])
    assert prof.estimate[0] == rl.estimate[0]
    assert prof.lower[0] == pytest.approx(81.6, abs=1.0) and prof.upper[0] == pytest.approx(185.5, abs=1.0)
    assert prof.upper[0] - rl.estimate[0] > rl.estimate[0] - prof.lower[0]  # asymmetric, as it should be


@pytest.mark.slow
def test_rain_intervals_equal_the_scipy_reference(rain):
    x, tail = rain
    m = 100 * 365
    est, lo, hi = R.delta_interval(x, 30.0, x.size, m)
    rl = tail.return_level(m)
    np.testing.assert_allclose([rl.estimate[0], rl.lower[0], rl.upper[0]], [est, lo, hi], rtol=1e-5)
    est, lo, hi = R.profile_return_interval(x, 30.0, x.size, m)
    prof = tail.return_level(m, method="profile", G=x[:, None])
    np.testing.assert_allclose([prof.lower[0], prof.upper[0]], [lo, hi], rtol=1e-6)
    y = x[x > 30] - 30
    ci = ev.gpd_fit(y).confint(method="profile")
    np.testing.assert_allclose(ci["sigma"], R.profile_param_interval(y, 0), rtol=1e-6)
    np.testing.assert_allclose(ci["xi"], R.profile_param_interval(y, 1), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("xi", [-0.3, 0.05, 0.4])
def test_synthetic_columns_equal_the_scipy_reference(xi):
    rng = np.random.default_rng(int(100 * abs(xi)) + 7)
    x = ev.GPD(2.0, xi).rvs(size=3000, random_state=rng)
    u = float(np.quantile(x, 0.9))
    tail = ev.fit_tails(x[:, None], threshold=u, progress=False)
    m = 5e4
    rl = tail.return_level(m)
    np.testing.assert_allclose([rl.estimate[0], rl.lower[0], rl.upper[0]],
                               R.delta_interval(x, u, x.size, m), rtol=1e-4)
    prof = tail.return_level(m, method="profile", G=x[:, None])
    np.testing.assert_allclose([prof.lower[0], prof.upper[0]],
                               R.profile_return_interval(x, u, x.size, m)[1:], rtol=1e-5)


def _delta_numpy(m, z, t, k, n, sigma, xi, c_ss, c_sx, c_xx):
    """Coles (2001) eq. 4.15 written out, for xi away from 0."""
    zeta = k / n
    x = t + sigma / xi * ((m * zeta) ** xi - 1)
    g = np.array([sigma * m ** xi * zeta ** (xi - 1), ((m * zeta) ** xi - 1) / xi,
                  -sigma / xi ** 2 * ((m * zeta) ** xi - 1) + sigma / xi * (m * zeta) ** xi * np.log(m * zeta)])
    V = np.array([[zeta * (1 - zeta) / n, 0, 0],
                  [0, sigma ** 2 * c_ss, sigma * c_sx],
                  [0, sigma * c_sx, c_xx]])
    se = math.sqrt(g @ V @ g)
    return x, se


@given(xi=st.floats(-0.45, 1.5).filter(lambda v: abs(v) > 1e-3), sigma=st.floats(1e-3, 1e3),
       k=st.integers(5, 900), m=st.floats(1e3, 1e7), r=st.floats(-0.9, 0.9))
def test_delta_kernel_equals_the_closed_form(xi, sigma, k, m, r):
    n = 1000
    c_ss, c_xx = 0.01, 0.004
    cov = np.array([[c_ss, r * math.sqrt(c_ss * c_xx), c_xx]])
    exc, se, lo, hi = RK.delta_return_levels(m, 1.96, np.array([3.0]), np.array([k]), float(n), np.array([sigma]),
                                             np.array([xi]), cov, np.array([OK], dtype=np.int8))
    x, se_ref = _delta_numpy(m, 1.96, 3.0, k, n, sigma, xi, c_ss, cov[0, 1], c_xx)
    assert exc[0] + 3.0 == pytest.approx(x, rel=1e-9)
    assert se[0] == pytest.approx(se_ref, rel=1e-6)
    assert lo[0] == pytest.approx(x - 1.96 * se_ref, rel=1e-6, abs=1e-9 * se_ref)


def test_delta_kernel_is_continuous_at_xi_zero():
    def args(xi):
        return (1e4, 1.96, np.array([0.0]), np.array([100]), 1000.0, np.array([2.0]), np.array([xi]),
                np.array([[0.01, -0.002, 0.004]]), np.array([OK], dtype=np.int8))
    at0 = RK.delta_return_levels(*args(0.0))
    for tiny in (1e-12, -1e-9, 1e-5):
        near = RK.delta_return_levels(*args(tiny))
        for a, b in zip(at0, near):
            np.testing.assert_allclose(a, b, rtol=1e-4)
    assert at0[0][0] == pytest.approx(2.0 * math.log(1e4 * 0.1))


def test_coverage_by_simulation():
    """Delta and profile 95 % intervals of x_m cover the true level about 95 % of the time.

    600 columns of one matrix, each drawn from GPD(1, 0.1); the threshold is
    the true 0.9 quantile, so the exceedances (about 400 per column) are
    exactly GPD(1 + 0.1 u, 0.1) and the rate binomial. Over 600 replicates
    a true 95 % lies in [0.928, 0.972] with 99 % probability. The delta
    interval is symmetric while the estimator's distribution is skewed to
    the right: it misses mostly above, and covers 92-94 % at this size
    (Coles 2001, section 4.3.3, prefers the profile for this reason), so
    it is held to [0.91, 0.97] and to missing above more than below.
    """
    n, F, xi = 4000, 600, 0.1
    dist = ev.GPD(1.0, xi)
    G = dist.rvs(size=(n, F), random_state=np.random.default_rng(3))
    u = float(dist.isf(0.1))
    tail = ev.fit_tails(G, threshold=u, progress=False)
    m = 4000.0
    truth = float(dist.isf(1.0 / m))
    for method in ("delta", "profile"):
        rl = tail.return_level(m, method=method, G=G if method == "profile" else None)
        assert np.all(np.isfinite(rl.lower)) and np.all(np.isfinite(rl.upper))
        cover = np.mean((rl.lower <= truth) & (truth <= rl.upper))
        if method == "profile":
            assert 0.928 <= cover <= 0.972, cover
        else:
            assert 0.91 <= cover <= 0.97, cover
            assert np.mean(rl.upper < truth) > np.mean(rl.lower > truth)


def test_status_not_ok_and_short_periods_give_nan_intervals(rng):
    G = np.column_stack([rng.exponential(size=500), np.zeros(500), rng.exponential(size=500)])
    G[:497, 2] = 0.0  # 3 exceedances: TOO_FEW, exponential fallback
    tail = ev.fit_tails(G, threshold=ev.Fixed(0.5), progress=False)
    rl = tail.return_level(1e4)
    assert tail.status[0] == OK and np.isfinite(rl.lower[0])
    assert np.all(np.isnan(rl.lower[1:])) and np.all(np.isnan(rl.upper[1:]))
    np.testing.assert_array_equal(rl.estimate, tail.isf(1e-4))
    short = tail.return_level(1.5)  # m * rate <= 1: the level is below the threshold
    np.testing.assert_array_equal(short.estimate, tail.isf(1 / 1.5))
    assert np.all(np.isnan(short.lower)) and np.all(np.isnan(short.se))
    prof = tail.return_level(1e4, method="profile", G=G)
    assert np.isfinite(prof.lower[0]) and np.all(np.isnan(prof.lower[1:]))


def test_bad_calls_are_refused(rng):
    G = rng.exponential(size=(400, 2))
    tail = ev.fit_tails(G, threshold=1.0, progress=False)
    with pytest.raises(ev.InvalidInputError, match="G=G_ref"):
        tail.return_level(1e3, method="profile")
    with pytest.raises(ev.InvalidInputError, match="not the matrix"):
        tail.return_level(1e3, method="profile", G=G + 1.0)
    for bad in (dict(period=0.5), dict(period=-1), dict(period=10, per_year=0), dict(period=1e3, method="wald"),
                dict(period=1e3, alpha=1.5)):
        with pytest.raises(ev.InvalidInputError):
            tail.return_level(**bad)
    with pytest.raises(ev.InvalidInputError, match="maximum-likelihood"):
        ev.fit_tails(G, threshold=1.0, method="pwm", progress=False).return_level(1e3)
    with pytest.raises(ev.InvalidInputError, match="maximum-likelihood"):
        ev.gpd_fit(G[:, 0], method="pwm").confint()


def test_result_table_repr_and_save_round_trip(rng, tmp_path):
    G = rng.lognormal(size=(2000, 3))
    tail = ev.fit_tails(G, threshold=3.0, progress=False)
    rl = tail.return_level(10, per_year=1000, alpha=0.1)
    assert rl.m == 1e4 and rl.alpha == 0.1 and len(rl) == 3
    assert set(rl.to_dict()) == {"estimate", "lower", "upper", "se", "status"}
    assert "ReturnLevels(3 filters" in repr(rl) and "90%" in repr(rl)
    tail.save(tmp_path / "t.npz")
    again = ev.TailModel.load(tmp_path / "t.npz").return_level(10, per_year=1000, alpha=0.1)
    np.testing.assert_array_equal(again.lower, rl.lower)


def test_confint_wald_and_profile(rng):
    y = ev.GPD(1.0, 0.2).rvs(size=400, random_state=rng)
    fit = ev.gpd_fit(y)
    wald = fit.confint(method="wald")
    z = stats.norm.isf(0.025)
    assert wald["xi"] == pytest.approx((fit.xi - z * fit.se_xi, fit.xi + z * fit.se_xi))
    prof = fit.confint()
    for name in ("sigma", "xi"):
        lo, hi = prof[name]
        assert lo < getattr(fit, name) < hi
        assert hi - lo == pytest.approx(wald[name][1] - wald[name][0], rel=0.2)
    constant = ev.gpd_fit(np.ones(10))
    assert all(math.isnan(v) for v in constant.confint()["xi"])


def test_cli_return_levels(rng, tmp_path, capsys):
    G = rng.lognormal(size=(3000, 4))
    np.save(tmp_path / "G.npy", G)
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "m.npz"), "--threshold", "fixed:3"]) == 0
    capsys.readouterr()
    assert main(["return-levels", str(tmp_path / "m.npz"), "--period", "10", "--per-year", "1000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = ev.TailModel.load(tmp_path / "m.npz").return_level(10, per_year=1000)
    assert [r["upper"] for r in rows] == pytest.approx(expected.upper.tolist())
    # the default period, 10 x the reference rows, is the same with --per-year (where it is counted in years)
    levels = []
    for extra in ([], ["--per-year", "250"]):
        assert main(["return-levels", str(tmp_path / "m.npz"), "--json", *extra]) == 0
        levels.append([r["estimate"] for r in json.loads(capsys.readouterr().out)])
    default = ev.TailModel.load(tmp_path / "m.npz").return_level(10 * 3000)
    assert levels[0] == pytest.approx(default.estimate.tolist()) and levels[1] == pytest.approx(levels[0])
    assert main(["return-levels", str(tmp_path / "m.npz"), "--method", "profile",
                 "--data", str(tmp_path / "G.npy")]) == 0
    assert "profile" in capsys.readouterr().out
    assert main(["return-levels", str(tmp_path / "m.npz"), "--method", "profile"]) == 1
    assert "--data" in capsys.readouterr().err


def test_return_level_plot(rng):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from evtools.plots import plot_return_levels

    G = rng.lognormal(size=(2000, 2))
    tail = ev.fit_tails(G, threshold=3.0, progress=False)
    ax = plot_return_levels(tail, 1, G_ref=G, per_year=100.0)
    assert ax.get_xscale() == "log" and len(ax.collections) == 1  # the band
    ax = plot_return_levels(ev.POTSaliency(threshold=3.0 * np.ones(2)).fit(G), 0, method="profile", G_ref=G,
                            periods=[1e2, 1e3, 1e4])
    assert len(ax.lines) == 2  # the levels and the data
    with pytest.raises(ev.InvalidInputError):
        plot_return_levels(tail, 5)
    with pytest.raises(ev.InvalidInputError, match="shape"):  # another matrix: its points would be misplaced
        plot_return_levels(tail, 1, G_ref=G[:1000])
    with pytest.raises(ev.InvalidInputError, match="values above its threshold"):
        plot_return_levels(tail, 1, G_ref=G * 1.5)
    matplotlib.pyplot.close("all")


@given(xi=st.floats(-1.0, 3.0), sigma=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_profile_loglik_kernel_equals_gpd_loglik(xi, sigma, seed):
    from evtools._kernels.gpd import gpd_loglik

    y = np.random.default_rng(seed).exponential(sigma, 30)
    got, want = RK._loglik(y, sigma, xi), gpd_loglik(y, sigma, xi)
    if want == -np.inf:
        assert got == -np.inf
    else:
        assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_short_bounded_tail_has_nan_delta_but_a_profile_interval(rng):
    """xi <= -1/2: the observed information is no covariance (NaN delta); the profile still works."""
    x = ev.GPD(1.0, -0.7).rvs(size=(4000, 1), random_state=rng)
    tail = ev.fit_tails(x, threshold=ev.Fixed(0.5), progress=False)
    assert tail.status[0] == OK and tail.xi[0] < -0.5
    assert np.isnan(tail.return_level(1e4).lower[0])
    prof = tail.return_level(1e4, method="profile", G=x)
    assert prof.lower[0] <= prof.estimate[0] <= prof.upper[0] and np.isfinite(prof.upper[0])


def test_float32_matrix_gives_the_float64_intervals(rng):
    G = rng.lognormal(size=(3000, 3)).astype(np.float32)
    a = ev.fit_tails(G, threshold=3.0, progress=False)
    b = ev.fit_tails(G.astype(np.float64), threshold=3.0, progress=False)
    for method in ("delta", "profile"):
        ra = a.return_level(1e4, method=method, G=G)
        rb = b.return_level(1e4, method=method, G=G.astype(np.float64))
        np.testing.assert_allclose(ra.lower, rb.lower, rtol=1e-12)


def _paired_series():
    """A moving maximum of GPD noise (exceedances come in pairs) and its model declustered with run 2."""
    e = ev.GPD(1.0, 0.1).rvs(size=4001, random_state=np.random.default_rng(11))
    x = np.maximum(e[1:], e[:-1])
    return x, ev.fit_tails(x[:, None], ev.Quantile(0.95), decluster=2, progress=False)


def test_profile_of_a_declustered_model_uses_the_cluster_maxima():
    x, tail = _paired_series()
    assert tail.n_exceed[0] < tail.n_above[0]
    u = tail.threshold[0]
    maxima = dnaive.clust(x, u, 2)[0]
    assert maxima.size == tail.n_exceed[0]
    m = 2e4
    prof = tail.return_level(m, method="profile", G=x[:, None])
    np.testing.assert_allclose([prof.lower[0], prof.upper[0]],
                               R.profile_return_interval(maxima, u, x.size, m)[1:], rtol=1e-5)
    assert prof.lower[0] < prof.estimate[0] < prof.upper[0]


def test_profile_of_a_declustered_model_checks_the_clusters():
    x, tail = _paired_series()
    with pytest.raises(ev.InvalidInputError, match=r"clusters \(run 2\) above its threshold"):
        tail.return_level(2e4, method="profile", G=x[::-1, None] * 1.1)
