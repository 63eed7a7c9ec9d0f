"""Per-sample, per-filter gradient-norm matrices of a JAX CNN (Flax linen or NNX, Equinox, plain lax).

:func:`filter_gradient_norms` computes, for every input and every
convolution filter, a norm of the gradient of that input's loss on the
filter's weights: the matrix ``G`` that evtools' tail models and saliency
scores take, with the same meaning, columns and index as
``evtools_torch.filter_gradient_norms``. Per-sample gradients come from
``jax.vmap(jax.grad(...))``, compiled with ``jax.jit`` together with the
per-filter reduction, so only the ``(n, n_filters)`` norms leave the device.
"""
from __future__ import annotations

import contextlib
import itertools
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evtools.adapter import (
    FilterIndex,
    InvalidInputError,
    UnsupportedModelError,
    batch_iterator,
    check_pair,
    check_reduction,
    finished_in_batch,
    positive_int,
    progress_bar,
    row_sink,
)

from ._trace import conv_kernels

# Samples per compiled call on the CPU. vmap turns per-sample weight gradients
# into grouped convolutions with one group per sample, which XLA's CPU backend
# runs several times slower than the same work as single-sample convolutions;
# one sample per call (dispatched asynchronously, reduced on the device) is the
# fastest there. Accelerators take whole batches.
_CPU_CHUNK = 1


