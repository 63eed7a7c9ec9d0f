"""The evtools command line, end to end on files written here, and its failures on bad files."""
import csv
import io
import json
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import evtools as ev
from evtools._io import read_matrix
from evtools.cli import COMMAND_GROUP, build_parser, discover_commands, main
from evtools.saliency import load_saliency
from tests.subprocess_helpers import ENV, run_python


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    G_ref = np.hstack([rng.normal(5, 1, (600, 6)), rng.lognormal(0, 1, (600, 6))])
    G = np.hstack([rng.normal(5, 1, (4, 6)), rng.lognormal(0, 1, (4, 6))])
    G[0, 2] = 50.0  # planted anomaly in row 0, filter 2
    paths = {"G_ref": tmp_path / "G_ref.npy", "G": tmp_path / "G.npy"}
    np.save(paths["G_ref"], G_ref)
    np.save(paths["G"], G)
    paths["layers"] = tmp_path / "layers.txt"
    paths["layers"].write_text("\n".join(["conv1"] * 6 + ["conv2"] * 6) + "\n")
    return tmp_path, paths, G_ref, G


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _table(text, fmt):
    if fmt == "json":
        return json.loads(text)
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("scorer", ["pot", "zscore"])
def test_fit_then_score(files, capsys, scorer):
    tmp, paths, G_ref, G = files
    model_path = tmp / f"{scorer}.npz"
    rc, out, err = _run(capsys, "fit", paths["G_ref"], "-o", model_path, "--scorer", scorer)
    assert rc == 0 and err == "" and model_path.exists() and "saved to" in out
    model = load_saliency(model_path)
    assert model.n_features_in_ == 12

    rc, out, err = _run(capsys, "score", model_path, paths["G"], "--top", 3)
    assert rc == 0 and err == ""
    header = out.splitlines()[1].split()
    assert header == ["row", "rank", "filter", "score", "pvalue"]
    assert len(out.splitlines()) == 2 + 4 * 3
    assert out.splitlines()[2].split()[:3] == ["0", "1", "2"]  # the planted filter ranks first

    rc, out, _ = _run(capsys, "score", model_path, paths["G"], "--top", 3, "--format", "csv")
    rows = _table(out, "csv")
    ranking = model.rank(G, 3)
    np.testing.assert_array_equal([int(r["filter"]) for r in rows], ranking.index.ravel())
    np.testing.assert_allclose([float(r["score"]) for r in rows], ranking.score.ravel(), rtol=1e-12)


def test_score_outputs_json_and_csv_files_with_layers_and_alpha(files, capsys):
    tmp, paths, G_ref, G = files
    _run(capsys, "fit", paths["G_ref"], "-o", tmp / "tails.npz", "--threshold", "0.85")
    model = load_saliency(tmp / "tails.npz")
    assert str(model.tail_.rule) == repr(ev.Quantile(0.85))
    rc, out, _ = _run(capsys, "score", tmp / "tails.npz", paths["G"], "--top", 20,
                      "--layers", paths["layers"], "-o", tmp / "top.json")
    assert rc == 0 and "wrote 48 rows" in out  # --top is capped at the 12 filters
    rows = json.loads((tmp / "top.json").read_text())
    assert rows[0] == {**rows[0], "row": 0, "rank": 1, "filter": 2, "layer": "conv1"}
    rc, out, _ = _run(capsys, "score", tmp / "tails.npz", paths["G"], "--alpha", 0.05, "-o", tmp / "sel.csv")
    rows = _table((tmp / "sel.csv").read_text(), "csv")
    sel = model.select(G, alpha=0.05)
    assert {(int(r["row"]), int(r["filter"])) for r in rows} == set(zip(*np.nonzero(sel.rejected)))
    assert (0, 2) in {(int(r["row"]), int(r["filter"])) for r in rows}
    assert "pvalue_corrected" in rows[0]


def test_topk_threshold_and_method_options(files, capsys):
    tmp, paths, G_ref, _ = files
    rc, out, _ = _run(capsys, "fit", paths["G_ref"], "-o", tmp / "t.npz", "--threshold", 50, "--method", "pwm")
    assert rc == 0
    tail = load_saliency(tmp / "t.npz").tail_
    np.testing.assert_array_equal(tail.n_exceed, 50)
    assert tail.method == "pwm"


def test_normality_summary_and_per_column(files, capsys):
    tmp, paths, G_ref, _ = files
    rc, out, err = _run(capsys, "normality", paths["G_ref"], "--layers", paths["layers"])
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("NormalityReport(12 columns")
    assert lines[2].split()[:2] == ["layer", "n_filters"]
    conv2 = lines[4].split()
    assert conv2[0] == "conv2" and all(float(v) == 1.0 for v in conv2[2:])  # lognormal layer
    rc, out, _ = _run(capsys, "normality", paths["G_ref"], "--per-column", "--tests", "shapiro,lilliefors",
                      "--correction", "none", "--format", "json")
    rows = json.loads(out)
    report = ev.normality_tests(G_ref, tests=("shapiro", "lilliefors"), correction=None)
    assert len(rows) == 12 and set(rows[0]) == {"column", "shapiro_statistic", "shapiro_pvalue",
                                                "lilliefors_statistic", "lilliefors_pvalue"}
    np.testing.assert_allclose([r["shapiro_pvalue"] for r in rows], report["shapiro"].pvalue, rtol=1e-12)
    rc, out, _ = _run(capsys, "normality", paths["G_ref"], "-o", tmp / "norm.csv")
    assert rc == 0 and len(_table((tmp / "norm.csv").read_text(), "csv")) == 1


