"""evtools.GPD against scipy.stats.genpareto and a high-precision (mpmath) reference."""
import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import evtools as ev
from evtools import InvalidInputError

mp.mp.dps = 50

XI = st.one_of(
    st.floats(-2, 2),
    st.just(0.0),
    st.floats(-1e-12, 1e-12),
    st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]),
)
SIGMA = st.floats(-6, 6).map(lambda e: 10.0**e)  # several decades
# x in units of sigma (xi >= 0) or of the end point sigma / -xi (xi < 0);
# fractions up to 1.5 of the end point land inside and outside the support
UNITS = st.lists(st.floats(-0.5, 60), min_size=1, max_size=6)


def _points(sigma, xi, units):
    u = np.array(units)
    if xi < -1e-3:  # in units of the end point, clear of the point itself (rounding decides the side)
        u = np.where(np.abs(u - 1) < 1e-6, 0.5, np.minimum(u, 1.5))
        return u * (sigma / -xi)
    return u * sigma


def _ref(x, sigma, xi):
    """(logsf, logpdf) in 50 digits."""
    x, s, c = mp.mpf(float(x)), mp.mpf(float(sigma)), mp.mpf(float(xi))
    if x < 0:
        return mp.mpf(0), mp.ninf
    t = c * x / s
    if t <= -1:
        return mp.ninf, mp.ninf
    h = x / s if c == 0 else mp.log1p(t) / c  # cumulative hazard
    return -h, -mp.log(s) - (1 + c) * h


def _close(actual, expected, rtol=1e-12, atol=1e-300):
    expected = float(expected)
    if math.isinf(expected) or actual == expected:
        assert actual == expected
    else:
        assert abs(actual - expected) <= atol + rtol * abs(expected), (actual, expected)


def _scipy_reliable(xi):
    # scipy's genpareto.cdf loses all digits for 0 < |xi| <~ 1e-200 (and every
    # method for subnormal xi); there only the mpmath reference is used
    return xi == 0 or abs(xi) > 1e-150


