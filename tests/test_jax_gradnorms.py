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
def test_layers_select_columns():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32)
    G, index = filter_gradient_norms(apply_fn, params, (x, y), progress=False)
    G_sub, index_sub = filter_gradient_norms(apply_fn, params, (x, y), layers=["down", "stem"], progress=False)
    assert index_sub.layers() == ["stem", "down"]
    np.testing.assert_array_equal(index_sub.depth, np.repeat([0, 1], [6, 8]))
    cols = np.concatenate([index.columns_of("stem"), index.columns_of("down")])
    np.testing.assert_allclose(G_sub, G[:, cols], rtol=1e-5)
    G_one, index_one = filter_gradient_norms(apply_fn, params, (x, y), layers="circ", progress=False)
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


def _raises(match, *args, error=ev.InvalidInputError, **kwargs):
    """``filter_gradient_norms(*args, **kwargs)`` raises ``error`` with a message matching ``match``."""
    kwargs.setdefault("progress", False)
    with pytest.raises(error, match=match):
        filter_gradient_norms(*args, **kwargs)


class _Unhashable:
    __hash__ = None

    def __call__(self, params, x):
        return x


def test_errors():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32, n=4)
    _raises("no convolution named 'nope'.*'stem'", apply_fn, params, (x, y), layers=["nope"])
    _raises("no convolution named 'Dense_0'", apply_fn, params, (x, y), layers=["Dense_0"])
    _raises("listed twice", apply_fn, params, (x, y), layers=["stem", "stem"])
    _raises("layers is empty", apply_fn, params, (x, y), layers=[])
    _raises("layer names", apply_fn, params, (x, y), layers=[3])
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


# ---- real parameters: transformed, stacked and shared kernels ----------------------------------


def _float64(tree, seed=0):
    """Every leaf as float64, scaled by random factors in [0.5, 1.5] (so unit scales are not all alike)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: np.asarray(np.asarray(a) * rng.uniform(0.5, 1.5, np.shape(a)), np.float64),
                                  tree)


class Normed(linen.Module):
    """A WeightNorm-ed convolution (scale per filter, or one scale for the whole kernel), a SpectralNorm-ed one."""

    scale_per_filter: bool = True

    @linen.compact
    def __call__(self, x):
        axes = -1 if self.scale_per_filter else None
        x = linen.relu(linen.WeightNorm(linen.Conv(4, (3, 3), name="conv"), feature_axes=axes, name="wn")(x))
        x = linen.SpectralNorm(linen.Conv(5, (3, 3), strides=2, name="sconv"), name="sn")(x, update_stats=False)
        return linen.Dense(3)(linen.relu(x).mean((1, 2)))


def _normed_case(scale_per_filter=True, n=5):
    model = Normed(scale_per_filter)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, 8, 8, 3))
    variables = _float64(model.init(jax.random.key(0), x[:1].astype(np.float32)))
    return model.apply, variables, x, rng.integers(0, 3, n)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weight_norm_and_spectral_norm_columns_per_real_parameter(x64, reduction):
    """Columns for the raw kernels and the WeightNorm scale (one weight per filter), equal to the loop over
    the parameters; the SpectralNorm's u vector (a batch statistic behind stop_gradient) is not a parameter."""
    apply_fn, variables, x, y = _normed_case()
    G, index = filter_gradient_norms(apply_fn, variables, (x, y), reduction=reduction, progress=False)
    assert index.layers() == ["conv", "wn.conv/kernel/scale", "sconv"]
    np.testing.assert_array_equal(index.n_weights, np.repeat([27, 1, 36], [4, 4, 5]))
    ref = _loop(apply_fn, variables, x, y, reduction, index)
    assert G.shape == ref.shape == (5, 13) and (ref > 0).all()
    _assert_rows_close(G, ref, 1e-9)


def test_weight_norm_with_one_scale_is_refused_by_name(x64, batched):
    """A scalar WeightNorm scale has no output filters: refused, naming it, the convolution and the way out,
    which gives the loop's columns for the other parameters."""
    apply_fn, variables, x, y = _normed_case(scale_per_filter=False)
    with pytest.raises(ev.UnsupportedModelError) as error:
        filter_gradient_norms(apply_fn, variables, (x, y), progress=False)
    message = str(error.value)
    for part in ("'wn.conv/kernel/scale'", "no output filters", "Normed/wn/conv", "broadcast over all filters",
                 "layers=['conv', 'sconv']", "close over it"):
        assert part in message
    _raises_unsupported("wn.conv/kernel/scale", apply_fn, variables, (x, y), layers=["sconv", "wn.conv/kernel/scale"])
    G, index = filter_gradient_norms(apply_fn, variables, (x, y), layers=["conv", "sconv"], reduction="l2",
                                     batch_size=2, progress=False)
    _assert_rows_close(G, _loop(apply_fn, variables, x, y, "l2", index), 1e-9)


