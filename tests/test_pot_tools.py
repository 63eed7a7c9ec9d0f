"""Issue 13 items 3-8: PWM variants, NO_MAXIMUM, NotFittedError, declustering, honest GoF, calibration."""
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evtools as ev
from evtools._kernels import gpd as K
from evtools._status import NO_MAXIMUM, OK, Status
from tests.reference import gpd_naive as naive

DATA = pathlib.Path(__file__).parent / "data"


def _danish():
    return np.loadtxt(DATA / "danish.csv.gz", delimiter=",", skiprows=1, usecols=1)


# ---------------------------------------------------------------- item 5: both PWM variants
def test_danish_pwm_variants_match_published_and_R():
    """McNeil (1997) Danish fire losses above 10 (2167 losses, 109 exceedances), data of R's fExtremes.

    R (POT's formulas, pwmu/pwmb with a = 0.35, b = 0) gives xi 0.5174 / 0.5098 and
    sigma 6.7959 / 6.9028; McNeil's MLE is xi 0.497, sigma 6.98.
    """
    x = _danish()
    assert x.size == 2167
    y = x[x > 10] - 10
    assert y.size == 109
    pwmu, pwmb, mle = (ev.gpd_fit(y, m) for m in ("pwm", "pwmb", "mle"))
    assert (round(pwmu.xi, 3), round(pwmb.xi, 3)) == (0.517, 0.510)
    np.testing.assert_allclose([pwmu.sigma, pwmu.xi], [6.795865, 0.5174], rtol=2e-5)
    np.testing.assert_allclose([pwmb.sigma, pwmb.xi], [6.902755, 0.5098094], rtol=2e-5)
    assert (round(mle.sigma, 2), round(mle.xi, 3)) == (6.98, 0.497)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1e6, allow_subnormal=False), min_size=2, max_size=60).filter(
    lambda v: max(v) > 0 and np.ptp(v) > 1e-6 * max(v)))
def test_pwmb_matches_reference(values):
    y = np.array(values)
    sigma, xi, status = K.pwmb_fit(y)
    assert status == OK
    np.testing.assert_allclose([sigma, xi], naive.pwmb(y), rtol=1e-9, atol=1e-12)


def test_pwmb_is_registered_everywhere():
    y = ev.GPD(1.0, 0.2).rvs((3000, 3), random_state=1)
    tail = ev.fit_tails(y, ev.TopK(200), method="pwmb", progress=False)
    for j in range(3):
        col = np.sort(y[:, j])
        fit = ev.gpd_fit(col[-200:] - col[-201], "pwmb")
        np.testing.assert_allclose([tail.sigma[j], tail.xi[j]], [fit.sigma, fit.xi], rtol=1e-12)
    assert "pwmb" in ev.gpd.METHODS


# ---------------------------------------------------------------- item 6: no interior maximum
def test_likelihood_without_interior_maximum_is_flagged():
    y = np.array([0, 0, 0.5, 1, 2, 3.5])
    fit = ev.gpd_fit(y)
    assert fit.status == Status.NO_MAXIMUM and not fit.converged
    assert fit.xi == 0.0 and fit.sigma == pytest.approx(y.mean())
    # the likelihood keeps rising with xi along the profile: no interior maximum exists
    lls = [naive.loglik(y, *_profile_point(y, xi)) for xi in (0.5, 2.0, 8.0, 32.0)]
    assert np.all(np.diff(lls) > 0) and lls[0] > fit.loglik
    # the column kernel of the tail model keeps the exponential fallback and says why
    # (fit_tails itself takes exceedances strictly above the threshold, so never zeros)
    from evtools._kernels.tails import fit_tail
    sigma, xi, loglik, status = fit_tail(y, 0, 5)
    assert status == NO_MAXIMUM and xi == 0.0 and sigma == pytest.approx(y.mean())


def _profile_point(y, xi):
    """The best sigma for a given xi (a 1-D search), for the likelihood-rises check."""
    from scipy import optimize
    res = optimize.minimize_scalar(lambda ls: -naive.loglik(y, np.exp(ls), xi), bounds=(-30, 10),
                                   method="bounded")
    return np.exp(res.x), xi


