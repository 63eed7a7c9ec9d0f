"""Every argument checked at the boundary (docs/guarantees.md, "Arguments").

In the spirit of scikit-learn's common checks: every parameter of every public
function, class and method of the core is walked through odd values (0,
negative, NaN, inf, a string, None, a list, a huge number). Each call must
either return (the value was acceptable) or raise an ``EvtoolsError`` whose
message names the parameter; any other exception (``TypeError``,
``ZeroDivisionError``, ``MemoryError``, numpy's own ``ValueError`` ...) fails.
"""
import math

import numpy as np
import pytest

import evtools as ev
from evtools import perturb
from evtools.claims import bootstrap_ratios

ODD = {
    "zero": 0,
    "negative": -3,
    "negative_float": -2.5,
    "nan": math.nan,
    "inf": math.inf,
    "string": "x",
    "none": None,
    "list": [0.5, 0.7],
    "huge": 10**30,
    "huge_float": 1e308,
}

_rng = np.random.default_rng(0)
G = _rng.gamma(2.0, size=(400, 3))
X1 = ev.GPD(1.0, 0.1).rvs(300, random_state=1)
TAIL = ev.fit_tails(G, ev.Quantile(0.9), progress=False)
ZS = ev.ZScoreSaliency().fit(G)
POT = ev.POTSaliency().fit(G)
SPOT_FIT = ev.SPOT(level=0.9).fit(G[:300])
ACC = ev.TopKAccumulator(50)
ACC.update(G)
IMAGES = _rng.random((2, 1, 8, 8))
SAL = _rng.random((2, 8, 8))


def _f(batch):
    return batch.reshape(batch.shape[0], -1).mean(axis=1)


# name -> (callable taking the keyword arguments, the valid keyword arguments)
CASES = {
    "fit_tails": (ev.fit_tails, dict(G=G, threshold=ev.Quantile(0.9), method="mle", min_exceed=10,
                                      n_samples=None, n_knots=64, block_size=None, progress=False)),
    "gpd_fit": (ev.gpd_fit, dict(x=X1, method="mle")),
    "GPD": (lambda **kw: ev.GPD(**kw).sf(1.0), dict(sigma=1.0, xi=0.1)),
    "GPD.pdf": (ev.GPD(1.0, 0.1).pdf, dict(x=1.0)),
    "GPD.logpdf": (ev.GPD(1.0, 0.1).logpdf, dict(x=1.0)),
    "GPD.cdf": (ev.GPD(1.0, 0.1).cdf, dict(x=1.0)),
    "GPD.sf": (ev.GPD(1.0, 0.1).sf, dict(x=1.0)),
    "GPD.logsf": (ev.GPD(1.0, 0.1).logsf, dict(x=1.0)),
    "GPD.isf": (ev.GPD(1.0, 0.1).isf, dict(q=0.1)),
    "GPD.ppf": (ev.GPD(1.0, 0.1).ppf, dict(p=0.1)),
    "GPD.rvs": (ev.GPD(1.0, 0.1).rvs, dict(size=5, random_state=0)),
    "Quantile": (lambda **kw: ev.Quantile(**kw).select(G), dict(q=0.9)),
    "TopK": (lambda **kw: ev.TopK(**kw).select(G), dict(k=40)),
    "ForwardStop": (lambda **kw: ev.ForwardStop(**kw).select(G),
                    dict(alpha=0.1, candidates=None, test="ad", min_exceed=25)),
    "ThresholdRule.select": (ev.Quantile(0.9).select, dict(G=G)),
    "ThresholdRule.from_dict": (ev.ThresholdRule.from_dict, dict(spec=ev.Quantile(0.9).to_dict())),
    "TailModel.sf": (TAIL.sf, dict(G=G)),
    "TailModel.logsf": (TAIL.logsf, dict(G=G)),
    "TailModel.score": (TAIL.score, dict(G=G)),
    "TailModel.isf": (TAIL.isf, dict(q=0.01)),
    "ZScoreSaliency.fit": (ev.ZScoreSaliency().fit, dict(G_ref=G)),
    "ZScoreSaliency.partial_fit": (ev.ZScoreSaliency().partial_fit, dict(G_batch=G)),
    "ZScoreSaliency.score": (ZS.score, dict(G=G)),
    "ZScoreSaliency.pvalues": (ZS.pvalues, dict(G=G)),
    "ZScoreSaliency.rank": (ZS.rank, dict(G=G, k=2)),
    "ZScoreSaliency.select": (ZS.select, dict(G=G, alpha=0.05, correction="fdr_bh")),
    "POTSaliency": (lambda **kw: ev.POTSaliency(**kw).fit(G), dict(threshold=0.9, method="mle", min_exceed=10)),
    "POTSaliency.score": (POT.score, dict(G=G)),
    "POTSaliency.rank": (POT.rank, dict(G=G, k=2)),
    "POTSaliency.select": (POT.select, dict(G=G, alpha=0.05, correction="fdr_bh")),
    "normality_tests": (ev.normality_tests, dict(G=G, tests=("shapiro", "anderson"), correction="fdr_bh",
                                                 alpha=0.05)),
    "NormalityReport.summary": (ev.normality_tests(G, tests=("shapiro",)).summary,
                                dict(layer_of_column=np.array([0, 0, 1]))),
    "SPOT": (lambda **kw: ev.SPOT(**kw).fit(G[:300]).update(G[300:]),
             dict(q=1e-3, level=0.9, min_exceed=10, method="mle", refit_every=1)),
    "DSPOT": (lambda **kw: ev.DSPOT(**kw).fit(G[:300]).update(G[300:]),
              dict(depth=5, q=1e-3, level=0.9, min_exceed=10, method="mle", refit_every=1)),
    "SPOT.fit": (ev.SPOT(level=0.9).fit, dict(X_init=G[:300])),
    "SPOT.update": (SPOT_FIT.update, dict(rows=G[300:310])),
    "SPOT.peaks": (SPOT_FIT.peaks, dict(column=1)),
    "gof_columns": (ev.gof_columns, dict(Y=np.sort(np.abs(G), axis=0)[-40:], counts=np.array([40, 40, 40]),
                                         sigma=np.ones(3), xi=np.full(3, 0.1), pvalue="table", n_boot=99,
                                         random_state=0)),
    "gpd_gof": (ev.gpd_gof, dict(x=X1, sigma=1.0, xi=0.1, test=("ad", "cvm"), pvalue="table", n_boot=99,
                                 random_state=0)),
    "mean_residual_life": (ev.mean_residual_life, dict(x=X1, thresholds=None, level=0.95)),
    "parameter_stability": (ev.parameter_stability, dict(x=X1, thresholds=None, level=0.95, min_exceed=30)),
    "depth_profile": (ev.depth_profile, dict(ranks=np.array([[0, 1], [2, 0]]), layer_of_column=np.array([0, 0, 1]),
                                             k=None)),
    "TopKAccumulator": (lambda **kw: ev.TopKAccumulator(**kw).update(G), dict(k=50)),
    "TopKAccumulator.update": (ev.TopKAccumulator(50).update, dict(block=G)),
    "TopKAccumulator.fit": (ACC.fit, dict(method="mle")),
    "FilterIndex.from_layers": (ev.FilterIndex.from_layers, dict(names=["a", "b"], n_channels=[2, 1],
                                                                 n_weights=[9, 9])),
    "perturb.occlusion": (perturb.occlusion, dict(f=_f, x=IMAGES, window=4, stride=2, baseline="zero",
                                                  batch_size=64, progress=False)),
    "perturb.deletion": (perturb.deletion, dict(f=_f, x=IMAGES, saliency=SAL, baseline="zero", step=8,
                                                batch_size=64, progress=False)),
    "perturb.make_baseline": (perturb.make_baseline, dict(x=IMAGES, baseline="zero")),
    "claims.bootstrap_ratios": (bootstrap_ratios, dict(num=G[:20, :2], den=np.ones((20, 2)), groups=None,
                                                        n_boot=50, seed=0)),
}

