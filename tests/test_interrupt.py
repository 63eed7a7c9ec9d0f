"""Interrupted extraction: finished rows stay readable, resume=True completes the file exactly.

See docs/guarantees.md ("Interruptions"). The kill tests run the extraction
in a subprocess that is killed (SIGKILL, SIGTERM) after a fixed number of
batches: the data iterator kills its own process, so the point of death is
the same on every run.
"""
import errno
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import evtools as ev
from evtools.adapter import NpyRowWriter
from tests.subprocess_helpers import make_fifo, run_python

# --- the row writer ------------------------------------------------------------------------


def test_finished_rows_are_readable_before_close(tmp_path, rng):
    G = rng.normal(size=(10, 3)).astype(np.float32)
    path = tmp_path / "G.npy"
    writer = NpyRowWriter(path, 3, np.float32)
    for start, stop in ((0, 4), (4, 7), (7, 10)):
        writer.write(G[start:stop])
        np.testing.assert_array_equal(np.load(path), G[:stop])
        assert Path(str(path) + ".partial").exists()
    writer.close()
    assert not Path(str(path) + ".partial").exists()
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), G)


def test_a_failed_run_keeps_its_rows_and_resumes(tmp_path, rng):
    G = rng.normal(size=(9, 2))
    path = tmp_path / "G.npy"
    with pytest.raises(RuntimeError):
        with NpyRowWriter(path, 2, np.float64) as writer:
            writer.write(G[:5])
            raise RuntimeError("boom")
    np.testing.assert_array_equal(np.load(path), G[:5])
    with open(path, "ab") as fh:  # half a row from a write that was cut short
        fh.write(b"\x01" * 11)
    writer = NpyRowWriter(path, 2, np.float64, resume=True)
    assert writer.rows_done == 5
    writer.write(G[5:])
    np.testing.assert_array_equal(writer.close(), G)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.npy"]


def test_a_run_that_wrote_nothing_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with NpyRowWriter(tmp_path / "G.npy", 2, np.float32):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", [dict(n_columns=3), dict(dtype=np.float32)])
def test_resume_refuses_another_layout(tmp_path, change):
    path = tmp_path / "G.npy"
    with NpyRowWriter(path, 2, np.float64) as writer:
        writer.write(np.ones((2, 2)))
    args = {"n_columns": 2, "dtype": np.float64, **change}
    with pytest.raises(ev.InvalidInputError, match="cannot resume"):
        NpyRowWriter(path, args["n_columns"], args["dtype"], resume=True)
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ev.InvalidInputError, match="cannot resume"):
        NpyRowWriter(tmp_path / "text.npy", 2, np.float64, resume=True)
    np.testing.assert_array_equal(np.load(path), np.ones((2, 2)))


def test_a_non_regular_file_is_refused_and_left_alone(tmp_path):
    """Today ``out="/dev/null"`` (as root) deletes the device node; here a fifo and a folder stand in."""
    fifo = tmp_path / "fifo"
    make_fifo(fifo)
    (tmp_path / "folder").mkdir()
    for target in (fifo, tmp_path / "folder"):
        with pytest.raises(ev.InvalidInputError, match="regular file"):
            NpyRowWriter(target, 2, np.float32)
    assert not fifo.is_file() and fifo.exists() and (tmp_path / "folder").is_dir()
    try:
        os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
    except PermissionError:
        return  # not root: the fifo stands for it
    with pytest.raises(ev.InvalidInputError, match="regular file"):
        NpyRowWriter(tmp_path / "null", 2, np.float32)
    assert (tmp_path / "null").exists()


def test_disk_full_names_the_file_and_keeps_the_rows(tmp_path, monkeypatch, rng):
    G = rng.normal(size=(6, 4))
    path = tmp_path / "G.npy"
    writer = NpyRowWriter(path, 4, np.float64)
    writer.write(G[:3])
    real = writer._file

    class Full:
        def __getattr__(self, name):
            return getattr(real, name)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    writer._file = Full()
    with pytest.raises(ev.FileWriteError, match="No space left on device") as info:
        writer.write(G[3:])
    assert str(path) in str(info.value) and "3 finished rows" in str(info.value)
    writer._file = real
    writer.abort()
    np.testing.assert_array_equal(np.load(path), G[:3])


def test_file_size_limit_names_the_file(tmp_path):
    """RLIMIT_FSIZE in a subprocess: the write fails with EFBIG mid-run (today: 'N requested and M written')."""
    code = """
        import resource, sys, numpy as np
        from evtools import FileWriteError
        from evtools.adapter import NpyRowWriter
        writer = NpyRowWriter(sys.argv[1], 16, np.float64)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        try:
            for i in range(100):
                writer.write(np.full((10, 16), float(i)))
        except FileWriteError as exc:
            print(exc)
    """
    path = tmp_path / "G.npy"
    result = run_python(code, path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(path) in result.stdout and "File too large" in result.stdout
    G = np.load(path)
    assert G.shape[0] > 0 and G.shape[0] % 10 == 0
    np.testing.assert_array_equal(G, np.repeat(np.arange(G.shape[0] // 10.0), 10)[:, None] * np.ones(16))


# --- the adapters --------------------------------------------------------------------------


EXTRACT = """
    import os, signal, sys
    import numpy as np
    import torch
    from evtools_torch import filter_gradient_norms
    from tests.test_interrupt import tiny_case

    out, kill_after, how, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    model, batches = tiny_case()

    def data():
        for i, batch in enumerate(batches):
            if i == kill_after:
                os.kill(os.getpid(), getattr(signal, how))
            yield batch

    filter_gradient_norms(model, data(), batch_size=4, out=out, progress=False, resume=resume)
    print("finished")
"""


def tiny_case():
    """A tiny CNN and 10 batches of 6 images (4 + 2 rows each at batch_size=4)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(6, 2, 8, 8, generator=gen), torch.randint(0, 3, (6,), generator=gen)) for _ in range(10)]
    return model, batches


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_extraction_resumes_to_the_uninterrupted_file(tmp_path, how):
    pytest.importorskip("torch")
    from evtools_torch import filter_gradient_norms

    model, batches = tiny_case()
    full, part = tmp_path / "full.npy", tmp_path / "G.npy"
    G, _ = filter_gradient_norms(model, batches, batch_size=4, out=full, progress=False)
    assert G.shape == (60, 7)

    result = run_python(EXTRACT, part, 7, how, 0)  # dies while fetching batch 7: 42 rows are finished
    assert result.returncode == -getattr(signal, how), result.stderr[-2000:]
    assert Path(str(part) + ".partial").exists()
    np.testing.assert_array_equal(np.load(part), G[:42])  # today: shape (0, 7)

    filter_gradient_norms(model, batches, batch_size=4, out=part, progress=False, resume=True)
    assert part.read_bytes() == full.read_bytes()
    assert not Path(str(part) + ".partial").exists()


def test_out_to_a_device_node_is_refused(tmp_path):
    pytest.importorskip("torch")
    from evtools_torch import filter_gradient_norms

    model, batches = tiny_case()
    make_fifo(tmp_path / "fifo")
    with pytest.raises(ev.InvalidInputError, match="regular file"):
        filter_gradient_norms(model, batches[0], out=tmp_path / "fifo", progress=False)
    assert (tmp_path / "fifo").exists()
    with pytest.raises(ev.InvalidInputError, match="resume=True needs out"):
        filter_gradient_norms(model, batches[0], resume=True, progress=False)
