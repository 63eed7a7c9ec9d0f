"""One sample at a time: per-filter gradient norms of a JAX model, read from ``jax.grad``.

Slow and obviously correct; the JAX tests and the adapter contract suite
compare :func:`evtools_jax.filter_gradient_norms` with it.
"""
import functools
import os

import jax
import numpy as np

from evtools_jax._trace import layer_name


def filter_gradient_norms_loop(apply_fn, params, inputs, targets, reduction="mean_abs", loss=None,
                               layers=None, out_axis=-1):
    """Per-sample, per-filter gradient norms, one ``jax.grad`` of the whole parameter tree per sample.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, inputs) -> outputs``.
    params : pytree of arrays
        Kernels: the leaves whose key is ``"kernel"`` with 3 or more axes (Flax's
        ``Conv``), or every leaf named in ``layers``.
    inputs, targets : array, shape (n, ...)
    reduction : {"mean_abs", "l1", "l2"}
    loss : callable, optional
        ``loss(outputs, targets) -> (n,)``; default softmax cross-entropy of
        (n, n_classes) logits with integer labels.
    layers : sequence of str, optional
        Layer names (``evtools_jax._trace.layer_name`` of the kernel's path) in
        column order. Default: the Flax kernels in pytree order.
    out_axis : int or dict
        Axis of every kernel that holds the filters, or a dict giving it by
        layer name (-1 for layers not in the dict).

    Returns
    -------
    ndarray, shape (n, n_filters), float64
    """
    with_paths, _ = jax.tree_util.tree_flatten_with_path(params)
    names = {layer_name(path): i for i, (path, _) in enumerate(with_paths)}
    if layers is None:
        layers = [layer_name(path) for path, leaf in with_paths
                  if jax.tree_util.keystr(path[-1:], simple=True) == "kernel" and leaf.ndim >= 3]

    rows = []
    for i in range(inputs.shape[0]):
        leaves = jax.tree_util.tree_leaves(_sample_grad(apply_fn, loss, params, inputs[i], targets[i]))
        row = []
        for name in layers:
            axis = out_axis.get(name, -1) if isinstance(out_axis, dict) else out_axis
            g = np.moveaxis(np.asarray(leaves[names[name]], dtype=np.float64), axis, -1)
            g = g.reshape(-1, g.shape[-1])
            if reduction == "mean_abs":
                row.append(np.abs(g).mean(0))
            elif reduction == "l1":
                row.append(np.abs(g).sum(0))
            else:
                row.append(np.sqrt((g ** 2).sum(0)))
        rows.append(np.concatenate(row))
    return np.stack(rows)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _sample_grad(apply_fn, loss, params, x, t):
    """Gradient of one sample's loss with respect to every parameter (compiled once per model and loss)."""

    def sample_loss(params):
        out = apply_fn(params, x[None])
        if loss is None:
            return -jax.nn.log_softmax(out[0])[t]
        return loss(out, t[None])[0]

    return jax.grad(sample_loss)(params)


def compile_fast():
    """Ask XLA for quick compilation (``--xla_backend_optimization_level=0``) unless ``XLA_FLAGS`` says otherwise.

    Call before the first JAX computation (at the top of a test module): the
    tests compile many small functions once each, and the default
    optimisation takes several times longer to compile than they take to run.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()
