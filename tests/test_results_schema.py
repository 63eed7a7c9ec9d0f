"""evtools.results: the schema the report reads. Results written by the experiments validate; a damaged
dict is refused by the path of the key; the report builds only from valid results."""
import copy

import numpy as np
import pytest

import evtools as ev
from evtools import InvalidInputError
from evtools.report import load_results, save_results
from evtools.results import SCHEMA_VERSION, validate_results
from tests.reference.fake_results import fake_results


def test_the_report_fixture_and_its_json_round_trip_validate(tmp_path):
    results = fake_results()
    assert validate_results(results) is results
    save_results(results, tmp_path / "r.json")
    validate_results(load_results(tmp_path / "r.json"))  # NaN came back as None


def test_sections_written_by_the_experiments_validate():
    pytest.importorskip("torch")
    from evtools_torch.experiments import depth_profiles, normality_by_layer

    rng = np.random.default_rng(0)
    index = ev.FilterIndex.from_layers(["a", "b"], [6, 10], [9, 9])
    G_ref, G = rng.gamma(2.0, size=(200, 16)), rng.gamma(2.0, size=(12, 16)) * 3
    pot = ev.POTSaliency().fit(G_ref)
    scorers = {"z-score": ev.ZScoreSaliency().fit(G_ref), "POT": pot}
    results = {
        "schema_version": SCHEMA_VERSION,
        "normality": normality_by_layer(G_ref, index, tail=pot.tail_),
        "depth_shift": depth_profiles(scorers, {"clean": G, "none": G[:0]}, index, k=3, n_boot=50),
    }
    validate_results(results)


def _damaged(change):
    results = copy.deepcopy(fake_results())
    change(results)
    return results


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("schema_version"), "no 'schema_version'"),
    (lambda r: r.update(schema_version=SCHEMA_VERSION + 1), "schema_version 2"),
    (lambda r: r["malicious"]["pooled"]["faulty"]["POT"].pop("hit_rate"),
     r"results\['malicious'\]\['pooled'\]\['faulty'\]\['POT'\] is missing the key 'hit_rate'"),
    (lambda r: r["repair"].update(k="1..25"), r"results\['repair'\]\['k'\] must be a list"),
    (lambda r: r["claims"][0].update(verdict="probably"), r"results\['claims'\]\[0\]\['verdict'\] must be one of"),
    (lambda r: r["normality"]["rejected"]["shapiro"].update(share=[0.1]),
     r"\['normality'\]\['rejected'\]\['shapiro'\]\['share'\] must have one entry per layer"),
    (lambda r: r["depth_shift"]["conditions"]["clean"].pop("scorers"), r"\['clean'\] is missing the key 'scorers'"),
    (lambda r: r["malicious"]["by_kind"].update(
        flip={ref: {"POT": t["POT"]} for ref, t in r["malicious"]["pooled"].items()}),
     r"\['by_kind'\]\['flip'\]\['faulty'\] is missing the key 'z-score'"),
    (lambda r: r["input_maps"].update(images=np.zeros((2, 8, 8))), r"\['images'\] must be an array with 4 axes"),
    (lambda r: r["meta"].update(timings={"train": "1 s"}), r"\['meta'\]\['timings'\]\['train'\] must be a number"),
    (lambda r: r["repair"]["rankings"]["random"]["mean_share"].update(ci=[0.1]), r"\['ci'\] must have 2 entries"),
    # lengths the plots rely on: a short list would be drawn under the wrong labels or fail inside matplotlib
    (lambda r: r["meta"].update(timings={"train": None}), r"\['timings'\]\['train'\] must be a number"),
    (lambda r: [s.update(enrichment=s["enrichment"][1:]) for s in r["depth_shift"]["conditions"]["clean"]
                ["scorers"].values()], r"\['enrichment'\] must have one entry per layer"),
    (lambda r: r["depth_shift"].update(expected_share=r["depth_shift"]["expected_share"][1:]),
     r"\['depth_shift'\]\['expected_share'\] must have one entry per layer"),
    (lambda r: r["malicious"]["pooled"]["faulty"]["POT"]["hit_rate_by_depth"]["value"].pop(),
     r"\['hit_rate_by_depth'\]\['value'\] must have one entry per layer"),
    (lambda r: r["repair"]["rankings"]["random"].update(ci_low=r["repair"]["rankings"]["random"]["ci_low"][1:]),
     r"\['ci_low'\] must have one entry per k"),
    (lambda r: [s.update(maps=s["maps"][1:]) for s in r["input_maps"]["scorers"].values()],
     r"\['maps'\] must have one entry per image"),
])
def test_damaged_results_are_refused_by_the_key(change, message):
    results = _damaged(change)
    with pytest.raises(InvalidInputError, match=message):
        validate_results(results)
    pytest.importorskip("matplotlib")
    from evtools.report import build_report

    with pytest.raises(InvalidInputError, match=message):
        build_report(results)


def test_keys_the_report_does_not_read_are_kept():
    results = fake_results()
    results["repair"]["notes"] = object()
    validate_results(results)
    with pytest.raises(InvalidInputError, match="must be a dict"):
        validate_results([results])
