"""evtools.adapter: the row-streaming .npy writer and the progress bar."""
import numpy as np
import pytest

from evtools.adapter import NpyRowWriter, progress_bar


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [[], [0], [1], [3, 0, 7, 1]])
def test_written_file_is_a_valid_npy(tmp_path, dtype, sizes, rng):
    G = rng.normal(size=(sum(sizes), 5)).astype(dtype)
    path = tmp_path / "G.npy"
    with NpyRowWriter(path, 5, dtype) as writer:
        start = 0
        for size in sizes:
            writer.write(G[start:start + size])
            start += size
        mapped = writer.close()
    assert mapped.dtype == dtype and mapped.shape == G.shape
    np.testing.assert_array_equal(mapped, G)
    np.testing.assert_array_equal(np.load(path), G)
    with open(path, "rb") as f:
        preamble = f.read(10)
    assert (10 + int.from_bytes(preamble[8:10], "little")) % 64 == 0


def test_wrong_block_shape(tmp_path):
    from evtools import InvalidInputError

    with NpyRowWriter(tmp_path / "G.npy", 2, np.float32) as writer:
        with pytest.raises(InvalidInputError, match=r"\(b, 2\)"):
            writer.write(np.ones((3, 4)))
        writer.close()


def test_progress_bar_can_be_disabled():
    with progress_bar(10, enabled=False) as bar:
        bar.update(10)
    assert bar.disable
