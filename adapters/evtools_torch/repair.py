"""Experiments on filters: correcting errors (repair), planting faults (implant), and
an input-space view of filter anomaly (filter_score_fn).

Filters are columns of the gradient matrix of :func:`~evtools_torch.filter_gradient_norms`:
every output channel of every selected convolution, in module order. Every
function here takes them either as column numbers into that ordering (what
``scorer.rank(G, k).index`` returns) or as ``(layer_name, channel)`` pairs,
with the same ``layers`` selection the gradient matrix was computed with.
A filter's weights are ``conv.weight[channel]``; biases, BatchNorm and other
layers are never changed.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from evtools.adapter import InvalidInputError, UnsupportedModelError, positive_int

from ._model import device_dtype
from ._sources import TRANSPOSED_TYPES, index_of, sources_of
from .gradnorms import filter_gradient_norms, select_convolutions

REPAIR_MODES = ("step", "zero")
"""Filter changes of :func:`repair`."""

IMPLANT_KINDS = ("scale", "flip", "noise")
"""Faults of :func:`implant`."""

_DEFAULT_STRENGTH = {"scale": 5.0, "flip": 1.0, "noise": 2.0}


class _Filters:
    """Column numbers <-> (convolution, channel) of a model's selected convolutions, through their FilterIndex."""

    def __init__(self, model, layers):
        self.convs = select_convolutions(model, layers)
        sources = sources_of(model, self.convs, "auto")
        for source in sources:
            module = source.module
            if (isinstance(module, TRANSPOSED_TYPES) or len(source.modules) > 1
                    or source.param is not module._parameters.get("weight")):
                raise UnsupportedModelError(
                    f"layer {source.module_name!r}: repair and implant edit conv.weight[channel] of convolutions "
                    "whose weight is their own Parameter (not transposed, parametrised, pruned or shared), so "
                    "their columns are the gradient matrix's; pass layers= with such convolutions (and the same "
                    "layers= to filter_gradient_norms)"
                )
        # one source per convolution, in the order of self.convs: index.depth is the convolution's position
        self.index = index_of(sources)
        self.n_filters = len(self.index)

    def columns(self, filters, name):
        """Validate ``filters`` (columns or (layer, channel) pairs); return int64 columns, shape kept."""
        if not isinstance(filters, (np.ndarray, torch.Tensor, list, tuple)) and hasattr(filters, "index"):
            filters = filters.index  # an evtools Ranking (scorer.rank(G, k))
        items = list(filters) if not isinstance(filters, (np.ndarray, torch.Tensor)) else None
        if items and all(isinstance(f, tuple) and len(f) == 2 and isinstance(f[0], str) for f in items):
            return np.array([self._column_of_pair(layer, channel, name) for layer, channel in items], dtype=np.int64)
        cols = np.asarray(filters.cpu() if isinstance(filters, torch.Tensor) else filters)
        if cols.size == 0:
            raise InvalidInputError(f"{name} is empty; give at least one filter")
        if not np.issubdtype(cols.dtype, np.integer):
            raise InvalidInputError(
                f"{name} must hold integer column numbers or (layer_name, channel) pairs, got dtype {cols.dtype}"
            )
        bad = (cols < 0) | (cols >= self.n_filters)
        if bad.any():
            raise InvalidInputError(
                f"{name} holds column {cols[bad].flat[0]}, outside [0, {self.n_filters - 1}]: the model's selected "
                f"convolutions have {self.n_filters} filters"
            )
        return cols.astype(np.int64)

    def _column_of_pair(self, layer, channel, name):
        names = self.index.layers()
        if layer not in names:
            raise InvalidInputError(f"{name}: no selected convolution named {layer!r}; they are {names}")
        cols = self.index.columns_of(layer)
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < cols.size:
            raise InvalidInputError(f"{name}: channel {channel!r} of {layer!r} is outside [0, {cols.size - 1}]")
        return int(cols[channel])

    def locate(self, columns):
        """(position in ``self.convs``, channel) arrays of the given columns."""
        return self.index.depth[columns], self.index.channel[columns]


