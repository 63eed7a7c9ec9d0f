"""gpd_fit and the estimator kernels: against scipy, the plain references, simulation."""
import dataclasses
import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numba import njit, prange
from scipy import stats

import evtools as ev
from evtools import InvalidInputError
from evtools._kernels import gpd as K
from evtools._status import CONSTANT, NO_MAXIMUM, NOT_CONVERGED, OK, XI_BOUNDARY
from tests.reference import gpd_naive as naive

METHODS = ("mle", "pwm", "pwmb", "zhang", "mom")


def _student_t_exceedances(rng, n):
    t = np.sort(rng.standard_t(3, size=10 * n))
    return t[-n:] - t[-n - 1]


SWEEP = {
    "exponential": lambda rng, n: rng.exponential(2.0, size=n),
    "pareto_0.5": lambda rng, n: stats.genpareto.rvs(0.5, size=n, random_state=rng),
    "pareto_1": lambda rng, n: stats.genpareto.rvs(1.0, scale=3.0, size=n, random_state=rng),
    "bounded_-0.3": lambda rng, n: stats.genpareto.rvs(-0.3, size=n, random_state=rng),
    "bounded_-0.8": lambda rng, n: stats.genpareto.rvs(-0.8, size=n, random_state=rng),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, size=n),
    "half_normal": lambda rng, n: np.abs(rng.normal(size=n)),
    "student_t_tail": _student_t_exceedances,
    "uniform": lambda rng, n: rng.uniform(0, 5, size=n),
}


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_mle_loglik_never_below_scipy(name):
    rng = np.random.default_rng(sorted(SWEEP).index(name))
    for n in (20, 100, 500, 5000):
        for _ in range(2 if n < 5000 else 1):
            y = SWEEP[name](rng, n)
            fit = ev.gpd_fit(y)
            assert fit.loglik == pytest.approx(K.gpd_loglik(y, fit.sigma, fit.xi), rel=1e-10)
            # the uniform (xi = -1) is always feasible
            assert fit.loglik >= -n * np.log(y.max()) - 1e-9 * abs(fit.loglik)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                c, _, scale = stats.genpareto.fit(y, floc=0)
                ll_scipy = stats.genpareto.logpdf(y, c, 0, scale).sum()
            if c >= -1:
                assert fit.loglik >= ll_scipy - 1e-8 * abs(ll_scipy), (name, n, fit, c, scale)
            else:
                # scipy left the restricted space: below xi = -1 the likelihood is
                # unbounded, and our answer there is the boundary (or an interior maximum)
                assert fit.status == XI_BOUNDARY or fit.xi > -1, (name, n, fit)


SMALL_SAMPLES = [
    np.array([0.3, 1.7]),
    np.array([1.0, 2.0, 4.0]),
    np.array([0.1, 0.1, 5.0]),
    np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 10.0]),
    np.arange(1.0, 21.0),
    np.array([1e-3] * 10 + [1.0]),
]


def _random_samples():
    rng = np.random.default_rng(7)
    out = []
    for n in (4, 10, 30, 120):
        out += [rng.exponential(size=n), rng.uniform(size=n), np.abs(rng.normal(size=n)),
                stats.genpareto.rvs(0.8, size=n, random_state=rng),
                stats.genpareto.rvs(-0.6, size=n, random_state=rng),
                np.concatenate([rng.uniform(size=n - 2), [20.0, 45.0]])]
    return out


@pytest.mark.parametrize("y", SMALL_SAMPLES + _random_samples())
def test_mle_matches_bruteforce(y):
    sigma, xi, ll, status = K.mle_fit(y)
    ref_sigma, ref_xi, ref_ll = naive.mle_bruteforce(y)
    assert ll >= ref_ll - 1e-9 * abs(ref_ll) - 1e-12
    assert ll == pytest.approx(naive.loglik(y, sigma, xi), rel=1e-10, abs=1e-10)
    if status == XI_BOUNDARY:
        assert (sigma, xi) == (y.max(), -1.0)
        assert ll == pytest.approx(-y.size * np.log(y.max()), rel=1e-14)
    else:
        assert status == OK and xi >= -1