def test_non_finite_results_are_null_in_json_and_empty_in_csv(files, capsys):
    tmp, paths, G_ref, _ = files
    dead = G_ref.copy()
    dead[:, 3] = 0.0  # a dead filter: its normality p-values are NaN
    np.save(tmp / "dead.npy", dead)
    rc, out, _ = _run(capsys, "normality", tmp / "dead.npy", "--per-column", "--tests", "shapiro", "--format", "json")
    assert rc == 0 and json.loads(out)[3]["shapiro_pvalue"] is None
    rc, out, _ = _run(capsys, "normality", tmp / "dead.npy", "--per-column", "--tests", "shapiro", "--format", "csv")
    assert _table(out, "csv")[3]["shapiro_pvalue"] == "" and _table(out, "csv")[3]["shapiro_rejected"] == "False"
    rc, out, _ = _run(capsys, "normality", tmp / "dead.npy", "--per-column", "--tests", "shapiro")
    assert out.splitlines()[5].split()[2] == "nan"


def test_reads_csv_and_npz(files, capsys):
    tmp, paths, G_ref, _ = files
    with open(tmp / "G_ref.csv", "w") as fh:
        fh.write(",".join(f"f{j}" for j in range(12)) + "\n")
        np.savetxt(fh, G_ref, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(read_matrix(tmp / "G_ref.csv"), G_ref)
    np.savetxt(tmp / "plain.csv", G_ref, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(read_matrix(tmp / "plain.csv"), G_ref)
    np.savez(tmp / "one.npz", grads=G_ref)
    np.savez(tmp / "two.npz", G=G_ref, other=G_ref[:2])
    np.testing.assert_array_equal(read_matrix(tmp / "one.npz"), G_ref)
    np.testing.assert_array_equal(read_matrix(tmp / "two.npz"), G_ref)
    np.testing.assert_array_equal(read_matrix(tmp / "two.npz", key="other"), G_ref[:2])
    rc, out, _ = _run(capsys, "normality", tmp / "G_ref.csv", "--tests", "jarque_bera")
    assert rc == 0 and "jarque_bera" in out


def _bad_files(tmp):
    bad = {}
    bad["missing"] = (tmp / "nope.npy", "no such file")
    (tmp / "g.txt").write_text("1,2\n")
    bad["suffix"] = (tmp / "g.txt", "unknown file type")
    np.save(tmp / "vector.npy", np.arange(5.0))
    bad["1-D"] = (tmp / "vector.npy", "must be 2-D")
    np.save(tmp / "cube.npy", np.zeros((2, 3, 4)))
    bad["3-D"] = (tmp / "cube.npy", "must be 2-D")
    np.save(tmp / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    bad["strings"] = (tmp / "text.npy", "real numbers")
    np.save(tmp / "objects.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    bad["pickled"] = (tmp / "objects.npy", "cannot read")
    nan = np.ones((10, 3))
    nan[4, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    bad["nan"] = (tmp / "nan.npy", "non-finite value (nan) at row 4, column 1")
    (tmp / "words.csv").write_text("1,2,3\n4,five,6\n")
    bad["non-numeric csv"] = (tmp / "words.csv", "five")
    (tmp / "ragged.csv").write_text("1,2,3\n4,5\n")
    bad["ragged csv"] = (tmp / "ragged.csv", "not a numeric CSV")
    (tmp / "nan.csv").write_text("1,2\n3,nan\n")
    bad["nan csv"] = (tmp / "nan.csv", "non-finite")
    (tmp / "empty.csv").write_text("")
    bad["empty csv"] = (tmp / "empty.csv", "empty file")
    (tmp / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    bad["corrupt npz"] = (tmp / "corrupt.npz", "cannot read")
    np.savez(tmp / "many.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))
    bad["ambiguous npz"] = (tmp / "many.npz", "--key")
    return bad


def test_bad_matrix_files_fail_cleanly(files, capsys):
    tmp, paths, _, _ = files
    for what, (path, message) in _bad_files(tmp).items():
        for argv in (("normality", path), ("fit", path, "-o", tmp / "m.npz")):
            rc, out, err = _run(capsys, *argv)
            assert rc == 1, what
            assert err.startswith("evtools: error: ") and err.count("\n") == 1, (what, err)
            assert message in err, (what, err)
            assert "Traceback" not in err and out == "", what


def test_bad_model_and_mismatched_columns_fail_cleanly(files, capsys):
    tmp, paths, G_ref, _ = files
    _run(capsys, "fit", paths["G_ref"], "-o", tmp / "tails.npz")
    np.save(tmp / "narrow.npy", G_ref[:, :5])
    (tmp / "five.txt").write_text("a\nb\nc\nd\ne\n")
    cases = [
        (("score", tmp / "tails.npz", tmp / "narrow.npy"), "5 columns but the model was fitted on 12"),
        (("score", paths["G"], paths["G"]), "not a saved model"),
        (("score", tmp / "nope.npz", paths["G"]), "nope.npz"),
        (("score", tmp / "tails.npz", paths["G"], "--top", 0), "--top"),
        (("score", tmp / "tails.npz", paths["G"], "--alpha", 2), "alpha"),
        (("score", tmp / "tails.npz", paths["G"], "--layers", tmp / "none.txt"), "none.txt"),
        (("normality", paths["G_ref"], "--tests", "shapiro,ks"), "unknown normality test"),
        (("normality", paths["G_ref"], "--layers", tmp / "five.txt"), "5 labels but there are 12 filters"),
        (("normality", paths["G_ref"], "--layers", paths["G"]), "not UTF-8 text"),
    ]
    for argv, message in cases:
        rc, out, err = _run(capsys, *argv)
        assert rc == 1 and message in err and err.count("\n") == 1, (argv, err)


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["fit", "x.npy"]) == 2  # -o is required
    assert main(["fit", "x.npy", "-o", "m.npz", "--threshold", "1.5"]) == 2
    assert main(["score", "m.npz", "G.npy", "--correction", "bh"]) == 2
    assert main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out


@pytest.mark.slow
def test_module_and_console_script(files):
    tmp, paths, _, _ = files
    res = subprocess.run([sys.executable, "-m", "evtools", "normality", str(paths["G_ref"]), "--tests",
                          "anderson", "--format", "csv"], capture_output=True, text=True, check=False, env=ENV)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "layer,n_filters,rejected_anderson"
    script = shutil.which("evtools")  # the console script of an installed evtools
    assert script is not None, "evtools is not installed: pip install -e ."
    res = subprocess.run([script, "score", str(tmp / "none.npz"), str(paths["G"])],
                         capture_output=True, text=True, check=False, env=ENV)
    assert res.returncode == 1 and res.stderr.startswith("evtools: error:") and "Traceback" not in res.stderr


# --- subcommands of other packages (entry-point group evtools.commands) -------------------


def _add_hello(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world")
    p.set_defaults(run=lambda args: print(f"hello {args.name}") or 0)


HELLO = EntryPoint("hello", "tests.test_cli:_add_hello", COMMAND_GROUP)
MISSING = EntryPoint("absent", "no_such_adapter_pkg.cli:add [torch,plot]", COMMAND_GROUP)


def test_discovered_command_is_added_and_runs(capsys):
    parser = build_parser(["hello"], entry_points=[HELLO])
    args = parser.parse_args(["hello", "--name", "ev"])
    assert args.run(args) == 0
    assert capsys.readouterr().out == "hello ev\n"
    assert "hello" in parser.format_help()


def test_discovery_keeps_one_entry_point_per_name():
    other = EntryPoint("hello", "elsewhere:add", COMMAND_GROUP)
    assert discover_commands([HELLO, other]) == {"hello": HELLO}


def test_core_command_does_not_load_other_packages():
    exploding = EntryPoint("boom", "tests.test_cli:no_such_function", COMMAND_GROUP)
    parser = build_parser(["fit", "x.npy", "-o", "m"], entry_points=[exploding])
    assert "boom" not in parser.format_help()
    with pytest.raises(AttributeError):  # the same entry point fails when it is loaded
        build_parser(["boom"], entry_points=[exploding])


def test_missing_adapter_says_how_to_get_it():
    assert "absent" in build_parser([], entry_points=[MISSING]).format_help()  # listed without importing it
    parser = build_parser(["absent", "--out", "x"], entry_points=[MISSING])
    assert "pip install 'evtools[torch,plot]'" in parser.format_help()
    args = parser.parse_args(["absent", "--out", "x"])
    with pytest.raises(ev.EvtoolsError, match=r"no_such_adapter_pkg.*pip install 'evtools\[torch,plot\]'"):
        args.run(args)


def test_demo_is_registered_by_the_torch_adapter():
    """The source tree (or the installed metadata) registers `demo` through the entry-point group."""
    ep = discover_commands()["demo"]
    assert ep.value.split(":")[0] == "evtools_torch.cli" and set(ep.extras) == {"torch", "plot"}
    assert "demo" in build_parser([]).format_help()


def test_help_and_version_do_not_import_the_adapters():
    """`evtools --help` lists `demo` without importing PyTorch; `evtools demo --help` loads it."""
    code = ("import sys; from evtools.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    for argv, torch_loaded in ((["--help"], "False"), (["--version"], "False"), (["fit", "--help"], "False")):
        out = run_python(code, *argv, timeout=120)
        assert out.stdout.strip().splitlines()[-1] == torch_loaded, (argv, out.stdout, out.stderr)
