"""Claims about the trained quick VGG: ranked repair beats random filters, implanted filters score high.

These assert what the methods find on a trained network (as the papers claim), not how the code
works; the mechanics of ``repair``, ``implant`` and ``filter_score_fn`` are unit-tested in
``tests/test_repair.py``. The model is the session's quick VGG (``quick_vgg`` in tests/conftest.py).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'evtools[torch]'")

import evtools as ev  # noqa: E402
from evtools.perturb import occlusion  # noqa: E402
from evtools_torch import filter_gradient_norms, filter_score_fn, implant, random_ranking, repair  # noqa: E402
from evtools_torch.demo import DemoConfig  # noqa: E402

K = 25
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_ranked_repair_beats_random_filters(quick_vgg):
    """Levin et al. / Wang & Sato: changing the salient filters corrects more errors than random ones."""
    model, x, y, G_ref, index = quick_vgg
    G, _ = filter_gradient_norms(model, (x, y), progress=False)
    rankings = {
        "own gradient norm": np.argsort(-G, axis=1, kind="stable")[:, :K],
        "z-score": ev.ZScoreSaliency().fit(G_ref).rank(G, K),
        "POT": ev.POTSaliency().fit(G_ref).rank(G, K),
    }
    control = repair(model, x, y, random_ranking(len(index), K, seed=0, n_rows=len(y)), k_max=K, progress=False)
    base = control.fraction_corrected().mean()
    for name, ranking in rankings.items():
        result = repair(model, x, y, ranking, k_max=K, progress=False)  # mode="step", lr=1e-3
        gain = result.fraction_corrected().mean() - base
        assert gain > 0.2, (name, gain, result, control)
        assert result.fraction_corrected(within=True)[-1] >= control.fraction_corrected(within=True)[-1]
    assert np.all(control.pred0 != y.numpy())  # the batch really holds errors


def test_implanted_filters_score_high_and_occlusion_maps_them(quick_vgg):
    model, _, _, G_ref, index = quick_vgg
    scorer = ev.ZScoreSaliency().fit(G_ref)
    chosen = index.columns_of("features.conv2_1")[:3]
    faulty = implant(model, chosen, "flip")
    x, y = DemoConfig.quick("vgg").data("test")
    images = torch.as_tensor(x[:12])

    def scores(net):  # each image scored against its true label
        return np.array([filter_score_fn(net, scorer, chosen, target=int(y[i]))(images[i:i + 1])[0]
                         for i in range(len(images))])

    assert np.median(scores(faulty)) > np.median(scores(model)) + 5
    f = filter_score_fn(faulty, scorer, chosen, target=int(y[0]))
    for image in (images[0].numpy(), images[0]):  # numpy and torch inputs
        heat = occlusion(f, image, window=8, stride=4)
        assert tuple(heat.shape) == (32, 32)
        assert np.isfinite(np.asarray(heat)).all() and float(np.abs(np.asarray(heat)).max()) > 0
