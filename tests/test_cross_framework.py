"""The same CNN in PyTorch and Flax, weights copied across, gives the same gradient-norm matrix.

``tests/reference/twin_torch.py`` and ``twin_flax.py`` define the network in
both frameworks (same module names); ``twin_flax.flax_variables`` converts the
layouts (kernels ``(out, in, *window)`` to ``(*window, in, out)``, inputs
NCHW to NHWC). The two adapters must then agree within float32 noise, so a
tail model fitted on one framework's matrix scores the other's.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'evtools[torch]'")
jax = pytest.importorskip("jax", reason="JAX is not installed: pip install 'evtools[jax]'")
pytest.importorskip("flax", reason="Flax is not installed: pip install 'evtools[jax]'")

from tests.reference.jax_naive import compile_fast  # noqa: E402

compile_fast()

import evtools as ev  # noqa: E402
import evtools_jax  # noqa: E402
import evtools_torch  # noqa: E402
from tests.reference.twin_flax import FlaxTwin, flax_variables  # noqa: E402
from tests.reference.twin_torch import numpy_state, torch_twin  # noqa: E402

torch.set_num_threads(1)
N_CLASSES = 5


def _twins(n, seed):
    """The torch model, its Flax twin (apply_fn, variables), and data in both layouts."""
    model = torch_twin(seed, N_CLASSES)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 3, 12, 12, generator=gen)
    y = torch.randint(0, N_CLASSES, (n,), generator=gen)
    flax_data = (x.numpy().transpose(0, 2, 3, 1), y.numpy())
    return model, (FlaxTwin(N_CLASSES).apply, flax_variables(numpy_state(model))), (x, y), flax_data


def _both(model, flax_model, torch_data, flax_data, **kwargs):
    G_t, index_t = evtools_torch.filter_gradient_norms(model, torch_data, progress=False, **kwargs)
    G_j, index_j = evtools_jax.filter_gradient_norms(*flax_model, flax_data, progress=False, **kwargs)
    assert index_j == index_t
    assert G_t.dtype == G_j.dtype == np.float32 and G_t.shape == G_j.shape
    return G_t, G_j


def _assert_float32_close(G_j, G_t):
    np.testing.assert_allclose(G_j, G_t, rtol=2e-4, atol=1e-6 * np.abs(G_t).max())


@pytest.mark.slow
@pytest.mark.parametrize("reduction", ["mean_abs", "l1", "l2"])
def test_same_network_same_matrix(reduction):
    model, flax_model, torch_data, flax_data = _twins(24, seed=0)
    with torch.no_grad():
        logits = model(torch_data[0]).numpy()
    np.testing.assert_allclose(flax_model[0](flax_model[1], flax_data[0]), logits, rtol=1e-4, atol=1e-5)
    G_t, G_j = _both(model, flax_model, torch_data, flax_data, reduction=reduction)
    _assert_float32_close(G_j, G_t)


@pytest.mark.slow
def test_tail_model_fitted_on_one_framework_scores_the_other():
    model, flax_model, torch_data, flax_data = _twins(240, seed=1)
    ref_t, ref_j = _both(model, flax_model, (torch_data[0][:200], torch_data[1][:200]),
                         (flax_data[0][:200], flax_data[1][:200]))
    new_t, new_j = _both(model, flax_model, (torch_data[0][200:], torch_data[1][200:]),
                         (flax_data[0][200:], flax_data[1][200:]))
    tail_t = ev.fit_tails(ref_t, threshold=ev.Quantile(0.9))
    tail_j = ev.fit_tails(ref_j, threshold=ev.Quantile(0.9))
    np.testing.assert_array_equal(tail_j.status, tail_t.status)
    np.testing.assert_array_equal(tail_j.n_exceed, tail_t.n_exceed)
    for name in ("threshold", "sigma", "xi"):
        np.testing.assert_allclose(getattr(tail_j, name), getattr(tail_t, name), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(tail_t.score(new_j), tail_t.score(new_t), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(tail_j.score(new_t), tail_t.score(new_t), rtol=1e-3, atol=1e-4)
