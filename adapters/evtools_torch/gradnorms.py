"""Per-sample, per-filter gradient-norm matrices of a PyTorch CNN.

:func:`filter_gradient_norms` computes, for every input and every
convolution filter, a norm of the gradient of that input's loss on the
filter's weights: the matrix ``G`` that evtools' tail models and saliency
scores take. One forward and one backward pass per batch; hooks on the
convolutions turn each layer's output gradient into per-sample filter norms
as it arrives (see :mod:`evtools_torch._persample`). Which parameters the
columns belong to and which route computes each: :mod:`evtools_torch._sources`;
the exact ``torch.func`` fallback: :mod:`evtools_torch._func`.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evtools.adapter import (
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

from ._func import func_filter_norms
from ._persample import L2_METHODS, ConvGeometry, filter_norms, per_sample_gradients, reduce_gradients
from ._precision import full_float32
from ._sources import index_of, select_convolutions, sources_of, unwrap_compiled


def filter_gradient_norms(
    model,
    data,
    *,
    loss=None,
    reduction="mean_abs",
    layers=None,
    batch_size=64,
    device=None,
    progress=True,
    out=None,
    l2_method="auto",
    method="auto",
    resume=False,
    tf32=False,
):
    """Per-sample, per-filter gradient norms of a CNN: the gradient matrix ``G``.

    Row ``i``, column ``j`` of ``G`` is a norm of the gradient of sample
    ``i``'s loss with respect to the weights of filter ``j``: one output
    filter of one *registered parameter* of a selected convolution (as
    ``model.named_parameters()`` shows it), the gradient summed over every use
    of the parameter, exactly what a one-sample loop over
    ``torch.autograd.grad(loss_i, params)`` gives. A plain convolution's
    parameter is its ``weight``; a parametrised, weight-normalised or pruned
    one has the parameters its weight is computed from. This is what Levin et
    al. (2022) compute with one backward pass per sample; here a whole batch
    takes one forward and one backward pass.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode (BatchNorm on running statistics, dropout off), so
        that each row depends on its own input only; every module's mode is
        restored afterwards. A BatchNorm without running statistics
        (``track_running_stats=False``) normalises with the batch's
        statistics even then: every column then takes the ``"func"`` route
        (each sample alone), and ``method="hooks"`` refuses. Other operations
        that mix samples in the forward pass are not detected.
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        One ``(inputs, targets)`` pair, or an iterable of such batches (a
        ``DataLoader``). ``inputs``: shape (n, ...); ``targets``: shape (n, ...).
    loss : callable, optional
        ``loss(outputs, targets) -> Tensor of shape (n,)``, one loss per
        sample. Default: cross-entropy with class-index targets (integers in
        ``[0, n_classes)``) or class-probability targets (float, shape of the
        outputs); for outputs with extra dimensions (e.g. segmentation) the
        per-sample loss is the mean over them.
    reduction : {"mean_abs", "l1", "l2"}
        Norm of each filter's gradient ``g`` (its ``n_weights`` weight
        gradients; the bias is excluded): ``mean(|g|)`` (Levin et al.),
        ``sum(|g|)`` or ``sqrt(sum(g**2))``.
    layers : sequence of str or torch.nn.Module, optional
        Convolutions to include, by name (as in ``model.named_modules()``) or
        as modules. Default: every ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``.
        Columns follow module order whatever the order given.
    batch_size : int
        Samples per forward/backward pass; larger batches from ``data`` are split.
    device : str or torch.device, optional
        Device to move each batch to; the model must already be there. Default:
        batches must already be on the model's device.
    progress : bool
        Show a tqdm progress bar (only when the output is a terminal).
    out : str, os.PathLike or object with an ``update(block)`` method, optional
        None: return ``G`` in memory. A path: rows are written to that
        ``.npy`` file as batches finish and ``G`` is returned as a read-only
        memory map, so a data set larger than memory streams to disk. An
        accumulator such as :class:`evtools.TopKAccumulator`: each finished
        block of rows (ndarray, shape (b, n_filters)) is passed to its
        ``update`` and the accumulator is returned instead of ``G``, so a tail
        model of a large reference set needs memory for its top rows only.
    l2_method : {"auto", "ghost", "materialise"}
        How ``"l2"`` is computed per layer: from the materialised per-sample
        filter gradients, or by the ghost-norm identity
        ``||g_c||^2 = dy_c^T (A^T A) dy_c`` (A: unfolded input, dy_c: output
        gradient of filter c). ``"auto"`` takes the one with fewer
        multiply-adds for each layer. Ignored for the other reductions.
    method : {"auto", "hooks", "func"}
        ``"hooks"``: the fast route (output-gradient hooks, one batched
        backward pass), refusing any parameter it cannot compute exactly;
        ``"func"``: the exact fallback, ``torch.func.vmap(grad(...))`` over
        the parameters in chunks of samples (about the one-sample loop's
        cost); ``"auto"``: hooks, and the fallback for exactly the parameters
        the hooks cannot handle (a custom ``forward``, a weight shared between
        layers or also used outside its module, a parametrised transposed
        convolution; all of them for a BatchNorm on batch statistics). See
        docs/guide.md, "What counts as a filter".
    resume : bool
        Only with ``out`` a path. The file keeps its finished rows when a run
        stops (killed, interrupted, an error): its header always counts them,
        so ``np.load`` reads them, and a marker ``out + ".partial"`` lies
        beside it until the run completes. ``resume=True`` continues such a
        run from its first missing row: give the same model, ``data`` (in the
        same order) and ``batch_size``, and the file ends equal to an
        uninterrupted run's. A missing file starts afresh.
    tf32 : bool
        False (default): float32 convolutions and matrix products run in
        full IEEE float32 for the call, whatever the process's TensorFloat-32
        (GPU) or oneDNN bfloat16 (CPU) settings (PyTorch lets cuDNN
        convolutions use TF32 by default; on an H200 that put a median
        relative error of 1.2e-2 into ResNet-50's float32 gradient norms,
        and made them depend on the batch size). The
        switch is PyTorch's and process-wide: other threads' float32 CUDA
        work during the call runs in full precision too; the settings are
        restored afterwards. True: keep the process's settings (faster on
        Ampere and later GPUs, approximate). No effect on float64 or on
        autocast's bfloat16/float16 operations. Under ``torch.autocast`` the
        rows are only as accurate as the autocast dtype: the hooks build each
        per-sample gradient from the float32 input and the upcast
        low-precision output gradient, so they match the one-sample loop run
        in the same autocast to about that dtype's rounding (bfloat16 on the
        CPU: 5e-4 of the largest entry on a small CNN), and both differ from
        full-precision rows by the dtype's error (there: a median 3e-3
        relative, one entry by a third of the largest).

    Returns
    -------
    G : ndarray or numpy.memmap, shape (n_samples, n_filters), or the ``out`` accumulator
        float64 when a selected parameter is float64, else float32. Rows follow ``data``'s order.
    index : evtools.FilterIndex
        Per column: the parameter's name without a trailing ``".weight"``
        (so the module name for a plain convolution; e.g.
        ``"conv.parametrizations.weight.original0"`` or ``"conv.weight_orig"``
        otherwise), channel, depth (order among the parameters) and number of
        weights per filter (``C_in / groups * prod(kernel_size)`` for a weight).

    Raises
    ------
    evtools.InvalidInputError
        For a model without convolutions, a bad ``layers`` entry, batches that
        are not ``(inputs, targets)`` pairs of equal length, data on another
        device than the model, targets out of range, a loss that is not one
        finite value per sample, or a non-finite gradient norm.
    evtools.UnsupportedModelError
        For a layer that cannot be computed exactly (reentrant checkpointing,
        compiled code that bypasses the hooks, a parameter without one slice
        per output filter, a forward that ``torch.func`` cannot differentiate
        on the fallback route, anything refused by ``method="hooks"``, a hook
        that did not fire); the message names the layer, the reason and the
        way out.

    Notes
    -----
    Parameters' ``.grad`` fields are not touched: the backward pass computes
    gradients of the convolution outputs only (no weight gradients at all), and
    each layer turns them into per-sample filter gradients with its unfolded
    input. The whole model's per-sample gradients never exist at once; one
    layer's (for a chunk of samples) at most. A convolution called several
    times in one forward pass gets the norm of the sum of its per-call
    gradients; calls under ``torch.no_grad()`` add nothing. After each forward
    pass the autograd graph is checked so that every use of a hooked parameter
    is one of its module's recorded calls; so that a frozen parameter's uses
    show in the graph too, it requires gradients during the forward pass
    (its flag is restored afterwards, and its ``.grad`` stays untouched).
    ``torch.compile``d modules run uncompiled (``_orig_mod``). Hooks are
    removed even when an error is raised.

    Examples
    --------
    >>> G, index = filter_gradient_norms(model, (x, y), reduction="mean_abs")  # doctest: +SKIP
    >>> G[:, index.columns_of("layer1.0.conv1")]                               # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_reduction(reduction)
    if l2_method not in L2_METHODS:
        raise InvalidInputError(f"l2_method must be one of {L2_METHODS}, got {l2_method!r}")
    batch_size = positive_int(batch_size, "batch_size")
    if loss is not None and not callable(loss):
        raise InvalidInputError(f"loss must be callable as loss(outputs, targets), got {type(loss).__name__}")
    if not isinstance(tf32, bool):
        raise InvalidInputError(f"tf32 must be True or False, got {tf32!r}")

    convs = select_convolutions(model, layers)
    sources = sources_of(model, convs, method)
    index = index_of(sources)
    device, move = _check_device(sources, device)
    dtype = np.float64 if any(s.param.dtype == torch.float64 for s in sources) else np.float32
    batches, total = batch_iterator(data, lambda v: isinstance(v, torch.Tensor), "tensors")
    sink = row_sink(out, len(index), dtype, resume=resume)
    modes = [(module, module.training) for module in model.modules()]
    recorder = _Recorder(
        sources, reduction, l2_method, torch.float64 if dtype == np.float64 else torch.float32, method
    )
    runner, restore = unwrap_compiled(model)
    row = 0
    try:
        runner.eval()
        with torch.enable_grad(), full_float32(not tf32), \
                progress_bar(total, enabled=progress, desc="gradient norms") as bar:
            for number, batch in enumerate(batches):
                inputs, targets = _check_batch(batch, number, device, move)
                done = finished_in_batch(inputs.shape[0], row, sink.rows_done)  # resume: rows already in the file
                row += done
                bar.update(done)
                for start in range(done, inputs.shape[0], batch_size):
                    block = recorder.run(
                        runner, inputs[start:start + batch_size], targets[start:start + batch_size], loss, row
                    )
                    sink.write(block.numpy().astype(dtype, copy=False))
                    row += block.shape[0]
                    bar.update(block.shape[0])
        if row == 0:
            raise InvalidInputError("data holds no samples")
        result = sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        recorder.remove()
        restore()
        for module, training in modes:
            module.training = training
    return result, index


