"""Finding the real parameters behind the convolution kernels of a JAX model by tracing its forward pass.

A JAX model is a function and a pytree of parameters; nothing marks which
leaves are convolution kernels or how they are laid out (Flax: ``(*window,
in, out)``; Equinox: ``(out, in, *window)``). The forward pass knows: tracing
``apply_fn`` with :func:`jax.make_jaxpr` shows every ``conv_general_dilated``,
the dimension numbers that say which axis of its kernel holds the output
channels, and the operations that made that kernel from the parameter leaves.

The columns of ``G`` belong to *real parameters*, the leaves of ``params``,
never to the tensor a convolution received. Walking back from each
convolution's kernel, a float leaf it depends on (except through
``stop_gradient``) is one of the convolution's real parameters: the kernel
itself (unchanged or cast), or the raw kernel and scale behind a
``WeightNorm``, ``SpectralNorm`` or any other transformation. The leaf's
filter axis is the axis that becomes the kernel's output-channel axis along
operations that keep axes apart (elementwise arithmetic with broadcast
factors, reshapes that keep the axis, transposes, reversals, the free axes
of a matrix product, ``jit`` and custom-derivative calls). A leaf that reaches a kernel only through
operations that mix its axes (a contraction over its filters, a slice of
stacked kernels, a scalar factor), or whose filter axis differs between uses, has no output
filters: it is refused by name rather than given made-up columns.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import numpy as np
from jax.extend.core import Literal

_CONV = "conv_general_dilated"
_CUT = frozenset({"stop_gradient"})
# operations whose output element depends on the operand elements at the same position
# (an operand of length 1 along an axis is broadcast along it)
_ELEMENTWISE = frozenset({
    "abs", "add", "add_any", "atan2", "clamp", "convert_element_type", "copy", "copy_p", "cos", "div", "erf",
    "exp", "exp2", "expm1", "integer_pow", "log", "log1p", "logistic", "max", "min", "mul", "neg", "pow",
    "reduce_precision", "rem", "rsqrt", "select_n", "sign", "sin", "sqrt", "square", "sub", "tan", "tanh",
})
_LOOP_CONSTS = {"scan": "num_consts", "while": "body_nconsts"}  # leading loop operands that stay fixed
_COLLECTION = "params"            # Flax linen's parameter collection, left out of names
_WRAPPERS = frozenset({"value"})  # Flax NNX's Variable.value, left out of names
_KERNEL_KEYS = frozenset({"kernel", "weight"})  # a layer's kernel attribute, left out of names


class Kernel(NamedTuple):
    """One real parameter of the convolutions: a parameter leaf that a convolution kernel is made from.

    Attributes
    ----------
    name : str
        Layer name: the leaf's path in the parameters (see :func:`layer_name`).
    position : int
        Position of the leaf in ``jax.tree_util.tree_leaves(params)``.
    out_axis : int
        Axis of the leaf that holds the output filters.
    shape : tuple of int
        Leaf shape.
    """

    name: str
    position: int
    out_axis: int
    shape: tuple


class Refusal(NamedTuple):
    """A parameter leaf that a convolution kernel depends on but that has no output filters.

    Attributes
    ----------
    name : str
        Layer name of the leaf (see :func:`layer_name`).
    reason : str
        Which convolution uses it and why it has no filter axis.
    """

    name: str
    reason: str


def conv_kernels(apply_fn, params, inputs):
    """The real parameters of the convolutions, in order of first use, and the leaves refused.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, inputs) -> outputs``; hashable.
    params : pytree of arrays
    inputs : array, shape (n, ...)
        A batch to trace the forward pass with (one sample is enough).

    Returns
    -------
    kernels : list of Kernel
        Each leaf once, ordered by the first convolution that uses it (leaf
        order within one convolution).
    refused : list of Refusal
        Leaves a kernel depends on that have no output-filter axis.

    Notes
    -----
    Only shapes and dtypes are traced, and the answer is cached by
    ``apply_fn``, the tree structure and those shapes and dtypes, so calling
    again with the same model costs no tracing.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    kernels, refused = _conv_kernels(apply_fn, treedef, tuple(_aval(leaf) for leaf in leaves), _aval(inputs))
    return list(kernels), list(refused)


