"""evtools_jax.filter_gradient_norms against the one-sample-at-a-time loop (float64 under jax_enable_x64)."""
import functools

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install 'evtools[jax]'")
pytest.importorskip("flax", reason="Flax is not installed: pip install 'evtools[jax]'")

from tests.reference.jax_naive import compile_fast, filter_gradient_norms_loop  # noqa: E402

compile_fast()

import jax.numpy as jnp  # noqa: E402
from flax import linen, nnx  # noqa: E402
from jax import lax  # noqa: E402

import evtools as ev  # noqa: E402
from evtools_jax import TailAccumulator, filter_gradient_norms, gradnorms  # noqa: E402
from tests.reference.twin_flax import init_variables  # noqa: E402

REDUCTIONS = ("mean_abs", "l1", "l2")


def _bn(name):
    return linen.BatchNorm(use_running_average=True, name=name)


class Block(linen.Module):
    """Residual block: grouped 3x3, BN, ReLU, dilated 3x3, BN, skip."""

    @linen.compact
    def __call__(self, x):
        out = linen.Conv(6, (3, 3), padding=1, feature_group_count=3, use_bias=False, name="conv1")(x)
        out = linen.relu(_bn("bn1")(out))
        out = linen.Conv(6, (3, 3), padding=((2, 2), (1, 1)), kernel_dilation=(2, 1), use_bias=False,
                         name="conv2")(out)
        return linen.relu(_bn("bn2")(out) + x)


class Net2d(linen.Module):
    """Forward order stem, block, down, circ, valid: not the (sorted) order of the parameter dict."""

    @linen.compact
    def __call__(self, x):
        x = linen.relu(_bn("bn")(linen.Conv(6, (3, 3), strides=2, padding="SAME", name="stem")(x)))
        x = Block(name="block")(x)
        x = linen.relu(linen.Conv(8, (1, 1), strides=2, use_bias=False, name="down")(x))
        x = linen.relu(linen.Conv(4, (3, 2), padding="CIRCULAR", name="circ")(x))
        x = linen.Conv(8, (2, 2), strides=(1, 2), padding="VALID", name="valid")(x)
        return linen.Dense(5)(x.mean((1, 2)))


class Net1d(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Conv(4, (5,), padding=2)(x))
        x = linen.Conv(6, (3,), strides=2, kernel_dilation=2, feature_group_count=2, padding=2)(x)
        return linen.Dense(3)(linen.relu(linen.BatchNorm(use_running_average=True)(x)).mean(1))


class Shared(linen.Module):
    """One convolution applied twice (shared weights)."""

    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Conv(4, (3, 3), padding=1, name="first")(x))
        shared = linen.Conv(4, (3, 3), padding=1, name="shared")
        x = shared(linen.relu(shared(x)))
        return linen.Dense(3)(x.mean((1, 2)))


class Deep(linen.Module):
    """Eleven auto-named convolutions: Conv_10 sorts before Conv_2 in the parameter dict."""

    @linen.compact
    def __call__(self, x):
        for _ in range(11):
            x = linen.relu(linen.Conv(2, (1, 1))(x))
        return linen.Dense(3)(x.mean((1, 2)))


def lax_apply(params, x):
    """A plain-lax CNN with PyTorch/Equinox layouts (NCHW inputs, OIHW kernels), one convolution
    under jax.checkpoint, one inside jax.jit, kernels cast to the inputs' dtype."""
    dn = ("NCHW", "OIHW", "NCHW")

    def conv1(x, w):
        return lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), "SAME", dimension_numbers=dn)

    @jax.jit
    def conv2(x, w):
        return lax.conv_general_dilated(x, w.astype(x.dtype), (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn,
                                        feature_group_count=2)

    x = jax.nn.relu(jax.checkpoint(conv1)(x, params["conv1"]["weight"]))
    x = jax.nn.relu(conv2(x, params["conv2"]["weight"]))
    return x.mean((2, 3)) @ params["fc"]["w"].astype(x.dtype)


def _lax_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv1": {"weight": (rng.standard_normal((4, 3, 3, 3)) * 0.4).astype(dtype)},
        "conv2": {"weight": (rng.standard_normal((6, 2, 3, 3)) * 0.4).astype(dtype)},
        "fc": {"w": rng.standard_normal((6, 3)).astype(dtype)},
    }