def _check_device(sources, device):
    """Where batches go: ``(device, move)``; ``move`` says whether batches are moved there or must be there."""
    if device is None:
        devices = {s.param.device for s in sources}
        return (devices.pop() if len(devices) == 1 else None), False
    device = torch.device(device)
    for source in sources:
        if not _same_device(source.param.device, device):
            raise InvalidInputError(
                f"device={device} but layer {source.layer!r} is on {source.param.device}; move the model "
                f"with model.to({str(device)!r}) first"
            )
    return device, True


def _same_device(a, b):
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _check_batch(batch, number, device, move):
    """Validate one ``(inputs, targets)`` batch and move it to ``device`` (or check it is there)."""
    inputs, targets = check_pair(batch, number)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise InvalidInputError(
            f"batch {number}: inputs and targets must be tensors, got "
            f"{type(inputs).__name__} and {type(targets).__name__}"
        )
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
        raise InvalidInputError(
            f"batch {number}: inputs of shape {tuple(inputs.shape)} and targets of shape "
            f"{tuple(targets.shape)} do not have the same number of samples (first dimension)"
        )
    if move:
        return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    for name, tensor in (("inputs", inputs), ("targets", targets)):
        if device is not None and not _same_device(tensor.device, device):
            raise InvalidInputError(
                f"batch {number}: {name} are on {tensor.device} but the model is on {device}; move the "
                f"data, or pass device={str(device)!r} to move each batch"
            )
    return inputs, targets


