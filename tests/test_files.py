"""Saved files are untrusted input; saves are atomic; the path written is the path reported and loaded.

See docs/guarantees.md ("Files", "Saves"). Anything that might crash the
interpreter on a damaged file (numba kernels index without bounds checks) runs
in a subprocess, so a segmentation fault fails the test instead of killing pytest.
"""
import json
import os

import numpy as np
import pytest

import evtools as ev
from evtools.cli import main
from evtools.saliency import load_saliency
from tests.subprocess_helpers import make_fifo, run_python


def _reference(rng, n=400, F=4):
    return np.hstack([rng.lognormal(0, 1, (n, F - 1)), np.zeros((n, 1))])  # one dead column


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One file of every kind evtools saves, keyed by loader name: {name: (path, loader)}."""
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("saved")
    G = _reference(rng)
    spot = ev.DSPOT(depth=3, q=1e-3, level=0.9).fit(G)
    spot.update(G[:20] * 1.5)
    index = ev.FilterIndex.from_layers(["conv1", "conv2"], [3, 1], [27, 9])
    files = {
        "TailModel.load": (ev.fit_tails(G, progress=False).save(tmp / "tail.npz"), ev.TailModel.load),
        "SPOT.load": (spot.save(tmp / "spot.npz"), ev.SPOT.load),
        "load_saliency(zscore)": (ev.ZScoreSaliency().fit(G).save(tmp / "z.npz"), load_saliency),
        "load_saliency(pot)": (ev.POTSaliency().fit(G).save(tmp / "pot.npz"), load_saliency),
        "FilterIndex.load": (index.save(tmp / "index.npz"), ev.FilterIndex.load),
    }
    return files


def _arrays(obj):
    """Every array and scalar of a loaded object, for equality checks."""
    if isinstance(obj, ev.POTSaliency):
        obj = obj.tail_
    return {k: v for k, v in vars(obj).items() if isinstance(v, (np.ndarray, int, float, str))}


def _same(a, b):
    va, vb = _arrays(a), _arrays(b)
    return (va.keys() == vb.keys() and repr(a) == repr(b)
            and all(np.array_equal(va[k], vb[k], equal_nan=np.asarray(va[k]).dtype.kind == "f") for k in va))


# --- files: every kind of damage, every loader -------------------------------------------


LOADERS = ["TailModel.load", "SPOT.load", "load_saliency(zscore)", "load_saliency(pot)", "FilterIndex.load"]


def _damaged(tmp, path, how):
    """A damaged copy of ``path``: the path of the damaged file."""
    data = path.read_bytes()
    target = tmp / f"{how}-{path.name}"
    if how == "empty":
        target.write_bytes(b"")
    elif how == "truncated-10":
        target.write_bytes(data[:10])
    elif how == "truncated-half":
        target.write_bytes(data[: len(data) // 2])
    elif how == "truncated-last-byte":
        target.write_bytes(data[:-1])
    elif how == "not-a-zip":
        target.write_text("model weights, honest")
    elif how == "directory":
        target.mkdir()
    elif how == "missing":
        pass
    elif how == "npy-renamed":
        np.save(tmp / "matrix.npy", np.ones((3, 4)))
        os.replace(tmp / "matrix.npy", target)
    elif how == "other-kind":  # a FilterIndex file renamed to this name (or a TailModel one for FilterIndex)
        other = ev.FilterIndex.from_layers(["a"], [2], [3]).save(tmp / "other.npz")
        if "index" in path.name:
            other = ev.fit_tails(np.random.default_rng(1).normal(size=(50, 2)), progress=False).save(other)
        os.replace(other, target)
    elif how == "pickled-object":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        first = next(k for k in arrays if arrays[k].ndim == 1)
        arrays[first] = arrays[first].astype(object)
        np.savez(target, **arrays, allow_pickle=True)
    return target


DAMAGE = ["empty", "truncated-10", "truncated-half", "truncated-last-byte", "not-a-zip", "directory",
          "missing", "npy-renamed", "other-kind", "pickled-object"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("loader", LOADERS)
def test_damaged_file_is_refused_with_its_name(saved, tmp_path, loader, how):
    path, load = saved[loader]
    bad = _damaged(tmp_path, path, how)
    with pytest.raises(ev.FileFormatError) as info:
        load(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ev.InvalidInputError)


@pytest.mark.parametrize("loader", LOADERS)
def test_flipped_bytes_are_refused_or_harmless(saved, tmp_path, loader):
    """A byte flipped anywhere: an error naming the file, or (zip bookkeeping such as a date) the same object."""
    path, load = saved[loader]
    original = load(path)
    data = bytearray(path.read_bytes())
    bad = tmp_path / "flipped.npz"
    refused = 0
    for pos in range(0, len(data), 7):
        flipped = data.copy()
        flipped[pos] ^= 0x5A
        bad.write_bytes(flipped)
        try:
            back = load(bad)
        except ev.FileFormatError as exc:
            assert str(bad) in str(exc)
            refused += 1
            continue
        assert _same(back, original), f"byte {pos} flipped gives a different object"
    assert refused > len(data) // 10  # the data are checksummed: most flips are caught


# --- files: crafted TailModels (the segfault), checked before any kernel -----------------


def _tail_arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _craft(arrays, change):
    a = dict(arrays)
    meta = json.loads(str(a["meta"]))
    F = a["threshold"].shape[0]
    if change == "short-knots":
        a["knot_x"], a["knot_sf"] = a["knot_x"][:1], a["knot_sf"][:1]
    elif change == "short-sigma":
        a["sigma"] = a["sigma"][:1]
    elif change == "long-threshold":
        a["threshold"] = np.concatenate([a["threshold"]] * 50)
    elif change == "one-knot":
        a["knot_x"], a["knot_sf"] = a["knot_x"][:, -1:], a["knot_sf"][:, -1:]
    elif change == "n_exceed-above-n":
        a["n_exceed"] = a["n_exceed"] + 10**6
    elif change == "negative-sigma":
        a["sigma"] = -np.abs(a["sigma"])
    elif change == "nan-threshold":
        a["threshold"] = np.full(F, np.nan)
    elif change == "bad-status":
        a["status"] = np.full(F, 99, dtype=np.int8)
    elif change == "float-status":
        a["status"] = a["status"].astype(np.float64)
    elif change == "unsorted-knots":
        a["knot_x"] = a["knot_x"][:, ::-1].copy()
    elif change == "zero-knot-sf":
        a["knot_sf"] = np.zeros_like(a["knot_sf"])
    elif change == "zero-tail-mass":
        a["tail_mass"] = np.zeros(F)
    elif change == "2-d-xi":
        a["xi"] = a["xi"][:, None]
    elif change == "missing-array":
        del a["loglik"]
    elif change == "format-2":
        meta["format"] = 2
    elif change == "meta-not-json":
        a["meta"] = np.array("{not json")
    elif change == "n_samples-string":
        meta["n_samples"] = "400"
    elif change == "unknown-rule":
        meta["rule"] = {"rule": "os.system", "params": {"q": 0.9}}
    elif change == "rule-params-list":
        meta["rule"] = {"rule": "Quantile", "params": [0.9]}
    if "meta" not in change:
        a["meta"] = np.array(json.dumps(meta))
    return a


CRAFTED = ["short-knots", "short-sigma", "long-threshold", "one-knot", "n_exceed-above-n", "negative-sigma",
           "nan-threshold", "bad-status", "float-status", "unsorted-knots", "zero-knot-sf", "zero-tail-mass",
           "2-d-xi", "missing-array", "format-2", "meta-not-json", "n_samples-string", "unknown-rule",
           "rule-params-list"]


@pytest.mark.parametrize("change", CRAFTED)
def test_crafted_tail_model_is_refused_before_scoring(saved, tmp_path, change):
    crafted = tmp_path / f"{change}.npz"
    np.savez(crafted, **_craft(_tail_arrays(saved["TailModel.load"][0]), change))
    for load in (ev.TailModel.load, load_saliency):
        with pytest.raises(ev.FileFormatError, match=str(crafted).replace("\\", "\\\\")):
            load(crafted)


@pytest.mark.slow
def test_crafted_tail_model_in_score_never_crashes(saved, tmp_path):
    """In a subprocess: today's code segfaults or prints NaN / negative scores on these files."""
    paths = []
    for change in ("short-knots", "short-sigma", "long-threshold", "one-knot", "zero-knot-sf", "negative-sigma"):
        crafted = tmp_path / f"{change}.npz"
        np.savez(crafted, **_craft(_tail_arrays(saved["TailModel.load"][0]), change))
        paths.append(crafted)
    np.save(tmp_path / "G.npy", _reference(np.random.default_rng(2), 8))
    code = """
        import sys, numpy as np, evtools as ev
        G = np.load(sys.argv[1])
        for path in sys.argv[2:]:
            try:
                s = ev.TailModel.load(path).score(G)
            except ev.FileFormatError:
                continue
            print("scored", path, np.isfinite(s).all() and (s >= 0).all())
    """
    result = run_python(code, tmp_path / "G.npy", *paths)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""  # every crafted file refused before scoring
    result = run_python("import sys; from evtools.cli import main; sys.exit(main(sys.argv[1:]))",
                     "score", paths[0], tmp_path / "G.npy")  # the command line: one error line, exit status 1
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evtools: error: ") and str(paths[0]) in lines[0]