def test_ordinary_samples_are_not_flagged():
    rng = np.random.default_rng(3)
    for xi in (-0.3, 0.0, 0.3):
        for _ in range(20):
            y = ev.GPD(1.0, xi).rvs(100, random_state=rng)
            assert ev.gpd_fit(y).status != NO_MAXIMUM


# ---------------------------------------------------------------- item 7: NotFittedError
def test_not_fitted_error_is_value_and_attribute_error():
    assert issubclass(ev.NotFittedError, ValueError)
    assert issubclass(ev.NotFittedError, AttributeError)
    assert issubclass(ev.NotFittedError, ev.EvtoolsError)
    for scorer in (ev.ZScoreSaliency(), ev.POTSaliency()):
        with pytest.raises(ValueError, match="fit"):
            scorer.score(np.ones((2, 3)))
        with pytest.raises(AttributeError, match="fit"):
            scorer.score(np.ones((2, 3)))


# ---------------------------------------------------------------- item 3: declustering
from tests.reference import decluster_naive as dnaive  # noqa: E402

SERIES = st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0]), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(SERIES, st.integers(1, 5), st.sampled_from([0.7, 1.0, 1.5]))
def test_decluster_matches_pot_clust(values, run, u):
    x = np.array(values)
    c = ev.decluster(x, u, run=run)
    maxima, index, n_exc = dnaive.clust(x, u, run)
    np.testing.assert_array_equal(c.maxima, maxima)
    np.testing.assert_array_equal(c.index, index)
    assert (c.n_exceed, c.n_clusters) == (n_exc, maxima.size)
    theta = ev.extremal_index(x, u, "intervals")
    ref = dnaive.ferro_segers(x, u)
    assert (np.isnan(theta) and np.isnan(ref)) or theta == pytest.approx(ref, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(SERIES, st.floats(0.01, 0.2))
def test_decluster_with_times_matches_pot_clust(values, tim_cond):
    x = np.array(values)
    time = 1970 + np.cumsum(np.random.default_rng(len(values)).exponential(0.01, x.size))
    c = ev.decluster(x, 1.0, run=tim_cond, time=time)
    maxima, index, _ = dnaive.clust(x, 1.0, tim_cond, time)
    np.testing.assert_array_equal(c.index, index)
    np.testing.assert_array_equal(c.maxima, maxima)


def _max_ar(n, F, seed):
    """X_t = max(Z_t, Z_{t-1}) of iid normals: extremal index 1/2, clusters of two."""
    z = np.random.default_rng(seed).standard_normal((n + 1, F))
    return np.maximum(z[1:], z[:-1])


def test_matrix_is_column_by_column_and_estimates_theta():
    X = _max_ar(20000, 5, 0)
    u = np.quantile(X, 0.99, axis=0)
    c = ev.decluster(X, u, run=3)
    theta_i = ev.extremal_index(X, u)
    for j in range(5):
        maxima, index, n_exc = dnaive.clust(X[:, j], u[j], 3)
        m = c.n_clusters[j]
        np.testing.assert_array_equal(c.index[:m, j], index)
        np.testing.assert_array_equal(c.maxima[:m, j], maxima)
        assert (c.index[m:, j] == -1).all() and np.isnan(c.maxima[m:, j]).all()
        assert theta_i[j] == pytest.approx(dnaive.ferro_segers(X[:, j], u[j]), rel=1e-12)
    # both estimators find theta = 1/2 of the max-autoregressive process
    assert np.abs(theta_i - 0.5).max() < 0.12
    assert np.abs(ev.extremal_index(X, u, "runs", run=3) - 0.5).max() < 0.12


def test_rules_give_the_thresholds_of_the_sorted_columns():
    # decluster / extremal_index and SPOT apply a rule through ThresholdRule.select (block by block)
    X = _max_ar(3000, 4, 2)
    X[:, 1] = 0.0  # a dead column
    for rule in (ev.Quantile(0.97), ev.TopK(30), ev.ForwardStop()):
        expected = np.array([np.quantile(X[:, j], 0.97) for j in range(4)]) if isinstance(rule, ev.Quantile) \
            else rule.thresholds_from_sorted(np.asfortranarray(np.sort(X, axis=0)))
        np.testing.assert_array_equal(ev.decluster(X, rule, 2).threshold, expected)
        np.testing.assert_array_equal(ev.SPOT(q=1e-3, level=rule).fit(X).threshold_, expected)


def test_fit_tails_decluster_fits_cluster_maxima():
    X = _max_ar(6000, 4, 1).astype(np.float32)
    tail = ev.fit_tails(X, ev.Quantile(0.97), decluster=2, min_exceed=5, progress=False)
    plain = ev.fit_tails(X, ev.Quantile(0.97), min_exceed=5, progress=False)
    np.testing.assert_array_equal(tail.threshold, plain.threshold)
    np.testing.assert_array_equal(tail.knot_sf, plain.knot_sf)
    np.testing.assert_array_equal(tail.n_above, plain.n_exceed)
    for j in range(4):
        maxima, _, n_exc = dnaive.clust(X[:, j].astype(np.float64), tail.threshold[j], 2)
        fit = ev.gpd_fit(np.sort(maxima) - tail.threshold[j])
        assert tail.n_exceed[j] == maxima.size and tail.n_above[j] == n_exc
        np.testing.assert_allclose([tail.sigma[j], tail.xi[j], tail.loglik[j]],
                                   [fit.sigma, fit.xi, fit.loglik], rtol=1e-10)
    np.testing.assert_allclose(tail.rate, tail.n_exceed / 6000)
    np.testing.assert_allclose(tail.extremal_index, tail.n_exceed / tail.n_above)
    assert np.all(np.abs(tail.extremal_index - 0.5) < 0.15)
    assert tail.decluster == 2.0 and "decluster=2" in repr(tail)
    # sf stays non-increasing across the threshold (cluster rate <= exceedance rate)
    g = np.sort(X, axis=0)
    assert np.all(np.diff(tail.sf(g), axis=0) <= 1e-15)


def test_decluster_model_save_load_and_old_files(tmp_path):
    X = _max_ar(3000, 3, 2)
    tail = ev.fit_tails(X, ev.TopK(60), decluster=1, progress=False)
    tail.save(tmp_path / "m.npz")
    back = ev.TailModel.load(tmp_path / "m.npz")
    assert back.decluster == 1.0
    np.testing.assert_array_equal(back.n_above, tail.n_above)
    # a file of the earlier format (no n_above, no decluster) still loads, undeclustered
    plain = ev.fit_tails(X, ev.TopK(60), progress=False)
    import json
    arrays = {k: getattr(plain, k) for k in ev.TailModel._ARRAYS if k != "n_above"}
    meta = {"n_samples": plain.n_samples, "method": "mle", "rule": plain.rule.to_dict(),
            "min_exceed": plain.min_exceed, "format": 1}
    np.savez(tmp_path / "old.npz", meta=json.dumps(meta), **arrays)
    old = ev.TailModel.load(tmp_path / "old.npz")
    assert old.decluster is None
    np.testing.assert_array_equal(old.n_above, plain.n_exceed)
    np.testing.assert_array_equal(old.extremal_index, 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(run=0), "run must be a positive"),
    (dict(run=True), "run must be a positive"),
    (dict(run=1, time=[3.0, 2.0, 1.0]), "non-decreasing"),
])
def test_decluster_bad_input(kwargs, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        ev.decluster([1.0, 2.0, 3.0], 1.5, **kwargs)


def test_decluster_refusals():
    with pytest.raises(ev.InvalidInputError, match="needs run"):
        ev.extremal_index([1.0, 2.0], 1.5, "runs")
    with pytest.raises(ev.InvalidInputError, match="n_samples"):
        ev.fit_tails(np.ones((10, 2)), ev.TopK(3), decluster=2, n_samples=100, progress=False)
    with pytest.raises(ev.InvalidInputError, match="threshold"):
        ev.decluster(np.ones((10, 2)), [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- item 4: honest goodness of fit
from scipy import stats  # noqa: E402

ESTIMATORS = ("mle", "pwm", "pwmb", "zhang", "mom")


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_bootstrap_gof_pvalues_are_uniform_under_the_null(estimator):
    """GPD samples fitted by each estimator: bootstrap p-values that refit with it are U(0, 1)."""
    n_cols, n = 200, 40
    Y = ev.GPD(1.0, 0.1).rvs((n, n_cols), random_state=11)
    fits = [ev.gpd_fit(Y[:, j], estimator) for j in range(n_cols)]
    sigma = np.array([f.sigma for f in fits])
    xi = np.array([f.xi for f in fits])
    out = ev.gof_columns(Y, np.full(n_cols, n), sigma, xi, "bootstrap", n_boot=99,
                         random_state=5, estimator=estimator)
    for t in ("ad", "cvm"):
        p = out[f"{t}_pvalue"]
        assert np.isfinite(p).all()
        assert stats.kstest(p, "uniform").pvalue > 0.01, (estimator, t)


def test_refitting_with_the_wrong_estimator_is_not_uniform():
    """The test above can fail: method-of-moments fits (xi = 0.4) judged by an MLE-refit bootstrap."""
    n_cols, n = 200, 100
    Y = ev.GPD(1.0, 0.4).rvs((n, n_cols), random_state=11)
    fits = [ev.gpd_fit(Y[:, j], "mom") for j in range(n_cols)]
    out = ev.gof_columns(Y, np.full(n_cols, n), [f.sigma for f in fits], [f.xi for f in fits],
                         "bootstrap", n_boot=99, random_state=5, estimator="mle")
    assert stats.kstest(out["ad_pvalue"], "uniform").pvalue < 1e-6


def test_tables_only_for_mle():
    Y = ev.GPD(1.0, 0.2).rvs((4000, 3), random_state=2)
    for method in ESTIMATORS:
        tail = ev.fit_tails(Y, ev.TopK(100), method=method, progress=False)
        g = tail.gof()
        assert np.isfinite(g["ad_stat"]).all()
        assert np.isfinite(g["ad_pvalue"]).all() == (method == "mle")
        assert np.isnan(g["cvm_pvalue"]).all() == (method != "mle")
        boot = tail.gof("bootstrap", n_boot=64, random_state=0)
        assert np.all((boot["ad_pvalue"] > 0) & (boot["ad_pvalue"] <= 1))
        np.testing.assert_array_equal(boot["ad_pvalue"], tail.gof("bootstrap", n_boot=64, random_state=0)["ad_pvalue"])
    y = np.sort(Y[:, 0])[-100:] - np.sort(Y[:, 0])[-101]
    fit = ev.gpd_fit(y, "zhang")
    r = ev.gpd_gof(y, fit.sigma, fit.xi, estimator="zhang")
    assert np.isnan(r.pvalue["ad"]) and r.estimator == "zhang"
    with pytest.raises(ev.InvalidInputError, match="estimator"):
        ev.gpd_gof(y, fit.sigma, fit.xi, estimator="lmom")


def test_bootstrap_matches_a_plain_loop():
    """The kernel's p-value equals a plain loop over the same draws (numba's seeded generator)."""
    from evtools._kernels import gof as GK
    y = np.sort(ev.GPD(2.0, -0.1).rvs(30, random_state=4))
    fit = ev.gpd_fit(y, "pwmb")
    a2, w2 = GK.ad_cvm_sorted(y, fit.sigma, fit.xi)
    seeds = np.array([[123, 456]], dtype=np.int64)
    ge_ad, ge_cvm, valid = GK.bootstrap_columns(np.array([30]), np.array([fit.sigma]), np.array([fit.xi]),
                                                np.array([a2]), np.array([w2]), K.METHODS["pwmb"], 40, seeds)
    draws = _numba_exponentials(seeds[0], (32, 8), 30)
    ref_ad = ref_cvm = ref_valid = 0
    from tests.reference import gof_naive
    for e in draws:
        yb = np.sort(ev.GPD(fit.sigma, fit.xi).isf(np.exp(-e)))
        s, x = naive.pwmb(yb)
        z = np.clip(gof_naive.gpd_cdf(yb, s, x), 1e-15, 1 - 1e-15)  # the kernel clips as well
        ref_valid += 1
        ref_ad += gof_naive.ad_statistic(z) >= a2 - 1e-9
        ref_cvm += gof_naive.cvm_statistic(z) >= w2 - 1e-9
    assert (ge_ad.sum(), ge_cvm.sum(), valid.sum()) == (ref_ad, ref_cvm, ref_valid)


def _numba_exponentials(seeds, per_seed, n):
    from numba import njit

    @njit
    def draw(seed, reps, n):
        np.random.seed(seed)
        out = np.empty((reps, n))
        for b in range(reps):
            for i in range(n):
                out[b, i] = np.random.exponential(1.0)
        return out

    return np.concatenate([draw(s, r, n) for s, r in zip(seeds, per_seed)])


def test_decluster_through_dask_equals_in_memory():
    da = pytest.importorskip("dask.array")
    X = _max_ar(2000, 6, 3)
    a = ev.fit_tails(X, ev.Quantile(0.98), decluster=2, progress=False)
    b = ev.fit_tails(da.from_array(X, chunks=(500, 2)), ev.Quantile(0.98), decluster=2, block_size=2)
    assert b.decluster == 2.0
    for k in ev.TailModel._ARRAYS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


# ---------------------------------------------------------------- item 8: calibration on held-out data
def test_calibration_counts_and_exact_intervals():
    Y = ev.GPD(1.0, 0.2).rvs((12000, 8), random_state=7)
    tail = ev.fit_tails(Y[:8000], ev.Quantile(0.95), progress=False)
    H = Y[8000:]
    levels = (0.05, 0.01, 0.002)
    c = tail.calibration(H, levels, alpha=0.1)
    n = H.shape[0]
    for i, q in enumerate(levels):
        z = tail.isf(q)
        for j in range(8):
            k = sum(1 for v in H[:, j] if v > z[j])  # plain loop
            assert c.observed[i, j] == k
            ci = stats.binomtest(k, n).proportion_ci(0.9, method="exact")
            np.testing.assert_allclose([c.ratio[i, j], c.ratio_low[i, j], c.ratio_high[i, j]],
                                       [k / (n * q), ci.low / q, ci.high / q], rtol=1e-9, atol=1e-12)
        k_all = int(c.observed[i].sum())
        ci = stats.binomtest(k_all, n * 8).proportion_ci(0.9, method="exact")
        np.testing.assert_allclose([c.pooled[i], c.pooled_low[i], c.pooled_high[i]],
                                   [k_all / (n * 8 * q), ci.low / q, ci.high / q], rtol=1e-9)
    # a correct model holds; a model of data scaled down does not
    assert np.all((c.pooled_low < 1.1) & (c.pooled_high > 0.9))
    bad = tail.calibration(H * 1.5, levels)
    assert np.all(bad.pooled_low > 1.5)
    assert "held-out" in str(c) and set(c.to_dict()) >= {"level", "pooled", "outside"}


def test_calibration_of_a_declustered_model_counts_clusters():
    X = _max_ar(9000, 3, 5)
    tail = ev.fit_tails(X[:6000], ev.Quantile(0.97), decluster=2, progress=False)
    H = X[6000:]
    levels = (0.1, 0.01, 0.003)
    c = tail.calibration(H, levels)
    for i, q in enumerate(levels):
        z = tail.isf(q)
        for j in range(3):
            # the model's rate * sf counts clusters above its threshold whose maximum exceeds z;
            # in the body (z at or below the threshold) it counts all rows above z
            maxima = dnaive.clust(H[:, j], tail.threshold[j], 2)[0]
            expected = np.sum(maxima > z[j]) if z[j] > tail.threshold[j] else np.sum(H[:, j] > z[j])
            assert c.observed[i, j] == expected
    assert np.all(tail.isf(0.1) < tail.threshold) and np.all(tail.isf(0.003) > tail.threshold)
    assert np.all((0.5 < c.pooled) & (c.pooled < 1.6))


def test_calibration_of_a_declustered_model_does_not_split_clusters_at_higher_levels():
    # [5, 1, 1, 1, 5] with run 2 is one cluster above 0.5 (maximum 5) but two above 2: the model's
    # rate * sf(z) counts clusters above its threshold with a maximum above z, so 1 for z in (1, 5)
    ref = np.random.default_rng(3).exponential(size=(3000, 2)) * [1.0, 2.0]
    tail = ev.fit_tails(ref, ev.Fixed([0.5, 2.0]), decluster=2, progress=False)
    H = np.zeros((40, 2))
    H[:5, 0] = H[:5, 1] = [5, 1, 1, 1, 5]
    H[20:25, 0] = [0.2, 0.3, 0.3, 0.2, 0.1]  # below the threshold 0.5, above the body level
    q = np.exp(tail.logsf(np.array([[3.0, 3.0]])))[0]  # levels z_q = 3 of each column
    np.testing.assert_allclose(tail.isf(q[0])[0], 3.0)
    np.testing.assert_allclose(tail.isf(q[1])[1], 3.0)
    c = tail.calibration(H, q)
    assert c.observed[0, 0] == 1  # one cluster above 0.5, maximum 5 > 3 (declustering at 3 found 2)
    assert c.observed[1, 1] == 2  # two clusters above 2: 5 and 5
    body = np.exp(tail.logsf(np.array([[0.15, 0.15]])))[0, 0]  # a level in column 0's body
    z = tail.isf(body)[0]
    assert z < 0.5
    assert tail.calibration(H, (body,)).observed[0, 0] == np.sum(H[:, 0] > z)


def test_calibration_bad_input():
    tail = ev.fit_tails(np.random.default_rng(0).random((500, 3)), progress=False)
    with pytest.raises(ev.InvalidInputError, match="columns"):
        tail.calibration(np.ones((10, 4)))
    with pytest.raises(ev.InvalidInputError, match="levels"):
        tail.calibration(np.ones((10, 3)), levels=(0.5, 1.5))


def test_cli_fit_holdout_prints_calibration(tmp_path, capsys):
    from evtools.cli import main
    G = ev.GPD(1.0, 0.2).rvs((2000, 5), random_state=1)
    np.save(tmp_path / "G.npy", G)
    rc = main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "m.npz"), "--holdout", "0.25",
               "--seed", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "calibration on 500 held-out rows x 5 filters" in out
    model = ev.load_saliency(tmp_path / "m.npz")
    assert model.tail_.n_samples == 1500
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "z.npz"), "--holdout", "0.2",
                 "--scorer", "zscore"]) == 1
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "z.npz"), "--holdout", "1"]) == 2


