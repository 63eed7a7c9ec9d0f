"""Issue 13 items 3-8: PWM variants, NO_MAXIMUM, NotFittedError, declustering, honest GoF, calibration."""
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evtools as ev
from evtools import _gpd_kernels as K
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
@given(st.lists(st.floats(0.0, 1e6), min_size=2, max_size=60).filter(lambda v: len(set(v)) > 1))
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
    from evtools._tail_kernels import fit_tail
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
