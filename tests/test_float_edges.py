"""Numbers at the edges of float64 (docs/guarantees.md): z-scores near +-1e308, near 1e200 and
of denormals against exact rational arithmetic; normality tests on columns that overflow or
underflow when squared."""
import numpy as np
import pytest

import evtools as ev
from evtools.gpd import METHODS
from tests.reference.saliency_naive import normality_naive, zscore_exact

DENORMAL = 5e-320


def _columns(rng, n=40):
    """Columns of very different magnitudes, one matrix."""
    u = rng.standard_normal((n, 6))
    return np.column_stack([
        u[:, 0] * (1e308 / 5),                       # mixed signs near the top of float64
        np.minimum(np.abs(u[:, 1]), 1) * 4e307 + 1.3e308,  # near +1.5e308: g - mean, m2 overflow unscaled
        u[:, 2] * 1e200,                            # squares overflow
        u[:, 3] * 1e-160,                           # squares underflow
        np.round(np.abs(u[:, 4]) * 50) * DENORMAL,  # denormals
        u[:, 5],                                    # ordinary
    ])


@pytest.mark.parametrize("batches", [1, 3])
def test_zscore_at_the_edges_matches_exact_arithmetic(rng, batches):
    G_ref = _columns(rng)
    G = _columns(rng, 7)
    model = ev.ZScoreSaliency()
    for part in np.array_split(G_ref, batches):
        model.partial_fit(part)
    std, z = zscore_exact(G_ref, G)
    got = model.score(G)
    assert np.isfinite(got).all() and np.isfinite(model.std_).all() and np.isfinite(model.mean_).all()
    np.testing.assert_allclose(model.std_, std, rtol=1e-12)
    np.testing.assert_allclose(got, z, rtol=1e-9, atol=1e-12 * np.abs(z).max())
    assert np.all(np.abs(got[:, :3]).max(axis=0) > 0.1)  # not silently all zero


def test_zscore_denormal_column_scores_exactly(rng):
    G_ref = np.round(rng.random((30, 2)) * 100) * DENORMAL
    model = ev.ZScoreSaliency().fit(G_ref)
    std, z = zscore_exact(G_ref, G_ref)
    assert np.all(model.std_ == 1.0)  # std below STD_FLOOR: Levin's rule, g - mean
    np.testing.assert_array_equal(model.score(G_ref), z)


def test_zscore_edges_survive_save_and_load(rng, tmp_path):
    G_ref = _columns(rng)
    model = ev.ZScoreSaliency().fit(G_ref)
    model.save(tmp_path / "z.npz")
    loaded = ev.load_saliency(tmp_path / "z.npz")
    np.testing.assert_array_equal(loaded.score(G_ref), model.score(G_ref))
    # a further batch merges as if fitted at once
    extra = _columns(rng, 10)
    loaded.partial_fit(extra)
    std, _ = zscore_exact(np.vstack([G_ref, extra]), extra)
    np.testing.assert_allclose(loaded.std_, std, rtol=1e-12)


@pytest.mark.parametrize("column", [
    np.r_[np.arange(1.0, 20.0), 1e80],                  # 1..19 plus 1e80: fourth powers overflow
    np.r_[np.arange(1.0, 20.0), 1e300],
    np.arange(1.0, 21.0) * DENORMAL,                    # squares underflow to 0
    np.r_[np.arange(1.0, 20.0), 3.0] * 1e-170,
])
def test_normality_tests_are_finite_and_scale_invariant(column):
    G = np.column_stack([column, np.arange(20.0)])
    report = ev.normality_tests(G)
    # the same column at a moderate scale (a power of two: exact), tested by scipy/statsmodels
    e = np.frexp(np.abs(column).max())[1]
    moderate = np.ldexp(column, -e)
    for name in report:
        res = report[name]
        assert np.isfinite(res.pvalue).all() and np.isfinite(res.statistic).all(), name
        statistic, pvalue = normality_naive(moderate[:, None], name)
        np.testing.assert_allclose(res.statistic[0], statistic[0], rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(res.pvalue[0], pvalue[0], rtol=1e-9, atol=1e-15, err_msg=name)


# --- GPD estimators and tail fits at any power-of-two scale ----------------------------------
def _exact_sample(rng, bits, n=150):
    """Heavy-tailed exceedances with ``bits`` significant bits (``m / 2**bits``, m in [1, 2**bits)),
    so that every scale ``2**p`` with ``p >= bits - 1074`` (and ``p <= 1023``) is exact."""
    m = np.minimum(np.floor(rng.pareto(2.5, n) * 2 ** (bits - 4)) + 1, 2**bits - 1)
    return m / 2.0**bits


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bits, p", [(10, -1064), (4, -1070), (10, -1030), (10, -600), (10, -1),
                                     (10, 600), (10, 1000), (10, 1020), (10, 1023)])
