"""evtools.FilterIndex: the per-column description of a gradient matrix."""
import numpy as np
import pytest

import evtools as ev


@pytest.fixture
def index():
    return ev.FilterIndex.from_layers(["conv1", "layer1.conv", "fc_conv"], [3, 2, 4], [27, 54, 8])


def test_from_layers(index):
    assert len(index) == 9
    np.testing.assert_array_equal(index.channel, [0, 1, 2, 0, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(index.depth, [0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(index.n_weights, [27] * 3 + [54] * 2 + [8] * 4)
    assert index.layer[3] == "layer1.conv" and index.channel.dtype == np.int64


def test_layers_and_columns(index):
    assert index.layers() == ["conv1", "layer1.conv", "fc_conv"]
    np.testing.assert_array_equal(index.columns_of("layer1.conv"), [3, 4])
    with pytest.raises(ev.InvalidInputError, match="no layer named 'x'"):
        index.columns_of("x")


def test_layers_keep_column_order_not_alphabetical():
    idx = ev.FilterIndex.from_layers(["b", "a"], [1, 1], [1, 1])
    assert idx.layers() == ["b", "a"]


def test_to_dict_frame_save_load(index, tmp_path):
    d = index.to_dict()
    assert set(d) == {"layer", "channel", "depth", "n_weights"}
    d["channel"][0] = 99  # a copy
    assert index.channel[0] == 0
    frame = index.to_frame()
    assert list(frame.columns) == ["layer", "channel", "depth", "n_weights"] and len(frame) == 9
    index.save(tmp_path / "index.npz")
    assert ev.FilterIndex.load(tmp_path / "index.npz") == index


def test_frozen_and_read_only(index):
    with pytest.raises(AttributeError):
        index.layer = index.layer
    with pytest.raises(ValueError):
        index.channel[0] = 5


def test_repr(index):
    assert repr(index) == "FilterIndex(n_filters=9, n_layers=3, layers=[conv1, layer1.conv, fc_conv])"
    many = ev.FilterIndex.from_layers([f"c{i}" for i in range(6)], [1] * 6, [1] * 6)
    assert repr(many) == "FilterIndex(n_filters=6, n_layers=6, layers=[c0, c1, ..., c5])"


def test_bad_input(tmp_path):
    with pytest.raises(ev.InvalidInputError, match="one length"):
        ev.FilterIndex(layer=["a", "a"], channel=[0], depth=[0, 0], n_weights=[1, 1])
    with pytest.raises(ev.InvalidInputError, match="integers"):
        ev.FilterIndex(layer=["a"], channel=[0.5], depth=[0], n_weights=[1])
    with pytest.raises(ev.InvalidInputError, match="unique"):
        ev.FilterIndex.from_layers(["a", "a"], [1, 1], [1, 1])
    with pytest.raises(ev.InvalidInputError, match="at least one"):
        ev.FilterIndex.from_layers(["a"], [0], [1])
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ev.InvalidInputError, match="missing"):
        ev.FilterIndex.load(tmp_path / "other.npz")