def _case(kind, dtype=np.float64, n=6, seed=0):
    """(apply_fn, params, x, y, loop kwargs)."""
    rng = np.random.default_rng(seed + 1)
    shapes = {"2d": ((n, 12, 12, 3), 5), "1d": ((n, 16, 2), 3), "shared": ((n, 8, 8, 3), 3),
              "deep": ((n, 4, 4, 2), 3), "lax": ((n, 3, 8, 8), 3)}
    shape, k = shapes[kind]
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, k, n)
    if kind == "lax":
        return lax_apply, _lax_params(dtype, seed), x, y, {"layers": ["conv1", "conv2"], "out_axis": 0}
    model = {"2d": Net2d, "1d": Net1d, "shared": Shared, "deep": Deep}[kind]()
    return model.apply, init_variables(model, x[:1], seed, dtype), x, y, {}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _assert_rows_close(G, ref, rtol):
    np.testing.assert_allclose(G, ref, rtol=rtol, atol=rtol * 1e-3 * np.abs(ref).max())


def _loop(apply_fn, params, x, y, reduction, index, loss=None, **kwargs):
    kwargs.setdefault("layers", index.layers())
    return filter_gradient_norms_loop(apply_fn, params, x, y, reduction, loss=loss, **kwargs)


@pytest.fixture
def batched(monkeypatch):
    """Whole batches per compiled call (vmap over several samples) on the CPU too, as on accelerators."""
    monkeypatch.setattr(gradnorms, "_CPU_CHUNK", 64)


@pytest.mark.slow
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_rows_equal_the_loop_on_a_residual_cnn(x64, batched, reduction):
    """BatchNorm, strided, dilated, grouped, circular and valid convolutions, a residual connection."""
    apply_fn, params, x, y, _ = _case("2d", n=8)
    G, index = filter_gradient_norms(apply_fn, params, (x, y), reduction=reduction, batch_size=4, progress=False)
    ref = _loop(apply_fn, params, x, y, reduction, index)
    assert G.dtype == np.float64 and G.shape == ref.shape == (8, 38)
    _assert_rows_close(G, ref, 1e-9)


@pytest.mark.slow
def test_rows_do_not_depend_on_samples_per_call(x64, monkeypatch):
    apply_fn, params, x, y, _ = _case("2d", n=7)
    G_one, _ = filter_gradient_norms(apply_fn, params, (x, y), batch_size=3, progress=False)
    monkeypatch.setattr(gradnorms, "_CPU_CHUNK", 64)
    G_three, _ = filter_gradient_norms(apply_fn, params, (x, y), batch_size=3, progress=False)
    np.testing.assert_allclose(G_three, G_one, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("kind, reduction", [("1d", "l2"), ("shared", "l1"), ("lax", "mean_abs"), ("deep", "l2")])
def test_rows_equal_the_loop_on_other_models(x64, kind, reduction):
    apply_fn, params, x, y, loop_kwargs = _case(kind)
    G, index = filter_gradient_norms(apply_fn, params, (x, y), reduction=reduction, progress=False)
    _assert_rows_close(G, _loop(apply_fn, params, x, y, reduction, index, **loop_kwargs), 1e-9)


@pytest.mark.slow
def test_float32_rows_close_to_the_float64_loop():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32)
    G, index = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    assert G.dtype == np.float32
    with jax.enable_x64(True):
        as64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        ref = _loop(apply_fn, as64, x.astype(np.float64), y, "mean_abs", index)
    _assert_rows_close(G, ref, 1e-4)


