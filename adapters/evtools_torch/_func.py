"""The exact fallback: per-sample gradients of registered parameters by ``torch.func``.

``vmap(grad(loss of one sample))`` over a chunk of samples, with the chosen
parameters swapped in by ``functional_call``: the gradient of each sample's
loss on each parameter, summed over every use of the parameter in the forward
pass (whatever module, functional call, parametrisation or custom forward
uses it), exactly what a one-sample loop over ``torch.autograd.grad`` gives.
Each chunk is reduced per filter on the device before the next one starts.
Cost: about the one-sample loop's arithmetic, batched; memory: a chunk's
per-sample gradients of the chosen parameters.
"""
from __future__ import annotations

from torch.func import functional_call, grad, vmap

from evtools.adapter import UnsupportedModelError

from ._persample import reduce_gradients
from ._sources import batch_statistics

_CHUNK_ELEMENTS = 1 << 24  # per-sample gradient numbers per chunk (64 MiB of float32)


def func_filter_norms(model, sources, inputs, targets, loss_one, reduction, compute_dtype, out):
    """Write the columns of ``sources`` into ``out``.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; its forward hooks must be inactive.
    sources : list of evtools_torch._sources.Source
    inputs, targets : Tensor, shape (n, ...)
    loss_one : callable
        ``loss_one(outputs, targets) -> Tensor (1,)`` for a batch of one sample, no data-dependent checks.
    reduction : {"mean_abs", "l1", "l2"}
    compute_dtype : torch.dtype
        float32 or float64: gradients are reduced in it.
    out : Tensor, shape (n, n_filters)
        Columns ``source.columns`` are overwritten.

    Raises
    ------
    evtools.UnsupportedModelError
        When ``torch.func`` cannot differentiate the model sample by sample.
    """
    names = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), name)
    keys = [names[id(s.param)] for s in sources]
    tensors = tuple(s.param.detach() for s in sources)

    def one(params, x, t):
        outputs = functional_call(model, dict(zip(keys, params)), (x.unsqueeze(0),))
        return loss_one(outputs, t.unsqueeze(0))[0]

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    n = inputs.shape[0]
    step = max(1, min(n, _CHUNK_ELEMENTS // max(1, sum(t.numel() for t in tensors))))
    for start in range(0, n, step):
        stop = min(n, start + step)
        try:
            grads = per_sample(tensors, inputs[start:stop], targets[start:stop])
        except UnsupportedModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any torch.func failure becomes a named refusal
            layers = ", ".join(repr(s.layer) for s in sources[:4]) + (
                f" and {len(sources) - 4} more" if len(sources) > 4 else "")
            reason = sources[0].reason
            why = "method='func' was chosen" if reason is None else f"the hooks cannot compute them ({reason})"
            mixing = batch_statistics(model)
            fix = "" if mixing is None else f" ({mixing}: one sample alone may have too few values for it; " \
                                            "use track_running_stats=True)"
            raise UnsupportedModelError(
                f"layers {layers}: {why} and torch.func could not "
                f"differentiate the model one sample at a time ({type(exc).__name__}: {exc}); make the forward "
                f"pass vmap-compatible{fix}, or leave these layers out with layers="
            ) from exc
        for source, g in zip(sources, grads):
            norms = reduce_gradients(source.filters(g.detach().to(compute_dtype).contiguous()), reduction)
            out[start:stop, source.columns] = norms.to(out.dtype)