@pytest.mark.parametrize("how", ["truncated-half", "not-a-zip", "directory", "npy-renamed", "pickled-object"])
def test_score_on_a_damaged_file_prints_one_line(saved, tmp_path, capsys, how):
    bad = _damaged(tmp_path, saved["load_saliency(pot)"][0], how)
    np.save(tmp_path / "G.npy", np.ones((2, 4)))
    rc = main(["score", str(bad), str(tmp_path / "G.npy")])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("evtools: error: ") and str(bad) in err


def test_crafted_spot_and_zscore_are_refused(saved, tmp_path):
    with np.load(saved["SPOT.load"][0]) as z:
        spot = {k: z[k] for k in z.files}
    for name, value in [("n_peaks", spot["n_peaks"] + 10**6), ("head", spot["head"] + 3),
                        ("window", spot["window"][:, :1]), ("peaks", spot["peaks"][:, ::-1]),
                        ("pending", spot["pending"] - 1), ("sigma", np.full_like(spot["sigma"], np.nan))]:
        bad = tmp_path / f"spot-{name}.npz"
        np.savez(bad, **{**spot, name: value})
        with pytest.raises(ev.FileFormatError, match=name.rstrip("s")):
            ev.SPOT.load(bad)
    with np.load(saved["load_saliency(zscore)"][0]) as z:
        zs = {k: z[k] for k in z.files}
    for name, value in [("m2", -zs["m2"]), ("mean", zs["mean"][:2]), ("n_samples_seen", np.int64(0)),
                        ("format", np.int64(7)), ("scorer", np.array("evil"))]:
        bad = tmp_path / f"z-{name}.npz"
        np.savez(bad, **{**zs, name: value})
        with pytest.raises(ev.FileFormatError):
            load_saliency(bad)


