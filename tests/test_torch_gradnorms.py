"""evtools_torch.filter_gradient_norms against the one-sample-at-a-time loop."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import evtools as ev  # noqa: E402
from evtools_torch import TailAccumulator, filter_gradient_norms  # noqa: E402
from tests.reference.torch_naive import filter_gradient_norms_loop  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
REDUCTIONS = ("mean_abs", "l1", "l2")


def _randomise_bn(model, seed):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model


class Block(nn.Module):
    """Residual block: grouped 3x3, BN, in-place ReLU, dilated 3x3, BN, skip."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, groups=2, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = torch.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return torch.relu(out)


class Net2d(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, stride=2, padding=1, padding_mode="reflect")  # with bias
        self.bn = nn.BatchNorm2d(6)
        self.block = Block(6)
        self.down = nn.Conv2d(6, 8, 1, stride=2, bias=False)  # 1x1, strided
        self.same = nn.Conv2d(8, 4, (3, 2), padding="same", padding_mode="circular")  # asymmetric padding
        self.valid = nn.Conv2d(4, 8, 2, padding_mode="replicate", padding=1, stride=(1, 2))
        self.fc = nn.Linear(8, n_classes)

    def forward(self, x):
        x = self.block(torch.relu(self.bn(self.stem(x))))
        x = torch.relu(self.same(torch.relu(self.down(x))))
        x = self.valid(x)
        return self.fc(x.mean((2, 3)))


