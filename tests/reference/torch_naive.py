"""The reference procedure of Levin et al. (2022): one backward pass per sample.

Slow and obviously correct; ``tests/test_torch_gradnorms.py`` compares
:func:`evtools_torch.filter_gradient_norms` with it.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def filter_gradient_norms_loop(model, inputs, targets, reduction="mean_abs", loss=None):
    """Per-sample, per-filter gradient norms, one sample at a time, read from ``weight.grad``.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode (and left there).
    inputs, targets : Tensor, shape (n, ...)
    reduction : {"mean_abs", "l1", "l2"}
    loss : callable, optional
        ``loss(outputs, targets) -> (n,)``; default cross-entropy.

    Returns
    -------
    ndarray, shape (n, n_filters), float64
        Columns: every Conv1d/2d/3d in module order, each filter (output channel) in order.
    """
    model.eval()
    convs = [m for m in model.modules() if isinstance(m, CONV_TYPES)]
    rows = []
    for i in range(inputs.shape[0]):
        model.zero_grad(set_to_none=True)
        out = model(inputs[i:i + 1])
        if loss is None:
            value = F.cross_entropy(out, targets[i:i + 1])
        else:
            value = loss(out, targets[i:i + 1])[0]
        value.backward()
        row = []
        for conv in convs:
            grad = conv.weight.grad  # None for a convolution that does not reach the loss
            g = (torch.zeros_like(conv.weight) if grad is None else grad).detach().double().flatten(1)
            if reduction == "mean_abs":
                row.append(g.abs().mean(1))
            elif reduction == "l1":
                row.append(g.abs().sum(1))
            else:
                row.append(g.pow(2).sum(1).sqrt())
        rows.append(torch.cat(row).cpu().numpy())
    model.zero_grad(set_to_none=True)
    return np.stack(rows)


def parameter_gradient_norms_loop(model, inputs, targets, columns, reduction="mean_abs", loss=None):
    """Per-sample, per-filter gradient norms of registered parameters, one sample at a time.

    The rule of docs/guide.md ("What counts as a filter"): the gradient of
    sample ``i``'s loss on each parameter, by ``torch.autograd.grad`` (summed
    over every use of the parameter), split into the output filters of the
    convolution it belongs to.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode (and left there); the listed parameters must require gradients.
    inputs, targets : Tensor, shape (n, ...)
    columns : list of (str, torch.nn.Module)
        A parameter name (as in ``model.named_parameters()``) and the convolution whose
        output filters split it, in column order.
    reduction : {"mean_abs", "l1", "l2"}
    loss : callable, optional
        ``loss(outputs, targets) -> (n,)``; default cross-entropy.

    Returns
    -------
    ndarray, shape (n, n_filters), float64
    """
    model.eval()
    params = dict(model.named_parameters(remove_duplicate=False))
    chosen = [params[name] for name, _ in columns]
    rows = []
    for i in range(inputs.shape[0]):
        out = model(inputs[i:i + 1])
        value = F.cross_entropy(out, targets[i:i + 1]) if loss is None else loss(out, targets[i:i + 1])[0]
        grads = torch.autograd.grad(value, chosen, allow_unused=True)
        row = []
        for (name, conv), p, g in zip(columns, chosen, grads):
            g = (torch.zeros_like(p) if g is None else g).detach().double()
            for c in range(conv.out_channels):
                f = _filter(g, conv, c).flatten()
                row.append(f.abs().mean() if reduction == "mean_abs" else f.abs().sum() if reduction == "l1"
                           else f.pow(2).sum().sqrt())
        rows.append(torch.stack(row).cpu().numpy())
    return np.stack(rows)


def _filter(g, conv, c):
    """The entries of parameter gradient ``g`` that belong to output filter ``c`` of ``conv``."""
    transposed = isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    if g.numel() == conv.out_channels:  # one entry per filter (weight_norm's magnitude)
        return g.flatten()[c]
    if not transposed:
        return g[c]
    per_group_out = conv.out_channels // conv.groups
    per_group_in = conv.in_channels // conv.groups
    group, j = divmod(c, per_group_out)
    return g[group * per_group_in:(group + 1) * per_group_in, j]
