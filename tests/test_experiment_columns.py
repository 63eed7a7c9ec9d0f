"""malicious_filter_detection and implant address filters through the gradient matrix's FilterIndex
(evtools_torch.filter_index), on a model whose index also names a parametrised layer."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'evtools[torch]'")

from torch import nn  # noqa: E402
from torch.nn.utils import parametrizations  # noqa: E402

import evtools as ev  # noqa: E402
from evtools_torch import filter_gradient_norms, filter_index, implant  # noqa: E402
from evtools_torch.experiments import malicious_filter_detection  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        parametrizations.weight_norm(nn.Conv2d(3, 4, 3, padding=1)), nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()


def _data(model, n=48, seed=0):
    x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)  # the model's own labels: every input correct


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_filter_index_is_the_gradient_matrix_index_and_refuses_parametrised_layers():
    model = _model()
    x, y = _data(model, 4)
    _, full = filter_gradient_norms(model, (x, y), progress=False)
    assert full.layers()[0] == "0.parametrizations.weight.original0"  # the index names the parameter
    with pytest.raises(ev.UnsupportedModelError, match="layer '0'"):
        filter_index(model)
    index = filter_index(model, layers=["2", "4"])
    _, grad_index = filter_gradient_norms(model, (x, y), layers=["2", "4"], progress=False)
    for field in ("layer", "channel", "depth", "n_weights"):
        np.testing.assert_array_equal(getattr(index, field), getattr(grad_index, field))


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_implanted_filters_are_the_columns_the_result_names():
    model = _model()
    x, y = _data(model)
    res = malicious_filter_detection(model, x, y, x, y, {"z-score": ev.ZScoreSaliency}, k=3, n_trials=3,
                                     kinds=("scale",), strength=50.0, references=("original",),
                                     layers=["2", "4"], n_boot=50, progress=False)
    _, grad_index = filter_gradient_norms(model, (x[:2], y[:2]), layers=["2", "4"], progress=False)
    assert res["layers"] == ["2", "4"] and res["n_filters"] == len(grad_index) == 11
    for trial in res["trials"]:
        cols = np.asarray(trial["implanted"])
        assert trial["implanted_layers"] == grad_index.layer[cols].tolist()
        # the faulty model differs from the original exactly in conv.weight[channel] of those columns
        faulty = implant(model, cols, "scale", 50.0, layers=["2", "4"])
        changed = set()
        for name in ("2", "4"):
            a, b = model.get_submodule(name).weight, faulty.get_submodule(name).weight
            changed |= {(name, c) for c in range(a.shape[0]) if not torch.equal(a[c], b[c])}
        assert changed == set(zip(grad_index.layer[cols].tolist(), grad_index.channel[cols].tolist()))