def filter_index(model, layers=None):
    """The filters that :func:`repair` and :func:`implant` change, as the gradient matrix's index.

    Parameters
    ----------
    model : torch.nn.Module
    layers : sequence of str, optional
        Convolutions, as in :func:`~evtools_torch.filter_gradient_norms`.

    Returns
    -------
    evtools.FilterIndex
        Equal to the index :func:`~evtools_torch.filter_gradient_norms` returns with the same
        ``layers``: column ``c`` is ``conv.weight[index.channel[c]]`` of the convolution
        named ``index.layer[c]``.

    Raises
    ------
    UnsupportedModelError
        A selected convolution's weight is not its own Parameter (transposed,
        parametrised, pruned or shared): its filters cannot be edited one by one.
    """
    return _Filters(model, layers).index



def random_ranking(n_filters, k, seed=0, n_rows=None):
    """Random filters: the control ranking of the repair experiment.

    Parameters
    ----------
    n_filters : int
        Number of filters (``len(index)`` of the gradient matrix's index).
    k : int
        Filters per ranking, at most ``n_filters``.
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.
    n_rows : int, optional
        Draw one independent ranking per row (one per input of :func:`repair`).

    Returns
    -------
    ndarray of int64, shape (k,) or (n_rows, k)
        Distinct columns in random order (within each row).
    """
    n_filters = positive_int(n_filters, "n_filters")
    k = positive_int(k, "k")
    if k > n_filters:
        raise InvalidInputError(f"k={k} exceeds n_filters={n_filters}")
    rng = np.random.default_rng(seed)
    if n_rows is None:
        return rng.permutation(n_filters)[:k].astype(np.int64)
    n_rows = positive_int(n_rows, "n_rows")
    return np.argsort(rng.random((n_rows, n_filters)), axis=1)[:, :k].astype(np.int64)


