"""Numbers at the edges of float64 (docs/guarantees.md): z-scores near +-1e308, near 1e200 and
of denormals against exact rational arithmetic; normality tests on columns that overflow or
underflow when squared."""
import numpy as np
import pytest

import evtools as ev
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