def test_gpd_fit_is_scale_equivariant_over_the_float64_range(rng, method, bits, p):
    y = _exact_sample(rng, bits)
    ref = ev.gpd_fit(y, method=method)
    assert ref.status == 0  # the unscaled fit is usable
    got = ev.gpd_fit(np.ldexp(y, p), method=method)
    assert got.status == ref.status
    assert np.isfinite(got.sigma) and got.sigma > 0
    assert got.xi == ref.xi  # the same fit in units of max(y): bit for bit
    np.testing.assert_allclose(got.sigma, np.ldexp(ref.sigma, p), rtol=1e-15, atol=2.0**-1074)
    if got.sigma >= 2.0**-1022:  # a subnormal sigma keeps few digits, and the loglik at it differs
        np.testing.assert_allclose(got.loglik, ref.loglik - y.size * p * np.log(2.0), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scale", [2.0**-1000, 1e-300, 1e305, 1e306, 2.0**1013])
def test_fit_tails_far_from_one_keeps_usable_fits(rng, method, scale):
    G = np.column_stack([_exact_sample(rng, 10, 1000) for _ in range(3)])
    ref = ev.fit_tails(G, ev.Quantile(0.9), method=method, progress=False)
    got = ev.fit_tails(G * scale, ev.Quantile(0.9), method=method, progress=False)
    np.testing.assert_array_equal(got.status, ref.status)
    assert np.all(np.isfinite(got.sigma)) and np.all(got.sigma > 0)
    np.testing.assert_allclose(got.xi, ref.xi, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.sigma / scale, ref.sigma, rtol=1e-9)


def test_exponential_fallback_mean_does_not_overflow(rng):
    G = np.column_stack([_exact_sample(rng, 10, 1000) for _ in range(2)])
    kw = dict(threshold=ev.TopK(400), min_exceed=10**6, progress=False)  # every column TOO_FEW
    ref = ev.fit_tails(G, **kw)
    got = ev.fit_tails(np.ldexp(G, 1023), **kw)  # the 400 excesses sum past 1.8e308
    assert np.all(got.status == 1)
    np.testing.assert_array_equal(got.sigma, np.ldexp(ref.sigma, 1023))
    np.testing.assert_array_equal(got.xi, 0.0)
    np.testing.assert_allclose(got.loglik, ref.loglik - ref.n_exceed * 1023 * np.log(2.0), rtol=1e-12)


def test_a_sigma_beyond_float64_is_refused_not_inf(rng):
    y = np.ldexp(0.9 + 1e-3 * rng.random(200), 1023)  # nearly constant: the moments' sigma is ~4e6 max(y)
    fit = ev.gpd_fit(y, method="mom")
    assert fit.status == 3 and np.isnan(fit.sigma) and not fit.converged  # NOT_CONVERGED
    assert ev.gpd_fit(y / 2.0**40, method="mom").status == 0  # the same sample, in range
    tail = ev.fit_tails(np.r_[np.zeros(1800), y][:, None], ev.TopK(200), method="mom", progress=False)
    assert tail.status[0] == 3 and np.isfinite(tail.sigma[0]) and tail.xi[0] == 0.0  # the exponential fallback