def test_kernel_cast_to_the_inputs_dtype(x64):
    """float32 kernels cast to float64 inside the model: still found, float32 gradient norms."""
    _, params, x, y, loop_kwargs = _case("lax", dtype=np.float32)
    x = x.astype(np.float64)
    G, index = filter_gradient_norms(lax_apply, params, (x, y), reduction="l2", progress=False)
    assert G.dtype == np.float32 and index.layers() == ["conv1", "conv2"]
    _assert_rows_close(G, _loop(lax_apply, params, x, y, "l2", index, **loop_kwargs), 1e-5)


@pytest.mark.slow
def test_index_follows_the_forward_pass():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32)
    _, index = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    assert index.layers() == ["stem", "block.conv1", "block.conv2", "down", "circ", "valid"]
    np.testing.assert_array_equal(index.channel[index.columns_of("down")], np.arange(8))
    np.testing.assert_array_equal(index.depth[index.columns_of("circ")], 4)
    n_weights = {"stem": 27, "block.conv1": 2 * 9, "block.conv2": 6 * 9, "down": 6, "circ": 8 * 6, "valid": 4 * 4}
    for name, count in n_weights.items():
        np.testing.assert_array_equal(index.n_weights[index.columns_of(name)], count)
    apply_fn, params, x, y, _ = _case("deep", dtype=np.float32)
    _, index = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    assert index.layers() == [f"Conv_{i}" for i in range(11)]
    np.testing.assert_array_equal(index.depth, np.repeat(np.arange(11), 2))


@pytest.mark.slow
def test_filters_select_columns():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32)
    G, index = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    G_sub, index_sub = filter_gradient_norms(apply_fn, params, (x, y), filters=["down", "stem"], progress=False)
    assert index_sub.layers() == ["stem", "down"]
    np.testing.assert_array_equal(index_sub.depth, np.repeat([0, 1], [6, 8]))
    cols = np.concatenate([index.columns_of("stem"), index.columns_of("down")])
    np.testing.assert_allclose(G_sub, G[:, cols], rtol=1e-5)
    G_one, index_one = filter_gradient_norms(apply_fn, params, (x, y), filters="circ", progress=False)
    assert index_one.layers() == ["circ"]
    np.testing.assert_allclose(G_one, G[:, index.columns_of("circ")], rtol=1e-5)


@pytest.mark.slow
def test_params_without_the_collection_and_jax_inputs():
    """``variables["params"]`` with the batch statistics closed over names layers the same; JAX arrays work."""
    apply_fn, variables, x, y, _ = _case("2d", dtype=np.float32)
    G, index = filter_gradient_norms(apply_fn, variables, (x, y), progress=False)
    stats = variables["batch_stats"]
    inner = functools.partial(_apply_with_stats, apply_fn, stats)
    G_inner, index_inner = filter_gradient_norms(inner, variables["params"], (jnp.asarray(x), jnp.asarray(y)),
                                                 progress=False)
    assert index_inner == index
    np.testing.assert_allclose(G_inner, G, rtol=1e-5)


def _apply_with_stats(apply_fn, stats, params, x):
    return apply_fn({"params": params, "batch_stats": stats}, x)


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(3, 4, (3, 3), strides=2, rngs=rngs)
        self.layers = nnx.List([nnx.Conv(4, 4, (3, 3), feature_group_count=2, rngs=rngs)])
        self.bn = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
        self.fc = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        x = self.bn(self.layers[0](jax.nn.relu(self.conv(x))))
        return self.fc(jax.nn.relu(x).mean((1, 2)))


def _nnx_apply(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


@pytest.mark.slow
def test_flax_nnx_model(x64):
    graphdef, state = nnx.split(NnxNet(nnx.Rngs(0)))
    state = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), state)
    apply_fn = functools.partial(_nnx_apply, graphdef)
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 3))
    y = np.array([0, 1, 2, 1, 0])
    G, index = filter_gradient_norms(apply_fn, state, (x, y), reduction="l2", progress=False)
    assert index.layers() == ["conv", "layers.0"] and G.dtype == np.float64
    _assert_rows_close(G, _loop(apply_fn, state, x, y, "l2", index), 1e-9)


