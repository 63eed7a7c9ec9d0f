"""The Flax twin of ``twin_torch.TorchTwin``, and the weight copy from PyTorch to Flax.

Inputs are channel-last, (n, H, W, 3); kernels are Flax's ``(*window, in,
out)``. Module names equal the PyTorch ones, so both adapters give the same
filter index.
"""
import numpy as np
from flax import linen


def _bn():
    return linen.BatchNorm(use_running_average=True, epsilon=1e-5)


class FlaxTwinBlock(linen.Module):
    c: int

    def setup(self):
        self.conv1 = linen.Conv(self.c, (3, 3), padding=1, feature_group_count=2, use_bias=False)
        self.bn1 = _bn()
        self.conv2 = linen.Conv(self.c, (3, 3), padding=2, kernel_dilation=2, use_bias=False)
        self.bn2 = _bn()

    def __call__(self, x):
        out = linen.relu(self.bn1(self.conv1(x)))
        return linen.relu(self.bn2(self.conv2(out)) + x)


class FlaxTwin(linen.Module):
    """Inputs (n, H, W, 3), logits (n, n_classes)."""

    n_classes: int = 5

    def setup(self):
        self.stem = linen.Conv(6, (3, 3), strides=2, padding=1)
        self.bn = _bn()
        self.block = FlaxTwinBlock(6)
        self.head = linen.Conv(8, (1, 1), use_bias=False)
        self.fc = linen.Dense(self.n_classes)

    def __call__(self, x):
        x = self.block(linen.relu(self.bn(self.stem(x))))
        return self.fc(linen.relu(self.head(x)).mean((1, 2)))


def flax_variables(state):
    """Flax variables ``{"params": ..., "batch_stats": ...}`` from a PyTorch state dict.

    Parameters
    ----------
    state : dict of str to ndarray
        ``twin_torch.numpy_state(model)``: convolution weights (out, in / groups, *window),
        linear weights (out, in), biases, BatchNorm weight, bias, running_mean, running_var.

    Returns
    -------
    dict
        Convolution kernels as ``(*window, in / groups, out)``, dense kernels as (in, out),
        BatchNorm ``scale``/``bias`` in ``params`` and ``mean``/``var`` in ``batch_stats``.
    """
    variables = {"params": {}, "batch_stats": {}}
    for key, value in state.items():
        *path, leaf = key.split(".")
        if leaf in ("running_mean", "running_var"):
            collection, name = "batch_stats", leaf[len("running_"):]
        elif leaf == "weight" and value.ndim >= 3:
            collection, name = "params", "kernel"
            value = np.transpose(value, tuple(range(2, value.ndim)) + (1, 0))
        elif leaf == "weight" and value.ndim == 2:
            collection, name, value = "params", "kernel", value.T
        elif leaf == "weight":
            collection, name = "params", "scale"
        else:
            collection, name = "params", leaf
        node = variables[collection]
        for part in path:
            node = node.setdefault(part, {})
        node[name] = np.ascontiguousarray(value)
    return variables


def flax_twin(seed=0, n_classes=5, dtype=np.float32):
    """A :class:`FlaxTwin` with random weights and BatchNorm statistics, without PyTorch.

    Returns
    -------
    apply_fn : callable
        ``FlaxTwin(n_classes).apply``.
    variables : dict
        As :func:`init_variables` gives them.
    """
    model = FlaxTwin(n_classes)
    return model.apply, init_variables(model, np.zeros((1, 12, 12, 3), np.float32), seed, dtype)


def init_variables(model, example, seed=0, dtype=np.float32):
    """``model.init`` with BatchNorm's statistics, scale and bias random too (not 0 and 1).

    Parameters
    ----------
    model : flax.linen.Module
    example : ndarray
        An input batch for ``model.init``.
    seed : int
    dtype : numpy dtype

    Returns
    -------
    dict
        Writable numpy arrays of ``dtype`` (float64 needs ``jax.enable_x64`` where they are used).
    """
    import jax

    variables = model.init(jax.random.key(seed), example)
    variables = jax.tree_util.tree_map(lambda leaf: np.array(leaf, dtype=dtype), variables)
    rng = np.random.default_rng(seed)
    with_paths = jax.tree_util.tree_flatten_with_path(variables)[0]
    normed = {path[1:-1] for path, _ in with_paths if jax.tree_util.keystr(path[-1:], simple=True) == "scale"}
    for path, value in with_paths:
        name = jax.tree_util.keystr(path[-1:], simple=True)
        if name == "mean" or (name == "bias" and path[1:-1] in normed):
            value[...] = rng.standard_normal(value.shape) * 0.1
        elif name in ("var", "scale"):
            value[...] = rng.random(value.shape) + 0.5
    return variables
