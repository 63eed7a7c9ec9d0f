"""Demo CNN families, seeded training, evaluation and the config-keyed cache."""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch: pip install 'evtools[torch]'")
from torch import nn  # noqa: E402

from evtools import InvalidInputError  # noqa: E402
from evtools_torch.demo import (  # noqa: E402
    DemoConfig,
    evaluate,
    load_or_train,
    make_shapes,
    predict,
    resnet_small,
    train,
    vgg_small,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize(
    "factory, kwargs, n_convs",
    [
        (vgg_small, {}, 6),
        (vgg_small, {"width": 4, "convs_per_stage": 1}, 3),
        (resnet_small, {}, 9),
        (resnet_small, {"width": 4, "blocks_per_stage": 2}, 15),
    ],
)
def test_forward_shapes_and_structure(factory, kwargs, n_convs):
    model = factory(num_classes=7, **kwargs).eval()
    out = model(torch.rand(5, 3, 32, 32))
    assert out.shape == (5, 7)
    convs = _convs(model)
    assert len(convs) == n_convs
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn == n_convs  # BatchNorm after every convolution
    width = kwargs.get("width", 16)
    assert convs[-1].out_channels == 4 * width


def test_module_names_read_naturally():
    names = [n for n, m in resnet_small().named_modules() if isinstance(m, nn.Conv2d)]
    assert names[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert "layer2.0.downsample.0" in names
    assert [n for n, m in vgg_small().named_modules() if isinstance(m, nn.Conv2d)][0] == "features.conv1_1"


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_width(bad):
    with pytest.raises(InvalidInputError, match="width"):
        vgg_small(width=bad)
    with pytest.raises(InvalidInputError, match="width"):
        resnet_small(width=bad)


@pytest.mark.slow
def test_training_is_deterministic_given_the_seed():
    torch.manual_seed(0)
    data = make_shapes(256, seed=0)

    def run(seed):
        cfg = DemoConfig(arch="resnet", width=4, depth=1, seed=0)
        model = cfg.build_model()
        history = train(model, data, epochs=1, lr=1e-2, seed=seed, batch_size=64, progress=False)
        return model, history

    (a, ha), (b, hb), (c, _) = run(1), run(1), run(2)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    np.testing.assert_array_equal(ha["loss"], hb["loss"])
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    assert not a.training and all(p.grad is None for p in a.parameters())  # eval mode, no stale grads
    assert not torch.are_deterministic_algorithms_enabled()  # global flag restored


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = DemoConfig(seed=3).build_model(), DemoConfig(seed=3).build_model()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))


def test_train_bad_arguments():
    model = vgg_small(width=4)
    x, y = make_shapes(64, seed=0)
    with pytest.raises(InvalidInputError, match="pair"):
        train(model, x, epochs=1, lr=1e-3, seed=0)
    with pytest.raises(InvalidInputError, match="labels|integer"):
        train(model, (x, y.astype(float)), epochs=1, lr=1e-3, seed=0)
    with pytest.raises(InvalidInputError, match="batch_size"):
        train(model, (x, y), epochs=1, lr=1e-3, seed=0, batch_size=128)
    with pytest.raises(InvalidInputError, match="epochs"):
        train(model, (x, y), epochs=0, lr=1e-3, seed=0)


def test_config_key_and_validation():
    assert DemoConfig().key() == DemoConfig().key()
    assert DemoConfig().key() != DemoConfig(seed=1).key()
    assert DemoConfig.quick("vgg").key() != DemoConfig.quick("resnet").key()
    with pytest.raises(InvalidInputError, match="arch"):
        DemoConfig(arch="alexnet")
    with pytest.raises(InvalidInputError, match="split"):
        DemoConfig().data("val")
    xtr, _ = DemoConfig.quick().data("train")
    xte, _ = DemoConfig.quick().data("test")
    assert xtr.shape[0] == 2000 and xte.shape[0] == 1000 and not np.array_equal(xtr[:10], xte[:10])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_quick_config_beats_chance_and_caches(arch, demo_cache):
    cfg = DemoConfig.quick(arch)
    model, info = load_or_train(cfg, demo_cache, progress=False)
    x, y = cfg.data("test")
    assert info["test_accuracy"] == evaluate(model, x, y)
    assert info["test_accuracy"] > 0.8  # chance is 0.1
    assert info["path"].name == f"demo-{arch}-{cfg.key()}.pt"
    again, info2 = load_or_train(cfg, demo_cache, progress=False)
    assert info2["cached"] and info2["test_accuracy"] == info["test_accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    probs = predict(again, x[:16])
    assert probs.shape == (16, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_load_or_train_rejects_other_configs(tmp_path):
    with pytest.raises(InvalidInputError, match="DemoConfig"):
        load_or_train(dataclasses.asdict(DemoConfig.quick()), tmp_path)