@pytest.mark.slow
def test_custom_loss_and_soft_targets(x64):
    apply_fn, params, x, _, _ = _case("1d")
    target = np.random.default_rng(3).standard_normal((x.shape[0], 3))

    def mse(out, t):
        return ((out - t) ** 2).sum(1)

    G, index = filter_gradient_norms(apply_fn, params, (x, target), loss=mse, reduction="l1", progress=False)
    _assert_rows_close(G, _loop(apply_fn, params, x, target, "l1", index, loss=mse), 1e-9)
    _, _, _, y, _ = _case("1d")
    G_int, _ = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    G_soft, _ = filter_gradient_norms(apply_fn, params, (x, np.eye(3)[y]), progress=False)
    np.testing.assert_allclose(G_soft, G_int, rtol=1e-10)


class PixelNet(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Conv(3, (1, 1))(linen.relu(linen.Conv(4, (3, 3), padding=1)(x)))


def test_per_pixel_cross_entropy_is_the_mean_over_pixels(x64):
    model = PixelNet()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 5, 2))
    y = rng.integers(0, 3, (4, 5, 5))
    params = init_variables(model, x[:1], 0, np.float64)

    def pixel_mean(out, t):
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.take_along_axis(logp, t[..., None], axis=-1).mean((1, 2, 3))

    G, index = filter_gradient_norms(model.apply, params, (x, y), progress=False)
    _assert_rows_close(G, _loop(model.apply, params, x, y, "mean_abs", index, loss=pixel_mean), 1e-9)
    _raises(r"sample 2 is out of range", model.apply, params, (x, np.where(np.arange(4)[:, None, None] == 2, 3, y)))


@pytest.mark.slow
def test_iterable_of_batches_and_accumulator():
    apply_fn, params, x, y, _ = _case("1d", dtype=np.float32, n=11)
    G, _ = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    batches = ((x[a:b], y[a:b]) for a, b in [(0, 5), (5, 6), (6, 11)])
    acc, index = filter_gradient_norms(apply_fn, params, batches, batch_size=4, out=TailAccumulator(2),
                                       progress=False)
    assert acc.count == 11 and acc.n_filters == len(index)
    np.testing.assert_allclose(acc.top, -np.sort(-G, axis=0)[:3], rtol=1e-5)


# ---- bad input -------------------------------------------------------------------------------


def _raises(match, *args, **kwargs):
    kwargs.setdefault("progress", False)
    with pytest.raises(ev.InvalidInputError, match=match):
        filter_gradient_norms(*args, **kwargs)


class _Unhashable:
    __hash__ = None

    def __call__(self, params, x):
        return x


def test_errors():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32, n=4)
    _raises("no convolution named 'nope'.*'stem'", apply_fn, params, (x, y), filters=["nope"])
    _raises("no convolution named 'Dense_0'", apply_fn, params, (x, y), filters=["Dense_0"])
    _raises("listed twice", apply_fn, params, (x, y), filters=["stem", "stem"])
    _raises("filters is empty", apply_fn, params, (x, y), filters=[])
    _raises("layer names", apply_fn, params, (x, y), filters=[3])
    _raises("pytree of arrays", apply_fn, {"params": params["params"], "n": 3}, (x, y))
    _raises("hashable", _Unhashable(), params, (x, y))
    _raises("apply_fn must be callable", 3, params, (x, y))
    _raises("loss must be callable", apply_fn, params, (x, y), loss=3)
    _raises(r"shape \(4,\)", apply_fn, params, (x, y), loss=lambda out, t: out.sum())
    _raises("class probabilities", apply_fn, params, (x, y.astype(np.float32)))
    _raises("class-index targets", apply_fn, params, (x, y[:, None]))
    _raises("class-index targets", apply_fn, params, (x, y > 0))
    _raises("logits of shape", lambda p, x: apply_fn(p, x)[:, 0], params, (x, y))
    _raises("pair", apply_fn, params, 3)
    _raises("batch 1 is a tuple of length 1", apply_fn, params, [(x, y), (x,)])