def _aval(array):
    return tuple(array.shape), str(array.dtype)


@functools.lru_cache(maxsize=64)
def _conv_kernels(apply_fn, treedef, leaf_avals, input_aval):
    structs = [jax.ShapeDtypeStruct(*aval) for aval in leaf_avals]
    closed = jax.make_jaxpr(lambda leaves, x: apply_fn(jax.tree_util.tree_unflatten(treedef, leaves), x))(
        structs, jax.ShapeDtypeStruct(*input_aval)
    )
    tree = jax.tree_util.tree_unflatten(treedef, structs)
    with_paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [layer_name(path) for path, _ in with_paths]
    linen = isinstance(tree, dict) and _COLLECTION in tree  # Flax linen's variables: only "params" are parameters
    is_param = [not linen or _key_names(path[0]) == [_COLLECTION] for path, _ in with_paths]
    top = _Scope(closed.jaxpr, None, None, len(structs), ())
    graph = _Graph()
    axes, reasons, order = {}, {}, []  # per leaf: {axis: conv}, first reason it has no axis; first-use order
    for number, (scope, eqn) in enumerate(_convolutions(top)):
        conv = _describe(eqn, number)
        sources = _sources(scope, eqn.invars[1], eqn.params["dimension_numbers"].rhs_spec[0], graph)
        for position, axis in sorted(sources, key=lambda s: (s[0], isinstance(s[1], str), str(s[1]))):
            if not is_param[position]:
                continue
            if position not in axes:
                axes[position] = {}
                order.append(position)
            if isinstance(axis, int):
                axes[position].setdefault(axis, conv)
            else:
                reasons.setdefault(position,
                                   f"it has no output filters: it reaches the kernel of {conv} only through {axis}")
    kernels, refused = [], []
    for position in order:
        found = axes[position]
        if len(found) == 1:
            (axis,) = found
            kernels.append(Kernel(names[position], position, axis, leaf_avals[position][0]))
        elif found:
            uses = ", ".join(f"axis {axis} for {conv}" for axis, conv in sorted(found.items()))
            refused.append(Refusal(names[position], f"its filters lie along different axes: {uses}"))
        else:
            refused.append(Refusal(names[position], reasons[position]))
    return tuple(kernels), tuple(refused)


class _Scope(NamedTuple):
    """A jaxpr and where its inputs come from: the parameter leaves (top level) or the operands of ``eqn``."""

    jaxpr: object
    parent: object      # the enclosing _Scope, None at the top
    eqn: object         # the equation of ``parent`` that calls this jaxpr
    n_leaves: int       # top level: the first n_leaves inputs are the parameter leaves
    path: tuple         # ids of the calling equations from the top: tells two calls of one jaxpr apart

    def enter(self, jaxpr, eqn):
        return _Scope(jaxpr, self, eqn, 0, self.path + (id(eqn),))


def _convolutions(scope):
    """Yield ``(scope, eqn)`` for every convolution, nested calls included, in forward order."""
    for eqn in scope.jaxpr.eqns:
        if eqn.primitive.name == _CONV:
            yield scope, eqn
        for inner in _inner_jaxprs(eqn):
            yield from _convolutions(scope.enter(inner, eqn))


def _inner_jaxprs(eqn):
    """The jaxprs an equation calls whose inputs are its last operands (a while loop: its body only)."""
    values = [eqn.params["body_jaxpr"]] if eqn.primitive.name == "while" else eqn.params.values()
    for value in values:
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", item)  # a ClosedJaxpr holds its Jaxpr
            if (hasattr(inner, "eqns") and hasattr(inner, "invars") and len(inner.invars) <= len(eqn.invars)
                    and len(inner.outvars) == len(eqn.outvars)):
                yield inner


