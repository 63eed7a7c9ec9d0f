"""The adapter contract (docs/adapter_contract.md), run by every framework adapter that is installed.

Each adapter gets a small fixture object that builds the same tiny CNN (the
twins of ``tests/reference/twin_torch.py`` and ``twin_flax.py``), data in its
framework's layout, and its one-sample-at-a-time reference loop; the tests
below are written once against that object. An adapter whose framework is
not installed is skipped with the reason.
"""
import numpy as np
import pytest

import evtools as ev

REDUCTIONS = ("mean_abs", "l1", "l2")
N_CLASSES = 5


class TorchAdapter:
    """evtools_torch on ``twin_torch.TorchTwin``; inputs (n, 3, 12, 12), model and data on ``device``."""

    def __init__(self, device="cpu"):
        torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'evtools[torch]'")
        if device == "cuda" and not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        self.device = torch.device(device)
        import evtools_torch
        from tests.reference import twin_torch
        from tests.reference.torch_naive import filter_gradient_norms_loop

        torch.set_num_threads(1)
        self.torch, self.module, self.twin, self.naive = torch, evtools_torch, twin_torch, filter_gradient_norms_loop

    def case(self, n, dtype, seed=0):
        """(model, inputs, targets) of the twin CNN."""
        torch = self.torch
        gen = torch.Generator().manual_seed(seed + 1)
        model = self.twin.torch_twin(seed, N_CLASSES, getattr(torch, dtype))
        x = torch.randn(n, 3, 12, 12, generator=gen).to(getattr(torch, dtype))
        y = torch.randint(0, N_CLASSES, (n,), generator=gen)
        return model.to(self.device), x.to(self.device), y.to(self.device)

    def gradnorms(self, model, data, **kwargs):
        return self.module.filter_gradient_norms(model, data, progress=False, **kwargs)

    def loop(self, model, x, y, reduction):
        return self.naive(model, x, y, reduction)

    def no_convolutions(self):
        nn = self.torch.nn
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, N_CLASSES))

    def labels(self, values):
        return self.torch.tensor(values, device=self.device)

    def take(self, array, rows):
        return array[self.torch.as_tensor(rows, device=self.device)]

    def with_nan(self, x, row):
        x = x.clone()
        x[row, 0, 0, 0] = float("nan")
        return x

    def accumulator(self, k):
        return self.module.TailAccumulator(k)


class JaxAdapter:
    """evtools_jax on ``twin_flax.FlaxTwin``; inputs (n, 12, 12, 3), float64 under ``jax.enable_x64``."""

    def __init__(self):
        jax = pytest.importorskip("jax", reason="JAX is not installed: pip install 'evtools[jax]'")
        pytest.importorskip("flax", reason="Flax is not installed: pip install 'evtools[jax]'")
        import evtools_jax
        from tests.reference import twin_flax
        from tests.reference.jax_naive import compile_fast, filter_gradient_norms_loop

        compile_fast()
        self.jax, self.module, self.twin, self.naive = jax, evtools_jax, twin_flax, filter_gradient_norms_loop

    def case(self, n, dtype, seed=0):
        rng = np.random.default_rng(seed + 1)
        model = self.twin.flax_twin(seed, N_CLASSES, dtype)
        x = rng.standard_normal((n, 12, 12, 3)).astype(dtype)
        return model, x, rng.integers(0, N_CLASSES, n)

    def gradnorms(self, model, data, **kwargs):
        apply_fn, variables = model
        return self.module.filter_gradient_norms(apply_fn, variables, data, progress=False, **kwargs)

    def loop(self, model, x, y, reduction):
        apply_fn, variables = model
        return self.naive(apply_fn, variables, x, y, reduction, layers=[name for name, _, _ in LAYERS])

    def no_convolutions(self):
        from flax import linen

        dense = linen.Dense(N_CLASSES)
        variables = dense.init(self.jax.random.key(0), np.zeros((1, 3 * 12 * 12), np.float32))
        return lambda v, x: dense.apply(v, x.reshape(x.shape[0], -1)), variables

    def labels(self, values):
        return np.asarray(values)

    def take(self, array, rows):
        return array[np.asarray(rows)]

    def with_nan(self, x, row):
        x = x.copy()
        x[row, 0, 0, 0] = np.nan
        return x

    def accumulator(self, k):
        return self.module.TailAccumulator(k)