class Net1d(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 4, 5, padding=2)
        self.conv2 = nn.Conv1d(4, 6, 3, stride=2, dilation=2, groups=2, padding=2, padding_mode="circular")
        self.bn = nn.BatchNorm1d(6)
        self.conv3 = nn.Conv1d(6, 4, 4, padding="same", bias=False)  # zero padding, asymmetric
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x):
        x = self.bn(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(self.conv3(torch.relu(x)).mean(2))


class Net3d(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 4, 3, padding=1, padding_mode="replicate")
        self.conv2 = nn.Conv3d(4, 4, (1, 3, 3), stride=(1, 2, 2), dilation=(1, 2, 1), groups=4, bias=False)
        self.bn = nn.BatchNorm3d(4)
        self.conv3 = nn.Conv3d(4, 6, 1)
        self.fc = nn.Linear(6, n_classes)

    def forward(self, x):
        x = self.bn(self.conv2(torch.relu(self.conv1(x))))
        x = self.conv3(torch.relu(x))
        return self.fc(x.mean((2, 3, 4)))


class Shared(nn.Module):
    """One convolution applied twice (shared weights), plus a branch that does not reach the loss."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.unused = nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.first(x))
        self.unused(x)
        x = self.shared(torch.relu(self.shared(x)))
        return self.fc(x.mean((2, 3)))


def _case(kind, dtype=torch.float64, n=6, seed=0):
    torch.manual_seed(seed)
    if kind == "2d":
        model, x, k = Net2d(), torch.randn(n, 3, 12, 12), 5
    elif kind == "1d":
        model, x, k = Net1d(), torch.randn(n, 2, 16), 3
    elif kind == "3d":
        model, x, k = Net3d(), torch.randn(n, 1, 6, 8, 8), 3
    else:
        model, x, k = Shared(), torch.randn(n, 3, 8, 8), 3
    _randomise_bn(model, seed)
    y = torch.randint(0, k, (n,))
    return model.to(dtype), x.to(dtype), y


def _assert_rows_close(G, ref, rtol):
    scale = np.abs(ref).max()
    np.testing.assert_allclose(G, ref, rtol=rtol, atol=rtol * 1e-3 * scale)


@pytest.mark.parametrize("kind", ["2d", "1d", "3d", "shared"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_rows_equal_the_loop(kind, reduction):
    model, x, y = _case(kind)
    ref = filter_gradient_norms_loop(model, x, y, reduction)
    G, index = filter_gradient_norms(model, (x, y), reduction=reduction, batch_size=4, progress=False)
    assert G.dtype == np.float64 and G.shape == ref.shape == (x.shape[0], len(index))
    _assert_rows_close(G, ref, 1e-9)


@pytest.mark.parametrize("kind", ["2d", "1d", "3d"])
def test_float32_rows_close_to_float64_loop(kind):
    model, x, y = _case(kind)
    ref = filter_gradient_norms_loop(model, x, y, "mean_abs")
    G, _ = filter_gradient_norms(model.float(), (x.float(), y), progress=False)
    assert G.dtype == np.float32
    _assert_rows_close(G, ref, 1e-5)


def _tf32_settings():
    b = torch.backends
    return (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision,
            b.mkldnn.matmul.fp32_precision, b.mkldnn.conv.fp32_precision, b.mkldnn.rnn.fp32_precision)


@pytest.mark.skipif(not hasattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision"),
                    reason="torch without the fp32_precision switches")
def test_tf32_off_during_the_call_and_restored_after():
    """PyTorch's TF32 switches are IEEE inside the call (tf32=False), untouched with tf32=True, restored after."""
    model, x, y = _case("2d")
    model, x = model.float(), x.float()
    seen = []

    def loss(out, t):
        seen.append(_tf32_settings())
        return nn.functional.cross_entropy(out, t, reduction="none")

    before = _tf32_settings()
    torch.backends.cuda.matmul.fp32_precision = "tf32"  # as torch.set_float32_matmul_precision("high") does
    torch.backends.mkldnn.conv.fp32_precision = "bf16"  # oneDNN's bfloat16 convolutions on a CPU
    try:
        user = _tf32_settings()
        filter_gradient_norms(model, (x, y), loss=loss, progress=False)
        assert seen[-1] == ("ieee",) * 6 and _tf32_settings() == user
        filter_gradient_norms(model, (x, y), loss=loss, progress=False, tf32=True)
        assert seen[-1] == user and _tf32_settings() == user
        with pytest.raises(ev.InvalidInputError):  # restored after an error too
            filter_gradient_norms(model, (x[:3], y), loss=loss, progress=False)
        assert _tf32_settings() == user
    finally:
        torch.backends.cuda.matmul.fp32_precision = before[0]
        torch.backends.mkldnn.conv.fp32_precision = before[4]


def test_tf32_switches_count_concurrent_users():
    """Nested calls, and calls overlapping in two threads: the process's settings come back when the last ends."""
    from evtools_torch._precision import _read, full_float32

    before = _read()
    with full_float32():
        inside = _read()
        with full_float32():
            assert _read() == inside
        assert _read() == inside
    assert _read() == before
    assert all(value in ("ieee", False) for _, _, value in inside)
    # two threads whose calls overlap, the first ending first: IEEE until the second ends
    import threading

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with full_float32():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with full_float32():
            second_in.set()
            first_out.wait(10)
            seen["after the first ended"] = _read()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen["after the first ended"] == inside and _read() == before


@pytest.mark.parametrize("kind", ["2d", "1d", "3d"])
def test_ghost_and_materialised_l2_agree(kind):
    model, x, y = _case(kind)
    ref = filter_gradient_norms_loop(model, x, y, "l2")
    for method in ("ghost", "materialise", "auto"):
        G, _ = filter_gradient_norms(model, (x, y), reduction="l2", l2_method=method, progress=False)
        _assert_rows_close(G, ref, 1e-9)
    G32, _ = filter_gradient_norms(model.float(), (x.float(), y), reduction="l2", l2_method="ghost", progress=False)
    _assert_rows_close(G32, ref, 1e-4)


def test_auto_route_picks_ghost_for_deep_small_layers():
    from evtools_torch._persample import ConvGeometry

    geom = ConvGeometry(nn.Conv2d(64, 64, 3))
    assert geom.route(4, "l2", "auto") == "ghost"
    assert geom.route(32 * 32, "l2", "auto") == "materialise"
    assert geom.route(4, "mean_abs", "auto") == "materialise"


def test_rows_do_not_depend_on_batch_size_or_batch_mates():
    model, x, y = _case("2d", n=9)
    G_all, _ = filter_gradient_norms(model, (x, y), batch_size=64, progress=False)
    G_one, _ = filter_gradient_norms(model, (x, y), batch_size=1, progress=False)
    np.testing.assert_allclose(G_one, G_all, rtol=1e-12)
    perm = torch.randperm(9)
    G_perm, _ = filter_gradient_norms(model, (x[perm], y[perm]), batch_size=4, progress=False)
    np.testing.assert_allclose(G_perm, G_all[perm.numpy()], rtol=1e-12)


def test_iterable_of_batches_and_memmap(tmp_path):
    model, x, y = _case("2d", dtype=torch.float32, n=10)
    G, index = filter_gradient_norms(model, (x, y), progress=False)
    batches = [(x[:3], y[:3]), [x[3:7], y[3:7]], (x[7:], y[7:])]
    G_list, _ = filter_gradient_norms(model, batches, batch_size=2, progress=False)
    np.testing.assert_allclose(G_list, G, rtol=1e-5)
    path = tmp_path / "G.npy"
    G_map, index_map = filter_gradient_norms(
        model, (b for b in batches), batch_size=2, out=path, progress=False
    )
    assert isinstance(G_map, np.memmap) and index_map == index
    np.testing.assert_array_equal(G_map, G_list)
    np.testing.assert_array_equal(np.load(path), G_list)


def test_accumulator_out_keeps_top_rows_and_count():
    model, x, y = _case("1d", n=12)
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    acc, index = filter_gradient_norms(model, (x, y), batch_size=5, out=TailAccumulator(3), progress=False)
    assert acc.count == 12 and acc.n_filters == len(index)
    np.testing.assert_allclose(acc.top, -np.sort(-G, axis=0)[:4], rtol=1e-12)


def test_streamed_tail_model_equals_fit_tails_on_the_full_matrix():
    model, x, y = _case("1d", n=40)
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    acc, _ = filter_gradient_norms(model, (x, y), batch_size=7, out=TailAccumulator(15), progress=False)
    tail, full = acc.fit(), ev.fit_tails(G, threshold=ev.TopK(15))
    for name in ("threshold", "rate", "sigma", "xi", "n_exceed"):
        np.testing.assert_allclose(getattr(tail, name), getattr(full, name), rtol=1e-9, err_msg=name)
    # dead filters (all-zero columns) are CONSTANT in both
    constant = G.min(0) == G.max(0)
    assert constant.any() and (~constant).any()
    np.testing.assert_array_equal(tail.status, full.status)
    assert np.all(full.status[constant] == ev.Status.CONSTANT)


def test_index_describes_columns():
    model, x, y = _case("2d")
    _, index = filter_gradient_norms(model, (x, y), progress=False)
    names = ["stem", "block.conv1", "block.conv2", "down", "same", "valid"]
    assert index.layers() == names
    np.testing.assert_array_equal(index.channel[index.columns_of("down")], np.arange(8))
    np.testing.assert_array_equal(index.depth[index.columns_of("same")], 4)
    assert index.n_weights[index.columns_of("block.conv1")][0] == 3 * 9  # 6 / 2 groups
    assert index.n_weights[index.columns_of("same")][0] == 8 * 6


def test_layers_selection_by_name_and_module():
    model, x, y = _case("2d")
    G, index = filter_gradient_norms(model, (x, y), progress=False)
    G_sub, index_sub = filter_gradient_norms(model, (x, y), layers=[model.down, "stem"], progress=False)
    assert index_sub.layers() == ["stem", "down"]
    np.testing.assert_array_equal(index_sub.depth, np.repeat([0, 1], [6, 8]))
    cols = np.concatenate([index.columns_of("stem"), index.columns_of("down")])
    np.testing.assert_allclose(G_sub, G[:, cols], rtol=1e-12)


def test_custom_per_sample_loss():
    model, x, _ = _case("3d")
    target = torch.randn(x.shape[0], 3, dtype=x.dtype)

    def mse(out, t):
        return ((out - t) ** 2).sum(1)

    ref = filter_gradient_norms_loop(model, x, target, "l1", loss=mse)
    G, _ = filter_gradient_norms(model, (x, target), loss=mse, reduction="l1", progress=False)
    _assert_rows_close(G, ref, 1e-9)


def test_model_state_grads_and_hooks_left_alone():
    model, x, y = _case("2d")
    model.train()
    model.block.eval()
    model.stem.weight.grad = torch.ones_like(model.stem.weight)
    running = model.bn.running_mean.clone()
    filter_gradient_norms(model, (x, y), progress=False)
    assert model.training and not model.block.training and model.bn.training
    assert torch.equal(model.stem.weight.grad, torch.ones_like(model.stem.weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "stem.weight")
    assert torch.equal(model.bn.running_mean, running)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ev.InvalidInputError):
        filter_gradient_norms(model, (x, y + 100), progress=False)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.training and not model.block.training


def test_frozen_model_gives_the_same_rows():
    model, x, y = _case("2d")
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    model.requires_grad_(False)
    with torch.no_grad():
        G_frozen, _ = filter_gradient_norms(model, (x, y), progress=False)
    np.testing.assert_array_equal(G_frozen, G)


def test_soft_targets_equal_one_hot_class_targets():
    model, x, y = _case("2d")
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    soft = nn.functional.one_hot(y, 5).to(x.dtype)
    G_soft, _ = filter_gradient_norms(model, (x, soft), progress=False)
    np.testing.assert_allclose(G_soft, G, rtol=1e-10)


# ---- bad input -------------------------------------------------------------------------------


def _raises(match, *args, **kwargs):
    kwargs.setdefault("progress", False)
    with pytest.raises(ev.InvalidInputError, match=match):
        filter_gradient_norms(*args, **kwargs)


def test_errors():
    model, x, y = _case("2d", n=4)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 5))
    _raises("no Conv1d, Conv2d or Conv3d", mlp, (x, y))
    _raises(r"sample 2 is out of range.*\[0, 4\]", model, (x, torch.tensor([0, 1, 5, 2])))
    _raises("sample 1 is out of range", model, (x, torch.tensor([0, -1, 1, 2])))
    x_nan = x.clone()
    x_nan[3, 0, 0, 0] = float("nan")
    _raises("loss of sample 3 is nan", model, (x_nan, y))
    _raises("inputs are on meta but the model is on cpu", model, (x.to("meta"), y))
    _raises("same number of samples", model, (x, y[:3]))
    _raises("same number of samples", model, [(x, y), (x, y[:2])])
    _raises("pair", model, [(x, y, y)])
    _raises("pair", model, 3)
    _raises("shape \\(4,\\)", model, (x, y), loss=lambda out, t: out.sum())
    _raises("no module named 'nope'", model, (x, y), layers=["nope"])
    _raises("is a Linear", model, (x, y), layers=["fc"])
    _raises("reduction must be one of", model, (x, y), reduction="max")
    _raises("batch_size", model, (x, y), batch_size=0)
    _raises("no samples", model, [])
    _raises("class-index targets", model, (x, y[:, None]))
    _raises("class probabilities", model, (x, y.float()))
    _raises("device=meta", model, (x, y), device="meta")
    model.spare = nn.Conv2d(3, 3, 1).double()
    _raises("none of the selected convolutions ran", model, (x, y), layers=["spare"])