@given(SIGMA, XI, UNITS)
def test_distribution_methods_match_scipy_and_mpmath(sigma, xi, units):
    x = _points(sigma, xi, units)
    d = ev.GPD(sigma, xi)
    got = {m: getattr(d, m)(x) for m in ("pdf", "logpdf", "cdf", "sf", "logsf")}
    for i, xv in enumerate(x):
        logsf, logpdf = _ref(xv, sigma, xi)
        _close(got["logsf"][i], logsf, atol=1e-15)
        _close(got["logpdf"][i], logpdf, rtol=1e-11, atol=1e-11)
        _close(got["sf"][i], mp.exp(logsf), rtol=1e-11)
        _close(got["cdf"][i], -mp.expm1(logsf), rtol=1e-11)
        _close(got["pdf"][i], mp.exp(logpdf), rtol=1e-10)
    if _scipy_reliable(xi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = stats.genpareto(xi, loc=0, scale=sigma)
            for m, values in got.items():
                np.testing.assert_allclose(values, getattr(ref, m)(x), rtol=1e-9, atol=1e-12, err_msg=m)


@given(SIGMA, XI, st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_quantiles_match_scipy_and_invert_cdf(sigma, xi, qs):
    q = np.array(qs + [0.0, 1.0])
    d = ev.GPD(sigma, xi)
    ppf, isf = d.ppf(q), d.isf(q)
    if _scipy_reliable(xi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = stats.genpareto(xi, loc=0, scale=sigma)
            np.testing.assert_allclose(ppf, ref.ppf(q), rtol=1e-10, atol=1e-300)
            np.testing.assert_allclose(isf, ref.isf(q), rtol=1e-10, atol=1e-300)
    inside = (q > 1e-12) & (q < 1 - 1e-12) & np.isfinite(isf)
    if xi < 0:  # near the end point 1 + xi x / sigma = q**-xi cancels: keep it well conditioned
        inside &= q ** -xi > 1e-4
    np.testing.assert_allclose(d.sf(isf[inside]), q[inside], rtol=1e-9)


def test_end_points_and_outside_support_as_scipy():
    x = np.array([-1.0, 0.0, 0.5, 2.0, 3.0, np.inf, np.nan])
    for xi in (-2.0, -1.0, -0.5, 0.0, 0.5):
        d = ev.GPD(1.0, xi)
        ref = stats.genpareto(xi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for m in ("pdf", "logpdf", "cdf", "sf", "logsf"):
                np.testing.assert_allclose(getattr(d, m)(x), getattr(ref, m)(x), rtol=1e-14, err_msg=(xi, m))
            q = np.array([-0.1, 0.0, 0.3, 1.0, 1.1])
            np.testing.assert_allclose(d.ppf(q), ref.ppf(q), rtol=1e-14)
            np.testing.assert_allclose(d.isf(q), ref.isf(q), rtol=1e-14)
    # xi < 0: the end point sigma / -xi; logsf is -inf there and beyond
    d = ev.GPD(3.0, -0.5)
    assert d.logsf(6.0) == -np.inf and d.logsf(7.0) == -np.inf and d.pdf(7.0) == 0.0
    assert d.ppf(1.0) == 6.0 and d.isf(0.0) == 6.0


def test_logsf_far_in_the_tail_where_sf_underflows():
    cases = [(1.0, 0.0, 1e4), (2.0, 0.1, 1e300), (0.5, 1e-13, 900.0), (1.0, -1e-12, 800.0),
             (1e-12, 2.0, 1e300), (1.0, -0.25, 4 - 2.0**-20), (3.0, 0.5, 1e308)]
    for sigma, xi, x in cases:
        got = ev.GPD(sigma, xi).logsf(x)
        ref = float(_ref(x, sigma, xi)[0])
        assert np.isfinite(got)
        assert abs(got - ref) <= 1e-13 * abs(ref), (sigma, xi, x, got, ref)
        assert ev.GPD(sigma, xi).sf(x) == pytest.approx(math.exp(ref), rel=1e-12, abs=1e-320)
    # log density in the tail, huge x
    assert ev.GPD(3.0, 0.5).logpdf(1e308) == pytest.approx(float(_ref(1e308, 3.0, 0.5)[1]), rel=1e-13)
    # ordered and finite far out: the anomaly score is -logsf
    x = np.logspace(1, 300, 50)
    ls = ev.GPD(1.0, 0.3).logsf(x)
    assert np.all(np.isfinite(ls)) and np.all(np.diff(ls) < 0)


def test_small_xi_is_continuous_through_zero():
    x = np.linspace(0, 50, 11)
    exp_logsf = ev.GPD(2.0, 0.0).logsf(x)
    for xi in (1e-16, -1e-16, 1e-300, -5e-324):
        np.testing.assert_allclose(ev.GPD(2.0, xi).logsf(x), exp_logsf, rtol=1e-14)
        np.testing.assert_allclose(ev.GPD(2.0, xi).isf([0.5, 1e-10]), ev.GPD(2.0, 0.0).isf([0.5, 1e-10]), rtol=1e-14)


def test_mean_and_var():
    xi = np.array([-2.0, -0.5, 0.0, 1e-13, 0.3, 0.49, 0.5, 0.7, 1.0, 1.5])
    d = ev.GPD(2.0, xi)
    np.testing.assert_allclose(d.mean(), stats.genpareto.mean(xi, scale=2.0), rtol=1e-13)
    ref_var = stats.genpareto.var(xi, scale=2.0)
    finite = xi < 0.5
    np.testing.assert_allclose(d.var()[finite], ref_var[finite], rtol=1e-12)
    # scipy says NaN where the second moment is infinite; we say inf
    assert np.all(np.isinf(d.var()[~finite]))
    assert np.all(np.isinf(d.mean()[xi >= 1]))
    assert isinstance(ev.GPD(1.0, 0.1).mean(), float)


def test_broadcasting_shapes_and_scalars():
    d = ev.GPD(np.array([[1.0], [2.0], [3.0]]), np.array([-0.2, 0.0, 0.4, 1.0]))
    assert d.sigma.shape == (3, 4) and d.xi.shape == (3, 4)
    x = np.linspace(0.1, 3, 4)
    out = d.sf(x)
    assert out.shape == (3, 4)
    ref = stats.genpareto.sf(x, d.xi, scale=d.sigma)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    assert d.logsf(np.ones((2, 1, 1))).shape == (2, 3, 4)
    scalar = ev.GPD(1.0, 0.2)
    assert isinstance(scalar.cdf(1.0), float)
    assert scalar.cdf([1.0]).shape == (1,)
    assert isinstance(scalar.sigma, float)
    assert scalar.sf(np.float32(2.0)) == pytest.approx(stats.genpareto.sf(2.0, 0.2), rel=1e-7)
    with pytest.raises(InvalidInputError):
        d.sf(np.ones(5))  # (5,) does not broadcast with (3, 4)


def test_rvs():
    d = ev.GPD(2.0, 0.3)
    a = d.rvs(5000, random_state=1)
    assert a.shape == (5000,) and np.all(a >= 0)
    np.testing.assert_array_equal(a, d.rvs(5000, random_state=1))
    np.testing.assert_array_equal(a, d.rvs(5000, random_state=np.random.default_rng(1)))
    assert stats.kstest(a, stats.genpareto(0.3, scale=2.0).cdf).pvalue > 1e-3
    b = ev.GPD(1.0, -0.5).rvs(5000, random_state=np.random.RandomState(0))
    assert b.max() <= 2.0
    assert stats.kstest(b, stats.genpareto(-0.5).cdf).pvalue > 1e-3
    assert isinstance(d.rvs(random_state=0), float)
    many = ev.GPD(np.array([1.0, 10.0]), 0.0)
    assert many.rvs(random_state=0).shape == (2,)
    assert many.rvs(size=(3, 2), random_state=0).shape == (3, 2)
    with pytest.raises(InvalidInputError):
        many.rvs(size=3)


@pytest.mark.parametrize(
    "sigma, xi",
    [(0.0, 0.1), (-1.0, 0.1), (np.nan, 0.1), (np.inf, 0.1), (1.0, np.nan), (1.0, -np.inf),
     ([1.0, -2.0], 0.0), (np.ones(3), np.zeros(2)), ("a", 0.1), (1 + 1j, 0.0)],
)
def test_invalid_parameters_raise(sigma, xi):
    with pytest.raises(InvalidInputError):
        ev.GPD(sigma, xi)


def test_invalid_parameter_message_says_what_to_fix():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ev.GPD(-1.0, 0.0)


def test_repr():
    assert repr(ev.GPD(2.0, 0.25)) == "GPD(sigma=2, xi=0.25)"
    assert "array" in repr(ev.GPD([1.0, 2.0], 0.0))
