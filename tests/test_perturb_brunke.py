"""Brunke et al. (2021) in miniature: on a small trained CNN, baselines change maps and scores.

The CNN learns whether a bright square lies in the left or the right half of a
noisy 3 x 16 x 16 image (a few seconds, seeded). Its maps should find the
square, yet differ measurably from one baseline to the next, and the deletion
score of one and the same map should depend on the baseline of the metric.

The network is trained to saturation (probabilities of 1.0 that no small
occlusion moves), so the black box is its temperature-scaled probability,
calibrated to 0.95 on the explained image.
"""
import numpy as np
import pytest

import evtools.perturb as P

torch = pytest.importorskip("torch")

SIZE, SQUARE = 16, 4


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.4, size=(n, 3, SIZE, SIZE))
    y = rng.integers(0, 2, size=n)
    r = rng.integers(0, SIZE - SQUARE + 1, size=n)
    c = rng.integers(0, SIZE // 2 - SQUARE + 1, size=n) + (SIZE // 2) * y
    for i in range(n):
        x[i, :, r[i]:r[i] + SQUARE, c[i]:c[i] + SQUARE] = rng.uniform(0.8, 1.0, size=3)[:, None, None]
    return x.astype(np.float32), y, r, c


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only contend on a shared machine
    try:
        return _train()
    finally:
        torch.set_num_threads(threads)


def _train():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 8 * 8, 2),
    )
    x, y, _, _ = make_data(256, seed=0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        idx = torch.randint(0, len(xt), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    xv, yv, rv, cv = make_data(64, seed=1)
    with torch.no_grad():
        acc = (net(torch.from_numpy(xv)).argmax(1).numpy() == yv).mean()
    assert acc > 0.95, f"the tiny CNN did not learn the task (accuracy {acc})"
    i = int(np.flatnonzero(yv == 1)[0])
    square = np.zeros((SIZE, SIZE), bool)
    square[rv[i]:rv[i] + SQUARE, cv[i]:cv[i] + SQUARE] = True

    x_i = torch.from_numpy(xv[i])

    def margin(b):
        out = net(b)
        return out[:, 1] - out[:, 0]

    with torch.no_grad():
        temperature = float(margin(x_i[None])[0]) / 3.0  # sigmoid(3) = 0.95

    def f(b):
        return torch.sigmoid(margin(b) / temperature)

    return f, x_i, square


BASELINES = ["zero", "mean", "blur", "uniform"]


def test_maps_find_the_square(trained):
    f, x, square = trained
    for m in (P.occlusion(f, x, 4, 2, baseline="zero"), P.rise(f, x, 1000, cells=6, seed=0, batch_size=500)):
        top = np.argsort(-m.numpy().ravel(), kind="stable")[: square.sum()]
        assert square.ravel()[top].mean() >= 0.5


def test_baselines_change_the_maps_and_sensitivity_says_so(trained):
    f, x, square = trained
    res = P.sensitivity(f, x, "occlusion", {"baseline": BASELINES}, window=4, stride=2, batch_size=128)
    off = ~np.eye(len(BASELINES), dtype=bool)
    np.testing.assert_allclose(np.diag(res.spearman), 1.0)
    # measurably different: no two baselines give the same map, some pairs disagree a lot
    assert res.spearman[off].max() < 0.995
    assert res.spearman[off].min() < 0.8
    assert res.ssim[off].min() < 0.9
    a, b, r = res.least_agreement()
    assert a != b and r == res.spearman[off].min()


def test_hyperparameters_change_rise_maps(trained):
    f, x, _ = trained
    res = P.sensitivity(f, x, "rise", {"cells": [2, 4, 8]}, n_masks=300, seed=0, batch_size=300)
    off = ~np.eye(3, dtype=bool)
    assert res.spearman[off].min() < 0.9


def test_the_metric_baseline_changes_the_score_of_one_map(trained):
    f, x, _ = trained
    m = P.occlusion(f, x, 4, 2, baseline="mean")
    aucs = {b: P.deletion(f, x, m, baseline=b, step=8, batch_size=64).auc for b in BASELINES}
    assert max(aucs.values()) - min(aucs.values()) > 0.05, aucs
    aopcs = {b: P.morf(f, x, m, region=4, baseline=b).aopc for b in BASELINES}
    assert max(aopcs.values()) - min(aopcs.values()) > 0.05, aopcs


def test_variations_that_keep_the_square_keep_the_outcome(trained):
    f, x, square = trained
    m = P.occlusion(f, x, 4, 2, baseline="zero")
    others = np.random.default_rng(5).uniform(0.0, 0.4, size=(8, 3, SIZE, SIZE)).astype(np.float32)
    v = P.variations(f, x, m, n=16, keep=0.1, fill=torch.from_numpy(others), seed=0)
    assert v.original > 0.5
    assert v.share >= 0.9
    anti = P.variations(f, x, -m, n=16, keep=0.1, fill=torch.from_numpy(others), seed=0)
    assert anti.share <= 0.6