class _Graph:
    """Per jaxpr (cached by identity): which equation computes each variable, which input each variable is."""

    def __init__(self):
        self._maps = {}

    def __call__(self, jaxpr):
        if id(jaxpr) not in self._maps:
            producers = {id(v): (eqn, k) for eqn in jaxpr.eqns for k, v in enumerate(eqn.outvars)}
            inputs = {id(v): i for i, v in enumerate(jaxpr.invars)}
            self._maps[id(jaxpr)] = (jaxpr, producers, inputs)  # the jaxpr is kept so its id stays unique
        return self._maps[id(jaxpr)][1:]


def _sources(scope, kernel, out_axis, graph):
    """Parameter leaves a convolution kernel depends on, each with the axis that becomes ``out_axis``.

    Returns
    -------
    set of (int, int or str)
        ``(leaf position, axis)``, or ``(leaf position, reason)`` for a
        dependence through an operation that does not keep the filter axis.
    """
    found, seen = set(), set()
    stack = [(scope, kernel, out_axis)]
    while stack:
        scope, var, axis = stack.pop()
        if isinstance(var, Literal) or not _is_float(var):
            continue
        key = (scope.path, id(var), axis if isinstance(axis, int) else None)
        if key in seen:
            continue
        seen.add(key)
        producers, inputs = graph(scope.jaxpr)
        if id(var) in inputs:
            stack.extend(_from_input(scope, inputs[id(var)], var, axis, found))
        elif id(var) in producers:
            stack.extend(_from_eqn(scope, *producers[id(var)], var, axis))
        # else a constant of the jaxpr (an array apply_fn closes over): not a parameter
    return found


def _is_float(var):
    dtype = getattr(getattr(var, "aval", None), "dtype", None)
    return dtype is not None and jax.numpy.issubdtype(dtype, jax.numpy.inexact)  # False for PRNG keys


def _from_input(scope, i, var, axis, found):
    """The operand of the enclosing call that feeds input ``i`` of the scope's jaxpr (leaves: into ``found``)."""
    if scope.parent is None:
        if i < scope.n_leaves:
            found.add((i, axis))
        return []
    eqn = scope.eqn
    operands = eqn.invars[len(eqn.invars) - len(scope.jaxpr.invars):]
    consts = eqn.params.get(_LOOP_CONSTS.get(eqn.primitive.name), len(operands))
    if i >= consts + eqn.params.get("num_carry", len(operands)):  # a scan's sliced input: a stacked kernel
        reason = (f"a slice of it taken by a {eqn.primitive.name} loop (stacked kernels of nn.scan or "
                  "lax.scan; unroll the loop so that each layer has a kernel of its own)")
        return [(scope.parent, operands[i], reason)]
    if i >= consts:  # a loop's carry: anything entering the loop may have made it
        reason = f"the carry of a {eqn.primitive.name} loop"
        return [(scope.parent, operand, reason) for operand in eqn.invars]
    return [(scope.parent, operands[i], _same(axis, var, operands[i], f"a call to {eqn.primitive.name}"))]


def _from_eqn(scope, eqn, k, var, axis):
    """The operands (or the called jaxprs' outputs) that output ``k`` of ``eqn`` is computed from, with the
    filter axis in each."""
    name = eqn.primitive.name
    if name in _CUT:
        return []
    inner = list(_inner_jaxprs(eqn))
    if inner:
        return [(scope.enter(jaxpr, eqn), jaxpr.outvars[k], _same(axis, var, jaxpr.outvars[k], name))
                for jaxpr in inner]
    if not isinstance(axis, int):
        return [(scope, operand, axis) for operand in eqn.invars]
    if name in _ELEMENTWISE:
        return [(scope, operand, _same(axis, var, operand, f"{name}, broadcast over all filters"))
                for operand in eqn.invars]
    if name == "dot_general":  # a factor of a low-rank kernel (LoRA) keeps the axis it contributes
        return [(scope, operand, name if mapped is None else mapped)
                for operand, mapped in zip(eqn.invars, _dot_axes(eqn.params, eqn.invars, axis))]
    mapped = _axis_before(name, eqn.params, _shape(eqn.invars[0]), _shape(var), axis)
    if mapped is None:
        return [(scope, operand, name) for operand in eqn.invars]
    return [(scope, eqn.invars[0], mapped)] + [(scope, other, name) for other in eqn.invars[1:]]