def test_in_place_change_of_a_conv_input_is_caught():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            h = x * 1.0
            out = self.conv(h)
            h.mul_(2)
            return out.mean((2, 3)) + h.mean()

    model = InPlace().requires_grad_(False)
    _raises("modified in place", model, (torch.randn(2, 3, 6, 6), torch.tensor([0, 1])))


# ---- one convolution, many geometries ------------------------------------------------------

_GEOMETRIES = [
    # (dims, c_in, c_out, kernel, stride, padding, dilation, groups, padding_mode)
    (1, 4, 6, 3, 1, 0, 1, 1, "zeros"),
    (1, 4, 4, 4, 3, 2, 2, 4, "reflect"),
    (1, 2, 4, 2, 1, "same", 3, 2, "zeros"),
    (2, 4, 6, (3, 1), (2, 1), (1, 0), (1, 2), 2, "circular"),
    (2, 3, 4, 1, 2, 1, 1, 1, "zeros"),
    (2, 4, 4, 3, 1, "same", 2, 1, "replicate"),
    (2, 6, 3, 2, 2, "valid", 1, 3, "zeros"),
    (3, 2, 4, (1, 2, 3), (1, 2, 1), (0, 1, 1), 1, 2, "zeros"),
    (3, 3, 3, 2, 1, "same", (1, 1, 2), 3, "circular"),
]