def test_zscore_file_formats(tmp_path):
    """Format 2 stores mean and m2 scaled by 2**-exponent; format 1 (unscaled, no exponent) is still read."""
    G = np.random.default_rng(0).normal(100.0, 2.0, (50, 3))
    model = ev.ZScoreSaliency().fit(G)
    with np.load(model.save(tmp_path / "z.npz")) as z:
        zs = {k: z[k] for k in z.files}
    assert int(zs["format"]) == 2  # a reader of format 1 alone refuses it rather than read scaled values
    old = tmp_path / "old.npz"
    np.savez(old, scorer=np.array("zscore"), format=np.int64(1), n_samples_seen=np.int64(50),
             mean=G.mean(0), m2=((G - G.mean(0)) ** 2).sum(0))
    np.testing.assert_allclose(load_saliency(old).mean_, G.mean(0), rtol=1e-15)
    np.testing.assert_allclose(load_saliency(old).std_, G.std(0, ddof=1), rtol=1e-12)
    bad = tmp_path / "no-exponent.npz"
    np.savez(bad, **{k: v for k, v in zs.items() if k != "exponent"})
    with pytest.raises(ev.FileFormatError, match="exponent"):
        load_saliency(bad)


@pytest.mark.parametrize("loader", LOADERS)
def test_round_trip_is_exact(saved, loader):
    path, load = saved[loader]
    first = load(path)
    again = load(type(first).save(first, path.parent / "again.npz") if not isinstance(first, ev.FilterIndex)
                 else first.save(path.parent / "again.npz"))
    assert _same(first, again) if not isinstance(first, ev.FilterIndex) else first == again