_raises_unsupported = functools.partial(_raises, error=ev.UnsupportedModelError)


class NnxNormed(nnx.Module):
    def __init__(self, rngs):
        self.wn = nnx.WeightNorm(nnx.Conv(3, 4, (3, 3), rngs=rngs), rngs=rngs)
        self.sn = nnx.SpectralNorm(nnx.Conv(4, 5, (3, 3), rngs=rngs), update_stats=False, rngs=rngs)
        self.fc = nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc(jax.nn.relu(self.sn(jax.nn.relu(self.wn(x)))).mean((1, 2)))


def test_flax_nnx_weight_norm_and_spectral_norm(x64):
    graphdef, state = nnx.split(NnxNormed(nnx.Rngs(0)))
    state = _float64(state)
    apply_fn = functools.partial(_nnx_apply, graphdef)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 7, 7, 3)), np.array([0, 2, 1, 2])
    G, index = filter_gradient_norms(apply_fn, state, (x, y), reduction="mean_abs", progress=False)
    assert index.layers() == ["wn.layer_instance", "wn.scales", "sn.layer_instance"]
    _assert_rows_close(G, _loop(apply_fn, state, x, y, "mean_abs", index), 1e-9)


class StdConv(linen.Module):
    """Weight standardisation (BiT's StdConv): the kernel is centred and scaled per filter before the convolution."""

    features: int

    @linen.compact
    def __call__(self, x):
        w = self.param("kernel", linen.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features), x.dtype)
        mean = w.mean((0, 1, 2), keepdims=True)
        w = (w - mean) / jnp.sqrt(w.var((0, 1, 2), keepdims=True) + 1e-5)
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


class _ScanLayer(linen.Module):
    @linen.compact
    def __call__(self, carry, _):
        return linen.relu(linen.Conv(3, (3, 3))(carry)), None


class Stacked(linen.Module):
    """Two layers with stacked kernels under nn.scan."""

    @linen.compact
    def __call__(self, x):
        layers = linen.scan(_ScanLayer, variable_axes={"params": 0}, split_rngs={"params": True}, length=2)
        return linen.Dense(3)(layers(name="layers")(x, None)[0].mean((1, 2)))


def test_standardised_kernel_equals_the_loop(x64):
    model = linen.Sequential([StdConv(4), linen.relu, StdConv(5), lambda x: x.mean((1, 2)), linen.Dense(3)])
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 6, 6, 2)), rng.integers(0, 3, 4)
    variables = _float64(model.init(jax.random.key(0), x[:1]))
    G, index = filter_gradient_norms(model.apply, variables, (x, y), reduction="l1", progress=False)
    assert index.layers() == ["layers_0", "layers_2"]
    _assert_rows_close(G, _loop(model.apply, variables, x, y, "l1", index), 1e-9)


def test_stacked_kernels_are_refused_not_left_out(x64):
    model = Stacked()
    x, y = np.random.default_rng(0).standard_normal((2, 5, 5, 3)), np.array([0, 1])
    variables = _float64(model.init(jax.random.key(0), x[:1]))
    _raises_unsupported(r"'layers.Conv_0' cannot have exact per-filter columns: it has no output filters.*"
                        r"scan loop.*unroll", model.apply, variables, (x, y))


def shared_apply(params, x):
    """One kernel used by two plain-lax convolutions (the second under jax.jit), a third convolution
    using the same kernel transposed and flipped (conv_transpose with transpose_kernel=True) from
    ``params["tied"]``."""
    dn = ("NHWC", "HWIO", "NHWC")
    w = params["shared"]

    @jax.jit
    def strided(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dn)

    x = jax.nn.relu(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn))
    x = jax.nn.relu(strided(x, w))
    x = jax.nn.relu(lax.conv_transpose(x, params["tied"], (2, 2), "SAME", dimension_numbers=dn,
                                       transpose_kernel=True))
    return x.mean((1, 2)) @ params["fc"]


def _shared_params(tied_shape=(3, 3, 5, 4), seed=0):
    rng = np.random.default_rng(seed)
    return {"shared": rng.standard_normal((3, 3, 4, 4)) * 0.3, "tied": rng.standard_normal(tied_shape) * 0.3,
            "fc": rng.standard_normal((5, 3))}