@dataclasses.dataclass(frozen=True, repr=False)
class RepairResult:
    """Outcome of :func:`repair`: one row per input, one column per number of changed filters.

    Column ``k - 1`` describes the model with the first ``k`` filters of the
    input's ranking changed.

    Attributes
    ----------
    corrected : ndarray of bool, shape (n_inputs, k_max)
        The prediction equals the true label.
    prediction : ndarray of int64, shape (n_inputs, k_max)
        Predicted class.
    p_true : ndarray of float64, shape (n_inputs, k_max)
        Softmax confidence of the true class.
    p_pred : ndarray of float64, shape (n_inputs, k_max)
        Softmax confidence of the class predicted by the original model.
    filters : ndarray of int64, shape (n_inputs, k_max)
        Column changed at each step.
    pred0 : ndarray of int64, shape (n_inputs,)
        Prediction of the original model.
    p_true0, p_pred0 : ndarray of float64, shape (n_inputs,)
        The two confidences under the original model.
    mode : str
    lr : float
    """

    corrected: np.ndarray
    prediction: np.ndarray
    p_true: np.ndarray
    p_pred: np.ndarray
    filters: np.ndarray
    pred0: np.ndarray
    p_true0: np.ndarray
    p_pred0: np.ndarray
    mode: str
    lr: float

    def fraction_corrected(self, within=False):
        """Share of inputs predicted correctly after ``k`` changed filters, for k = 1..k_max.

        Parameters
        ----------
        within : bool
            False: correct with exactly the first ``k`` filters changed.
            True: correct at some step ``<= k`` (the experiment stops there).

        Returns
        -------
        ndarray of float64, shape (k_max,)
        """
        hits = np.logical_or.accumulate(self.corrected, axis=1) if within else self.corrected
        return hits.mean(axis=0)

    def to_dict(self):
        """The per-input arrays (copies) and the settings as a plain ``dict``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in out.items()}

    def __repr__(self):
        n, k_max = self.corrected.shape
        frac = self.fraction_corrected()
        at = ", ".join(f"k={k}: {frac[k - 1]:.2f}" for k in sorted({1, min(5, k_max), min(10, k_max), k_max}))
        return f"RepairResult(n_inputs={n}, k_max={k_max}, mode={self.mode!r}, corrected {at})"


def repair(model, x, y, ranking, k_max=25, mode="step", lr=1e-3, *, layers=None, progress=True):
    """The correction experiment of Levin et al. (2022) and Wang & Sato (2023).

    For each input, the gradient of its cross-entropy loss at its true label
    is taken once, at the original weights. Then the first ``k`` filters of the
    input's ranking are changed cumulatively, ``k = 1 .. k_max``:

    * ``mode="step"``: ``W_f <- W_f - lr * dL/dW_f`` (one gradient step on that filter alone);
    * ``mode="zero"``: ``W_f <- 0`` (the filter is switched off);

    and after each step the input is classified again. Run it along a
    saliency ranking and along :func:`random_ranking` (the control) and compare
    ``fraction_corrected()``. Wang & Sato report about half of ResNet-50's
    ImageNet errors corrected within 25 filters along the POT ranking.

    The caller's model is never modified: the experiment runs on a deep copy,
    whose changed filters are restored bit for bit before the next input.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier ``(B, ...) -> (B, n_classes)`` logits; run in eval mode.
    x : array_like or Tensor, shape (n_inputs, ...)
        Inputs, usually misclassified ones.
    y : array_like or Tensor of int, shape (n_inputs,)
        True labels.
    ranking : array_like of int, shape (k,) or (n_inputs, k), or Ranking, or sequence of (str, int)
        Filters in the order they are changed, ``k >= k_max``: one ranking for
        every input, one row per input (e.g. the ``Ranking`` of ``scorer.rank(G, k_max)``
        or its ``.index``), or ``(layer_name, channel)`` pairs.
        Column numbers follow :func:`~evtools_torch.filter_gradient_norms`.
        A ranking may not repeat a filter.
    k_max : int
        Number of steps.
    mode : {"step", "zero"}
        How a filter is changed.
    lr : float
        Step size of ``mode="step"`` (ignored by ``"zero"``).
    layers : sequence of str or torch.nn.Module, optional
        The convolutions the columns refer to, as in ``filter_gradient_norms``.
    progress : bool
        Show a tqdm bar over the inputs.

    Returns
    -------
    RepairResult
        Arrays of shape (n_inputs, k_max) and (n_inputs,).

    Notes
    -----
    Cost: one forward and backward pass per input, then ``k_max`` forward
    passes of that single input. For small models on a busy CPU, one torch
    thread (``torch.set_num_threads(1)``) is often much faster than several.

    Examples
    --------
    >>> G, index = filter_gradient_norms(model, (x_err, y_err))            # doctest: +SKIP
    >>> top = ZScoreSaliency().fit(G_ref).rank(G, k=25)                   # doctest: +SKIP
    >>> fixed = repair(model, x_err, y_err, top, mode="zero")             # doctest: +SKIP
    >>> control_ranking = random_ranking(len(index), 25, n_rows=len(y_err))  # doctest: +SKIP
    >>> control = repair(model, x_err, y_err, control_ranking, mode="zero")  # doctest: +SKIP
    >>> fixed.fraction_corrected()[-1], control.fraction_corrected()[-1]  # doctest: +SKIP
    """
    if mode not in REPAIR_MODES:
        raise InvalidInputError(f"mode must be one of {REPAIR_MODES}, got {mode!r}")
    k_max = positive_int(k_max, "k_max")
    if mode == "step" and not (np.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a positive number, got {lr!r}")
    work = copy.deepcopy(model).eval()
    table = _Filters(work, layers)
    device, dtype = device_dtype(work)
    x = torch.as_tensor(x, device=device)
    if x.is_floating_point():
        x = x.to(dtype)
    y = torch.as_tensor(y, device=device)
    n = x.shape[0] if x.ndim else 0
    if n == 0 or y.shape != (n,) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise InvalidInputError(
            f"x must have shape (n_inputs, ...) and y integer labels of shape (n_inputs,), got "
            f"{tuple(x.shape)} and {tuple(y.shape)} ({y.dtype})"
        )
    cols = table.columns(ranking, "ranking")
    if cols.ndim == 1:
        cols = np.broadcast_to(cols, (n, cols.shape[0]))
    if cols.ndim != 2 or cols.shape[0] != n:
        raise InvalidInputError(f"ranking must have shape (k,) or ({n}, k), got {cols.shape}")
    if cols.shape[1] < k_max:
        raise InvalidInputError(f"ranking holds {cols.shape[1]} filters per input; k_max={k_max} needs that many")
    cols = np.ascontiguousarray(cols[:, :k_max])
    if (np.diff(np.sort(cols, axis=1), axis=1) == 0).any():
        raise InvalidInputError("a ranking repeats a filter; each step must change a new one")
    layer_of, channel_of = table.locate(cols)
    weights = [conv.weight for _, conv in table.convs]
    for w in weights:
        w.requires_grad_(True)

    shape = (n, k_max)
    prediction = np.empty(shape, np.int64)
    p_true, p_pred = np.empty(shape), np.empty(shape)
    pred0, p_true0, p_pred0 = np.empty(n, np.int64), np.empty(n), np.empty(n)
    for i in tqdm(range(n), desc="repair", disable=not progress):
        xi, yi = x[i:i + 1], y[i:i + 1]
        used = sorted(set(layer_of[i].tolist()))
        with torch.enable_grad():
            logits = work(xi)
            if not 0 <= int(yi[0]) < logits.shape[1]:
                raise InvalidInputError(f"y[{i}] = {int(yi[0])} is not a class of the model's {logits.shape[1]}")
            grads = dict(zip(used, torch.autograd.grad(F.cross_entropy(logits, yi), [weights[j] for j in used])))
        probs = F.softmax(logits.detach().double(), dim=1)[0]
        pred0[i] = int(probs.argmax())
        p_true0[i], p_pred0[i] = float(probs[yi[0]]), float(probs[pred0[i]])
        originals = []
        with torch.no_grad():
            for k in range(k_max):
                j, c = int(layer_of[i, k]), int(channel_of[i, k])
                originals.append((j, c, weights[j][c].clone()))
                if mode == "step":
                    weights[j][c] -= lr * grads[j][c]
                else:
                    weights[j][c] = 0
                probs = F.softmax(work(xi).double(), dim=1)[0]
                prediction[i, k] = int(probs.argmax())
                p_true[i, k], p_pred[i, k] = float(probs[yi[0]]), float(probs[pred0[i]])
            for j, c, original in originals:
                weights[j][c] = original
    return RepairResult(
        corrected=prediction == y.cpu().numpy()[:, None], prediction=prediction, p_true=p_true, p_pred=p_pred,
        filters=cols, pred0=pred0, p_true0=p_true0, p_pred0=p_pred0, mode=mode, lr=float(lr),
    )


def implant(model, filters, kind="scale", strength=None, *, layers=None, seed=0):
    """Make chosen filters faulty ("malicious"), for the detection experiment.

    Parameters
    ----------
    model : torch.nn.Module
        Left unchanged; a modified deep copy is returned.
    filters : array_like of int, shape (k,), or sequence of (str, int)
        Columns (as in :func:`~evtools_torch.filter_gradient_norms`) or
        ``(layer_name, channel)`` pairs of the filters to change.
    kind : {"scale", "flip", "noise"}
        With ``W`` a filter's weights (``conv.weight[channel]``) and ``s`` the strength:

        * ``"scale"``: ``W <- s * W`` (default ``s = 5``);
        * ``"flip"``: ``W <- -s * W``, sign-flipped (default ``s = 1``);
        * ``"noise"``: ``W <- W + s * sd(layer) * Z``, ``Z`` standard normal and
          ``sd(layer)`` the standard deviation of the layer's weights (default ``s = 2``).
    strength : float, optional
        ``s`` above; None takes the kind's default.
    layers : sequence of str or torch.nn.Module, optional
        The convolutions the columns refer to, as in ``filter_gradient_norms``.
    seed : int
        Seed of ``Z`` for ``"noise"``.

    Returns
    -------
    torch.nn.Module
        The deep copy, with only the chosen filters' weights changed.
    """
    if kind not in IMPLANT_KINDS:
        raise InvalidInputError(f"kind must be one of {IMPLANT_KINDS}, got {kind!r}")
    strength = _DEFAULT_STRENGTH[kind] if strength is None else strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.number)) or not np.isfinite(strength):
        raise InvalidInputError(f"strength must be a finite number, got {strength!r}")
    changed = copy.deepcopy(model)
    table = _Filters(changed, layers)
    cols = table.columns(filters, "filters")
    if cols.ndim != 1:
        raise InvalidInputError(f"filters must be 1-D (k,), got shape {cols.shape}")
    if np.unique(cols).size != cols.size:
        raise InvalidInputError("filters lists a filter twice")
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for j, c in zip(*table.locate(cols)):
            w = table.convs[j][1].weight
            if kind == "scale":
                w[c] *= strength
            elif kind == "flip":
                w[c] *= -strength
            else:
                z = torch.randn(w[c].shape, generator=generator, dtype=w.dtype).to(w.device)
                w[c] += strength * w.std() * z
    return changed


def filter_score_fn(model, scorer, filters, *, reduce="max", target=None, reduction="mean_abs",
                    layers=None, batch_size=64):
    """A black-box function of the input: the anomaly score of chosen filters.

    Pass it to :func:`evtools.perturb.occlusion` (or any perturbation method)
    to see which region of an image makes these filters anomalous: an
    input-space saliency map for a parameter saliency.

    Each call computes the gradient matrix of the batch with
    :func:`~evtools_torch.filter_gradient_norms`, scores it with ``scorer`` and
    reduces the chosen filters' scores to one number per input.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier ``(B, C, H, W) -> (B, n_classes)``; not modified.
    scorer : fitted scorer
        An object with ``score(G) -> (n, n_filters)``, such as a fitted
        :class:`evtools.ZScoreSaliency` or :class:`evtools.POTSaliency`, fitted on
        a reference matrix computed with the same ``reduction`` and ``layers``.
    filters : array_like of int, shape (k,), or sequence of (str, int)
        Columns or ``(layer_name, channel)`` pairs of the filters to watch.
    reduce : {"max", "mean"}
        How the ``k`` filters' scores become one.
    target : int, optional
        Class whose cross-entropy loss the gradients are taken of. None: each
        input's own predicted class (then an occluded copy can change target
        along with its prediction). For an occlusion map of one image, pass the
        class predicted on the original image (or its true label), so every
        occluded copy is scored against the same class.
    reduction : {"mean_abs", "l1", "l2"}
        Norm of the filter gradients, as in ``filter_gradient_norms``.
    layers : sequence of str or torch.nn.Module, optional
        Convolutions, as in ``filter_gradient_norms``.
    batch_size : int
        Inputs per forward/backward pass.

    Returns
    -------
    callable
        ``f(batch) -> ndarray (N,) float64`` for a batch ``(N, C, H, W)``,
        numpy or torch (moved to the model's device).

    Examples
    --------
    >>> f = filter_score_fn(model, POTSaliency().fit(G_ref), top_filters, target=int(pred))  # doctest: +SKIP
    >>> heat = evtools.perturb.occlusion(f, image, window=6, stride=2)                     # doctest: +SKIP
    """
    if reduce not in ("max", "mean"):
        raise InvalidInputError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    if not callable(getattr(scorer, "score", None)):
        raise InvalidInputError(f"scorer must have a score(G) method, got {type(scorer).__name__}")
    table = _Filters(model, layers)
    cols = table.columns(filters, "filters")
    if cols.ndim != 1:
        raise InvalidInputError(f"filters must be 1-D (k,), got shape {cols.shape}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target < 0):
        raise InvalidInputError(f"target must be a non-negative class index or None, got {target!r}")
    device, dtype = device_dtype(model)

    def f(batch):
        inputs = torch.as_tensor(batch, device=device, dtype=dtype)
        if target is None:
            modes = [(module, module.training) for module in model.modules()]
            try:
                model.eval()
                with torch.no_grad():
                    labels = model(inputs).argmax(1)
            finally:
                for module, training in modes:
                    module.training = training
        else:
            labels = torch.full((inputs.shape[0],), int(target), dtype=torch.long, device=device)
        G, _ = filter_gradient_norms(model, (inputs, labels), reduction=reduction, layers=layers,
                                     batch_size=batch_size, progress=False)
        scores = np.asarray(scorer.score(G), dtype=np.float64)[:, cols]
        return scores.max(axis=1) if reduce == "max" else scores.mean(axis=1)

    return f
