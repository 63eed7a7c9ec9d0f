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
        rows.append(torch.cat(row).numpy())
    model.zero_grad(set_to_none=True)
    return np.stack(rows)
