"""`evtools demo --quick`: the whole pipeline once per session, its results and its claims.

The demo runs once (module-scoped fixture) through the command line; the
tests read what it wrote. The experiments' statistics helpers are checked
against plain computations.
"""
import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from evtools.cli import main  # noqa: E402
from evtools_torch.experiments import VERDICTS, bootstrap_ratios, verdict, wilson_interval  # noqa: E402

SECTIONS = ("meta", "normality", "malicious", "depth_shift", "repair", "input_maps", "claims")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--quick", "--out", str(out), "--seed", "0", "--no-progress"])
    assert code == 0
    return out, json.loads((out / "results.json").read_text()), printed.getvalue()


def test_results_hold_every_section(demo):
    _, results, _ = demo
    for section in SECTIONS:
        assert results[section], section
    meta = results["meta"]
    assert meta["quick"] and meta["seed"] == 0
    assert meta["test_accuracy"] > 0.5
    n_layers = len(meta["layers"])
    norm = results["normality"]
    assert len(norm["rejected"]["shapiro"]["share"]) == n_layers
    assert "gpd_anderson_darling" in norm["rejected"]
    depth = results["depth_shift"]
    assert {"clean", "gaussian_noise", "gaussian_blur", "contrast", "brightness", "shifted domain"} <= set(
        depth["conditions"])
    for cond in depth["conditions"].values():
        for scorer in cond.get("scorers", {}).values():
            assert len(scorer["observed_share"]) == n_layers
            assert 0 <= scorer["bias_ci"][0] <= scorer["bias"] <= scorer["bias_ci"][1] <= 1
    repair = results["repair"]
    assert repair["k"] == list(range(1, 26))
    assert {"z-score", "POT 0.80", "POT 0.85", "POT 0.90", "POT 0.95", "random"} == set(repair["rankings"])
    maps = results["input_maps"]
    assert np.asarray(maps["class_maps"]).shape[1:] == (32, 32)
    assert {"z-score", "POT"} == set(maps["scorers"])
    for claim in results["claims"]:
        assert claim["verdict"] in VERDICTS


def test_report_shows_every_experiment(demo):
    out, _, _ = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("Claims at a glance", "assumptions hold", "malicious filters", "Layer-depth bias",
                    "Repairing errors", "Where in the image"):
        assert heading in page
    assert page.count("data:image/png;base64,") == 6
    assert "http://" not in page and "https://" not in page


def test_the_model_is_cached(demo):
    out, results, _ = demo
    assert list((out / "cache").glob("demo-vgg-*.pt"))
    assert not results["meta"]["model_cached"]  # trained by this run, loaded by the next


def _pot_detection(results, reference):
    mal = results["malicious"]
    return mal["pooled"][reference]["POT"]["hit_rate"], mal["random_hit_rate"]


def test_pot_hit_rate_is_reported_with_its_interval(demo):
    _, results, _ = demo
    for reference in ("faulty", "original"):
        hit, random_rate = _pot_detection(results, reference)
        assert hit["ci"][0] <= hit["value"] <= hit["ci"][1]
        assert random_rate == pytest.approx(5 / results["malicious"]["n_filters"])
    assert results["malicious"]["n_inputs"] > 0


@pytest.mark.xfail(strict=True, reason=(
    "measured, not assumed: on the --quick demo network POT's top-5 does not find implanted filters more often "
    "than 5 random filters with either reference (the report says 'not shown'; on the full demo network it held "
    "by a small margin, see the README); strict, so this test fails loudly if it starts to hold"))
@pytest.mark.parametrize("reference", ["faulty", "original"])
def test_pot_finds_implanted_filters_more_often_than_random_filters(demo, reference):
    _, results, _ = demo
    hit, random_rate = _pot_detection(results, reference)
    assert hit["ci"][0] > random_rate


def test_repair_along_either_scorer_beats_random_filters(demo):
    _, results, _ = demo
    repair = results["repair"]
    random_share = repair["rankings"]["random"]["mean_share"]["value"]
    for name in ("z-score", "POT 0.90"):
        assert repair["rankings"][name]["mean_share"]["value"] > random_share, name


def test_summary_table_is_printed(demo):
    _, results, printed = demo
    assert "verdict" in printed and "report.html" in printed
    assert printed.count("\n") >= len(results["claims"]) + 2


# --- statistics helpers ---------------------------------------------------------------------


def test_wilson_interval_equals_statsmodels():
    lo, hi = wilson_interval([0, 3, 10], [10, 10, 10])
    for s, a, b in zip((0, 3, 10), lo, hi):
        assert (a, b) == pytest.approx(proportion_confint(s, 10, method="wilson"))
    assert np.isnan(wilson_interval(0, 0)[0])


def test_bootstrap_ratios_match_a_plain_loop():
    rng = np.random.default_rng(1)
    num, den = rng.uniform(0, 1, (30, 2)), rng.uniform(1, 2, (30, 2))
    groups = np.repeat([0, 1, 2], 10)
    estimate, draws = bootstrap_ratios(num, den, groups, n_boot=300, seed=5)
    assert estimate == pytest.approx(num.sum(0) / den.sum(0))
    assert draws.shape == (300, 2)
    # plain two-stage resampling has the same mean and spread
    plain = []
    for _ in range(3000):
        chosen = rng.integers(0, 3, 3)
        rows = np.concatenate([g * 10 + rng.integers(0, 10, 10) for g in chosen])
        plain.append(num[rows].sum(0) / den[rows].sum(0))
    plain = np.asarray(plain)
    assert draws.mean(0) == pytest.approx(plain.mean(0), abs=0.02)
    assert draws.std(0) == pytest.approx(plain.std(0), rel=0.25)


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0.1, 0.3, "held"), (-0.1, 0.3, "not shown"), (-0.3, -0.1, "reversed"), (np.nan, np.nan, "not shown"),
])
def test_verdict(lo, hi, expected):
    assert verdict(lo, hi) == expected
    flipped = {"held": "reversed", "reversed": "held", "not shown": "not shown"}[expected]
    assert verdict(lo, hi, higher_is_claimed=False) == flipped