SAMPLE = st.lists(st.floats(0, 1e3, allow_subnormal=False), min_size=2, max_size=40).filter(
    lambda v: max(v) > 0 and np.ptp(v) > 1e-6 * max(v)
)


@pytest.mark.slow
@settings(max_examples=25)
# zeros (see test_zeros_in_the_sample) and values below ~1e-290 max: the likelihood
# grows without bound as xi -> inf and only local maxima are looked for
@given(SAMPLE.filter(lambda v: min(v) > 1e-250 * max(v)))
def test_mle_matches_bruteforce_on_generated_samples(values):
    y = np.array(values)
    _, _, ll, status = K.mle_fit(y)
    assert status in (OK, XI_BOUNDARY)
    ref_ll = naive.mle_bruteforce(y)[2]
    assert ll >= ref_ll - 1e-9 * abs(ref_ll) - 1e-9


@given(SAMPLE)
@example([0.0, 2.2250738585072014e-308])  # Zhang's grid once overflowed at this scale: NaN with status OK
@example([2.0, 2.2250738585072014e-308])  # Zhang's weighted sum of a grid near 1e308 overflowed: NaN, OK
@example([3.0, 2.2250738585072014e-308])  # Zhang's grid beyond float64 (the reference's too)
@example([0.0, 1.0])  # PWM's scale is 0: not a GPD, NOT_CONVERGED (see below)
def test_pwm_zhang_mom_match_references(values):
    y = np.array(values)
    for kernel, ref in ((K.pwm_fit, naive.pwm), (K.zhang_fit, naive.zhang), (K.mom_fit, naive.mom)):
        sigma, xi, status = kernel(y)
        expected = ref(y)
        if not np.all(np.isfinite(expected)):
            # Zhang's grid ~ 1 / y_* lies beyond float64 (y_* < 3e-308 max(y)): refused, not NaN with OK
            assert status == NOT_CONVERGED and np.isnan(sigma)
            continue
        if status == NOT_CONVERGED:  # only a scale of 0 (PWM on [0, x]): no GPD, refused rather than OK
            assert np.isnan(sigma) and expected[0] <= 1e-12
            continue
        assert status == OK
        np.testing.assert_allclose([sigma, xi], expected, rtol=1e-10, atol=1e-12)


def test_a_zero_scale_is_not_a_fit():
    assert K.pwm_fit(np.array([0.0, 1.0]))[2] == NOT_CONVERGED  # PWM's estimate on [0, x] is sigma = 0


@pytest.mark.parametrize("sigma, xi", [(1.0, 0.2), (2.0, -0.3), (0.5, 0.6), (1.0, 0.0), (3.0, -0.4)])
def test_recovers_known_parameters(sigma, xi):
    y = ev.GPD(sigma, xi).rvs(2000, random_state=int(100 * (xi + 1)))
    fit = ev.gpd_fit(y)
    assert fit.status == OK and fit.converged
    assert abs(fit.xi - xi) < 3 * fit.se_xi
    assert abs(fit.sigma - sigma) < 3 * fit.se_sigma
    # moments need a finite variance (xi < 1/2) to be consistent, and a finite fourth moment to be good
    for method in ("pwm", "zhang", "mom") if xi < 0.25 else ("pwm", "zhang"):
        other = ev.gpd_fit(y, method)
        assert abs(other.xi - xi) < 0.15 and abs(other.sigma / sigma - 1) < 0.15


@pytest.mark.parametrize("xi", [0.2, -0.25])
def test_standard_errors_agree_with_simulation_spread(xi):
    d = ev.GPD(1.5, xi)
    rng = np.random.default_rng(2024)
    est, se = [], []
    for _ in range(200):
        fit = ev.gpd_fit(d.rvs(500, random_state=rng))
        est.append((fit.sigma, fit.xi))
        se.append((fit.se_sigma, fit.se_xi))
    ratio = np.mean(se, axis=0) / np.std(est, axis=0, ddof=1)
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