def test_shared_kernel_gets_one_set_of_columns_summed_over_uses(x64, batched):
    """``shared`` (two convolutions) has one set of 4 columns; ``tied`` (a transposed convolution whose
    kernel is flipped and has its in/out axes swapped) has its filters along axis 2."""
    params = _shared_params()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 6, 6, 4)), rng.integers(0, 3, 5)
    G, index = filter_gradient_norms(shared_apply, params, (x, y), reduction="l2", progress=False)
    assert index.layers() == ["shared", "tied"] and G.shape == (5, 9)
    ref = _loop(shared_apply, params, x, y, "l2", index, out_axis={"shared": -1, "tied": 2})
    _assert_rows_close(G, ref, 1e-9)


def tied_apply(params, x):
    """A convolution and a transposed convolution sharing one kernel (a tied autoencoder)."""
    dn = ("NHWC", "HWIO", "NHWC")
    w = params["w"]
    h = jax.nn.relu(lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dn))
    out = lax.conv_transpose(h, w, (2, 2), "SAME", dimension_numbers=dn, transpose_kernel=True)
    return out.mean((1, 2)) @ params["fc"]


def test_kernel_shared_along_different_filter_axes_is_refused(x64):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 3, 4, 6)), "fc": rng.standard_normal((4, 3))}
    x, y = rng.standard_normal((2, 6, 6, 4)), np.array([0, 1])
    _raises_unsupported(r"'w' cannot have exact per-filter columns: its filters lie along different axes: "
                        r"axis 2 for convolution 1.*axis 3 for convolution 0", tied_apply, params, (x, y))


class MaskedConv(linen.Module):
    """A convolution whose kernel is multiplied by a mask from another collection and by a constant."""

    constant: tuple

    @linen.compact
    def __call__(self, x):
        kernel = self.param("kernel", linen.initializers.lecun_normal(), (3, 3, x.shape[-1], 4), x.dtype)
        mask = self.variable("masks", "mask", lambda: jnp.ones(kernel.shape, x.dtype).at[1, 2].set(0.0))
        w = kernel * mask.value * jnp.asarray(self.constant, x.dtype)
        out = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return linen.Dense(3)(jax.nn.relu(out).mean((1, 2)))


def test_masks_and_constants_are_not_parameters(x64):
    """A mask in a collection other than "params" and an array apply_fn closes over are constants: the
    raw kernel alone gets columns, equal to the loop's."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 6, 6, 2)), rng.integers(0, 3, 4)
    model = MaskedConv(tuple(rng.uniform(0.5, 2.0, 4)))
    variables = _float64(model.init(jax.random.key(0), x[:1]))
    G, index = filter_gradient_norms(model.apply, variables, (x, y), progress=False)
    assert index.layers() == ["kernel"]
    _assert_rows_close(G, _loop(model.apply, variables, x, y, "mean_abs", index), 1e-9)


def lora_apply(params, x):
    """A convolution with a low-rank update (LoRA): kernel = w + reshape(A @ B) * 0.5."""
    w = params["w"]
    kernel = w + (params["A"] @ params["B"]).reshape(w.shape) * 0.5
    out = lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(out).mean((1, 2)) @ params["fc"]


def test_low_rank_factor_with_filters_gets_columns_and_the_other_is_refused(x64):
    """B (rank, out) keeps the output axis through the matrix product and gets columns; A (window * in,
    rank) has no filters and is refused; leaving A out gives the loop's columns for w and B."""
    rng = np.random.default_rng(6)
    params = {"w": rng.standard_normal((3, 3, 2, 5)) * 0.3, "A": rng.standard_normal((18, 2)) * 0.3,
              "B": rng.standard_normal((2, 5)) * 0.3, "fc": rng.standard_normal((5, 3))}
    x, y = rng.standard_normal((4, 6, 6, 2)), rng.integers(0, 3, 4)
    _raises_unsupported(r"'A' cannot have exact per-filter columns: it has no output filters.*dot_general.*"
                        r"layers=\['B', 'w'\]", lora_apply, params, (x, y))
    G, index = filter_gradient_norms(lora_apply, params, (x, y), layers=["w", "B"], reduction="l2", progress=False)
    assert index.layers() == ["B", "w"]
    np.testing.assert_array_equal(index.n_weights, np.repeat([2, 18], 5))
    _assert_rows_close(G, _loop(lora_apply, params, x, y, "l2", index), 1e-9)


def test_filters_is_a_deprecated_alias_of_layers():
    apply_fn, params, x, y, _ = _case("2d", dtype=np.float32, n=2)
    with pytest.warns(DeprecationWarning, match="layers="):
        G_old, index_old = filter_gradient_norms(apply_fn, params, (x, y), filters=["stem"], progress=False)
    G_new, index_new = filter_gradient_norms(apply_fn, params, (x, y), layers=["stem"], progress=False)
    np.testing.assert_array_equal(G_old, G_new)
    assert index_old == index_new and index_new.layers() == ["stem"]
    _raises("layers= only", apply_fn, params, (x, y), layers=["stem"], filters=["stem"])
