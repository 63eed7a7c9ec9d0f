"""Finding the convolution kernels of a JAX model by tracing its forward pass.

A JAX model is a function and a pytree of parameters; nothing marks which
leaves are convolution kernels or how they are laid out (Flax: ``(*window,
in, out)``; Equinox: ``(out, in, *window)``). The forward pass knows: tracing
``apply_fn`` with :func:`jax.make_jaxpr` shows every ``conv_general_dilated``
and the dimension numbers that say which axis of its kernel holds the output
channels. A parameter leaf is a convolution kernel when it enters a
convolution as its kernel, unchanged or only cast to another dtype (inside
nested ``jit``, ``remat``, custom-derivative or control-flow calls too).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax

_CONV = "conv_general_dilated"
_PASS_THROUGH = frozenset({"convert_element_type", "copy", "copy_p"})
_COLLECTION = "params"            # Flax linen's parameter collection, left out of names
_WRAPPERS = frozenset({"value"})  # Flax NNX's Variable.value, left out of names
_KERNEL_KEYS = frozenset({"kernel", "weight"})  # a layer's kernel attribute, left out of names


class Kernel(NamedTuple):
    """One convolution kernel among the parameter leaves.

    Attributes
    ----------
    name : str
        Layer name: the leaf's path in the parameters (see :func:`layer_name`).
    position : int
        Position of the leaf in ``jax.tree_util.tree_leaves(params)``.
    out_axis : int
        Axis of the kernel that holds the output channels (filters).
    shape : tuple of int
        Kernel shape.
    """

    name: str
    position: int
    out_axis: int
    shape: tuple


def conv_kernels(apply_fn, params, inputs):
    """Parameter leaves used as convolution kernels, in order of first use.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, inputs) -> outputs``; hashable.
    params : pytree of arrays
    inputs : array, shape (n, ...)
        A batch to trace the forward pass with (one sample is enough).

    Returns
    -------
    list of Kernel
        Each leaf once, ordered by the first convolution that uses it.

    Notes
    -----
    Only shapes and dtypes are traced, and the answer is cached by
    ``apply_fn``, the tree structure and those shapes and dtypes, so calling
    again with the same model costs no tracing.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return list(_conv_kernels(
        apply_fn, treedef, tuple(_aval(leaf) for leaf in leaves), _aval(inputs)
    ))


def _aval(array):
    return tuple(array.shape), str(array.dtype)


@functools.lru_cache(maxsize=64)
def _conv_kernels(apply_fn, treedef, leaf_avals, input_aval):
    structs = [jax.ShapeDtypeStruct(*aval) for aval in leaf_avals]
    closed = jax.make_jaxpr(lambda leaves, x: apply_fn(jax.tree_util.tree_unflatten(treedef, leaves), x))(
        structs, jax.ShapeDtypeStruct(*input_aval)
    )
    jaxpr = closed.jaxpr
    sources = {id(var): position for position, var in enumerate(jaxpr.invars[:len(structs)])}
    found = {}
    for position, out_axis in _kernel_uses(jaxpr, sources):
        found.setdefault(position, out_axis)
    with_paths = jax.tree_util.tree_flatten_with_path(jax.tree_util.tree_unflatten(treedef, structs))[0]
    return tuple(
        Kernel(layer_name(with_paths[position][0]), position, out_axis, leaf_avals[position][0])
        for position, out_axis in found.items()
    )


def _kernel_uses(jaxpr, sources):
    """Yield ``(leaf position, out_axis)`` for every convolution whose kernel is a source, in order.

    ``sources`` maps ``id(var)`` to a leaf position for the variables that
    hold a leaf (the leaf itself or a cast of it).
    """
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == _CONV:
            position = sources.get(id(eqn.invars[1]))
            if position is not None:
                yield position, eqn.params["dimension_numbers"].rhs_spec[0]
        elif name in _PASS_THROUGH:
            position = sources.get(id(eqn.invars[0]))
            if position is not None:
                sources[id(eqn.outvars[0])] = position
        else:
            for inner in _inner_jaxprs(eqn):
                # operands are passed to a sub-computation in order, after any leading
                # operands of the call itself (the index of a cond); a sliced operand
                # (the xs of a scan) changes shape and is not followed
                outer = eqn.invars[len(eqn.invars) - len(inner.invars):]
                mapped = {
                    id(var): sources[id(arg)]
                    for var, arg in zip(inner.invars, outer)
                    if id(arg) in sources and _shape(var) == _shape(arg)
                }
                if mapped:
                    yield from _kernel_uses(inner, mapped)


def _inner_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", item)  # a ClosedJaxpr holds its Jaxpr
            if hasattr(inner, "eqns") and hasattr(inner, "invars") and len(inner.invars) <= len(eqn.invars):
                yield inner


def _shape(var):
    return getattr(getattr(var, "aval", None), "shape", None)


def layer_name(path):
    """Layer name of a kernel from its path in the parameters.

    The path's keys joined by ``"."``, without a leading ``"params"``
    (Flax linen's collection), a trailing ``"value"`` (Flax NNX's variable)
    and the kernel's own key ``"kernel"`` or ``"weight"``: the module path, the
    name PyTorch gives the same module. ``{"params": {"block": {"conv1":
    {"kernel": ...}}}}`` gives ``"block.conv1"``.

    Parameters
    ----------
    path : tuple of jax.tree_util key entries

    Returns
    -------
    str
    """
    keys = [_key_name(key) for key in path]
    if len(keys) > 1 and keys[0] == _COLLECTION:
        keys = keys[1:]
    while len(keys) > 1 and keys[-1] in _WRAPPERS:
        keys = keys[:-1]
    if len(keys) > 1 and keys[-1] in _KERNEL_KEYS:
        keys = keys[:-1]
    return ".".join(keys) if keys else "kernel"


def _key_name(key):
    """A path entry as text: a dict key, an attribute name or a sequence index."""
    for field in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
        if hasattr(key, field):
            return str(getattr(key, field))
    return str(key)
