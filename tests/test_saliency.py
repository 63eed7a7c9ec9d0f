"""evtools.saliency: z-score (Levin et al. 2022) and POT (Wang & Sato 2023) parameter saliency."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from statsmodels.stats.multitest import multipletests

import evtools as ev
from evtools.gpd import gpd_fit
from evtools.saliency import STD_FLOOR, POTSaliency, ZScoreSaliency, load_saliency
from evtools.tails import fit_tails
from tests.reference.saliency_naive import bh_naive, normal_pvalue_naive, rank_naive, zscore_naive
from tests.reference.spot import spot_grimshaw, spot_log_likelihood


def _mixed_reference(rng, n, n_each):
    """Gradient-norm-like columns: normal, lognormal and Pareto, with different scales."""
    scales = rng.uniform(0.5, 2.0, 3 * n_each)
    cols = np.hstack([
        rng.normal(10.0, 1.0, (n, n_each)),
        rng.lognormal(0.0, 1.0, (n, n_each)),
        rng.pareto(3.0, (n, n_each)) + 1.0,
    ])
    return cols * scales


# --- z-score -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zscore_equals_plain_numpy(rng, dtype):
    G_ref = (rng.lognormal(size=(500, 70)) * 1e-3).astype(dtype)
    G_ref[:, 5] = 0.25  # dead filter: std 0 -> replaced by 1
    G = (rng.lognormal(size=(20, 70)) * 1e-3).astype(dtype)
    model = ZScoreSaliency().fit(G_ref)
    np.testing.assert_allclose(model.score(G), zscore_naive(G_ref, G), rtol=1e-10, atol=1e-12)
    assert model.std_[5] == 1.0 and model.var_[5] == 0.0
    np.testing.assert_allclose(model.mean_, G_ref.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.var_, G_ref.astype(np.float64).var(axis=0, ddof=1), rtol=1e-10)
    assert model.score(G).dtype == np.float64
    np.testing.assert_allclose(model.score(G[3]), model.score(G)[3])


def test_zscore_floor_is_levins_rule():
    G_ref = np.array([[1.0, 2.0, 5.0], [1.0, 2.0 + 1e-15, 6.0], [1.0, 2.0, 7.0]])
    model = ZScoreSaliency().fit(G_ref)
    assert STD_FLOOR == 1e-14
    np.testing.assert_array_equal(model.std_[:2], [1.0, 1.0])
    assert model.std_[2] == pytest.approx(1.0)  # a genuine std of 1 is kept, not floored
    np.testing.assert_allclose(model.score([[3.0, 4.0, 8.0]]), [[2.0, 2.0 - 1e-15 / 3, 2.0]])


def test_welford_is_stable_and_streams(rng):
    shifted = 1e8 + rng.normal(size=(3000, 5))  # a naive sum of squares would lose every digit
    np.testing.assert_allclose(ZScoreSaliency().fit(shifted).var_, shifted.var(axis=0, ddof=1), rtol=1e-7)
    G_ref = rng.lognormal(size=(3000, 5))
    model = ZScoreSaliency().fit(G_ref)
    streamed = ZScoreSaliency()
    for batch in np.array_split(G_ref, [1, 700, 701, 2500]):
        streamed.partial_fit(batch)
    assert streamed.n_samples_seen_ == 3000
    np.testing.assert_allclose(streamed.mean_, model.mean_, rtol=1e-13)
    np.testing.assert_allclose(streamed.var_, model.var_, rtol=1e-12)
    refit = streamed.fit(G_ref[:10])  # fit starts afresh
    assert refit is streamed and refit.n_samples_seen_ == 10


def test_zscore_pvalues_are_normal_tail(rng):
    model = ZScoreSaliency().fit(rng.normal(size=(200, 4)))
    G = rng.normal(size=(5, 4)) * 3
    np.testing.assert_allclose(model.pvalues(G), normal_pvalue_naive(model.score(G)), rtol=1e-12)


# --- rank and select (shared) --------------------------------------------------------------


def test_rank_matches_naive_with_deterministic_ties(rng):
    model = ZScoreSaliency().fit(rng.normal(size=(50, 12)))
    G = rng.normal(size=(30, 12))
    G[:, 7] = G[:, 3] = G[:, 10]  # three columns tie in every row ... up to their own mean/std:
    model.mean_[:] = 0.0
    model.std_[:] = 1.0
    ranking = model.rank(G, k=5)
    score = model.score(G)
    for r in range(30):
        np.testing.assert_array_equal(ranking.index[r], rank_naive(score[r], 5))
        np.testing.assert_array_equal(ranking.score[r], score[r, ranking.index[r]])
    np.testing.assert_allclose(ranking.pvalue, model._pvalue_of_score(ranking.score))
    one = model.rank(G[4], k=12)
    assert one.index.shape == (12,)
    np.testing.assert_array_equal(one.index, rank_naive(score[4], 12))
    # equal scores: the smaller column first
    assert list(one.index).index(3) < list(one.index).index(7) < list(one.index).index(10)
    table = ranking.to_dict()
    assert list(table) == ["row", "rank", "filter", "score", "pvalue"] and table["row"].size == 150
    assert repr(ranking) == "Ranking(top 5 filters of 30 row(s))"


@given(arrays(np.float64, (4, 9), elements=st.integers(-3, 3).map(float)), st.integers(1, 9))
def test_rank_property_many_ties(G, k):
    model = ZScoreSaliency().fit(np.vstack([np.zeros(9), np.full(9, 2.0)]))  # mean 1, std sqrt(2)
    ranking = model.rank(G, k)
    score = model.score(G)
    for r in range(4):
        np.testing.assert_array_equal(ranking.index[r], rank_naive(score[r], k))


@pytest.mark.parametrize("k", [0, 13, 2.0, True])
def test_rank_rejects_bad_k(rng, k):
    model = ZScoreSaliency().fit(rng.normal(size=(50, 12)))
    with pytest.raises(ev.InvalidInputError, match="k must be"):
        model.rank(rng.normal(size=(2, 12)), k=k)


def test_select_is_benjamini_hochberg_per_row(rng):
    model = ZScoreSaliency().fit(rng.normal(size=(400, 40)))
    G = rng.normal(size=(25, 40))
    G[:, :4] += 4.0
    sel = model.select(G, alpha=0.1)
    p = model.pvalues(G)
    for r in range(25):
        np.testing.assert_array_equal(sel.rejected[r], bh_naive(p[r], 0.1))
        np.testing.assert_allclose(sel.pvalue_corrected[r], multipletests(p[r], method="fdr_bh")[1])
        chosen = sel.filters(r)
        assert set(chosen) == set(np.flatnonzero(sel.rejected[r]))
        assert np.all(np.diff(p[r, chosen]) >= 0)
    stepdown = model.select(G, alpha=0.1, correction="holm-sidak")
    assert stepdown.rejected.sum() <= sel.rejected.sum()
    raw = model.select(G, alpha=0.1, correction=None)
    np.testing.assert_array_equal(raw.rejected, p < 0.1)
    one = model.select(G[0], alpha=0.1)
    np.testing.assert_array_equal(one.rejected, sel.rejected[0])
    table = sel.to_dict()
    assert table["row"].size == sel.rejected.sum()
    assert "selected" in repr(sel)
    with pytest.raises(ev.InvalidInputError, match="correction"):
        model.select(G, correction="BH")
    with pytest.raises(ev.InvalidInputError, match="alpha"):
        model.select(G, alpha=0)


def test_unfitted_and_mismatched_use(rng):
    for model in (ZScoreSaliency(), POTSaliency()):
        with pytest.raises(ev.NotFittedError, match="fit"):
            model.score(np.ones((2, 3)))
        with pytest.raises(ev.NotFittedError):
            model.rank(np.ones(3), 1)
    model = ZScoreSaliency().fit(rng.normal(size=(20, 3)))
    with pytest.raises(ev.InvalidInputError, match="3"):
        model.score(np.ones((2, 4)))
    with pytest.raises(ev.InvalidInputError, match="non-finite"):
        model.score([[1.0, np.nan, 2.0]])
    with pytest.raises(ev.InvalidInputError, match="at least 2"):
        ZScoreSaliency().fit(np.ones((1, 3)))
    assert repr(ZScoreSaliency()) == "ZScoreSaliency()"
    assert repr(POTSaliency()) == "POTSaliency(threshold=0.9, method='mle', min_exceed=10)"


# --- POT -----------------------------------------------------------------------------------


def test_pot_scores_equal_fit_tails(rng):
    G_ref = _mixed_reference(rng, 1000, 6)
    G = _mixed_reference(rng, 40, 6) * 1.5
    model = POTSaliency().fit(G_ref)
    tail = fit_tails(G_ref, threshold=ev.Quantile(0.90), method="mle", progress=False)
    np.testing.assert_array_equal(model.tail_.threshold, tail.threshold)
    np.testing.assert_allclose(model.score(G), tail.score(G), rtol=1e-12)
    np.testing.assert_allclose(model.pvalues(G), tail.sf(G), rtol=1e-12)
    np.testing.assert_allclose(model.score(G[2]), tail.score(G)[2], rtol=1e-12)
    np.testing.assert_allclose(model.tail_.threshold, np.quantile(G_ref, 0.90, axis=0), rtol=1e-12)
    top = ev.TopK(50)
    other = POTSaliency(threshold=top, method="pwm").fit(G_ref)
    tail2 = fit_tails(G_ref, threshold=top, method="pwm", progress=False)
    np.testing.assert_allclose(other.score(G), tail2.score(G), rtol=1e-12)
    wrapped = POTSaliency.from_tail(tail)
    np.testing.assert_allclose(wrapped.score(G), tail.score(G), rtol=1e-12)
    assert wrapped.method == "mle"


def test_every_value_gets_a_pot_score(rng):
    G_ref = _mixed_reference(rng, 500, 3)
    model = POTSaliency().fit(G_ref)
    G = np.vstack([G_ref.min(axis=0) - 1, np.median(G_ref, axis=0), G_ref.max(axis=0) * 10])
    s = model.score(G)
    assert np.isfinite(s).all() and (s >= 0).all()
    assert np.all(s[0] <= s[1]) and np.all(s[1] < s[2])


def test_save_and_load_round_trip(rng, tmp_path):
    G_ref = _mixed_reference(rng, 300, 2)
    G = _mixed_reference(rng, 5, 2)
    for model in (ZScoreSaliency().fit(G_ref), POTSaliency(threshold=0.85).fit(G_ref)):
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = load_saliency(path)
        assert type(loaded) is type(model)
        np.testing.assert_allclose(loaded.score(G), model.score(G), rtol=1e-12)
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(ev.InvalidInputError, match="bad.npz"):
        load_saliency(bad)
    np.save(tmp_path / "matrix.npy", G)
    with pytest.raises(ev.InvalidInputError, match="not a saved model"):
        load_saliency(tmp_path / "matrix.npy")


# --- what the scorers find -----------------------------------------------------------------


def test_both_scorers_find_planted_anomalous_columns():
    rng = np.random.default_rng(3)
    n_filters = 90
    G_all = _mixed_reference(rng, 2050, n_filters // 3)
    G_ref, G = G_all[:2000], G_all[2000:].copy()
    planted = np.array([[r % n_filters, (7 * r + 31) % n_filters, (13 * r + 62) % n_filters] for r in range(50)])
    for r, cols in enumerate(planted):  # far into each column's tail: 3x its reference maximum
        G[r, cols] = 3 * G_ref[:, cols].max(axis=0)
    for model in (ZScoreSaliency().fit(G_ref), POTSaliency().fit(G_ref)):
        ranking = model.rank(G, k=3)
        for r in range(50):
            assert set(ranking.index[r]) == set(planted[r]), (model, r)
        sel = model.select(G, alpha=0.05)
        assert all(set(planted[r]) <= set(sel.filters(r)) for r in range(50))


def _mean_fdp(model, G_ref, G, rng, n_alt, alpha):
    """Plant ``n_alt`` anomalies per row (twice the reference maximum) and return mean FDP and power."""
    G = G.copy()
    truth = np.zeros(G.shape, dtype=bool)
    for r in range(G.shape[0]):
        cols = rng.choice(G.shape[1], n_alt, replace=False)
        G[r, cols] = 2 * G_ref[:, cols].max(axis=0)
        truth[r, cols] = True
    rejected = model.select(G, alpha=alpha).rejected
    false = (rejected & ~truth).sum(axis=1)
    fdp = false / np.maximum(rejected.sum(axis=1), 1)
    return fdp.mean(), (rejected & truth).sum() / truth.sum()


def test_fdr_is_controlled_over_repeated_simulations():
    rng = np.random.default_rng(11)
    alpha, n_filters, n_alt, n_ref = 0.1, 60, 6, 2000
    results = {"z normal": [], "pot mixed": [], "z mixed": []}
    for _ in range(12):
        normal = rng.normal(5.0, 1.0, (n_ref + 200, n_filters))
        mixed = _mixed_reference(rng, n_ref + 200, n_filters // 3)
        for name, G_all, model in (
            ("z normal", normal, ZScoreSaliency()),
            ("pot mixed", mixed, POTSaliency()),
            ("z mixed", mixed, ZScoreSaliency()),
        ):
            G_ref, G = G_all[:n_ref], G_all[n_ref:]  # rows to diagnose: fresh draws, then planted
            results[name].append(_mean_fdp(model.fit(G_ref), G_ref, G, rng, n_alt, alpha))
    fdr = {name: np.mean([r[0] for r in res]) for name, res in results.items()}
    power = {name: np.mean([r[1] for r in res]) for name, res in results.items()}
    # the mean FDP over 12 x 200 rows estimates the FDR; BH guarantees alpha * m0 / m
    bound = alpha * (n_filters - n_alt) / n_filters
    assert fdr["z normal"] <= bound + 0.02 and power["z normal"] == 1.0
    assert fdr["pot mixed"] <= bound + 0.02 and power["pot mixed"] == 1.0
    # normal-tail p-values of heavy-tailed columns are far too small: the z-score loses control
    assert fdr["z mixed"] > 1.5 * alpha


def test_heavy_tails_mislead_zscores_not_pot():
    """Ranking filters by z-score is ranking by tail probability only if every column is normal."""
    rng = np.random.default_rng(5)
    n_each = 10
    dists = (
        [stats.norm(loc=rng.uniform(5, 15), scale=rng.uniform(0.5, 2)) for _ in range(n_each)]
        + [stats.lognorm(s=rng.uniform(0.8, 1.2), scale=rng.uniform(0.5, 2)) for _ in range(n_each)]
        + [stats.pareto(b=rng.uniform(2.5, 4), scale=rng.uniform(0.5, 2)) for _ in range(n_each)]
    )
    G_ref = np.column_stack([d.rvs(size=5000, random_state=rng) for d in dists])
    # rows to diagnose: each filter at a known tail probability between 1e-4 and 1e-1
    true_p = 10 ** rng.uniform(-4, -1, (40, len(dists)))
    G = np.column_stack([d.isf(true_p[:, j]) for j, d in enumerate(dists)])
    truth_score = -np.log10(true_p)

    def agreement(score):
        return np.mean([stats.spearmanr(score[r], truth_score[r])[0] for r in range(40)])

    z = ZScoreSaliency().fit(G_ref).score(G)
    pot = POTSaliency().fit(G_ref).score(G)
    assert agreement(pot) > 0.97
    assert agreement(z) < 0.85
    assert np.abs(pot - truth_score).mean() < 0.15  # POT estimates log10 of the true tail probability

    def top10_overlap(score):
        return np.mean([len(set(rank_naive(score[r], 10)) & set(rank_naive(truth_score[r], 10))) / 10
                        for r in range(40)])
    assert top10_overlap(pot) >= 0.9
    assert top10_overlap(z) <= 0.75


def test_normal_columns_pot_and_zscore_agree():
    """Wang & Sato's equivalence: on normal columns the POT score is one increasing function of z."""
    rng = np.random.default_rng(8)
    means, sds = rng.uniform(1, 20, 12), rng.uniform(0.1, 3, 12)
    G_ref = rng.normal(means, sds, (20000, 12))
    z_model, pot_model = ZScoreSaliency().fit(G_ref), POTSaliency().fit(G_ref)
    z_grid = np.linspace(-2.0, 6.0, 81)
    G = means + np.outer(z_grid, sds)
    z, pot = z_model.score(G), pot_model.score(G)
    # within each column both scores order the values the same way, even far beyond the data
    for j in range(12):
        assert np.all(np.diff(z[:, j]) > 0) and np.all(np.diff(pot[:, j]) > 0)
    # and where the reference has data, the map z -> POT score is one curve, -log10 Phi(-z)
    inside = z_grid <= 3.0
    np.testing.assert_allclose(pot[inside], -np.log10(stats.norm.sf(z[inside])), atol=0.12, rtol=0.06)
    # so for a row of normal filters, ranking by z-score is ranking by POT score
    rows = rng.normal(means, sds, (200, 12)) + rng.exponential(sds, (200, 12))
    zr, pr = z_model.score(rows), pot_model.score(rows)
    taus = [stats.kendalltau(zr[r], pr[r])[0] for r in range(200)]
    assert np.mean(taus) > 0.9