@pytest.mark.parametrize("geometry", _GEOMETRIES)
def test_one_convolution_per_sample_gradients(geometry):
    from evtools_torch._persample import ConvGeometry, filter_norms

    dims, c_in, c_out, k, s, p, d, g, mode = geometry
    torch.manual_seed(0)
    conv_type = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    conv = conv_type(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, padding_mode=mode).double()
    x = torch.randn((3, c_in) + (7,) * dims, dtype=torch.float64)
    dy = torch.randn_like(conv(x))
    expected = torch.stack(
        [torch.autograd.grad(conv(x[i:i + 1]), conv.weight, dy[i:i + 1])[0].flatten(1) for i in range(3)]
    )
    geom = ConvGeometry(conv)
    for reduction, ref in [
        ("mean_abs", expected.abs().mean(-1)),
        ("l1", expected.abs().sum(-1)),
        ("l2", expected.norm(dim=-1)),
    ]:
        for method in ("ghost", "materialise") if reduction == "l2" else ("auto",):
            got = filter_norms(geom, x, dy, reduction, method)
            torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


# ---- real-world variants: columns per registered parameter, exact or refused ----------------------

from torch.nn.utils import parametrizations, parametrize, prune  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

from evtools_torch import gradnorms  # noqa: E402
from tests.reference.torch_naive import parameter_gradient_norms_loop  # noqa: E402


def _assert_exact(G, ref):
    """float64 rows equal the loop: 1e-9 relative, floored at 1e-3 of each column's maximum."""
    assert G.dtype == np.float64 and G.shape == ref.shape
    floor = np.maximum(np.abs(ref), 1e-3 * np.abs(ref).max(0))
    worst = (np.abs(G - ref) / np.where(floor > 0, floor, 1)).max()
    assert worst <= 1e-9 and np.all((G == 0) | (floor > 0)), worst


class StdConv2d(nn.Conv2d):
    """Weight standardisation in forward, as in BiT / ResNetV2."""

    def forward(self, x):
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
        return nn.functional.conv2d(x, (self.weight - mean) / torch.sqrt(var + 1e-10), self.bias, self.stride,
                                    self.padding, self.dilation, self.groups)


class Cubed(nn.Module):
    """A custom (non-linear) torch.nn.utils.parametrize parametrisation."""

    def forward(self, w):
        return w * w.abs().mean() + w


class Pair(nn.Module):
    """Two convolutions and a head; ``mode`` adds a way of using them that is not textbook."""

    def __init__(self, a=None, b=None, mode=None):
        super().__init__()
        self.a = a if a is not None else nn.Conv2d(3, 4, 3, padding=1)
        self.b = b if b is not None else nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.mode = mode
        if mode == "shared_module":
            self.b2 = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
            self.b2.weight = self.b.weight  # one Parameter in two modules
        self.fc = nn.Linear(self.b.out_channels, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        if self.mode == "functional_input":  # a's weight again, on a constant input
            h = h + nn.functional.conv2d(x * 2, self.a.weight, padding=1)
        if self.mode == "functional":
            h = h + nn.functional.conv_transpose2d(torch.tanh(h), self.a.weight, padding=1).mean(1, keepdim=True)
        if self.mode == "no_grad":
            with torch.no_grad():
                self.b(h * 2)
        if self.mode == "shared_module":
            return self.fc((self.b(h) + self.b2(h * h)).mean((2, 3)))
        if self.mode == "checkpoint":
            out = checkpoint(self.b, h, use_reentrant=False)
        elif self.mode == "reentrant":
            out = checkpoint(self.b, h, use_reentrant=True)
        else:
            out = self.b(h)
        logits = self.fc(torch.tanh(out).mean(tuple(range(2, out.ndim))))
        if self.mode == "penalty":  # a regulariser on a's weight in the outputs
            logits = logits * (1 + self.a.weight.pow(2).mean())
        return logits


def _transposed(dims):
    conv_type = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]
    return conv_type(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)