@pytest.mark.parametrize("xi", [-0.4, -1e-9, 0.0, 1e-9, 0.3, 1.2])
def test_observed_information_is_minus_the_numerical_hessian(xi):
    y = ev.GPD(2.0, 0.1).rvs(300, random_state=5)
    if xi < 0:
        y = y[y < 0.9 * 2.0 / -xi]
    sigma = 2.0
    i_ss, i_sx, i_xx = K.gpd_observed_info(y, sigma, xi)
    h = 1e-4

    def ll(s, x):  # the kernel's log-likelihood: accurate at xi +- h near 0, unlike log(1 + xi y / s)
        return K.gpd_loglik(y, s, x)

    d_ss = (ll(sigma + h, xi) - 2 * ll(sigma, xi) + ll(sigma - h, xi)) / h**2
    d_xx = (ll(sigma, xi + h) - 2 * ll(sigma, xi) + ll(sigma, xi - h)) / h**2
    d_sx = (ll(sigma + h, xi + h) - ll(sigma + h, xi - h) - ll(sigma - h, xi + h) + ll(sigma - h, xi - h)) / (4 * h * h)
    expected = -np.array([d_ss, d_sx, d_xx])
    np.testing.assert_allclose([i_ss, i_sx, i_xx], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_standard_errors_nan_where_regularity_fails():
    y = ev.GPD(1.0, -0.7).rvs(500, random_state=3)
    fit = ev.gpd_fit(y)
    assert fit.status == OK and fit.xi < -0.5
    assert np.isnan(fit.se_xi) and np.isnan(fit.se_sigma) and np.isnan(fit.cov).all()


def test_xi_boundary():
    y = np.linspace(0.02, 1.0, 50)  # evenly spread: the uniform beats every interior point
    fit = ev.gpd_fit(y)
    assert fit.status == XI_BOUNDARY and fit.converged
    assert (fit.sigma, fit.xi) == (1.0, -1.0)
    assert fit.loglik == 0.0
    assert np.isnan(fit.se_xi)
    assert fit.dist.cdf(0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_samples_and_ties(method):
    for y in ([0.3, 1.7], [1.0, 2.0, 4.0], [2.0, 2.0, 5.0], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]):
        fit = ev.gpd_fit(y, method)
        assert fit.converged and np.isfinite(fit.sigma) and np.isfinite(fit.xi)
        assert fit.n == len(y) and fit.method == method


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("y", [[3.0, 3.0], [0.0, 0.0, 0.0], [1.5] * 40])
def test_constant_sample_is_a_status_not_an_error(method, y):
    fit = ev.gpd_fit(y, method)
    assert fit.status == CONSTANT and not fit.converged
    assert np.isnan(fit.sigma) and np.isnan(fit.xi) and np.isnan(fit.loglik)
    with pytest.raises(InvalidInputError, match="no distribution"):
        fit.dist


def test_constant_kernels():
    y = np.full(5, 2.0)
    assert K.mle_fit(y)[3] == CONSTANT and np.isnan(K.mle_fit(y)[:3]).all()
    for kernel in (K.pwm_fit, K.pwmb_fit, K.zhang_fit, K.mom_fit):
        sigma, xi, status = kernel(y)
        assert status == CONSTANT and np.isnan(sigma) and np.isnan(xi)


@pytest.mark.parametrize("method", METHODS)
def test_zeros_in_the_sample(method):
    rng = np.random.default_rng(1)
    y = np.concatenate([np.zeros(3), rng.exponential(size=97)])
    fit = ev.gpd_fit(y, method)
    assert fit.converged and abs(fit.xi) < 0.5
    if method == "mle":
        assert fit.loglik >= naive.mle_bruteforce(y)[2] - 1e-9 * abs(fit.loglik)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scale", [1e-300, 1e-12, 1e12, 1e300])
def test_scale_equivariance(method, scale):
    y = ev.GPD(1.0, 0.25).rvs(300, random_state=11)
    a, b = ev.gpd_fit(y, method), ev.gpd_fit(y * scale, method)
    assert b.xi == pytest.approx(a.xi, rel=1e-9, abs=1e-12)
    assert b.sigma == pytest.approx(a.sigma * scale, rel=1e-9)
    assert b.loglik == pytest.approx(a.loglik - y.size * np.log(scale), rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_integer_input_are_converted(method):
    y64 = ev.GPD(1.0, 0.1).rvs(200, random_state=2)
    y32 = y64.astype(np.float32)
    a, b = ev.gpd_fit(y32, method), ev.gpd_fit(y32.astype(np.float64), method)
    assert (a.sigma, a.xi, a.loglik) == (b.sigma, b.xi, b.loglik)
    ints = ev.gpd_fit([1, 2, 2, 3, 5, 8, 13], method)
    assert ints.converged


def test_kernels_return_status_for_contract_violations():
    for bad in ([1.0, -1.0, 2.0], [1.0, np.nan, 2.0], [0.5, np.inf]):
        y = np.array(bad)
        assert K.mle_fit(y)[3] == NOT_CONVERGED and np.isnan(K.mle_fit(y)[:3]).all()
        for kernel in (K.pwm_fit, K.pwmb_fit, K.zhang_fit, K.mom_fit):
            assert kernel(y)[2] == NOT_CONVERGED
    # at the end point the information is not defined
    assert np.isnan(K.gpd_observed_info(np.array([0.5, 1.0]), 1.0, -1.0)).all()


EXTREME = st.lists(
    st.one_of(st.floats(0, 1e300), st.floats(0, 1e-300), st.sampled_from([0.0, 1.0, 5e-324, 1e308])),
    max_size=30,
)


@given(EXTREME)
def test_kernels_never_raise_at_extreme_scales(values):
    # other kernels call these inside prange loops: an exception there is fatal
    y = np.array(values, dtype=float)
    sigma, xi, ll, status = K.mle_fit(y)
    assert status in (OK, CONSTANT, XI_BOUNDARY, NO_MAXIMUM)  # NO_MAXIMUM: e.g. [0, 0, 1]
    if status != CONSTANT and y.max() > 1e-290:
        assert 0 < sigma < np.inf and np.isfinite(xi) and xi >= -1
    for kernel in (K.pwm_fit, K.pwmb_fit, K.zhang_fit, K.mom_fit):
        kernel(y)


def test_kernels_leave_input_untouched_and_ignore_order():
    y = ev.GPD(1.0, 0.3).rvs(250, random_state=4)
    before = y.copy()
    shuffled = np.random.default_rng(0).permutation(y)
    for kernel in (K.mle_fit, K.pwm_fit, K.pwmb_fit, K.zhang_fit, K.mom_fit):
        out, out_shuffled = kernel(y), kernel(shuffled)
        np.testing.assert_array_equal(y, before)
        np.testing.assert_allclose(out[:2], out_shuffled[:2], rtol=1e-10)


@njit(cache=True, parallel=True)
def _mle_columns(Y):
    out = np.empty((Y.shape[0], 4))
    for j in prange(Y.shape[0]):
        sigma, xi, ll, status = K.mle_fit(Y[j])
        out[j, 0], out[j, 1], out[j, 2], out[j, 3] = sigma, xi, ll, status
    return out


def test_mle_kernel_inside_prange():
    Y = ev.GPD(np.array([[0.5], [1.0], [2.0]]), np.array([[-0.3], [0.0], [0.4]])).rvs((3, 400), random_state=9)
    Y = np.ascontiguousarray(np.vstack([Y, np.full((1, 400), 1.0)]))
    got = _mle_columns(Y)
    for j in range(Y.shape[0]):
        np.testing.assert_array_equal(got[j], np.array(K.mle_fit(Y[j])))
    assert got[-1, 3] == CONSTANT


def test_gpd_loglik_kernel():
    y = np.array([0.0, 0.5, 1.0, 3.0])
    for sigma, xi in ((1.0, 0.3), (2.0, 0.0), (4.0, -0.5), (3.0, -1.0)):
        assert K.gpd_loglik(y, sigma, xi) == pytest.approx(stats.genpareto.logpdf(y, xi, 0, sigma).sum(), rel=1e-13)
    assert K.gpd_loglik(y, 1.0, -0.5) == -np.inf  # 3.0 beyond the end point 2.0
    assert K.gpd_loglik(y, -1.0, 0.1) == -np.inf
    assert np.isnan(K.gpd_loglik(y, np.nan, 0.1))


@pytest.mark.parametrize(
    "x, match",
    [
        ([1.0, np.nan, 2.0], "non-finite"),
        ([1.0, np.inf], "non-finite"),
        ([1.0, -0.5, 2.0], "negative"),
        (np.ones((3, 2)), "1-D"),
        ([1.0], "at least 2"),
        ([], "at least 2"),
        (["a", "b"], "real numbers"),
    ],
)
def test_invalid_samples_raise(x, match):
    with pytest.raises(InvalidInputError, match=match):
        ev.gpd_fit(x)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(InvalidInputError, match="'mle', 'pwm', 'zhang', 'mom'"):
        ev.gpd_fit([1.0, 2.0, 3.0], method="lmoments")
    with pytest.raises(ValueError):
        ev.gpd_fit([1.0, 2.0, 3.0], method=None)


def test_fit_result_object():
    y = ev.GPD(2.0, 0.1).rvs(500, random_state=8)
    fit = ev.gpd_fit(y)
    assert isinstance(fit, ev.GPDFit)
    assert fit.cov.shape == (2, 2) and np.allclose(fit.cov, fit.cov.T)
    assert fit.se_xi == pytest.approx(np.sqrt(fit.cov[1, 1]))
    assert isinstance(fit.dist, ev.GPD) and fit.dist.xi == fit.xi
    r = repr(fit)
    assert r.startswith("GPDFit(method='mle', sigma=") and "status=OK" in r and "±" in r
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.xi = 0.0
    pwm = ev.gpd_fit(y, "pwm")
    assert np.isnan(pwm.se_xi) and np.isnan(pwm.cov).all() and "±" not in repr(pwm)
    assert pwm.loglik == pytest.approx(stats.genpareto.logpdf(y, pwm.xi, 0, pwm.sigma).sum(), rel=1e-12)


# --- the MLE's search: its pieces, and its root against a 40-digit one ------------------------
@njit
def _profile_point(y, v):
    ymax = y.max()
    return K._profile(y, ymax, 1.0 / ymax, v)


@njit
def _right_bound(y, v):
    ymax = y.max()
    z = y / ymax
    return K._right_tail_bound(y.size, v, K._profile(y, ymax, 1.0 / ymax, v)[3], np.mean(np.log(z)))


@pytest.mark.parametrize("v", [-6.0, -1.0, -0.3, -0.05, -5e-5, 0.0, 3e-5, 5e-3, 0.09, 0.2, 0.5, 0.8, 2.0, 6.0])
def test_profile_slopes_match_finite_differences(v):
    # both sides of every branch: |s| < 1e-4, < 0.1, < 1, >= 1 (s = expm1(v)), and 1 + s z < 1/2
    y = ev.GPD(1.0, 0.2).rvs(300, random_state=6)
    point = _profile_point(y, v)
    h = 1e-5 * max(1.0, abs(v))
    up, down = _profile_point(y, v + h), _profile_point(y, v - h)
    assert point[2] == pytest.approx((up[1] - down[1]) / (2 * h), rel=2e-5)  # dD/dv
    assert point[5] == pytest.approx((up[3] - down[3]) / (2 * h), rel=1e-7)  # dxi/dv


def _lstar(z, s):
    """The profile l*(s) in z units, plain numpy (NaN where xi < -1)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # s z -> inf: l* -> -inf
        xi = np.mean(np.log1p(np.multiply.outer(s, z)), axis=-1)
        return np.where(xi >= -1, -z.size * (1 + np.log(xi / s) + xi), np.nan)


POSITIVE = st.lists(st.floats(1e-6, 1e3), min_size=3, max_size=60).filter(lambda v: np.ptp(v) > 1e-3 * max(v))


@given(POSITIVE, st.floats(0.01, 25.0))
def test_right_tail_bound_is_above_the_profile(values, v):
    y = np.array(values)
    z = y / y.max()
    bound = _right_bound(y, v)
    s = math.expm1(v) * np.exp(np.linspace(0.0, 40.0, 4001))  # s' >= s, out to e**40 s
    top = np.nanmax(_lstar(z, s))
    assert bound >= top - 1e-9 * (y.size + abs(top))
    assert bound <= -y.size * (1 + math.log(np.mean(np.log1p(math.expm1(v) * z))) + np.mean(np.log(z))) + 1e-9


@given(POSITIVE, st.floats(1e-4, 1.0))
def test_left_tail_bound_is_above_the_profile(values, f):
    # the bound that ends the walk towards xi = -1: l*(s') <= -n (1 + log b - min(b, 1)) for s' <= s < 0
    z = np.array(values) / max(values)
    lo, hi = -1.0, 0.0  # s where xi(s) = -1 (xi increases with s): the walk stays above it
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.mean(np.log1p(mid * z)) < -1 else (lo, mid)
    s = f * hi
    xi = np.mean(np.log1p(s * z))
    b = xi / s
    bound = -z.size * (1 + math.log(b) - min(b, 1.0))
    grid = -1 + (1 + s) * np.exp(-np.linspace(0.0, 60.0, 6001))  # s' <= s, down to -1 + e**-60 (1 + s)
    top = np.nanmax(_lstar(z, grid))
    assert bound >= top - 1e-9 * (z.size + abs(top))


def _mle_mpmath(y, sigma, xi):
    """``(sigma, xi)`` at the root of the profile's derivative next to ``theta = xi / sigma``, to 40 digits."""
    with mp.workdps(40):
        ys = [mp.mpf(float(v)) for v in y]

        def xi_of(theta):
            return mp.fsum(mp.log1p(theta * v) for v in ys) / len(ys)

        def g(theta):  # u (1 + xi) - 1, zero where the profile is stationary
            return mp.fsum(1 / (1 + theta * v) for v in ys) / len(ys) * (1 + xi_of(theta)) - 1

        theta = mp.findroot(g, mp.mpf(xi) / mp.mpf(sigma))
        return float(xi_of(theta) / theta), float(xi_of(theta))


def _regression_samples():
    samples = list(SMALL_SAMPLES) + _random_samples()
    for name in sorted(SWEEP):
        rng = np.random.default_rng(sorted(SWEEP).index(name))
        samples += [SWEEP[name](rng, n) for n in (20, 100, 500, 5000)]
    rng = np.random.default_rng(14)
    for draw in (lambda n: rng.standard_t(3, n), lambda n: rng.lognormal(0, 1, n), lambda n: rng.exponential(size=n),
                 lambda n: rng.uniform(size=n)):
        for k in (30, 100, 400):  # as fit_tails builds them: excesses of float32 columns over their quantile
            for _ in range(3):
                x = np.sort(draw(20000).astype(np.float32))
                samples.append(x[-k:].astype(np.float64) - np.float64(x[-k - 1]))
    return samples


def test_mle_is_the_40_digit_stationary_point():
    # Newton polishes the profile's root: sigma and xi within 1e-12 of the 40-digit root next to
    # them (that it is the global maximum is checked against the brute-force search above)
    for y in _regression_samples():
        if y.size > 500:
            continue  # 40-digit sums over 5000 values take too long for a unit test
        sigma, xi, ll, status = K.mle_fit(y)
        if status != OK:
            continue
        ref_sigma, ref_xi = _mle_mpmath(y, sigma, xi)
        assert abs(sigma / ref_sigma - 1) < 1e-12 and abs(xi - ref_xi) < 1e-12, (y.size, sigma, xi)
        assert ll == pytest.approx(naive.loglik(y, sigma, xi), rel=1e-12, abs=1e-12)