# --- saves: atomic, and the path convention ----------------------------------------------


def _savers(tmp):
    rng = np.random.default_rng(3)
    G = _reference(rng, 200, 3)
    return {
        "TailModel": ev.fit_tails(G, progress=False),
        "ZScoreSaliency": ev.ZScoreSaliency().fit(G),
        "POTSaliency": ev.POTSaliency().fit(G),
        "SPOT": ev.SPOT(q=1e-3, level=0.9).fit(G),
        "FilterIndex": ev.FilterIndex.from_layers(["c"], [3], [4]),
    }


@pytest.mark.parametrize("name", ["TailModel", "ZScoreSaliency", "POTSaliency", "SPOT", "FilterIndex"])
def test_save_appends_npz_returns_the_path_and_load_accepts_both(tmp_path, name):
    obj = _savers(tmp_path)[name]
    load = {"FilterIndex": ev.FilterIndex.load, "SPOT": ev.SPOT.load, "TailModel": ev.TailModel.load}.get(
        name, load_saliency)
    written = obj.save(tmp_path / "model")
    assert written == tmp_path / "model.npz" and written.is_file() and not (tmp_path / "model").exists()
    assert obj.save(str(tmp_path / "kept.npz")) == tmp_path / "kept.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.npz", "model.npz"]  # no temporary left
    for path in (tmp_path / "model", tmp_path / "model.npz", str(tmp_path / "model")):
        assert type(load(path)) is type(obj) or isinstance(obj, ev.TailModel)