def _variant(kind):
    """(model, columns for the loop, input shape)."""
    torch.manual_seed(3)
    shape = (3, 8, 8)
    if kind == "weight_norm":
        model = Pair(a=parametrizations.weight_norm(nn.Conv2d(3, 4, 3, padding=1)))
        cols = ["a.parametrizations.weight.original0", "a.parametrizations.weight.original1", "b.weight"]
    elif kind == "spectral_norm":
        model = Pair(b=parametrizations.spectral_norm(nn.Conv2d(4, 6, 3, padding=1, groups=2)))
        cols = ["a.weight", "b.parametrizations.weight.original"]
    elif kind == "old_weight_norm":
        with pytest.warns(FutureWarning):
            model = Pair(a=nn.utils.weight_norm(nn.Conv2d(3, 4, 3, padding=1)))
        cols = ["a.weight_g", "a.weight_v", "b.weight"]
    elif kind == "prune":
        model = Pair()
        prune.l1_unstructured(model.a, "weight", 0.4)
        prune.ln_structured(model.b, "weight", 0.5, n=2, dim=0)
        cols = ["a.weight_orig", "b.weight_orig"]
    elif kind == "parametrize":
        model = Pair()
        parametrize.register_parametrization(model.b, "weight", Cubed())
        cols = ["a.weight", "b.parametrizations.weight.original"]
    elif kind == "std_conv":
        model = Pair(a=StdConv2d(3, 4, 3, padding=1))
        cols = ["a.weight", "b.weight"]
    elif kind.startswith("transposed"):
        dims = int(kind[-2])
        shape = (3,) + (5,) * dims
        conv_type = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        model = Pair(a=conv_type(3, 4, 3, padding=1), b=_transposed(dims))
        cols = ["a.weight", "b.weight"]
    elif kind == "shared_module":
        model = Pair(mode=kind)
        cols = ["a.weight", "b.weight"]
    elif kind == "compiled_submodule":
        model = Pair()
        model.b = torch.compile(model.b, backend="eager")
        cols = ["a.weight", "b._orig_mod.weight"]
    elif kind == "compiled_model":
        model = torch.compile(Pair(), backend="eager")
        cols = ["_orig_mod.a.weight", "_orig_mod.b.weight"]
    else:  # functional, no_grad, checkpoint
        model = Pair(mode=kind)
        cols = ["a.weight", "b.weight"]
    model = model.double()
    modules = dict(model.named_modules())
    columns = []
    for name in cols:
        owner = name.split(".parametrizations")[0]
        owner = owner.rsplit(".", 1)[0] if not name.endswith((".original", "0", "1")) else owner
        columns.append((name, modules[owner]))
    return model, columns, shape


_VARIANTS = ["weight_norm", "spectral_norm", "old_weight_norm", "prune", "parametrize", "std_conv", "transposed1d",
             "transposed2d", "transposed3d", "shared_module", "functional", "no_grad", "checkpoint",
             "compiled_submodule", "compiled_model"]


_HOOKABLE = {"weight_norm", "spectral_norm", "old_weight_norm", "prune", "parametrize", "transposed1d",
             "transposed2d", "transposed3d", "no_grad", "checkpoint", "compiled_submodule", "compiled_model"}


@pytest.mark.parametrize("kind", _VARIANTS)
def test_variant_rows_equal_the_loop_over_registered_parameters(kind):
    model, columns, shape = _variant(kind)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((5,) + shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=gen)
    model(x[:1])  # a compiled model that already ran once
    for reduction in REDUCTIONS:
        ref = parameter_gradient_norms_loop(model, x, y, columns, reduction)
        G, index = filter_gradient_norms(model, (x, y), reduction=reduction, batch_size=3, progress=False)
        expected = [name.removesuffix(".weight") for name, _ in columns]
        assert index.layers() == expected
        assert np.all(ref.max(0) > 0) or kind == "prune", "every column reaches the loss (but pruned filters)"
        _assert_exact(G, ref)
    ref = parameter_gradient_norms_loop(model, x, y, columns, "l2")  # the routes below compute l2
    if kind in _HOOKABLE:  # the fast path alone, no fallback
        G_hooks, _ = filter_gradient_norms(model, (x, y), reduction="l2", method="hooks", progress=False)
        _assert_exact(G_hooks, ref)
    if kind == "checkpoint":  # torch.func does not support the saved-tensor hooks of checkpointing
        _refused("checkpoint|saved tensor hooks", model, x, y, method="func")
        return
    G_func, _ = filter_gradient_norms(model, (x, y), reduction="l2", method="func", progress=False)
    _assert_exact(G_func, ref)


@pytest.mark.parametrize("kind", ["2d", "1d", "3d", "shared"])
def test_func_method_is_the_exact_reference_of_the_hooks(kind):
    model, x, y = _case(kind)
    for reduction in REDUCTIONS:
        ref = filter_gradient_norms_loop(model, x, y, reduction)
        G_func, index_func = filter_gradient_norms(model, (x, y), reduction=reduction, method="func", progress=False)
        G_hooks, index = filter_gradient_norms(model, (x, y), reduction=reduction, method="hooks", progress=False)
        assert index_func == index
        _assert_rows_close(G_func, ref, 1e-9)
        _assert_rows_close(G_hooks, G_func, 1e-9)


