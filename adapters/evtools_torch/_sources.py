"""Which registered parameters a selected convolution's columns belong to, and how each is computed.

The rule (docs/guide.md, "What counts as a filter"): a column of ``G`` is one
output filter of one *registered parameter* as ``model.named_parameters()``
shows it. A plain convolution has one such parameter, its ``weight``. A
parametrised or transformed one has the parameters its weight is computed
from: ``parametrizations.weight.original0/1`` (weight_norm),
``parametrizations.weight.original`` (spectral_norm and any other
``torch.nn.utils.parametrize`` parametrisation), ``weight_g``/``weight_v`` (the
old ``torch.nn.utils.weight_norm`` hook), ``weight_orig`` (``torch.nn.utils.prune``).

Each parameter is a :class:`Source` with a route: ``"hooks"`` (the fast path
of :mod:`evtools_torch.gradnorms`, for a library ``forward`` that passes the
module's own ``weight`` Parameter, or a known transformation of its
parameters, to the convolution, used by this module alone) or ``"func"`` (the
exact ``torch.func`` fallback of :mod:`evtools_torch._func`, for everything
else: custom forwards, shared parameters, transformed transposed weights).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize, prune
from torch.nn.utils.weight_norm import WeightNorm

from evtools.adapter import FilterIndex, InvalidInputError, UnsupportedModelError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
ALL_TYPES = CONV_TYPES + TRANSPOSED_TYPES
_LIBRARY_FORWARDS = {t.forward for t in ALL_TYPES}
METHODS = ("auto", "hooks", "func")


class Source:
    """One registered parameter whose filters are columns of ``G``.

    Attributes
    ----------
    param : torch.nn.Parameter
    name : str
        Its name in ``model.named_parameters()``.
    layer : str
        Its name in the :class:`evtools.FilterIndex`: ``name`` without a trailing ``".weight"``
        (so a plain convolution's columns carry the module name).
    module : torch.nn.Module
        The first selected convolution that uses it; ``modules`` lists all of them.
    n_filters, n_weights : int
        Output filters, and weights of the parameter per filter.
    module_name : str
        The module's name in ``model.named_modules()``.
    route : {"hooks", "func"}
    reason : str or None
        Why the hooks cannot compute it (for messages), None on the hooks route.
    transform : callable or None
        For a parameter the weight is computed from: ``transform(*parameters) -> weight``, the
        parameters being those of the module's sources in order (the hooks give the effective
        weight's per-sample gradients, carried back through it with ``torch.func.vjp``).
    """

    def __init__(self, param, name, module, module_name, reason, transform):
        self.param = param
        self.module_name = module_name
        self.transform = transform
        self.name = name
        self.layer = name.removesuffix(".weight")
        self.module = module
        self.modules = [module]
        self.n_filters = module.out_channels
        self.n_weights = param.numel() // module.out_channels
        self.reason = reason
        self.route = "hooks" if reason is None else "func"
        self.columns = None

    def filters(self, grads):
        """Per-sample gradients of the parameter, shape (n, *param.shape) -> (n, n_filters, n_weights)."""
        n = grads.shape[0]
        module = self.module
        if isinstance(module, TRANSPOSED_TYPES) and tuple(self.param.shape) == tuple(module.weight.shape):
            groups = module.groups  # (C_in, C_out / groups, *kernel): output filters on axis 1, per group
            grads = grads.reshape(n, groups, module.in_channels // groups, module.out_channels // groups, -1)
            return grads.transpose(2, 3).reshape(n, self.n_filters, self.n_weights)
        if isinstance(module, TRANSPOSED_TYPES):  # (1, C_out, 1, ...), groups == 1 (checked)
            return grads.reshape(n, self.n_filters, 1)
        return grads.reshape(n, self.n_filters, self.n_weights)


def unwrap_compiled(model):
    """Run ``torch.compile``d modules eagerly: compiled graphs bypass module hooks.

    Returns
    -------
    runner : torch.nn.Module
        ``model``, or its ``_orig_mod`` for a compiled model.
    restore : callable
        Puts the compiled submodules back (they are swapped for their ``_orig_mod`` meanwhile).
    """
    runner = model._orig_mod if _is_compiled(model) else model
    swapped = []
    for module in runner.modules():
        for key, child in list(module._modules.items()):
            if child is not None and _is_compiled(child):
                module._modules[key] = child._orig_mod
                swapped.append((module, key, child))

    def restore():
        for module, key, child in swapped:
            module._modules[key] = child

    return runner, restore


def _is_compiled(module):
    return type(module).__name__ == "OptimizedModule" and isinstance(getattr(module, "_orig_mod", None), nn.Module)


def select_convolutions(model, layers=None):
    """The convolutions to record, in module order.

    Parameters
    ----------
    model : torch.nn.Module
    layers : sequence of str or torch.nn.Module, optional
        Default: every ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` of ``model``.

    Returns
    -------
    list of (str, torch.nn.Module)
        Names as in ``model.named_modules()``.
    """
    named = list(model.named_modules())
    if layers is None:
        chosen = [(name, m) for name, m in named if isinstance(m, ALL_TYPES)]
        if not chosen:
            raise InvalidInputError(
                f"{type(model).__name__} has no Conv1d, Conv2d or Conv3d module (nor a ConvTranspose); filter "
                "gradient norms need convolutions (Linear layers are not supported)"
            )
        return chosen
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    by_name = dict(named)
    position = {id(m): i for i, (_, m) in enumerate(named)}
    picked = {}
    for item in layers:
        if isinstance(item, str):
            if item not in by_name:
                convs = [name for name, m in named if isinstance(m, ALL_TYPES)]
                raise InvalidInputError(f"layers: no module named {item!r}; the convolutions are {convs}")
            module = by_name[item]
        elif isinstance(item, nn.Module):
            if id(item) not in position:
                raise InvalidInputError(f"layers: {type(item).__name__} module is not part of the model")
            module = item
        else:
            raise InvalidInputError(f"layers must hold module names or modules, got {type(item).__name__}")
        if not isinstance(module, ALL_TYPES):
            raise InvalidInputError(
                f"layers: {item if isinstance(item, str) else ''!s} is a {type(module).__name__}; "
                "only Conv1d/2d/3d and ConvTranspose1d/2d/3d are supported"
            )
        if id(module) in picked:
            raise InvalidInputError("layers: a convolution is listed twice")
        picked[id(module)] = position[id(module)]
    if not picked:
        raise InvalidInputError("layers is empty; pass None for every convolution")
    return [named[i] for i in sorted(picked.values())]


def sources_of(model, convs, method):
    """The registered parameters behind the selected convolutions, one :class:`Source` each, in column order.

    A Parameter used by several selected convolutions (shared weights) is one
    source, on the ``"func"`` route, named as ``named_parameters()`` first names it.

    Raises
    ------
    evtools.UnsupportedModelError
        For a weight that is neither a parameter nor computed by a known
        transformation, or a source parameter without one entry per output filter.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    names = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), name)
    found, order = {}, []
    for module_name, module in convs:
        params, reason, transform = _weight_parameters(module_name, module)
        for param in params:
            if id(param) not in names:
                raise UnsupportedModelError(
                    f"layer {module_name!r}: its weight parameter is not registered in the model; register it "
                    "as an nn.Parameter of the module"
                )
            source = found.get(id(param))
            if source is None:
                source = found[id(param)] = Source(param, names[id(param)], module, module_name, reason, transform)
                _check_filter_axis(module_name, source)
                order.append(source)
            elif module not in source.modules:
                source.modules.append(module)
                source.reason = f"shared: one Parameter used by {len(source.modules)} selected layers"
                source.route = "func"
    for source in order:  # the parameters of one transformed weight take one route
        if source.route == "func":
            for other in order:
                if other.module is source.module and other.route == "hooks":
                    other.route, other.reason = "func", source.reason
    mixing = batch_statistics(model)
    if mixing is not None:
        if method == "hooks":
            raise UnsupportedModelError(
                f"{mixing}; the hooks' batched pass would mix each row with its batch mates; use method='func' "
                "(each sample normalised alone, as in the one-sample loop) or track_running_stats=True"
            )
        for source in order:  # every row of the batched pass depends on the whole batch
            source.route, source.reason = "func", mixing
    start = 0
    for source in order:
        if method == "func":
            source.route = "func"
        elif method == "hooks" and source.route == "func":
            raise UnsupportedModelError(
                f"layer {source.layer!r}: the hooks cannot compute it exactly ({source.reason}); use "
                "method='auto' or method='func' (exact torch.func per-sample gradients)"
            )
        source.columns = slice(start, start + source.n_filters)
        start += source.n_filters
    return order


def batch_statistics(model):
    """Why the model's batched forward pass mixes samples (a BatchNorm without running statistics), or None."""
    for name, module in model.named_modules():
        if (isinstance(module, nn.modules.batchnorm._BatchNorm)
                and module.running_mean is None and module.running_var is None):
            return (f"{type(module).__name__} {name!r} normalises with the batch's statistics even in eval mode "
                    "(track_running_stats=False)")
    return None


def index_of(sources):
    """The :class:`evtools.FilterIndex` of the columns of ``sources`` (from :func:`sources_of`), in order."""
    return FilterIndex.from_layers(
        [s.layer for s in sources], [s.n_filters for s in sources], [s.n_weights for s in sources]
    )


def _weight_parameters(name, module):
    """``(parameters, reason the hooks cannot use them or None, transform or None)`` behind ``module``'s weight."""
    custom = type(module).forward not in _LIBRARY_FORWARDS or "forward" in module.__dict__
    transposed = isinstance(module, TRANSPOSED_TYPES)
    if parametrize.is_parametrized(module, "weight"):
        chain = module.parametrizations["weight"]
        keys = [key for key, _ in chain.named_parameters()]
        kind = f"parametrised weight ({type(chain[0]).__name__})"

        def transform(*tensors):
            return functional_call(chain, dict(zip(keys, tensors)), ())

        return list(chain.parameters()), _transform_reason(kind, custom, transposed), transform
    hooks = [
        h for h in module._forward_pre_hooks.values()
        if "weight" in (getattr(h, "name", None), getattr(h, "_tensor_name", None))  # weight_norm, prune
    ]
    if "weight" not in module._parameters and len(hooks) == 1:
        hook, kind = hooks[0], f"weight computed by a forward pre-hook ({type(hooks[0]).__name__})"
        if isinstance(hook, WeightNorm) and {"weight_g", "weight_v"} <= set(module._parameters):
            return ([module.weight_g, module.weight_v], _transform_reason(kind, custom, transposed),
                    lambda g, v: torch._weight_norm(v, g, hook.dim))
        if isinstance(hook, prune.BasePruningMethod) and "weight_orig" in module._parameters:
            mask = module.weight_mask
            return [module.weight_orig], _transform_reason(kind, custom, transposed), lambda w: w * mask
    weight = module._parameters.get("weight")
    if weight is None:
        raise UnsupportedModelError(
            f"layer {name!r}: its weight is not a registered Parameter of the module nor computed by "
            "torch.nn.utils.parametrize, prune or weight_norm; select other layers with layers="
        )
    return [weight], (f"custom forward of {type(module).__name__}" if custom else None), None


def _transform_reason(kind, custom, transposed):
    """Why the hooks cannot carry a transformed weight back to its parameters, or None if they can."""
    if custom:
        return f"{kind} and a custom forward"
    return f"{kind} of a transposed convolution" if transposed else None


def _check_filter_axis(module_name, source):
    """Refuse a source parameter that does not hold one slice per output filter."""
    module, shape = source.module, tuple(source.param.shape)
    weight_shape = tuple(module.weight.shape)
    if shape == weight_shape:
        return
    axis = 1 if isinstance(module, TRANSPOSED_TYPES) else 0
    per_filter = (
        len(shape) == len(weight_shape)
        and shape[axis] == module.out_channels
        and math.prod(shape) == module.out_channels
        and (axis == 0 or module.groups == 1)
    )
    if not per_filter:
        raise UnsupportedModelError(
            f"layer {module_name!r}: parameter {source.name!r} of shape {shape} has no entry per output filter "
            f"(the weight is {weight_shape}), so its gradient cannot be split into filters; for weight_norm of a "
            "transposed convolution use dim=1, or leave the layer out with layers="
        )