def filter_gradient_norms(
    apply_fn,
    params,
    data,
    *,
    loss=None,
    reduction="mean_abs",
    layers=None,
    batch_size=64,
    progress=True,
    out=None,
    resume=False,
    filters=None,
    tf32=False,
):
    """Per-sample, per-filter gradient norms of a CNN: the gradient matrix ``G``.

    Row ``i``, column ``j`` of ``G`` is a norm of the gradient of sample
    ``i``'s loss with respect to the weights of filter ``j``, as in Levin et
    al. (2022): one output filter of one *real parameter*, a leaf of
    ``params`` that a convolution kernel is made from (the kernel itself, or
    the raw kernel and scale behind a ``WeightNorm``), its gradient summed over
    every use of the parameter, as a one-sample ``jax.grad`` loop gives it.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, inputs) -> outputs`` for a batch ``inputs`` of shape
        (n, ...), in inference mode: BatchNorm on running statistics
        (``use_running_average=True``), dropout off. For Flax linen:
        ``model.apply`` with ``params`` the whole variables dict (batch
        statistics included), or a function of your own. Must be hashable
        (a function, a bound method, a ``functools.partial``): it is a static
        argument of :func:`jax.jit`, so calls with the same ``apply_fn``
        reuse the compiled code.
    params : pytree of arrays
        Everything ``apply_fn`` takes as its first argument. Only the real
        parameters of the convolutions are differentiated; the other leaves
        (biases, batch statistics, dense layers) are constants.
    data : (array, array) or iterable of (array, array)
        One ``(inputs, targets)`` pair, or an iterable of such batches (numpy
        or JAX arrays, or anything :func:`numpy.asarray` takes, e.g. the CPU
        tensors of a PyTorch ``DataLoader``). ``inputs``: shape (n, ...);
        ``targets``: shape (n, ...).
    loss : callable, optional
        ``loss(outputs, targets) -> array of shape (n,)``, one loss per
        sample, written in ``jax.numpy``. Default: softmax cross-entropy over
        the last axis of the outputs (Flax's channel-last convention) with
        integer class targets in ``[0, n_classes)`` of shape
        ``outputs.shape[:-1]``, or float class probabilities of the outputs'
        shape; for outputs with extra axes (segmentation, shape
        (n, ..., n_classes)) the per-sample loss is the mean over them.
    reduction : {"mean_abs", "l1", "l2"}
        Norm of each filter's gradient ``g`` (its ``n_weights`` weight
        gradients; the bias is not a real parameter of the kernel): ``mean(|g|)`` (Levin et al.),
        ``sum(|g|)`` or ``sqrt(sum(g**2))``.
    layers : str or sequence of str, optional
        Real parameters to include, by name (as in the returned index), as
        ``layers=`` of the PyTorch adapter. Default: every one. Columns follow
        the forward pass whatever the order given.
    batch_size : int
        Samples per compiled call on an accelerator (memory grows with
        ``batch_size`` times the number of convolution weights) and per block
        of rows written; larger batches from ``data`` are split. On the CPU,
        each compiled call holds one sample, which XLA runs fastest there.
    progress : bool
        Show a tqdm progress bar (only when the output is a terminal).
    out : str, os.PathLike or object with an ``update(block)`` method, optional
        None: return ``G`` in memory. A path: rows are written to that
        ``.npy`` file as batches finish and ``G`` is returned as a read-only
        memory map. An accumulator such as :class:`evtools.TopKAccumulator`:
        each finished block of rows (ndarray, shape (b, n_filters)) is passed
        to its ``update`` and the accumulator is returned instead of ``G``.
    resume : bool
        Only with ``out`` a path. The file keeps its finished rows when a run
        stops (killed, interrupted, an error): its header always counts them,
        so ``np.load`` reads them, and a marker ``out + ".partial"`` lies
        beside it until the run completes. ``resume=True`` continues such a
        run from its first missing row: give the same parameters, ``data``
        (in the same order) and ``batch_size``, and the file ends equal to an
        uninterrupted run's. A missing file starts afresh.
    filters : str or sequence of str, optional
        Deprecated alias of ``layers`` (its name in 0.1.0); warns with a
        DeprecationWarning.
    tf32 : bool
        False (default): float32 convolutions and matrix products run in full
        float32 (``jax.default_matmul_precision("float32")`` around the call,
        thread-local), whatever the process's default: on a GPU, JAX's default
        precision for float32 uses TensorFloat-32 (a 10-bit mantissa), which
        made float32 rows depend on the batch size by about 1e-3 on an H200.
        True: keep the default precision (faster on a GPU, approximate). A
        ``precision=`` given in the model's own layers wins either way.

    Returns
    -------
    G : ndarray or numpy.memmap, shape (n_samples, n_filters), or the ``out`` accumulator
        float64 when a selected kernel is float64 (``jax_enable_x64``), else
        float32. Rows follow ``data``'s order.
    index : evtools.FilterIndex
        Per column: layer name, channel, depth (order of the parameter's first
        use in the forward pass) and number of weights per filter
        (``prod(window) * in / groups`` for a kernel, 1 for a per-filter
        scale). The layer name is the parameter's path in ``params`` without
        the ``"params"`` collection, a trailing ``"value"`` and the final
        ``"kernel"``/``"weight"`` key: ``"block.conv1"``, the name PyTorch
        gives the same module.

    Raises
    ------
    evtools.InvalidInputError
        For a model without convolutions, a bad ``filters`` entry, parameters
        that are not arrays, batches that are not ``(inputs, targets)`` pairs
        of equal length, targets out of range or of the wrong shape, a loss
        that is not one value per sample or is not finite, or a non-finite
        gradient norm.
    evtools.UnsupportedModelError
        For a selected parameter a kernel depends on that has no output
        filters (a scalar scale, stacked ``nn.scan`` kernels, a kernel shared
        along different filter axes): the message names it, the convolution
        and the way out (``layers=`` without it).

    Notes
    -----
    The forward pass is traced once with :func:`jax.make_jaxpr`; walking back
    from the kernel of every ``lax.conv_general_dilated``, each float leaf it
    depends on (not through ``stop_gradient``) is a real parameter, with the
    axis that becomes the kernel's output-channel axis (read from the
    convolution's dimension numbers, so Flax's ``(*window, in, out)`` and
    Equinox's ``(out, in, *window)`` layouts are both understood) as its
    filter axis; see ``evtools_jax._trace``. A parameter used several times
    (shared weights) gets one set of columns, the norm of its summed
    gradient. Each sample's loss is computed on
    that sample alone (``apply_fn`` sees a batch of one inside ``jax.vmap``),
    so rows do not depend on batch neighbours. A new input shape, dtype or
    ``apply_fn`` compiles anew; the compiled code is cached by JAX.

    Examples
    --------
    >>> G, index = filter_gradient_norms(model.apply, variables, (x, y))  # doctest: +SKIP
    >>> G[:, index.columns_of("block.conv1")]                           # doctest: +SKIP
    """
    check_reduction(reduction)
    if filters is not None:
        if layers is not None:
            raise InvalidInputError("pass layers= only (filters= is its deprecated alias)")
        warnings.warn("filter_gradient_norms(filters=...) is deprecated (its name in 0.1.0); use layers=, "
                      "as the PyTorch adapter does", DeprecationWarning, stacklevel=2)
        layers = filters
    batch_size = positive_int(batch_size, "batch_size")
    if not callable(apply_fn):
        raise InvalidInputError(f"apply_fn must be callable as apply_fn(params, inputs), got {type(apply_fn).__name__}")
    if loss is not None and not callable(loss):
        raise InvalidInputError(f"loss must be callable as loss(outputs, targets), got {type(loss).__name__}")
    for name, fn in (("apply_fn", apply_fn), ("loss", loss)):
        try:
            hash(fn)
        except TypeError:
            raise InvalidInputError(
                f"{name} must be hashable (a function, bound method or functools.partial): it is a static "
                "argument of jax.jit"
            ) from None
    if not isinstance(tf32, bool):
        raise InvalidInputError(f"tf32 must be True or False, got {tf32!r}")
    leaves, treedef = _check_params(params)
    params = jax.tree_util.tree_unflatten(treedef, leaves)

    batches, total = batch_iterator(data, _is_array, "arrays")
    first = next(batches, None)
    if first is None:
        raise InvalidInputError("data holds no samples")
    inputs, targets = _check_batch(first, 0)
    kernels = _select(*conv_kernels(apply_fn, params, inputs[:1]), layers)
    index = FilterIndex.from_layers(
        [k.name for k in kernels],
        [k.shape[k.out_axis] for k in kernels],
        [int(np.prod(k.shape)) // k.shape[k.out_axis] for k in kernels],
    )
    dtype = np.float64 if any(leaves[k.position].dtype == np.float64 for k in kernels) else np.float32
    plan = _Plan(treedef, tuple(k.position for k in kernels), tuple(k.out_axis for k in kernels))
    chosen = set(plan.positions)
    weights = tuple(leaves[p] for p in plan.positions)
    others = tuple(leaf for p, leaf in enumerate(leaves) if p not in chosen)
    compiled = partial(_norms, apply_fn=apply_fn, loss=loss, reduction=reduction, plan=plan)
    chunk = min(batch_size, _CPU_CHUNK) if jax.default_backend() == "cpu" else batch_size
    checked = {}
    sink = row_sink(out, len(index), dtype, resume=resume)
    row = 0
    all_batches = itertools.chain([(inputs, targets)], (_check_batch(b, i) for i, b in enumerate(batches, 1)))
    try:
        with contextlib.nullcontext() if tf32 else jax.default_matmul_precision("float32"), \
                progress_bar(total, enabled=progress, desc="gradient norms") as bar:
            for inputs, targets in all_batches:
                done = finished_in_batch(inputs.shape[0], row, sink.rows_done)  # resume: rows already in the file
                if done < inputs.shape[0]:
                    _check_outputs(apply_fn, loss, params, inputs, targets, row, checked)
                row += done
                bar.update(done)
                for start in range(done, inputs.shape[0], batch_size):
                    stop = min(start + batch_size, inputs.shape[0])
                    pending = [
                        compiled(weights, others, inputs[i:min(i + chunk, stop)], targets[i:min(i + chunk, stop)])
                        for i in range(start, stop, chunk)
                    ]
                    block = _finite_rows(pending, row, index)
                    sink.write(block.astype(dtype, copy=False))
                    row += block.shape[0]
                    bar.update(block.shape[0])
        if row == 0:
            raise InvalidInputError("data holds no samples")
        result = sink.close()
    except BaseException:
        sink.abort()
        raise
    return result, index


class _Plan(NamedTuple):
    """Where the differentiated kernels sit among the parameter leaves (hashable: a static jit argument)."""

    treedef: object
    positions: tuple  # leaf positions of the kernels, in column order
    out_axes: tuple   # output-channel axis of each kernel

    def params(self, kernels, others):
        """The parameter pytree from the kernels and the other leaves."""
        leaves, rest, chosen = [], iter(others), dict(zip(self.positions, kernels))
        for position in range(self.treedef.num_leaves):
            leaves.append(chosen[position] if position in chosen else next(rest))
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


@partial(jax.jit, static_argnames=("apply_fn", "loss", "reduction", "plan"))
def _norms(kernels, others, inputs, targets, *, apply_fn, loss, reduction, plan):
    """Per-sample losses and per-filter gradient norms of one chunk of samples.

    Returns
    -------
    losses : Array, shape (n,)
    norms : Array, shape (n, n_filters)
    """
    per_sample = _cross_entropy if loss is None else loss

    def sample_loss(kernels, x, t):
        return per_sample(apply_fn(plan.params(kernels, others), x[None]), t[None])[0]

    losses, grads = jax.vmap(jax.value_and_grad(sample_loss), in_axes=(None, 0, 0))(kernels, inputs, targets)
    return losses, jnp.concatenate([_reduce(g, axis + 1, reduction) for g, axis in zip(grads, plan.out_axes)], 1)


def _reduce(grads, axis, reduction):
    """Norm over every axis of per-sample kernel gradients except the samples' and ``axis`` (the filters')."""
    over = tuple(a for a in range(1, grads.ndim) if a != axis)
    if reduction == "l2":
        return jnp.sqrt(jnp.sum(grads * grads, axis=over))
    if reduction == "l1":
        return jnp.sum(jnp.abs(grads), axis=over)
    return jnp.mean(jnp.abs(grads), axis=over)


def _cross_entropy(outputs, targets):
    """Per-sample softmax cross-entropy over the last axis, mean over any axes between."""
    logp = jax.nn.log_softmax(outputs, axis=-1)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    else:
        nll = -jnp.sum(targets * logp, axis=-1)
    return nll.reshape(nll.shape[0], -1).mean(1)


def _check_params(params):
    """The parameter leaves as JAX arrays, and the tree structure."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = []
    for path, leaf in with_paths:
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            raise InvalidInputError(
                f"params must be a pytree of arrays; leaf {jax.tree_util.keystr(path)} is a {type(leaf).__name__} "
                "(Equinox: split the model with eqx.partition(model, eqx.is_array))"
            )
        leaves.append(jnp.asarray(leaf))  # on the device once, in the dtype JAX computes in
    return leaves, treedef


def _select(kernels, refused, layers):
    """The kernels named in ``layers`` (all when None), in forward order; a refused one selected raises."""
    if not kernels and not refused:
        raise InvalidInputError(
            "apply_fn uses no parameter of params as a convolution kernel: filter gradient norms need convolutions "
            "(a leaf of params that lax.conv_general_dilated's kernel is made from)"
        )
    names = [k.name for k in kernels] + [r.name for r in refused]
    if layers is None:
        wanted = names
    else:
        if isinstance(layers, str):
            layers = [layers]
        wanted = []
        for item in layers:
            if not isinstance(item, str):
                raise InvalidInputError(f"layers must hold layer names (str), got {type(item).__name__}")
            if item not in names:
                raise InvalidInputError(f"layers: no convolution named {item!r}; the convolutions are {names}")
            if item in wanted:
                raise InvalidInputError(f"layers: {item!r} is listed twice")
            wanted.append(item)
        if not wanted:
            raise InvalidInputError("layers is empty; pass None for every convolution")
    for refusal in refused:
        if refusal.name in wanted:
            others = [name for name in names if name not in {r.name for r in refused}]
            leave_out = f"Leave it out with layers={others!r}, or close" if others else "Close"
            raise UnsupportedModelError(
                f"parameter {refusal.name!r} cannot have exact per-filter columns: {refusal.reason}. "
                f"{leave_out} over it in apply_fn so that it is a constant"
            )
    return [k for k in kernels if k.name in wanted]


def _is_array(value):
    return isinstance(value, (jax.Array, np.ndarray)) or (hasattr(value, "__array__") and hasattr(value, "shape"))


def _check_batch(batch, number):
    """Validate one ``(inputs, targets)`` batch: inputs as a JAX or numpy array, targets as numpy."""
    inputs, targets = check_pair(batch, number)
    if not isinstance(inputs, jax.Array):
        inputs = np.asarray(inputs)
    targets = np.asarray(targets)
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
        raise InvalidInputError(
            f"batch {number}: inputs of shape {tuple(inputs.shape)} and targets of shape "
            f"{tuple(targets.shape)} do not have the same number of samples (first dimension)"
        )
    return inputs, targets


def _check_outputs(apply_fn, loss, params, inputs, targets, first_row, checked):
    """Check the outputs (default loss) or the loss (given) of a batch, and the targets.

    ``checked`` caches the output shape by the batch's shapes and dtypes, so
    ``apply_fn`` is traced once per shape.
    """
    n = inputs.shape[0]
    key = (inputs.shape, str(inputs.dtype), targets.shape, str(targets.dtype))
    if key not in checked:
        x = jax.ShapeDtypeStruct(inputs.shape, inputs.dtype)
        if loss is None:
            checked[key] = _default_loss_shape(jax.eval_shape(apply_fn, params, x), targets)
        else:
            t = jax.ShapeDtypeStruct(targets.shape, targets.dtype)
            losses = jax.eval_shape(lambda p, x, t: loss(apply_fn(p, x), t), params, x, t)
            if not isinstance(losses, jax.ShapeDtypeStruct) or tuple(losses.shape) != (n,):
                shape = tuple(losses.shape) if isinstance(losses, jax.ShapeDtypeStruct) else type(losses).__name__
                raise InvalidInputError(
                    f"loss must return one value per sample, an array of shape ({n},), got {shape}"
                )
            checked[key] = None
    n_classes = checked[key]
    if n_classes is not None:
        bad = (targets < 0) | (targets >= n_classes)
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(n, -1).any(1))[0])
            raise InvalidInputError(
                f"target of sample {first_row + i} is out of range: the model has {n_classes} classes, so "
                f"targets must lie in [0, {n_classes - 1}]"
            )


def _default_loss_shape(outputs, targets):
    """Check outputs and targets for the default cross-entropy; the number of classes for integer targets."""
    if not isinstance(outputs, jax.ShapeDtypeStruct) or len(outputs.shape) < 2:
        shape = tuple(outputs.shape) if isinstance(outputs, jax.ShapeDtypeStruct) else type(outputs).__name__
        raise InvalidInputError(
            f"cross-entropy needs logits of shape (n, ..., n_classes), apply_fn returned {shape}; "
            "pass loss= for other outputs"
        )
    if np.issubdtype(targets.dtype, np.floating):
        if targets.shape != tuple(outputs.shape):
            raise InvalidInputError(
                f"float targets are read as class probabilities and must have the outputs' shape "
                f"{tuple(outputs.shape)}, got {targets.shape}; class indices must be integers"
            )
        return None
    if not np.issubdtype(targets.dtype, np.integer) or targets.shape != tuple(outputs.shape[:-1]):
        raise InvalidInputError(
            f"class-index targets must be integers of shape {tuple(outputs.shape[:-1])}, "
            f"got {targets.dtype} of shape {targets.shape}"
        )
    return outputs.shape[-1]


def _finite_rows(pending, first_row, index):
    """Bring the norms of a batch's chunks to the host, checking losses and norms are finite.

    Returns
    -------
    ndarray, shape (n, n_filters)
    """
    losses = np.concatenate([np.asarray(chunk[0]) for chunk in pending])
    block = np.concatenate([np.asarray(chunk[1]) for chunk in pending])
    bad = ~np.isfinite(losses)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"the loss of sample {first_row + i} is {losses[i]}; check the inputs and the model's outputs for NaN/inf"
        )
    bad = ~np.isfinite(block)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InvalidInputError(
            f"non-finite gradient norm ({block[i, j]}) for sample {first_row + i} in layer "
            f"{index.layer[j]!r}; check the model and inputs for overflow"
        )
    return block