def test_weight_norm_index_names_each_parameter():
    model, _, _ = _variant("weight_norm")
    x, y = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1])
    _, index = filter_gradient_norms(model, (x, y), progress=False)
    g = index.columns_of("a.parametrizations.weight.original0")
    v = index.columns_of("a.parametrizations.weight.original1")
    np.testing.assert_array_equal(index.channel[g], np.arange(4))
    assert np.all(index.n_weights[g] == 1) and np.all(index.n_weights[v] == 27)
    np.testing.assert_array_equal(index.depth, np.repeat([0, 1, 2], [4, 4, 6]))


def _refused(match, model, x, y, **kwargs):
    with pytest.raises(ev.UnsupportedModelError, match=match):
        filter_gradient_norms(model, (x, y), progress=False, **kwargs)


def test_refusals_name_the_layer_the_reason_and_the_way_out():
    x, y = torch.randn(3, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2])
    _refused("reentrant torch.utils.checkpoint.*use_reentrant=False", Pair(mode="reentrant").double(), x, y)
    model, _, _ = _variant("std_conv")
    _refused(r"layer 'a'.*custom forward of StdConv2d.*method='auto'", model, x, y, method="hooks")
    wn_transposed = Pair(b=parametrizations.weight_norm(nn.ConvTranspose2d(4, 6, 3, padding=1), dim=1)).double()
    _refused(r"layer 'b.parametrizations.weight.original0'.*parametrised weight.*transposed", wn_transposed, x, y,
             method="hooks")
    _refused(r"layer 'a'.*functional call.*method='func'", Pair(mode="functional").double(), x, y, method="hooks")
    _refused("shared", Pair(mode="shared_module").double(), x, y, method="hooks")
    bad_wn = Pair(b=parametrizations.weight_norm(nn.ConvTranspose2d(4, 6, 3, padding=1))).double()
    _refused(r"layer 'b'.*original0.*no entry per output filter.*dim=1", bad_wn, x, y)
    bare = Pair().double()
    weight = bare.b.weight.detach().clone()
    del bare.b.weight
    bare.b.register_buffer("weight", weight)
    _refused(r"layer 'b'.*not a registered Parameter", bare, x, y)
    with pytest.raises(ev.InvalidInputError, match="method must be one of"):
        filter_gradient_norms(Pair(), (x.float(), y), method="loop", progress=False)


def test_func_path_failure_is_a_named_refusal():
    class Branchy(StdConv2d):
        def forward(self, x):
            return super().forward(x) if float(x.sum()) > 0 else super().forward(-x)

    model = Pair(a=Branchy(3, 4, 3, padding=1)).double()
    x, y = torch.randn(3, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2])
    _refused(r"layers 'a'.*custom forward of Branchy.*torch.func could not differentiate", model, x, y)


# planted failure modes: no selected layer may give an all-zero or partial column without an error

def test_planted_hook_that_does_not_fire_raises(monkeypatch):
    model, x, y = _case("2d", n=3)
    original = gradnorms._Recorder._on_gradient

    def drop_stem(self, layer, call, dy):
        if layer.name != "stem":
            original(self, layer, call, dy)

    monkeypatch.setattr(gradnorms._Recorder, "_on_gradient", drop_stem)
    _refused(r"layer 'stem'.*fired for 0 of the 1 calls", model, x, y)


def test_planted_partial_column_raises(monkeypatch):
    model, x, y = _case("shared", n=3)
    original = gradnorms._Recorder._on_gradient
    seen = []

    def drop_second(self, layer, call, dy):
        seen.append(layer.name)
        if layer.name != "shared" or seen.count("shared") == 1:
            original(self, layer, call, dy)

    monkeypatch.setattr(gradnorms._Recorder, "_on_gradient", drop_second)
    _refused(r"layer 'shared'.*fired for 1 of the 2 calls.*partial", model, x, y)


def test_planted_weight_swap_in_a_library_forward_is_caught():
    model, x, y = _case("2d", n=3)
    stem = model.stem
    # the library forward, but the convolution receives another tensor than the registered weight
    stem._conv_forward = lambda inp, w, b: nn.Conv2d._conv_forward(stem, inp, w * 2, b)
    _refused(r"layer 'stem'.*did not pass the registered weight", model, x, y, method="hooks")
    ref = parameter_gradient_norms_loop(model, x, y, [(n + ".weight", m) for n, m in model.named_modules()
                                                      if isinstance(m, nn.Conv2d)])
    G, _ = filter_gradient_norms(model, (x, y), progress=False)  # auto: the exact torch.func route
    _assert_exact(G, ref)


_TRANSPOSED = [
    # (dims, c_in, c_out, kernel, stride, padding, output_padding, dilation, groups)
    (1, 4, 6, 3, 2, 1, 1, 1, 2),
    (2, 3, 4, (3, 2), (2, 1), (1, 0), (1, 0), (1, 2), 1),
    (2, 4, 4, 3, 3, 2, 2, 2, 4),
    (3, 2, 4, 2, (1, 2, 1), 0, (0, 1, 0), 1, 2),
]


