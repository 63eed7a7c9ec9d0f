"""Published POT analyses reproduced through the public API at a fixed threshold.

* Coles (2001), section 4.4.2: Dow Jones daily log-returns (x 100) above u = 2.
* The R package POT's worked example (Ribatet, "A User Guide to the POT Package",
  section "A Concrete Statistical Analysis of Peaks Over a Threshold"): river
  Ardieres at Beaujeu, declustered at u = 6 with a time condition of 8 days.

(Coles' rain data is in test_return_levels.py, McNeil's Danish losses in
test_pot_tools.py.) The data files say where they were copied from; the loaders
check them against the checksum of the copied text.
"""
import math

import numpy as np
import pytest
from scipy import stats

import evtools as ev
from evtools._status import OK
from tests.reference import decluster_naive as D
from tests.reference import gpd_naive
from tests.reference import return_level_naive as R
from tests.reference.published import load_published

# --- Dow Jones (Coles 2001, section 4.4.2) ----------------------------------------------------------

def dow_jones_returns():
    """100 x the daily log-returns of the Dow Jones index, 1995-09-11 to 2000-09-07 (1303 values)."""
    text = load_published("dowjones.csv.gz", 25155, "d46da9aa4f182563b7fc92d3cde4aca66509efe0cc9be3a32baa3f9b00a2659e")
    header, *lines = text.splitlines()
    assert header == "Date,Index" and len(lines) == 1304
    index = np.array([line.split(",")[1] for line in lines], dtype=float)
    return 100 * np.diff(np.log(index))


def test_dow_jones_reproduces_coles_with_standard_errors():
    """Coles (2001), section 4.4.2: 37 exceedances of u = 2 (rate 0.028), sigma 0.495 (0.150), xi 0.288 (0.258)."""
    x = dow_jones_returns()
    tail = ev.fit_tails(x[:, None], threshold=ev.Fixed(2.0), progress=False)
    assert tail.n_samples == 1303 and tail.n_exceed[0] == 37 and tail.status[0] == OK
    assert round(tail.rate[0], 3) == 0.028 and tail.rate[0] == 37 / 1303
    assert round(tail.sigma[0], 3) == 0.495 and round(tail.xi[0], 3) == 0.288
    assert tail.sigma[0] * math.sqrt(tail.rel_cov[0, 0]) == pytest.approx(0.150, abs=5e-4)
    assert math.sqrt(tail.rel_cov[0, 2]) == pytest.approx(0.258, abs=5e-4)
    fit = ev.gpd_fit(x[x > 2] - 2)
    assert (fit.sigma, fit.xi) == pytest.approx((tail.sigma[0], tail.xi[0]), rel=1e-12)
    assert (round(fit.se_sigma, 3), round(fit.se_xi, 3)) == (0.150, 0.258)


def test_dow_jones_standard_errors_equal_a_numerical_hessian():
    x = dow_jones_returns()
    y = x[x > 2] - 2
    fit = ev.gpd_fit(y)
    ref_xi, _, ref_sigma = stats.genpareto.fit(y, floc=0)
    assert (fit.sigma, fit.xi) == pytest.approx((ref_sigma, ref_xi), rel=1e-4)
    assert gpd_naive.loglik(y, fit.sigma, fit.xi) >= gpd_naive.loglik(y, ref_sigma, ref_xi) - 1e-9
    # the covariance: the inverse of a finite-difference Hessian of scipy's negative log-likelihood
    cov = np.linalg.inv(R.hessian(lambda p: R.nll(p, y), [fit.sigma, fit.xi]))
    assert (fit.se_sigma, fit.se_xi) == pytest.approx(np.sqrt(np.diag(cov)), rel=1e-4)


# --- River Ardieres (the POT package's worked example) ----------------------------------------------

U = 6.0              # m3/s, the guide's threshold
TIM_COND = 8 / 365   # years: a new event when two exceedances are more than 8 days apart


@pytest.fixture(scope="module")
def ardieres():
    """(row, time in years, flow) of the extract: every row above 6 m3/s and the rows that give the record's span."""
    text = load_published("ardieres_above6.csv.gz", 12776,
                        "eb7ed1905c4f4e17d3c87db1d6ae6c19e63fcaeeb6aaecb3f7b1a88f5f51d215")
    rows = np.array([line.replace("NA", "nan").split(",") for line in text.splitlines()], dtype=float)
    row, time, obs = rows.T
    assert row[0] == 1 and row[-1] == 33237 and np.all(np.diff(row) > 0) and np.all(np.diff(time) > 0)
    assert np.isnan(obs[row == 20946]).all() and np.count_nonzero(obs > U) == 457
    return row, time, obs


def record_years(row, time):
    """The guide's record length: the time span less the 1994 gap between rows 20945 and 20947."""
    gap = time[row == 20947][0] - time[row == 20945][0]
    return (time[-1] - time[0]) - gap


def test_ardieres_declustering_equals_pot_clust(ardieres):
    """ev.decluster with a time axis gives the events of POT's
    clust(ardieres, u = 6, tim.cond = 8/365, clust.max = TRUE)."""
    row, time, obs = ardieres
    kept = ~np.isnan(obs)  # POT's `obs > u` drops the NA row
    events = ev.decluster(obs[kept], threshold=U, run=TIM_COND, time=time[kept])
    maxima, index, n_exceed = D.clust(obs[kept], U, TIM_COND, time[kept])
    assert (events.n_exceed, events.n_clusters) == (n_exceed, maxima.size) == (457, 56)
    np.testing.assert_array_equal(events.maxima, maxima)
    np.testing.assert_array_equal(events.index, index)
    # the extremal index POT attaches to the events: clusters / exceedances
    theta = ev.extremal_index(obs[kept], threshold=U, method="runs", run=TIM_COND, time=time[kept])
    assert theta == pytest.approx(56 / 457)


def test_ardieres_events_per_year_and_return_levels(ardieres):
    """The guide's analysis: npy over the 33.4-year record, MLE of the event maxima, 100-year level, and
    "the largest event, which occurred in June 2000, has a return period of approximately 240 years"."""
    row, time, obs = ardieres
    kept = ~np.isnan(obs)
    events = ev.decluster(obs[kept], threshold=U, run=TIM_COND, time=time[kept])
    years = record_years(row, time)
    assert round(years, 1) == 33.4  # the record length the POT manual states (plot.uvpot's example)
    npy = events.n_clusters / years
    assert npy == pytest.approx(1.678, abs=5e-4)

    fit = ev.gpd_fit(events.maxima - U)
    ref_xi, _, ref_sigma = stats.genpareto.fit(events.maxima - U, floc=0)
    assert fit.status == OK and (fit.sigma, fit.xi) == pytest.approx((ref_sigma, ref_xi), rel=1e-4)
    assert (round(fit.sigma, 3), round(fit.xi, 3)) == (3.828, 0.158)

    # 100-year return level: the quantile of non-exceedance probability 1 - 1 / (100 npy) (POT's rp2prob)
    level = U + fit.dist.isf(1 / (100 * npy))
    assert level == pytest.approx(U + stats.genpareto.isf(1 / (100 * npy), ref_xi, scale=ref_sigma), rel=1e-4)
    assert round(level, 1) == 36.2 and 25 < level < 100  # inside the guide's profile range c(25, 100)

    largest = events.maxima.max()
    when = time[kept][events.index[np.argmax(events.maxima)]]
    assert largest == 44.2 and 2000 + 5 / 12 <= when < 2000 + 6 / 12  # June 2000
    period = 1 / (npy * fit.dist.sf(largest - U))  # POT's prob2rp
    assert round(period, -1) == 240