class _Anchor(torch.autograd.Function):
    """Identity on a convolution's input that also depends on a scalar leaf.

    The backward pass is run for that leaf alone: it reaches every recorded
    convolution (whatever feeds it, frozen or integer-indexed), computes no
    parameter gradient and leaves ``.grad`` fields alone.
    """

    @staticmethod
    def forward(ctx, x, anchor):
        return x

    @staticmethod
    def backward(ctx, grad):
        return (grad if ctx.needs_input_grad[0] else None), None


_REENTRANT = (
    "a part of the model runs inside a reentrant torch.utils.checkpoint, which recomputes its forward pass "
    "during the backward pass, out of the hooks' reach (and breaks torch.autograd.grad); use "
    "torch.utils.checkpoint.checkpoint(..., use_reentrant=False)"
)


class _Call:
    """One forward call of a recorded convolution: its input until the output gradient arrives."""

    __slots__ = ("x", "version")

    def __init__(self, x):
        self.x = x
        self.version = x._version


class _Layer:
    """Recording state of one convolution (on the hooks route) for the current batch.

    ``sources``: its weight Parameter, or the parameters its weight is computed
    from (``transform`` is then not None).
    """

    def __init__(self, sources):
        self.sources = sources
        self.source = sources[0]
        self.transform = self.source.transform
        self.name = self.source.module_name
        self.module = self.source.module
        self.geometry = ConvGeometry(self.module)
        self.columns = self.source.columns
        self.reset()

    @property
    def hooked(self):
        return self.source.route == "hooks"

    def reset(self):
        self.calls = 0       # forward calls that are part of the autograd graph
        self.nodes = []      # their grad_fn (ConvolutionBackward) nodes
        self.expected = 0    # of those, calls whose output reaches the loss
        self.delivered = 0   # output gradients received
        self.summed = None   # per-sample weight gradients summed over calls (several calls, or a transform)