def test_zscore_layer_bias_and_pot_none():
    """Under the null, the heavy-tailed layer takes the z-score's top filter too often; not POT's."""
    rng = np.random.default_rng(21)
    G_ref = np.hstack([rng.normal(5, 1, (4000, 40)), rng.lognormal(0, 1, (4000, 40))])
    layers = np.repeat(["early", "late"], 40)
    G = np.hstack([rng.normal(5, 1, (300, 40)), rng.lognormal(0, 1, (300, 40))])
    z_prof = ev.depth_profile(ZScoreSaliency().fit(G_ref).rank(G, 1), layers)
    pot_prof = ev.depth_profile(POTSaliency().fit(G_ref).rank(G, 1), layers)
    assert z_prof.pvalue < 1e-8 and z_prof.enrichment[1] > 1.3
    assert pot_prof.pvalue > 1e-3 and abs(pot_prof.enrichment[1] - 1) < 0.2


# --- SPOT's fit, as Wang & Sato's code uses it ----------------------------------------------


def _peaks(x, level=0.90):
    """SPOT's initial peaks: values above the order statistic S[int(level n)], minus it."""
    t = np.sort(x)[int(level * x.size)]
    return x[x > t] - t


def test_spot_exponential_loglik_has_the_wrong_sign(rng):
    y = rng.exponential(2e-3, 200)
    exact = stats.expon(scale=y.mean()).logpdf(y).sum()
    assert spot_log_likelihood(y, 0.0, y.mean()) == pytest.approx(-exact, rel=1e-12)
    xi, sigma = 0.2, 1e-3
    assert spot_log_likelihood(y, xi, sigma) == pytest.approx(
        stats.genpareto(xi, scale=sigma).logpdf(y).sum(), rel=1e-12)