def _same(axis, var, other, reason):
    """The filter axis ``axis`` where ``other`` has ``var``'s length along it (same rank), else ``reason``.

    A reason stays a reason. Elementwise operations broadcast operands of
    length 1 along an axis, so a per-filter scale of shape (1, 1, 1, out)
    keeps the filter axis of a (kh, kw, in, out) kernel, a scalar does not.
    """
    if not isinstance(axis, int):
        return axis
    shape, other_shape = _shape(var), _shape(other)
    return axis if len(other_shape) == len(shape) and other_shape[axis] == shape[axis] else reason


def _axis_before(name, params, shape_in, shape_out, axis):
    """The operand axis that becomes output axis ``axis`` of a layout operation, or None."""
    if name == "rev":
        return axis
    if name == "transpose":
        return params["permutation"][axis]
    if name == "broadcast_in_dim":
        dims = tuple(params["broadcast_dimensions"])
        if axis in dims and shape_in[dims.index(axis)] == shape_out[axis]:
            return dims.index(axis)
        return None
    if name in ("reshape", "squeeze"):
        # the same axis when the axes before it hold as many elements and it keeps its length
        before = int(np.prod(shape_out[:axis]))
        for i, size in enumerate(shape_in):
            if int(np.prod(shape_in[:i])) == before and size == shape_out[axis]:
                return i
    return None


def _dot_axes(params, operands, axis):
    """The axis of each ``dot_general`` operand that becomes output axis ``axis`` (None where none does).

    The output's axes are the batch axes, then the free axes of the left
    operand, then those of the right one.
    """
    contract, batch = params["dimension_numbers"]
    free = [[d for d in range(len(_shape(operand))) if d not in contract[i] and d not in batch[i]]
            for i, operand in enumerate(operands)]
    if axis < len(batch[0]):
        return [batch[0][axis], batch[1][axis]]
    axis -= len(batch[0])
    if axis < len(free[0]):
        return [free[0][axis], None]
    return [None, free[1][axis - len(free[0])]]


def _shape(var):
    return tuple(getattr(getattr(var, "aval", None), "shape", ()))


def _describe(eqn, number):
    """A convolution as a user can find it: its module path (Flax's name stack) or its place in the forward pass."""
    where = str(eqn.source_info.name_stack)
    return f"convolution {number} ({where})" if where else f"convolution {number} of the forward pass"
def layer_name(path):
    """Layer name of a parameter from its path in the parameters.

    The path's keys joined by ``"."`` (a tuple key of NNX gives one key per
    item), without a leading ``"params"`` (Flax linen's collection), a
    trailing ``"value"`` (Flax NNX's variable) and the kernel's own key
    ``"kernel"`` or ``"weight"``: the module path, the name PyTorch gives the
    same module. ``{"params": {"block": {"conv1":
    {"kernel": ...}}}}`` gives ``"block.conv1"``.

    Parameters
    ----------
    path : tuple of jax.tree_util key entries

    Returns
    -------
    str
    """
    keys = [part for key in path for part in _key_names(key)]
    if len(keys) > 1 and keys[0] == _COLLECTION:
        keys = keys[1:]
    while len(keys) > 1 and keys[-1] in _WRAPPERS:
        keys = keys[:-1]
    if len(keys) > 1 and keys[-1] in _KERNEL_KEYS:
        keys = keys[:-1]
    return ".".join(keys) if keys else "kernel"


def _key_names(key):
    """A path entry as text: a dict key (a tuple key of NNX gives one entry per item), an attribute name or a
    sequence index."""
    for field in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
        if hasattr(key, field):
            value = getattr(key, field)
            return [str(item) for item in value] if isinstance(value, tuple) else [str(value)]
    return [str(key)]
