import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# --- the quick demo network, shared by the torch unit tests and tests/claims/ ------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run on one torch thread: these small models gain little from a second one, and on
    a busy shared machine two threads waiting on each other run many times slower.
    Modules that train or run the demo networks use it (``pytest.mark.usefixtures``)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One cache folder for the whole test session: quick models are trained once."""
    return tmp_path_factory.getbasetemp() / "evtools-demo-cache"


@pytest.fixture(scope="module")
def quick_vgg(demo_cache, one_torch_thread):
    """The quick VGG, its first 30 test errors (inputs, labels) and a reference gradient matrix
    with its index: ``(model, x, y, G_ref, index)``. Trains the model once a session (about a
    minute on one thread), so every test that uses it is ``slow``."""
    torch = pytest.importorskip("torch")
    from evtools_torch import filter_gradient_norms
    from evtools_torch.demo import DemoConfig, load_or_train, predict

    cfg = DemoConfig.quick("vgg")
    model, _ = load_or_train(cfg, demo_cache, progress=False)
    x, y = cfg.data("test")
    wrong = np.flatnonzero(predict(model, x).argmax(1) != y)[:30]
    assert wrong.size >= 20
    x_ref, y_ref = cfg.data("train")
    G_ref, index = filter_gradient_norms(model, (torch.as_tensor(x_ref[:600]), torch.as_tensor(y_ref[:600])),
                                         progress=False)
    return model, torch.as_tensor(x[wrong]), torch.as_tensor(y[wrong]), G_ref, index