PARAMS = [(name, param) for name, (_, kwargs) in CASES.items() for param in kwargs]


@pytest.mark.parametrize("name, param", PARAMS, ids=[f"{n}-{p}" for n, p in PARAMS])
def test_odd_values_give_a_result_or_an_error_naming_the_argument(name, param):
    func, kwargs = CASES[name]
    func(**kwargs)  # the valid call works
    raw = []
    for label, value in ODD.items():
        try:
            func(**{**kwargs, param: value})
        except ev.EvtoolsError as exc:
            if param not in str(exc):
                raw.append(f"{label}: EvtoolsError not naming {param!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raw.append(f"{label}: {type(exc).__name__}: {exc}")
    assert not raw, f"{name}({param}=...):\n" + "\n".join(raw)


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1", "0", "x"])
def test_cli_threshold_odd_values_give_a_usage_error(tmp_path, capsys, value):
    from evtools.cli import main

    np.save(tmp_path / "G.npy", G)
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "m.npz"), "--threshold", value]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--threshold" in err.splitlines()[-1]


def test_the_first_non_finite_value_is_named_by_row_then_column():
    """In storage order: the first row holding one (past the first checked chunk), its first column."""
    G = np.ones((3000, 700))  # 1497 rows per checked chunk
    G[2000, 5], G[2000, 3], G[2500, 0], G[1999, 699] = np.nan, np.inf, np.nan, -np.inf
    with pytest.raises(ev.InvalidInputError, match=r"\(-inf\) at row 1999, column 699"):
        ev.fit_tails(G)
    G[1999, 699] = 1.0
    with pytest.raises(ev.InvalidInputError, match=r"\(inf\) at row 2000, column 3"):
        ev.fit_tails(G)


def test_a_legacy_random_state_seeds_the_same_draws():
    """``random_state=np.random.RandomState(s)`` works where a Generator does, reproducibly."""
    draws = [ev.gpd_gof(X1, 1.0, 0.1, pvalue="bootstrap", n_boot=49, random_state=np.random.RandomState(3)).pvalue
             for _ in range(2)]
    assert draws[0] == draws[1]