@pytest.mark.parametrize("geometry", _TRANSPOSED)
def test_one_transposed_convolution_per_sample_gradients(geometry):
    from evtools_torch._persample import ConvGeometry, filter_norms

    dims, c_in, c_out, k, s, p, op, d, g = geometry
    torch.manual_seed(0)
    conv_type = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]
    conv = conv_type(c_in, c_out, k, stride=s, padding=p, output_padding=op, dilation=d, groups=g).double()
    x = torch.randn((3, c_in) + (5,) * dims, dtype=torch.float64)
    dy = torch.randn_like(conv(x))
    grads = [torch.autograd.grad(conv(x[i:i + 1]), conv.weight, dy[i:i + 1])[0] for i in range(3)]
    per_group = c_out // g
    expected = torch.stack([torch.stack([
        gr[(c // per_group) * (c_in // g):(c // per_group + 1) * (c_in // g), c % per_group].flatten()
        for c in range(c_out)]) for gr in grads])
    geom = ConvGeometry(conv)
    for reduction, ref in [("mean_abs", expected.abs().mean(-1)), ("l1", expected.abs().sum(-1)),
                           ("l2", expected.norm(dim=-1))]:
        torch.testing.assert_close(filter_norms(geom, x, dy, reduction, "auto"), ref, rtol=1e-10, atol=1e-12)


def test_bfloat16_autocast_stays_on_the_hooks_route():
    model, x, y = _case("2d", dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = filter_gradient_norms_loop(model, x, y)  # the loop in the same precision
        G, _ = filter_gradient_norms(model, (x, y), method="hooks", progress=False)  # refuses if the audit fails
    assert np.abs(G - ref).max() <= 1e-2 * np.abs(ref).max()


def test_compiled_code_that_bypasses_the_hooks_is_refused_by_name():
    class CompiledBody(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Linear(4, 3)
            self.body = torch.compile(self._body, backend="aot_eager")  # a compiled function, not a module

        def _body(self, x):
            return self.b(torch.tanh(self.a(x)))

        def forward(self, x):
            return self.fc(self.body(x).mean((2, 3)))

    model, x, y = CompiledBody(), torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    model(x)
    # not "none of the selected convolutions ran", not zero columns
    _refused(r"layer 'a': compiled code \(torch.compile\) uses its weight.*uncompiled", model, x, y)


def test_parametrised_layer_inside_a_checkpoint():
    torch.manual_seed(0)
    model = Pair(b=parametrizations.weight_norm(nn.Conv2d(4, 6, 3, padding=1, groups=2)), mode="checkpoint")
    model = model.double()
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    columns = [("a.weight", model.a), ("b.parametrizations.weight.original0", model.b),
               ("b.parametrizations.weight.original1", model.b)]
    ref = parameter_gradient_norms_loop(model, x, y, columns, "l2")
    G, _ = filter_gradient_norms(model, (x, y), reduction="l2", method="hooks", progress=False)
    _assert_exact(G, ref)


# ---- forward passes that mix samples ---------------------------------------------------------------


def _batch_statistics_model(norm):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), norm, nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))
    model(torch.randn(2, 3, 8, 8))  # materialises a lazy module
    return model.double()


@pytest.mark.parametrize("norm", [nn.BatchNorm2d, nn.SyncBatchNorm, nn.LazyBatchNorm2d])
def test_batchnorm_on_batch_statistics_takes_the_func_route_or_is_refused(norm):
    """track_running_stats=False: BatchNorm uses the batch's statistics in eval mode too; rows are the loop's."""
    model = _batch_statistics_model(norm(4, track_running_stats=False) if norm is not nn.LazyBatchNorm2d
                                    else norm(track_running_stats=False))
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    ref = filter_gradient_norms_loop(model, x, y, "l2")
    G, _ = filter_gradient_norms(model, (x, y), reduction="l2", batch_size=4, progress=False)
    _assert_rows_close(G, ref, 1e-9)
    G_one, _ = filter_gradient_norms(model, (x, y), reduction="l2", batch_size=1, progress=False)
    _assert_rows_close(G_one, ref, 1e-9)
    _refused(rf"{type(model[1]).__name__} '1'.*batch's statistics.*method='func'.*track_running_stats=True",
             model, x, y, method="hooks")
    model[1].track_running_stats = True  # running statistics: per-sample again, the hooks route
    model[1].running_mean, model[1].running_var = torch.zeros(4).double(), torch.ones(4).double()
    G_hooks, _ = filter_gradient_norms(model, (x, y), method="hooks", progress=False)
    _assert_rows_close(G_hooks, filter_gradient_norms_loop(model, x, y), 1e-9)


def test_batchnorm_that_cannot_normalise_one_sample_is_refused():
    """BatchNorm1d on (n, C) without running statistics: one sample alone cannot be normalised (the loop fails)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(12, 6),
                          nn.BatchNorm1d(6, track_running_stats=False), nn.Linear(6, 3)).double()
    x, y = torch.randn(4, 2, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        filter_gradient_norms_loop(model, x, y)
    _refused(r"layers '0'.*BatchNorm1d '3'.*batch's statistics.*track_running_stats=True", model, x, y)


@pytest.mark.parametrize("mode", ["functional", "functional_input", "penalty"])
@pytest.mark.parametrize("frozen", [False, True])
def test_weight_also_used_outside_its_module_frozen_or_not(mode, frozen):
    """Other uses of a hooked weight are found even when it is frozen (they record no graph of their own)."""
    torch.manual_seed(0)
    model = Pair(mode=mode).double()
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    ref = parameter_gradient_norms_loop(model, x, y, [("a.weight", model.a), ("b.weight", model.b)], "l2")
    model.requires_grad_(not frozen)
    G, _ = filter_gradient_norms(model, (x, y), reduction="l2", progress=False)
    _assert_exact(G, ref)
    G_func, _ = filter_gradient_norms(model, (x, y), reduction="l2", method="func", progress=False)
    _assert_exact(G_func, ref)
    _refused(r"layer 'a'.*also used", model, x, y, method="hooks")
    assert all(p.requires_grad is not frozen and p.grad is None for p in model.parameters())


def test_autocast_copy_of_a_weight_used_outside_its_module_is_caught():
    """Autocast casts a weight once for all its uses: a use of that copy by another operation is found."""
    class MatmulPenalty(Pair):
        def forward(self, x):
            logits = super().forward(x)
            return logits * (1 + torch.matmul(self.a.weight, self.a.weight).float().mean())

    torch.manual_seed(0)
    model = MatmulPenalty()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    for frozen in (False, True):
        model.requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref = filter_gradient_norms_loop(model, x, y)
            model.requires_grad_(not frozen)
            _refused(r"layer 'a'.*autocast copy is also used", model, x, y, method="hooks")
            G, _ = filter_gradient_norms(model, (x, y), progress=False)  # auto: the torch.func route for 'a'
        assert np.abs(G - ref).max() <= 1e-2 * np.abs(ref).max()


def test_frozen_model_under_autocast_leaves_no_stale_cast_behind():
    """The hooks make frozen weights require gradients for a pass; autocast's cached casts of them are dropped."""
    model, x, y = _case("2d", dtype=torch.float32)
    model.requires_grad_(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        G, _ = filter_gradient_norms(model, (x, y), method="hooks", progress=False)
        with torch.no_grad():
            model.stem.weight.mul_(3)
        model.requires_grad_(True)
        after = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fresh = model(x)
    torch.testing.assert_close(after, fresh, rtol=0, atol=0)
    assert G.max() > 0


def test_float64_rows_when_any_selected_parameter_is_float64():
    """Output dtype from all selected parameters, not the first: a float64 layer after a float32 one."""
    class Mixed(Pair):
        def forward(self, x):
            return self.fc(torch.tanh(self.b(torch.tanh(self.a(x)).double())).mean((2, 3)))

    torch.manual_seed(0)
    model = Mixed()
    model.b.double(), model.fc.double()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    ref = filter_gradient_norms_loop(model, x, y)
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    assert G.dtype == np.float64
    _assert_rows_close(G, ref, 1e-5)  # 'a' is float32 (its input too, batched here, alone in the loop)


def test_experiment_gradients_of_a_float64_model():
    """experiments.reference/error_gradients give arrays in the model's dtype (a float64 model failed)."""
    from evtools_torch import experiments

    model, x, _ = _case("2d", n=8)
    with torch.no_grad():
        y = model.eval()(x.float().double()).argmax(1)
    y[4:] = (y[4:] + 1) % 5  # four errors
    _, index = filter_gradient_norms(model, (x, y), progress=False)
    G_err, index_err, rows, _ = experiments.error_gradients(model, x.float().numpy(), y.numpy(), progress=False)
    G_ref, _, correct = experiments.reference_gradients(model, x.float().numpy(), y.numpy(), progress=False)
    assert G_err.dtype == np.float64 and index_err == index and list(rows) == [4, 5, 6, 7] and correct.size == 4
    x32 = x.float().double()  # the float32 numpy images, in the model's dtype
    for got, which in ((G_err, rows), (G_ref, correct)):
        expected, _ = filter_gradient_norms(model, (x32[which], y[which]), progress=False)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_custom_function_named_like_compiled_code_is_not_taken_for_it():
    """Compiled code is recognised by its autograd node, not by 'Compiled' anywhere in a message."""
    class NotCompiledScale(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(w):
            return w * 2

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    class Penalised(Pair):
        def forward(self, x):
            return super().forward(x) * (1 + NotCompiledScale.apply(self.a.weight).pow(2).mean())

    torch.manual_seed(0)
    model = Penalised().double()
    x, y = torch.randn(3, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2])
    ref = parameter_gradient_norms_loop(model, x, y, [("a.weight", model.a), ("b.weight", model.b)])
    G, _ = filter_gradient_norms(model, (x, y), progress=False)  # auto: the torch.func route for 'a'
    _assert_exact(G, ref)
    _refused(r"layer 'a'.*also used outside its own calls \(by NotCompiledScaleBackward", model, x, y, method="hooks")


def test_frozen_flags_restored_after_an_error():
    """Frozen weights require gradients during the hooks' forward pass only, also when the batch fails."""
    model, x, y = _case("2d", n=4)
    model.requires_grad_(False)
    model.stem.weight.requires_grad_(True)
    _raises("out of range", model, (x, y + 100))  # raised after the forward pass
    x_nan = x.clone()
    x_nan[1] = float("nan")
    _raises("loss of sample 1 is nan", model, (x_nan, y))
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["stem.weight"]
    assert all(p.grad is None for p in model.parameters())