def test_cli_fit_reports_the_path_it_wrote(tmp_path, capsys):
    np.save(tmp_path / "G.npy", _reference(np.random.default_rng(4), 300, 3))
    assert main(["fit", str(tmp_path / "G.npy"), "-o", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"saved to {tmp_path / 'model.npz'}"
    assert (tmp_path / "model.npz").is_file() and not (tmp_path / "model").exists()
    assert main(["score", str(tmp_path / "model"), str(tmp_path / "G.npy"), "--top", "1"]) == 0
    assert main(["score", str(tmp_path / "model.npz"), str(tmp_path / "G.npy"), "--top", "1"]) == 0


@pytest.mark.parametrize("name", ["TailModel", "ZScoreSaliency", "POTSaliency", "SPOT", "FilterIndex"])
def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch, name):
    obj = _savers(tmp_path)[name]
    path = obj.save(tmp_path / "model.npz")
    before = path.read_bytes()

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(ev.FileWriteError, match="No space left") as info:
        obj.save(path)
    assert str(path) in str(info.value) and isinstance(info.value, OSError)
    monkeypatch.undo()

    def half_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("writer died")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(RuntimeError, match="writer died"):
        obj.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind


SAVE_UNDER_LIMIT = """
    import contextlib, io, json, resource, sys, numpy as np, evtools as ev
    from evtools.cli import main
    folder = sys.argv[1]
    G = np.random.default_rng(5).lognormal(size=(500, 300))
    np.save(folder + "/G.npy", G)
    objects = {"TailModel": ev.fit_tails(G, progress=False), "ZScoreSaliency": ev.ZScoreSaliency().fit(G),
               "SPOT": ev.SPOT(level=0.9).fit(G), "FilterIndex": ev.FilterIndex.from_layers(["c"], [300], [9])}
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # Python ignores SIGXFSZ: EFBIG
    messages = {}
    for kind, obj in objects.items():
        try:
            obj.save(f"{folder}/{kind}.npz")
            messages[kind] = "saved"
        except ev.FileWriteError as exc:
            messages[kind] = str(exc)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["fit", folder + "/G.npy", "-o", folder + "/cli.npz"])
    messages["cli"] = f"{rc} {err.getvalue()}"
    print(json.dumps(messages))
"""


def test_save_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    """Under RLIMIT_FSIZE (a disk that fills up): an error naming the file, the old file intact, no temporary."""
    old = b"an old good model, 41 bytes long........."
    kinds = ["TailModel", "ZScoreSaliency", "SPOT", "FilterIndex", "cli"]
    for kind in kinds:
        (tmp_path / f"{kind}.npz").write_bytes(old)
    result = run_python(SAVE_UNDER_LIMIT, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = json.loads(result.stdout)
    for kind in kinds:
        path = tmp_path / f"{kind}.npz"
        assert str(path) in messages[kind] and "File too large" in messages[kind], messages[kind]
        assert path.read_bytes() == old
    rc, err = messages["cli"].split(" ", 1)
    assert rc == "1" and len(err.strip().splitlines()) == 1 and err.startswith("evtools: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["G.npy"] + [f"{k}.npz" for k in kinds])


def test_save_refuses_a_directory_or_fifo(tmp_path):
    tail = _savers(tmp_path)["TailModel"]
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ev.InvalidInputError, match="directory"):
        tail.save(tmp_path / "d.npz")
    make_fifo(tmp_path / "f.npz")
    with pytest.raises(ev.InvalidInputError, match="not a regular file"):
        tail.save(tmp_path / "f.npz")
    assert (tmp_path / "d.npz").is_dir() and not (tmp_path / "f.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "f.npz"]


def test_save_keeps_permissions_of_the_old_file(tmp_path):
    tail = _savers(tmp_path)["TailModel"]
    path = tail.save(tmp_path / "m.npz")
    os.chmod(path, 0o640)
    tail.save(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_tables_and_results_are_written_atomically(tmp_path, monkeypatch):
    from evtools._io import write_table
    from evtools.report import save_results

    write_table({"a": np.arange(3)}, tmp_path / "t.csv")
    save_results({"x": 1}, tmp_path / "r.json")
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(ev.FileWriteError):
        write_table({"a": np.arange(5)}, tmp_path / "t.csv")
    with pytest.raises(ev.FileWriteError):
        save_results({"x": 2}, tmp_path / "r.json")
    assert (tmp_path / "t.csv").read_text() == "a\n0\n1\n2\n"
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "t.csv"]


def test_damaged_results_file_is_refused(tmp_path):
    from evtools.report import load_results, save_results

    path = tmp_path / "r.json"
    save_results({"x": [1.0, float("nan")]}, path)
    assert load_results(path) == {"x": [1.0, None]}
    path.write_text(path.read_text()[:5])
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "dir.json").mkdir()
    for bad in (path, tmp_path / "list.json", tmp_path / "dir.json", tmp_path / "missing.json"):
        with pytest.raises(ev.FileFormatError, match=str(bad)):
            load_results(bad)