#: The twin CNN's convolutions in forward order: (name, n_channels, n_weights), the same in every framework.
LAYERS = [("stem", 6, 3 * 9), ("block.conv1", 6, 3 * 9), ("block.conv2", 6, 6 * 9), ("head", 8, 6)]


@pytest.fixture(params=["torch", "torch-cuda", "jax"])
def adapter(request):
    if request.param.startswith("torch"):
        yield TorchAdapter("cuda" if request.param == "torch-cuda" else "cpu")
        return
    made = JaxAdapter()
    with made.jax.enable_x64(True):  # float64 models where a test asks for them; float32 ones stay float32
        yield made


def test_output_types_and_index(adapter):
    model, x, y = adapter.case(5, "float32")
    result = adapter.gradnorms(model, (x, y))
    assert isinstance(result, tuple) and len(result) == 2
    G, index = result
    assert type(G) is np.ndarray and G.dtype == np.float32 and G.shape == (5, 26)
    assert isinstance(index, ev.FilterIndex) and len(index) == G.shape[1]
    assert index.layers() == [name for name, _, _ in LAYERS]
    channels = np.array([c for _, c, _ in LAYERS])
    np.testing.assert_array_equal(index.channel, np.concatenate([np.arange(c) for c in channels]))
    np.testing.assert_array_equal(index.depth, np.repeat(np.arange(len(LAYERS)), channels))
    np.testing.assert_array_equal(index.n_weights, np.repeat([w for _, _, w in LAYERS], channels))
    assert np.all(G >= 0) and np.all(np.isfinite(G))
    model64, x64, y64 = adapter.case(5, "float64")
    G64, index64 = adapter.gradnorms(model64, (x64, y64))
    assert G64.dtype == np.float64 and index64 == index


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_rows_equal_the_one_sample_loop(adapter, reduction):
    model, x, y = adapter.case(6, "float64")
    ref = adapter.loop(model, x, y, reduction)
    G, _ = adapter.gradnorms(model, (x, y), reduction=reduction, batch_size=4)
    assert G.dtype == np.float64 and G.shape == ref.shape
    np.testing.assert_allclose(G, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())


def test_float32_rows_have_float32_accuracy(adapter):
    """float32 rows equal the float64 loop to float32 accuracy: on a GPU, no TensorFloat-32 (1e-3) by default."""
    model, x, y = adapter.case(6, "float32")
    model64, x64, y64 = adapter.case(6, "float64")
    ref = adapter.loop(model64, x64, y64, "l2")
    G, _ = adapter.gradnorms(model, (x, y), reduction="l2", batch_size=4)
    assert G.dtype == np.float32
    np.testing.assert_allclose(G, ref, rtol=2e-5, atol=1e-6 * np.abs(ref).max())


def test_rows_do_not_depend_on_batch_size_or_neighbours(adapter):
    model, x, y = adapter.case(7, "float64")
    G, _ = adapter.gradnorms(model, (x, y))
    for batch_size in (1, 3):
        G_b, _ = adapter.gradnorms(model, (x, y), batch_size=batch_size)
        np.testing.assert_allclose(G_b, G, rtol=1e-12)
    perm = np.random.default_rng(0).permutation(7)
    G_perm, _ = adapter.gradnorms(model, (adapter.take(x, perm), adapter.take(y, perm)), batch_size=3)
    np.testing.assert_allclose(G_perm, G[perm], rtol=1e-12)
    _, x_other, y_other = adapter.case(7, "float64", seed=3)  # other neighbours, same model
    mixed = list(range(3)) + list(range(7, 11))
    x_mix = adapter.take(_concat(x, x_other), mixed)
    y_mix = adapter.take(_concat(y, y_other), mixed)
    G_mix, _ = adapter.gradnorms(model, (x_mix, y_mix), batch_size=7)
    np.testing.assert_allclose(G_mix[:3], G[:3], rtol=1e-12)


def _concat(a, b):
    if isinstance(a, np.ndarray):
        return np.concatenate([a, b])
    import torch

    return torch.cat([a, b])


