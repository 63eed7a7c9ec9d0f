"""evtools.report: the HTML report is a self-contained function of a results dict (no torch)."""
import base64
import json
import re

import pytest

pytest.importorskip("matplotlib")

from evtools import InvalidInputError  # noqa: E402
from evtools.report import build_report, format_claims, load_results, main_figure, save_results  # noqa: E402
from evtools.results import SCHEMA_VERSION  # noqa: E402
from tests.reference.fake_results import fake_results  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    html = build_report(fake_results(), path)
    assert path.read_text(encoding="utf-8") == html
    return html


def test_every_section_is_rendered(page):
    for heading in ("Claims at a glance", "assumptions hold", "malicious filters", "Layer-depth bias",
                    "Repairing errors", "Where in the image"):
        assert heading in page
    # summary figure + one per section
    assert page.count("<img") == 6


def test_page_is_self_contained_with_valid_pngs(page):
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 6
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


def test_verdicts_and_numbers_come_from_the_results(page):
    assert page.count('class="badge held"') >= 3
    assert 'class="badge reversed"' in page and 'class="badge open"' in page
    # the conditions' verdict tally is computed, not written by hand
    assert "held in 0 of 3 conditions and was reversed in 3" in page
    # a condition without errors is listed, not dropped
    assert "no errors" in page
    assert "45.0 % [30.0 %, 60.0 %]" in page


def test_missing_sections_are_left_out():
    results = fake_results()
    partial = {"schema_version": SCHEMA_VERSION, "meta": results["meta"], "repair": results["repair"],
               "claims": results["repair"]["claims"]}
    html = build_report(partial)
    assert "Repairing errors" in html and "malicious filters" not in html
    assert html.count("<img") == 1


def test_results_round_trip_through_json(tmp_path):
    results = fake_results()
    path = tmp_path / "results.json"
    save_results(results, path)
    text = path.read_text()
    json.loads(text)  # strict JSON: no NaN tokens
    assert "NaN" not in text
    back = load_results(path)
    assert back["malicious"]["pooled"]["original"]["POT"]["hit_rate_by_depth"]["value"] == [0.5, None, 0.7]
    assert build_report(back).count("<img") == 6  # a report rebuilt from the JSON alone


def test_unserialisable_values_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot write a object"):
        save_results({"x": object()}, tmp_path / "r.json")
    with pytest.raises(InvalidInputError, match="must be a dict"):
        build_report([1, 2])


def test_format_claims_is_an_aligned_table():
    text = format_claims(fake_results()["claims"])
    lines = text.splitlines()
    assert lines[0].startswith("verdict")
    assert len(lines) == 1 + len(fake_results()["claims"])
    claim_column = lines[0].index("claim")
    assert lines[1][claim_column:] == "gradient norms are not normal"
    assert "held" in text and "reversed" in text


def test_main_figure_has_four_panels():
    fig = main_figure(fake_results())
    assert len(fig.axes) == 4
    assert all(ax.has_data() for ax in fig.axes)
