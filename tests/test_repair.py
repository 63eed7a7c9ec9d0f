"""repair, implant, random_ranking and filter_score_fn on the seeded quick demo model.

What ranked repair and implanted faults find on the trained network (claims, not mechanics) is in
``tests/claims/test_repair_claims.py``."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch adapter needs torch: pip install 'evtools[torch]'")

import evtools as ev  # noqa: E402
from evtools import InvalidInputError  # noqa: E402
from evtools_torch import filter_gradient_norms, filter_score_fn, implant, random_ranking, repair  # noqa: E402
from evtools_torch.demo import vgg_small  # noqa: E402

K = 25
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py, as the `quick_vgg` fixture


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(model, snapshot):
    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    for k, v in snapshot.items():
        assert torch.equal(state[k], v), k


def test_random_ranking():
    r = random_ranking(50, 10, seed=1)
    assert r.shape == (10,) and r.dtype == np.int64 and np.unique(r).size == 10 and r.max() < 50
    np.testing.assert_array_equal(r, random_ranking(50, 10, seed=1))
    rows = random_ranking(50, 10, seed=1, n_rows=7)
    assert rows.shape == (7, 10)
    assert all(np.unique(row).size == 10 for row in rows)
    assert len({tuple(row) for row in rows}) == 7
    with pytest.raises(InvalidInputError, match="exceeds"):
        random_ranking(5, 6)


@pytest.mark.slow  # the trained quick VGG
def test_repair_changes_only_the_ranked_filters(quick_vgg):
    """Watch the working copy's weights at every forward pass: outside the first k ranked
    filters everything (other filters, biases, BatchNorm, buffers) is bit-for-bit original."""
    model, x, y, _, index = quick_vgg
    model = copy.deepcopy(model)
    original = _snapshot(model)
    seen = []
    # A hook on the root module is deep-copied with it, so it sees repair's working copy.
    model.register_forward_pre_hook(lambda module, args: seen.append(_snapshot(module)))
    ranking = random_ranking(len(index), 6, seed=3, n_rows=3)
    for mode in ("step", "zero"):
        seen.clear()
        repair(model, x[:3], y[:3], ranking, k_max=6, mode=mode, lr=0.5, progress=False)
        assert len(seen) == 3 * 7  # per input: the gradient pass, then one pass per step
        for i in range(3):
            for k in range(7):
                state = seen[7 * i + k]
                changed = {(str(index.layer[c]) + ".weight", int(index.channel[c])) for c in ranking[i, :k]}
                for name, value in original.items():
                    rows = [ch for layer, ch in changed if layer == name]
                    keep = torch.ones(value.shape[0] if value.ndim else 1, dtype=torch.bool)
                    keep[rows] = False
                    if value.ndim:
                        assert torch.equal(state[name][keep], value[keep]), (mode, i, k, name)
                        assert not any(torch.equal(state[name][r], value[r]) for r in rows), (mode, i, k, name)
                    else:
                        assert torch.equal(state[name], value)
    _assert_same(model, original)


@pytest.mark.slow  # the trained quick VGG
def test_repair_leaves_the_callers_model_alone(quick_vgg):
    model, x, y, G_ref, index = quick_vgg
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    before = _snapshot(model)
    grads = [p.grad for p in model.parameters()]
    try:
        result = repair(model, x[:4], y[:4], np.arange(10), k_max=10, progress=False)
        assert model.training
        assert not any(p.requires_grad for p in model.parameters())
        _assert_same(model, before)
        assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    finally:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
    assert result.corrected.shape == (4, 10)


@pytest.mark.slow  # the trained quick VGG
def test_repair_matches_a_plain_implementation(quick_vgg):
    model, x, y, _, index = quick_vgg
    ranking = np.array([5, 40, 2, 17])
    result = repair(model, x[:2], y[:2], ranking, k_max=4, mode="step", lr=0.1, progress=False)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    for i in range(2):
        work = copy.deepcopy(model)
        wconvs = {name: m for name, m in work.named_modules() if isinstance(m, torch.nn.Conv2d)}
        loss = torch.nn.functional.cross_entropy(work(x[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, [m.weight for m in wconvs.values()])
        grad_of = dict(zip(wconvs, grads))
        with torch.no_grad():
            p0 = torch.softmax(model(x[i:i + 1]).double(), 1)[0]
            assert result.pred0[i] == int(p0.argmax())
            for k, col in enumerate(ranking):
                layer, ch = str(index.layer[col]), int(index.channel[col])
                wconvs[layer].weight[ch] -= 0.1 * grad_of[layer][ch]
                p = torch.softmax(work(x[i:i + 1]).double(), 1)[0]
                assert result.p_true[i, k] == pytest.approx(float(p[y[i]]), abs=1e-6)
                assert result.p_pred[i, k] == pytest.approx(float(p[result.pred0[i]]), abs=1e-6)
                assert result.prediction[i, k] == int(p.argmax())
    assert convs  # the caller's model still has its convolutions untouched
    np.testing.assert_array_equal(result.corrected, result.prediction == y[:2].numpy()[:, None])
    np.testing.assert_array_equal(result.filters, np.broadcast_to(ranking, (2, 4)))


@pytest.mark.slow  # the trained quick VGG
def test_ranking_as_layer_channel_pairs(quick_vgg):
    model, x, y, _, index = quick_vgg
    cols = np.array([3, 30, 60])
    pairs = [(str(index.layer[c]), int(index.channel[c])) for c in cols]
    a = repair(model, x[:3], y[:3], cols, k_max=3, mode="zero", progress=False)
    b = repair(model, x[:3], y[:3], pairs, k_max=3, mode="zero", progress=False)
    np.testing.assert_array_equal(a.p_true, b.p_true)


@pytest.mark.slow  # the trained quick VGG
def test_repair_result_summaries(quick_vgg):
    model, x, y, _, _ = quick_vgg
    r = repair(model, x[:5], y[:5], np.arange(K), mode="zero", progress=False)
    within = r.fraction_corrected(within=True)
    assert within.shape == (K,) and np.all(np.diff(within) >= 0)
    assert np.all(within >= r.fraction_corrected())
    d = r.to_dict()
    assert d["p_true"].shape == (5, K) and d["mode"] == "zero"
    assert "RepairResult(n_inputs=5, k_max=25" in repr(r)


@pytest.mark.slow  # the trained quick VGG
def test_repair_bad_arguments(quick_vgg):
    model, x, y, _, index = quick_vgg
    n = len(index)
    with pytest.raises(InvalidInputError, match="mode"):
        repair(model, x, y, np.arange(K), mode="prune")
    with pytest.raises(InvalidInputError, match="k_max"):
        repair(model, x, y, np.arange(10), k_max=25)
    with pytest.raises(InvalidInputError, match="repeats"):
        repair(model, x[:1], y[:1], [1, 2, 1], k_max=3)
    with pytest.raises(InvalidInputError, match="outside"):
        repair(model, x[:1], y[:1], [0, n], k_max=2)
    with pytest.raises(InvalidInputError, match="no selected convolution"):
        repair(model, x[:1], y[:1], [("nope", 0)], k_max=1)
    with pytest.raises(InvalidInputError, match="shape"):
        repair(model, x[:2], y[:2], np.zeros((3, 5), dtype=int), k_max=1)
    with pytest.raises(InvalidInputError, match="labels"):
        repair(model, x[:2], y[:3], np.arange(3), k_max=1)
    with pytest.raises(InvalidInputError, match="not a class"):
        repair(model, x[:1], torch.tensor([10]), np.arange(3), k_max=1)
    with pytest.raises(InvalidInputError, match="lr"):
        repair(model, x[:1], y[:1], np.arange(3), k_max=1, lr=-1)


@pytest.mark.parametrize("kind, strength", [("scale", 3.0), ("flip", None), ("noise", 1.5)])
def test_implant_changes_only_the_chosen_filters(kind, strength):
    torch.manual_seed(0)
    model = vgg_small(width=4)
    before = _snapshot(model)
    chosen = [("features.conv1_1", 2), ("features.conv3_2", 0)]
    bad = implant(model, chosen, kind, strength, seed=1)
    _assert_same(model, before)  # the caller's model is not modified
    after = bad.state_dict()
    for name, value in before.items():
        rows = [ch for layer, ch in chosen if layer + ".weight" == name]
        for r in range(value.shape[0] if value.ndim else 0):
            if r in rows:
                w0, w1 = value[r], after[name][r]
                if kind == "scale":
                    assert torch.equal(w1, 3.0 * w0)
                elif kind == "flip":
                    assert torch.equal(w1, -w0)
                else:
                    assert not torch.equal(w1, w0)
            else:
                assert torch.equal(after[name][r], value[r]), (name, r)
    again = implant(model, chosen, kind, strength, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(bad.state_dict().values(), again.state_dict().values()))


def test_implant_columns_equal_pairs_and_errors():
    torch.manual_seed(0)
    model = vgg_small(width=4)
    a = implant(model, [2, 4], "scale", 2.0)
    b = implant(model, [("features.conv1_1", 2), ("features.conv1_2", 0)], "scale", 2.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(InvalidInputError, match="kind"):
        implant(model, [0], "swap")
    with pytest.raises(InvalidInputError, match="strength"):
        implant(model, [0], "scale", float("nan"))
    with pytest.raises(InvalidInputError, match="twice"):
        implant(model, [1, 1])
    with pytest.raises(InvalidInputError, match="channel"):
        implant(model, [("features.conv1_1", 4)])


@pytest.mark.slow  # the trained quick VGG
def test_filter_score_fn_matches_the_gradient_matrix(quick_vgg):
    model, x, y, G_ref, index = quick_vgg
    scorer = ev.ZScoreSaliency().fit(G_ref)
    cols = np.array([1, 20, 55])
    batch = x[:6]
    f_true = filter_score_fn(model, scorer, cols, target=3, reduce="mean")
    G, _ = filter_gradient_norms(model, (batch, torch.full((6,), 3)), progress=False)
    np.testing.assert_allclose(f_true(batch.numpy()), scorer.score(G)[:, cols].mean(1), rtol=1e-6)
    f_own = filter_score_fn(model, scorer, cols)
    pred = model(batch).argmax(1)
    G, _ = filter_gradient_norms(model, (batch, pred), progress=False)
    out = f_own(batch)
    assert isinstance(out, np.ndarray) and out.shape == (6,)
    np.testing.assert_allclose(out, scorer.score(G)[:, cols].max(1), rtol=1e-6)
    with pytest.raises(InvalidInputError, match="reduce"):
        filter_score_fn(model, scorer, cols, reduce="median")
    with pytest.raises(InvalidInputError, match="score"):
        filter_score_fn(model, object(), cols)


def test_filters_that_are_not_a_plain_weight_slice_are_refused():
    from torch.nn.utils import parametrizations

    nn = torch.nn
    model = nn.Sequential(parametrizations.weight_norm(nn.Conv2d(3, 4, 3)), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(ev.UnsupportedModelError, match=r"layer '0'.*conv.weight\[channel\].*layers="):
        implant(model, [0])
