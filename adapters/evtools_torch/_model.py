"""Model helpers shared by the experiments, repair and the demo: device and dtype, predictions, accuracy."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def device_dtype(model):
    """Device and floating dtype of the model's first parameter (CPU, float32 without one)."""
    param = next(model.parameters(), None)
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)


@torch.no_grad()
def predict(model, x, *, batch_size=512):
    """Class probabilities of a classifier, in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` images to ``(B, n_classes)`` logits. Its
        train/eval mode is restored afterwards.
    x : array_like, shape (N, C, H, W)
        Images, numpy or torch.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    ndarray, shape (N, n_classes), float32
        Softmax probabilities.
    """
    device, dtype = device_dtype(model)
    x = torch.as_tensor(x, dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        probs = [F.softmax(model(x[i:i + batch_size]), dim=1) for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(probs).cpu().numpy()


def evaluate(model, x, y, *, batch_size=512):
    """Top-1 accuracy of a classifier on ``(x, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (evaluated in eval mode).
    x : array_like, shape (N, C, H, W)
        Images.
    y : array_like, shape (N,)
        Integer labels.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    float
        Fraction of correct predictions.
    """
    return float((predict(model, x, batch_size=batch_size).argmax(1) == np.asarray(y)).mean())