def test_memory_map_equals_in_memory(adapter, tmp_path):
    model, x, y = adapter.case(10, "float32")
    cuts = [(0, 3), (3, 7), (7, 10)]
    batches = [(x[a:b], y[a:b]) for a, b in cuts]
    G, index = adapter.gradnorms(model, batches, batch_size=2)
    path = tmp_path / "G.npy"
    G_map, index_map = adapter.gradnorms(model, (b for b in batches), batch_size=2, out=path)
    assert isinstance(G_map, np.memmap) and not G_map.flags.writeable and index_map == index
    assert G_map.dtype == G.dtype and G_map.shape == G.shape == (10, len(index))
    np.testing.assert_array_equal(G_map, G)
    np.testing.assert_array_equal(np.load(path), G)
    G_whole, _ = adapter.gradnorms(model, (x, y))
    np.testing.assert_allclose(G, G_whole, rtol=1e-5, atol=1e-7 * np.abs(G_whole).max())


def test_interrupted_out_file_resumes_exactly(adapter, tmp_path):
    """An error while fetching batch 3 keeps 7 finished rows; resume=True completes the file bit for bit."""
    model, x, y = adapter.case(12, "float32")
    cuts = [(0, 3), (3, 5), (5, 7), (7, 12)]
    batches = [(x[a:b], y[a:b]) for a, b in cuts]
    full = tmp_path / "full.npy"
    adapter.gradnorms(model, batches, batch_size=2, out=full)

    def stops_at_batch_3():
        yield from batches[:3]
        raise KeyboardInterrupt

    path = tmp_path / "G.npy"
    with pytest.raises(KeyboardInterrupt):
        adapter.gradnorms(model, stops_at_batch_3(), batch_size=2, out=path)
    np.testing.assert_array_equal(np.load(path), np.load(full)[:7])
    G, _ = adapter.gradnorms(model, batches, batch_size=2, out=path, resume=True)
    assert path.read_bytes() == full.read_bytes() and not (tmp_path / "G.npy.partial").exists()
    G_again, _ = adapter.gradnorms(model, batches, batch_size=2, out=path, resume=True)  # nothing left to do
    np.testing.assert_array_equal(G_again, G)


def test_accumulator_out_keeps_top_rows_and_count(adapter):
    model, x, y = adapter.case(9, "float64")
    G, _ = adapter.gradnorms(model, (x, y))
    acc, index = adapter.gradnorms(model, (x, y), batch_size=4, out=adapter.accumulator(3))
    assert isinstance(acc, ev.TopKAccumulator) and acc.count == 9 and acc.n_filters == len(index)
    np.testing.assert_allclose(acc.top, -np.sort(-G, axis=0)[:4], rtol=1e-12)


def _raises(adapter, match, model, data, **kwargs):
    with pytest.raises(ev.InvalidInputError, match=match):
        adapter.gradnorms(model, data, **kwargs)


def test_model_without_convolutions_raises(adapter):
    _, x, y = adapter.case(4, "float32")
    _raises(adapter, "convolutions", adapter.no_convolutions(), (x, y))


def test_labels_out_of_range_raise(adapter):
    model, x, y = adapter.case(4, "float32")
    _raises(adapter, r"sample 2 is out of range.*\[0, 4\]", model, (x, adapter.labels([0, 1, 5, 2])))
    _raises(adapter, "sample 1 is out of range", model, (x, adapter.labels([0, -1, 1, 2])))
    _raises(adapter, "sample 7 is out of range", model, [(x, y), (x, adapter.labels([0, 1, 2, 9]))])


def test_other_bad_input_raises(adapter):
    model, x, y = adapter.case(4, "float32")
    _raises(adapter, "loss of sample 3 is nan", model, (adapter.with_nan(x, 3), y))
    _raises(adapter, "same number of samples", model, (x, y[:3]))
    _raises(adapter, "pair", model, [(x, y, y)])
    _raises(adapter, "no samples", model, [])
    _raises(adapter, "reduction must be one of", model, (x, y), reduction="max")
    _raises(adapter, "batch_size", model, (x, y), batch_size=0)
    for bad in (True, 2.0, "2"):
        _raises(adapter, f"batch_size must be a positive integer, got {bad!r}", model, (x, y), batch_size=bad)
    _raises(adapter, "out must be", model, (x, y), out=3)
    _raises(adapter, "tf32 must be True or False", model, (x, y), tf32=1)
