"""`evtools demo --quick`: the whole pipeline once per session, its results and its claims.

The demo runs once (module-scoped fixture, about three minutes on a busy 2-core machine) through
the command line; the tests read what it wrote. The statistics helpers it uses are unit-tested in
``tests/test_claim_statistics.py``.
"""
import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from evtools.claims import VERDICTS  # noqa: E402
from evtools.cli import main  # noqa: E402
from evtools.results import SCHEMA_VERSION, validate_results  # noqa: E402

pytestmark = pytest.mark.slow

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
    assert results["schema_version"] == SCHEMA_VERSION
    validate_results(results)  # the JSON the demo wrote follows the schema the report reads
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