def test_spot_choice_depends_on_units_exact_mle_does_not():
    rng = np.random.default_rng(2)
    for _ in range(5):
        y = _peaks(rng.exponential(1.0, 2000))
        small, large = spot_grimshaw(y * 1e-3), spot_grimshaw(y)
        assert small[0] != 0.0  # gradient-norm units: the exponential fit can never win
        assert large[0] == 0.0  # the same data in units of 1: it always wins
        fit_small, fit_large = gpd_fit(y * 1e-3), gpd_fit(y)
        assert fit_small.xi == pytest.approx(fit_large.xi, abs=1e-6)
        assert fit_small.sigma * 1e3 == pytest.approx(fit_large.sigma, rel=1e-5)


def test_spot_fits_gradient_norms_worse_than_exact_mle():
    rng = np.random.default_rng(4)
    deficits = []
    for draw in (
        lambda: 1e-3 * rng.exponential(1.0, 2000),
        lambda: 1e-3 * rng.gamma(2.0, 1.0, 2000),
        lambda: 1e-3 * rng.lognormal(0.0, 0.5, 2000),
        lambda: np.abs(rng.normal(0.0, 1e-3, 2000)),
    ):
        for _ in range(6):
            y = _peaks(draw())
            xi, sigma, _ = spot_grimshaw(y)
            spot_ll = stats.genpareto(xi, scale=sigma).logpdf(y).sum()
            fit = gpd_fit(y, method="mle")
            exact_ll = stats.genpareto(fit.xi, scale=fit.sigma).logpdf(y).sum()
            assert fit.loglik == pytest.approx(exact_ll, rel=1e-9, abs=1e-6)
            deficits.append(exact_ll - spot_ll)
    deficits = np.array(deficits)
    assert deficits.min() > -1e-6  # the exact MLE is never beaten
    assert np.mean(deficits > 1e-3) > 0.5  # SPOT's choice is strictly worse most of the time
    assert deficits.max() > 0.3