def test_declustered_return_levels_are_event_based():
    """POT's convention: the m-row return level of a declustered model is isf(1 / m), rate = clusters / row."""
    X = _max_ar(20000, 3, 9)
    tail = ev.fit_tails(X, ev.Quantile(0.98), decluster=2, progress=False)
    rl = tail.return_level(1000)
    np.testing.assert_allclose(rl.estimate, tail.isf(1e-3), rtol=1e-8)


def test_declustered_fit_keeps_the_covariance_of_its_cluster_maxima(rng):
    """Delta-method intervals of a declustered model use the observed information of the
    cluster maxima it fitted, as gpd_fit of those maxima gives it."""
    x = np.repeat(rng.pareto(3.0, size=1500), 2) + rng.uniform(0, 1e-3, size=3000)  # pairs: clusters of 2
    u = float(np.quantile(x, 0.9))
    tail = ev.fit_tails(x[:, None], threshold=ev.Fixed(u), decluster=2, progress=False)
    maxima = ev.decluster(x, u, run=2).maxima
    fit = ev.gpd_fit(maxima - u)
    assert tail.n_exceed[0] == maxima.size < tail.n_above[0]
    np.testing.assert_allclose([tail.sigma[0], tail.xi[0]], [fit.sigma, fit.xi], rtol=1e-9)
    np.testing.assert_allclose(tail.sigma[0] * np.sqrt(tail.rel_cov[0, 0]), fit.se_sigma, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(tail.rel_cov[0, 2]), fit.se_xi, rtol=1e-6)
