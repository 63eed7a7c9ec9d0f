"""The same maps, curves and comparisons from numpy, torch and the strict array-API namespace."""
import numpy as np
import pytest
from array_api_compat import array_namespace, device

import evtools.perturb as P

BACKENDS = ["torch", "array_api_strict"]


def to_numpy(a):
    return np.from_dlpack(a) if hasattr(a, "__dlpack__") and not isinstance(a, np.ndarray) else np.asarray(a)


def make_model(w_np):
    """A small nonlinear model written once against the array API."""
    def f(b):
        xp = array_namespace(b)
        w = xp.asarray(w_np, device=device(b))
        return 1 / (1 + xp.exp(-xp.sum(b * w, axis=(1, 2, 3))))
    return f


@pytest.fixture(params=BACKENDS)
def xp(request):
    mod = pytest.importorskip(request.param)
    return mod


CASES = {
    "occlusion": lambda f, x, s: P.occlusion(f, x, (3, 2), (2, 2), baseline="blur", batch_size=8),
    "rise": lambda f, x, s: P.rise(f, x, n_masks=40, cells=3, baseline="uniform", seed=0, batch_size=16),
    "mask_search": lambda f, x, s: P.mask_search(f, x, n_iter=5, n_chains=6, cells=3, seed=0, batch_size=4),
    "deletion": lambda f, x, s: P.deletion(f, x, s, step=7, baseline="mean").scores,
    "insertion": lambda f, x, s: P.insertion(f, x, s, step=7).scores,
    "morf": lambda f, x, s: P.morf(f, x, s, region=3, baseline=Baseline_g()).scores,
    "lerf": lambda f, x, s: P.lerf(f, x, s, region=4).scores,
    "variations": lambda f, x, s: P.variations(f, x, s, n=3, keep=0.3).scores,
    "baseline": lambda f, x, s: P.make_baseline(x, "gaussian"),
}


def Baseline_g():
    return P.Baseline("gaussian", std=0.1, seed=2)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("batched", [False, True])
def test_same_results_in_every_namespace(rng, xp, case, batched):
    shape = (2, 2, 8, 9) if batched else (2, 8, 9)
    x = rng.random(shape)
    s = rng.random(shape[:-3] + shape[-2:])
    w = rng.standard_normal(shape[-3:])
    f = make_model(w)
    expected = CASES[case](f, x, s)
    got = CASES[case](f, xp.asarray(x), xp.asarray(s))
    assert array_namespace(got) is array_namespace(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_results_on_a_cuda_device(rng, case):
    """torch tensors on a GPU: computed there, returned there, equal to numpy's results."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, s, w = rng.random((2, 2, 8, 9)), rng.random((2, 8, 9)), rng.standard_normal((2, 8, 9))
    f = make_model(w)
    expected = CASES[case](f, x, s)
    got = CASES[case](f, torch.asarray(x, device="cuda"), torch.asarray(s, device="cuda"))
    assert isinstance(got, torch.Tensor) and got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_compare_in_every_namespace(rng, xp):
    a, b = rng.random((2, 9, 9)), rng.random((2, 9, 9))
    want = P.compare(a, b)
    got = P.compare(xp.asarray(a), xp.asarray(b))
    for name in ("spearman", "top_k", "ssim"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-10)


def test_float32_stays_float32(rng):
    torch = pytest.importorskip("torch")
    x = torch.as_tensor(rng.random((1, 3, 8, 8)), dtype=torch.float32)
    f = make_model(rng.standard_normal((3, 8, 8)).astype(np.float32))
    assert P.occlusion(f, x, 2).dtype == torch.float32
    assert P.rise(f, x, n_masks=8, cells=2, seed=0).dtype == torch.float32
    assert P.deletion(f, x, P.occlusion(f, x, 2)).scores.dtype == torch.float32


def test_gradients_are_not_tracked():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    x = torch.rand((1, 2, 2, 3))
    m = P.occlusion(lambda b: net(b)[:, 0], x, 1)
    assert not m.requires_grad