class _Recorder:
    """Hooks on the convolutions of the hooks route, one batch's passes, and the checks that they are exact.

    After the forward pass the autograd graph of the losses is audited: every
    use of a hooked parameter must be a recorded call of its own module that
    received the parameter itself (or, for a transformed weight, the
    transform's output, checked equal, computed from the parameters in a
    subgraph used by nothing else). Frozen hooked parameters require
    gradients during the forward pass, so that each of their uses leaves an
    edge in the graph. A parameter used anywhere else (another module, a
    functional call, a custom forward, compiled code, another operation on
    its autocast copy) moves to the ``torch.func`` route (``method="auto"``)
    or is refused (``"hooks"``). After the backward pass every recorded call
    that reaches the loss must have delivered its output gradient.
    """

    def __init__(self, sources, reduction, l2_method, dtype, method):
        self.sources = sources
        self.method_hooks_only = method == "hooks"
        self.reduction = reduction
        self.l2_method = l2_method
        self.dtype = dtype
        self.n_columns = sources[-1].columns.stop
        groups = {}
        for source in sources:
            if source.route == "hooks":
                groups.setdefault(id(source.module), []).append(source)
        self.layers = [_Layer(group) for group in groups.values()]
        self.anchor = None
        self.quiet = False
        self.result = None
        self.handles = []
        for layer in self.layers:
            self.handles.append(layer.module.register_forward_pre_hook(partial(self._before, layer)))
            self.handles.append(layer.module.register_forward_hook(partial(self._after, layer)))

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def run(self, model, inputs, targets, loss, first_row):
        """Forward and backward pass of one batch, and the ``torch.func`` route's columns.

        Returns
        -------
        Tensor on the CPU, shape (n, n_filters)
        """
        n = inputs.shape[0]
        self.result = torch.zeros((n, self.n_columns), dtype=self.dtype, device=inputs.device)
        hooked = [layer for layer in self.layers if layer.hooked]
        for layer in self.layers:
            layer.reset()
        frozen = [s.param for s in self.sources if s.route == "hooks" and not s.param.requires_grad]
        try:
            if hooked:
                self.anchor = torch.zeros((), device=inputs.device, requires_grad=True)
                for param in frozen:  # every use of a hooked parameter leaves an edge in the graph for the audit
                    param.requires_grad_(True)
                outputs = model(inputs)
                ran = any(layer.calls for layer in hooked)
                losses = _per_sample_loss(outputs, targets, loss, n, first_row, need_grad=ran)
                self.quiet = True  # from here on, forward calls are checkpoints recomputing saved tensors
                if losses.requires_grad:
                    self._audit(losses)  # before "none ran": compiled code runs them out of the hooks' sight
                if not ran:
                    raise InvalidInputError("none of the selected convolutions ran in the model's forward pass")
                torch.autograd.backward(losses.sum(), inputs=[self.anchor])
                self.quiet = False
                self._check_delivered()
            else:  # every column on the torch.func route: one plain forward pass checks the data and the loss
                with torch.no_grad():
                    _per_sample_loss(model(inputs), targets, loss, n, first_row, need_grad=False)
            self.anchor = None
            func = [s for s in self.sources if s.route == "func"]
            if func:
                func_filter_norms(model, func, inputs, targets, _loss_one(loss), self.reduction, self.dtype,
                                  self.result)
            block = self.result
            bad = ~torch.isfinite(block)
            if bool(bad.any()):
                i, j = (int(v) for v in bad.nonzero()[0])
                raise InvalidInputError(
                    f"non-finite gradient norm ({float(block[i, j])}) for sample {first_row + i} in layer "
                    f"{self._source_of(j).layer!r}; check the model and inputs for overflow"
                )
            return block.cpu()
        finally:
            for param in frozen:
                param.requires_grad_(False)
            if frozen:  # autocast cached casts of them while they required gradients: stale if unfrozen later
                torch.clear_autocast_cache()
            self.anchor = None
            self.quiet = False
            self.result = None
            for layer in self.layers:
                layer.reset()

    def _source_of(self, column):
        return next(s for s in self.sources if s.columns.start <= column < s.columns.stop)

    def _audit(self, losses):
        """Walk the losses' autograd graph; move (or refuse) parameters used outside their recorded calls."""
        owner, keep = {}, []  # keep: the nodes' Python wrappers stay alive, so that ids are not reused
        by_param, weight_nodes, copies = {}, {}, {}
        for layer in self.layers:
            if not layer.hooked:
                continue
            by_param.update((id(s.param), layer) for s in layer.sources)
            for node in layer.nodes:
                owner[id(node)] = layer
                edge = node.next_functions[1][0] if node.name().startswith("ConvolutionBackward") else None
                if edge is not None and edge.name() == "ToCopyBackward0":  # the weight cast by autocast
                    owner[id(edge)] = copies[id(edge)] = layer
                    keep.append(edge)
            if layer.transform is not None:
                self._audit_transform(layer, weight_nodes, keep)
        seen, stack = set(), [losses.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            keep.append(node)
            if node.name().startswith("CheckpointFunction"):
                raise UnsupportedModelError(_REENTRANT)
            layer = owner.get(id(node))
            if layer is not None and node in layer.nodes:
                layer.expected += 1
                if layer.transform is None and not self._received_parameter(node, layer.source.param):
                    self._not_hookable(layer, "its forward did not pass the registered weight to the convolution")
            elif layer is None and node.name().startswith("ConvolutionBackward"):
                other = by_param.get(id(_weight_of(node)))
                if other is not None:
                    self._not_hookable(other, "its weight is also used by a convolution outside its own calls "
                                              "(a functional call or another module)")
            for child, _ in node.next_functions:
                if child is None:
                    continue
                if child.name() == "torch::autograd::AccumulateGrad":
                    other = by_param.get(id(child.variable))
                    if other is not None:
                        mine = owner if other.transform is None else weight_nodes
                        if mine.get(id(node)) is not other:
                            self._not_hookable(other, f"its weight is also used outside its own calls (by "
                                                      f"{node.name()})", compiled=_compiled(node))
                else:
                    mine = copies.get(id(child))  # autocast caches one copy of a parameter for all its uses
                    if mine is not None and owner.get(id(node)) is not mine:
                        self._not_hookable(mine, f"its weight's autocast copy is also used outside its own calls "
                                                 f"(by {node.name()})", compiled=_compiled(node))
                    stack.append(child)

    def _audit_transform(self, layer, weight_nodes, keep):
        """Check that each call of a transformed layer received ``transform(parameters)``; map its subgraph."""
        with torch.no_grad():
            weight = layer.transform(*[s.param for s in layer.sources])
        for node in layer.nodes:
            saved = getattr(node, "_saved_weight", None)
            if saved is None or saved.dtype != weight.dtype or not torch.equal(saved, weight):
                self._not_hookable(layer, "its convolution did not receive the output of the weight's "
                                          "transformation")
                return
            stack = [node.next_functions[1][0]]
            while stack:
                part = stack.pop()
                if part is None or id(part) in weight_nodes:
                    continue
                if part.name() == "torch::autograd::AccumulateGrad":
                    if part.variable is self.anchor:
                        self._not_hookable(layer, "its weight depends on the input")
                    continue
                weight_nodes[id(part)] = layer
                keep.append(part)
                stack.extend(child for child, _ in part.next_functions)

    @staticmethod
    def _received_parameter(node, param):
        """Whether a recorded call's convolution received ``param`` (itself, or its autocast copy)."""
        return _weight_of(node) is param

    def _not_hookable(self, layer, reason, compiled=False):
        """Move ``layer``'s sources to the torch.func route, or refuse (``method="hooks"``, or ``compiled`` code)."""
        source = layer.source
        if compiled:
            raise UnsupportedModelError(
                f"layer {layer.name!r}: compiled code (torch.compile) uses its weight, and compiled graphs "
                "bypass the hooks; pass the uncompiled model, or compile whole modules with torch.compile(module) "
                "(those are run uncompiled here)"
            )
        if source.route != "hooks":
            return
        if self.method_hooks_only:
            raise UnsupportedModelError(
                f"layer {layer.name!r}: the hooks cannot compute it exactly ({reason}); use method='auto' or "
                "method='func' (exact torch.func per-sample gradients)"
            )
        for s in layer.sources:
            s.route, s.reason = "func", reason

    def _check_delivered(self):
        for layer in self.layers:
            if layer.hooked and layer.delivered != layer.expected:
                raise UnsupportedModelError(
                    f"layer {layer.name!r}: its gradient hook fired for {layer.delivered} of the {layer.expected} "
                    "calls that reach the loss, so its columns would be partial; check for code that removes or "
                    "bypasses module hooks, or use method='func'"
                )
            if layer.hooked and layer.summed is not None:
                self._store_summed(layer)

    def _store_summed(self, layer):
        """Columns from the per-sample weight gradients summed over calls, through the transform if any."""
        grads, layer.summed = layer.summed, None
        if layer.transform is None:
            self._store(layer, reduce_gradients(grads, self.reduction))
            return
        params = [s.param.detach().to(grads.dtype) for s in layer.sources]
        _, pullback = torch.func.vjp(layer.transform, *params)
        weight_shape = layer.module.weight.shape
        per_param = torch.func.vmap(pullback)(grads.reshape((grads.shape[0],) + tuple(weight_shape)))
        for source, g in zip(layer.sources, per_param):
            norms = reduce_gradients(source.filters(g.contiguous()), self.reduction)
            self.result[:, source.columns] = norms.to(self.result.device)

    def _before(self, layer, module, args):
        if self.anchor is None or self.quiet or not args:
            return None
        return (_Anchor.apply(args[0], self.anchor),) + tuple(args[1:])

    def _after(self, layer, module, args, output):
        if self.anchor is None or self.quiet:
            return
        if not args:
            raise InvalidInputError(f"layer {layer.name!r} was called without a positional input; call it as conv(x)")
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            return  # a call under torch.no_grad(): it adds nothing to any gradient, as in the one-sample loop
        layer.calls += 1
        layer.nodes.append(output.grad_fn)
        output.register_hook(partial(self._on_gradient, layer, _Call(args[0])))

    def _on_gradient(self, layer, call, dy):
        x, call.x = call.x, None
        if not layer.hooked:  # moved to the torch.func route by the audit
            return
        if x._version != call.version:
            raise InvalidInputError(
                f"the input of layer {layer.name!r} was modified in place after the convolution read it; "
                "per-sample gradients need it unchanged (avoid in-place operations on convolution inputs)"
            )
        compute = torch.promote_types(x.dtype, torch.float32)
        x, dy = x.detach().to(compute), dy.to(compute)
        layer.delivered += 1
        if layer.expected == 1 and layer.transform is None:
            self._store(layer, filter_norms(layer.geometry, x, dy, self.reduction, self.l2_method))
            return
        grads = per_sample_gradients(layer.geometry, x, dy)
        layer.summed = grads if layer.summed is None else layer.summed + grads

    def _store(self, layer, norms):
        self.result[:, layer.columns] = norms.to(self.result.device)


def _compiled(node):
    """Whether an autograd node is the backward of a ``torch.compile``d graph (AOTAutograd's node)."""
    return node.name().startswith("CompiledFunction")


def _weight_of(node):
    """The weight tensor a ConvolutionBackward node received if it is a leaf (a parameter), else None."""
    if not node.name().startswith("ConvolutionBackward"):
        return None
    child = node.next_functions[1][0]
    if child is not None and child.name() == "ToCopyBackward0":  # autocast's copy of the weight
        child = child.next_functions[0][0]
    return child.variable if child is not None and child.name() == "torch::autograd::AccumulateGrad" else None


def _loss_one(loss):
    """The per-sample loss for the torch.func route: no data-dependent checks (they ran on the batch)."""
    if loss is not None:
        return loss
    return lambda outputs, targets: _cross_entropy(outputs, targets, 0, check=False)


def _per_sample_loss(outputs, targets, loss, n, first_row, need_grad=True):
    """One loss per sample, checked: shape (n,) and finite (and depending on the recorded convolutions)."""
    if loss is None:
        losses = _cross_entropy(outputs, targets, first_row)
    else:
        losses = loss(outputs, targets)
        if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (n,):
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
            raise InvalidInputError(
                f"loss must return one value per sample, a tensor of shape ({n},), got {shape}; "
                "compute it with reduction='none'"
            )
    if need_grad and not losses.requires_grad:
        raise InvalidInputError("the loss does not depend on the model's recorded convolutions (no gradient)")
    finite = torch.isfinite(losses.detach())
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise InvalidInputError(
            f"the loss of sample {first_row + i} is {float(losses.detach()[i])}; check the inputs and the model's "
            "outputs for NaN/inf"
        )
    return losses


def _cross_entropy(outputs, targets, first_row, check=True):
    """Per-sample cross-entropy, mean over any dimensions after the class dimension (labels range-checked)."""
    if not isinstance(outputs, torch.Tensor) or outputs.ndim < 2:
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise InvalidInputError(
            f"cross-entropy needs logits of shape (n, n_classes, ...), the model returned {shape}; "
            "pass loss= for other outputs"
        )
    n_classes = outputs.shape[1]
    if targets.is_floating_point():
        if targets.shape != outputs.shape:
            raise InvalidInputError(
                f"float targets are read as class probabilities and must have the outputs' shape "
                f"{tuple(outputs.shape)}, got {tuple(targets.shape)}; class indices must be integers"
            )
    else:
        if targets.dtype == torch.bool or targets.shape != outputs.shape[:1] + outputs.shape[2:]:
            raise InvalidInputError(
                f"class-index targets must be integers of shape {tuple(outputs.shape[:1] + outputs.shape[2:])}, "
                f"got {targets.dtype} of shape {tuple(targets.shape)}"
            )
        bad = (targets < 0) | (targets >= n_classes)
        if check and bool(bad.any()):
            i = int(bad.flatten(1).any(1).nonzero()[0, 0]) if targets.ndim > 1 else int(bad.nonzero()[0, 0])
            raise InvalidInputError(
                f"target of sample {first_row + i} is out of range: the model has {n_classes} classes, so "
                f"targets must lie in [0, {n_classes - 1}]"
            )
    losses = F.cross_entropy(outputs, targets, reduction="none")
    return losses.flatten(1).mean(1) if losses.ndim > 1 else losses
