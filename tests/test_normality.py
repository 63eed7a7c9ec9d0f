"""evtools.normality: vectorised normality tests equal the single-column scipy/statsmodels functions."""
import types
import warnings

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

import evtools as ev
from evtools.normality import NORMALITY_TESTS, normality_tests
from tests.reference.saliency_naive import normality_naive

MIN_ROWS = {"shapiro": 3, "dagostino": 8, "jarque_bera": 3, "anderson": 3, "lilliefors": 4}


def _mixed(rng, n):
    """Columns of several shapes, including ties and a heavy tail."""
    return np.column_stack([
        rng.normal(5.0, 2.0, n),
        rng.lognormal(0.0, 1.0, n),
        rng.exponential(1e-3, n),
        rng.uniform(size=n),
        rng.standard_t(2, n),
        np.round(rng.normal(size=n), 1),  # ties
        rng.pareto(3.0, n) * 1e-2,
    ])


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8, 11, 12, 25, 200, 2500])
def test_equal_to_single_column_functions(rng, n):
    G = _mixed(rng, n)
    tests = tuple(t for t in NORMALITY_TESTS if n >= MIN_ROWS[t])
    report = normality_tests(G, tests=tests, correction=None)
    assert set(report) == set(tests)
    for name in tests:
        stat, pval = normality_naive(G, name)
        np.testing.assert_allclose(report[name].statistic, stat, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(report[name].pvalue, pval, rtol=1e-8, atol=1e-14, err_msg=name)


def test_float32_input_matches_float64(rng):
    G = _mixed(rng, 300).astype(np.float32)
    report = normality_tests(G)
    for name in NORMALITY_TESTS:
        stat, pval = normality_naive(G.astype(np.float64), name)
        np.testing.assert_allclose(report[name].statistic, stat, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(report[name].pvalue, pval, rtol=1e-8, atol=1e-14, err_msg=name)


def test_correction_matches_multipletests(rng):
    G = _mixed(rng, 120)
    for correction in ("fdr_bh", "holm-sidak", "bonferroni"):
        report = normality_tests(G, correction=correction, alpha=0.1)
        for name, res in report.items():
            rejected, corrected = multipletests(res.pvalue, alpha=0.1, method=correction)[:2]
            np.testing.assert_array_equal(res.rejected, rejected)
            np.testing.assert_allclose(res.pvalue_corrected, corrected)
            np.testing.assert_array_equal(res.rejects(), rejected)


def test_without_correction_rejects_raw_pvalues(rng):
    report = normality_tests(_mixed(rng, 100), correction=None, alpha=0.05)
    for res in report.values():
        assert res.pvalue_corrected is None and res.rejected is None
        np.testing.assert_array_equal(res.rejects(), res.pvalue < 0.05)
        assert "pvalue_corrected" not in res.to_dict()


def test_constant_columns_are_nan_and_never_rejected(rng):
    G = _mixed(rng, 60)
    G[:, 2] = 0.0  # a dead filter
    report = normality_tests(G)
    live = [0, 1, 3, 4, 5, 6]
    for name, res in report.items():
        assert np.isnan(res.statistic[2]) and np.isnan(res.pvalue[2]) and np.isnan(res.pvalue_corrected[2])
        assert not res.rejected[2]
        stat, pval = normality_naive(G[:, live], name)
        np.testing.assert_allclose(res.pvalue[live], pval, rtol=1e-8, atol=1e-14)
        corrected = multipletests(pval, alpha=0.05, method="fdr_bh")[1]
        np.testing.assert_allclose(res.pvalue_corrected[live], corrected, rtol=1e-8)
    all_constant = normality_tests(np.ones((20, 3)))
    assert all(np.isnan(r.pvalue).all() and not r.rejected.any() for r in all_constant.values())


def test_power_and_level(rng):
    normal = rng.normal(size=(400, 60))
    skewed = rng.lognormal(size=(400, 60))
    report = normality_tests(np.hstack([normal, skewed]))
    for name, res in report.items():
        assert res.rejected[60:].mean() > 0.95, name
        assert res.rejected[:60].mean() <= 0.1, name


def test_summary_per_layer(rng):
    G = np.hstack([rng.normal(size=(300, 8)), rng.lognormal(size=(300, 4))])
    layers = np.array(["conv2"] * 4 + ["conv1"] * 4 + ["conv3"] * 4)
    report = normality_tests(G)
    summary = report.summary(layers)
    np.testing.assert_array_equal(summary.layer, ["conv2", "conv1", "conv3"])  # first appearance
    np.testing.assert_array_equal(summary.n_filters, [4, 4, 4])
    for name, res in report.items():
        expected = [res.rejected[layers == lay].mean() for lay in summary.layer]
        np.testing.assert_allclose(summary.share_rejected[name], expected)
    assert summary.share_rejected["shapiro"][2] == 1.0
    index = types.SimpleNamespace(layer=layers, depth=np.array([1] * 4 + [0] * 4 + [2] * 4))
    np.testing.assert_array_equal(report.summary(index).layer, ["conv1", "conv2", "conv3"])  # by depth
    overall = report.summary()
    np.testing.assert_array_equal(overall.layer, ["all"])
    table = summary.to_dict()
    assert list(table) == ["layer", "n_filters"] + [f"rejected_{t}" for t in NORMALITY_TESTS]
    assert summary.to_frame().shape == (3, 2 + len(NORMALITY_TESTS))


def test_tables_and_repr(rng):
    report = normality_tests(_mixed(rng, 50), tests=("shapiro", "lilliefors"))
    table = report.to_dict()
    assert list(table) == ["column"] + [
        f"{t}_{f}" for t in ("shapiro", "lilliefors") for f in ("statistic", "pvalue", "pvalue_corrected", "rejected")
    ]
    assert report.to_frame().shape == (7, 9)
    assert "shapiro" in repr(report) and "7 columns" in repr(report)
    assert repr(report["shapiro"]).startswith("NormalityTest('shapiro'")
    assert len(report) == 2 and report.n_samples == 50


def test_single_string_and_vectorised_speed(rng):
    G = rng.normal(size=(500, 3000))
    report = normality_tests(G, tests="shapiro", correction=None)
    assert list(report) == ["shapiro"]
    stat, pval = normality_naive(G[:, :20], "shapiro")
    np.testing.assert_allclose(report["shapiro"].pvalue[:20], pval, rtol=1e-8)


def test_shapiro_warns_beyond_5000_rows(rng):
    with pytest.warns(UserWarning, match="5000"):
        normality_tests(rng.normal(size=(5001, 2)), tests=("shapiro",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normality_tests(rng.normal(size=(5001, 2)), tests=("jarque_bera",))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tests": ("shapiro", "ks")}, "unknown normality test"),
        ({"tests": ()}, "unknown normality test"),
        ({"correction": "bh"}, "correction must be"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_arguments(rng, kwargs, match):
    with pytest.raises(ev.InvalidInputError, match=match):
        normality_tests(rng.normal(size=(30, 2)), **kwargs)


def test_bad_matrices(rng):
    with pytest.raises(ev.InvalidInputError, match="need at least 8"):
        normality_tests(rng.normal(size=(7, 2)))
    assert "dagostino" not in normality_tests(rng.normal(size=(7, 2)), tests=("shapiro",))
    G = rng.normal(size=(30, 2))
    G[3, 1] = np.nan
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        normality_tests(G)
    with pytest.raises(ev.InvalidInputError, match="2-D"):
        normality_tests(rng.normal(size=30))
