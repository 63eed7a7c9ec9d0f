"""Per-sample, per-filter gradient norms of one convolution, in the layer's own terms.

For a convolution with weight ``W`` of shape ``(C_out, C_in / groups, *kernel)``,
input ``x`` and output gradient ``dy`` (gradient of the summed per-sample losses
with respect to the convolution's output), the gradient of sample ``n``'s loss
on filter ``c`` is

    g[n, c] = sum over output positions l of  dy[n, c, l] * A[n, group(c), :, l]

where ``A[n, g]`` (shape ``(C_in / groups * prod(kernel), L)``) is the unfolded
(im2col) input of group ``g``: column ``l`` holds the input values the kernel
sees at output position ``l``. Two routes give its norms:

* materialise: all ``g[n]`` of a chunk of samples from the framework's own
  weight-gradient kernel, run as one grouped convolution whose groups are the
  samples (input reshaped to ``(1, n * C_in, ...)``, output gradient to
  ``(1, n * C_out, ...)``, ``n * groups`` groups), then each row reduced
  (mean |g|, sum |g| or the 2-norm). Cost per sample ``C_out/groups * K_g * L``
  multiply-adds per group, the same as the batched weight gradient it replaces.
* ghost (2-norm only): ``||g[n, c]||^2 = dy[n, c]^T (A[n]^T A[n]) dy[n, c]``,
  never forming ``g``, with ``A`` from an explicit unfold. Cost per sample
  ``L^2 (K_g + C_out/groups)`` per group plus the unfold; cheaper where the
  output is small and the filters are large (deep layers).

Inputs are padded exactly as the convolution pads them (zeros, reflect,
replicate, circular; integer, ``"same"`` or ``"valid"`` padding), so strided,
dilated, grouped, 1-D, 2-D and 3-D convolutions are all covered. Work is done
in chunks of samples so that the big tensors of a chunk stay below about
``_CHUNK_ELEMENTS`` numbers; on the CPU, chunks of the materialised route are
smaller still (``_CPU_CHUNK_ELEMENTS``, at most ``_CPU_MAX_CHUNK`` samples), which
keeps the grouped kernel in cache and makes it faster than the batched one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

L2_METHODS = ("auto", "ghost", "materialise")
_CHUNK_ELEMENTS = 1 << 25  # 128 MiB of float32 per chunk of samples
_CPU_CHUNK_ELEMENTS = 1 << 20
_CPU_MAX_CHUNK = 16
_WEIGHT_GRAD = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight, 3: torch.nn.grad.conv3d_weight}


class ConvGeometry:
    """Shapes of one convolution that the per-sample computation needs.

    Parameters
    ----------
    conv : torch.nn.Conv1d, Conv2d, Conv3d or ConvTranspose1d/2d/3d

    Attributes
    ----------
    transposed : bool
        A transposed convolution: per-sample gradients by :func:`_transposed_gradients`,
        only the materialised route.
    groups : int
    out_per_group : int
        Filters per group, ``C_out / groups``.
    weights_per_filter : int
        ``K_g = C_in / groups * prod(kernel_size)``, the weights of one filter (bias excluded).
    pads : tuple of int
        Padding in :func:`torch.nn.functional.pad` order (last dimension first, left then right).
    pad_mode : str
        ``"constant"`` for zero padding, else the convolution's ``padding_mode``.
    kernel_padding : tuple of int or None
        Symmetric zero padding per dimension that the convolution kernels can
        apply themselves; None when the input must be padded first.
    """

    def __init__(self, conv):
        self.transposed = bool(conv.transposed)
        self.in_channels = conv.in_channels
        self.kernel = tuple(conv.kernel_size)
        self.stride = tuple(conv.stride)
        self.dilation = tuple(conv.dilation)
        self.groups = conv.groups
        self.out_channels = conv.out_channels
        self.out_per_group = conv.out_channels // conv.groups
        self.weights_per_filter = conv.in_channels // conv.groups * math.prod(self.kernel)
        pads = []
        for k, d, p in zip(reversed(self.kernel), reversed(self.dilation), reversed(_padding_per_dim(conv))):
            if p == "same":
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            else:
                pads += [p, p]
        self.pads = tuple(pads)
        self.pad_mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        symmetric = all(left == right for left, right in zip(pads[::2], pads[1::2]))
        self.kernel_padding = tuple(pads[::2][::-1]) if symmetric and self.pad_mode == "constant" else None

    def route(self, n_positions, reduction, l2_method):
        """``"ghost"`` or ``"materialise"`` for this layer at ``n_positions`` output positions.

        For the 2-norm (unless forced by ``l2_method``) the ghost route is taken
        when its multiply-adds, ``L^2 (K_g + C_out/groups)``, are fewer than half
        the materialised route's, ``C_out/groups * K_g * L``: the factor 2
        pays for the explicit unfold, which the framework's weight-gradient
        kernel does not need (measured on CPU: near ratio 1 materialising is
        about twice as fast, below 0.4 the ghost route is 1.5 to 8 times faster).
        """
        if reduction != "l2" or l2_method == "materialise" or self.transposed:
            return "materialise"
        if l2_method == "ghost":
            return "ghost"
        ghost = n_positions * (self.weights_per_filter + self.out_per_group)
        materialise = self.out_per_group * self.weights_per_filter
        return "ghost" if 2 * ghost < materialise else "materialise"

    def unfold(self, x):
        """Unfolded input of every group.

        Parameters
        ----------
        x : Tensor, shape (n, C_in, *spatial)
            The convolution's input (not yet padded).

        Returns
        -------
        Tensor, shape (n * groups, K_g, L)
            ``L`` is the number of output positions (product of the output's spatial sizes).
        """
        n = x.shape[0]
        if any(self.pads):
            x = F.pad(x, self.pads, mode=self.pad_mode)
        nd = len(self.kernel)
        if all(k == 1 for k in self.kernel):  # 1x1: the input itself, subsampled by the stride
            x = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in self.stride)]
            return x.reshape(n * self.groups, self.weights_per_filter, -1)
        if nd == 2:
            cols = F.unfold(x, self.kernel, dilation=self.dilation, stride=self.stride)
        elif nd == 1:
            cols = F.unfold(
                x.unsqueeze(2), (1,) + self.kernel, dilation=(1,) + self.dilation, stride=(1,) + self.stride
            )
        else:
            # windows as a strided view: (n, C_in, L_1..L_nd, w_1..w_nd), w_i = d_i (k_i - 1) + 1
            for dim, (k, d, s) in enumerate(zip(self.kernel, self.dilation, self.stride)):
                x = x.unfold(2 + dim, d * (k - 1) + 1, s)
            x = x[(Ellipsis,) + tuple(slice(None, None, d) for d in self.dilation)]
            order = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
            cols = x.permute(order)
        return cols.reshape(n * self.groups, self.weights_per_filter, -1)

    def chunk_size(self, x, n_positions, route):
        """Samples per chunk for input ``x`` (shape (n, C_in, *spatial)) on route ``route``."""
        if route == "ghost":
            per_sample = self.groups * n_positions * (self.weights_per_filter + n_positions)
            return max(1, _CHUNK_ELEMENTS // per_sample)
        per_sample = self.out_channels * (self.weights_per_filter + n_positions) + x[0].numel()
        if x.device.type == "cpu":
            return max(1, min(_CPU_MAX_CHUNK, _CPU_CHUNK_ELEMENTS // per_sample))
        return max(1, _CHUNK_ELEMENTS // per_sample)


def _padding_per_dim(conv):
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    if conv.padding == "same":
        return ("same",) * len(conv.kernel_size)
    return tuple(conv.padding)


def per_sample_gradients(geom, x, dy):
    """Gradient of each sample's loss on each filter's weights.

    Parameters
    ----------
    geom : ConvGeometry
    x : Tensor, shape (n, C_in, *spatial)
        The convolution's input.
    dy : Tensor, shape (n, C_out, *out_spatial)
        Gradient of the summed per-sample losses on the convolution's output.

    Returns
    -------
    Tensor, shape (n, C_out, K_g)
        Row ``[i, c]`` is the flattened gradient on ``weight[c]`` of sample ``i``'s loss.
    """
    n = x.shape[0]
    if geom.transposed:
        return _transposed_gradients(geom, x, dy)
    padding = geom.kernel_padding
    if padding is None:
        x = F.pad(x, geom.pads, mode=geom.pad_mode)
        padding = 0
    grads = _WEIGHT_GRAD[len(geom.kernel)](
        x.reshape((1, -1) + x.shape[2:]),
        (n * geom.out_channels, geom.weights_per_filter // math.prod(geom.kernel)) + geom.kernel,
        dy.reshape((1, -1) + dy.shape[2:]),
        stride=geom.stride,
        padding=padding,
        dilation=geom.dilation,
        groups=n * geom.groups,
    )
    return grads.reshape(n, geom.out_channels, geom.weights_per_filter)


def _transposed_gradients(geom, x, dy):
    """:func:`per_sample_gradients` of a transposed convolution.

    A transposed convolution is the input gradient of the convolution with the
    same weight, so its weight gradient is that convolution's weight gradient
    with the roles swapped: ``dy`` as the input, ``x`` as the output gradient.
    The weight, shape ``(C_in, C_out / groups, *kernel)``, holds filter ``c``
    (group ``c // (C_out / groups)``) in column ``c % (C_out / groups)`` of
    that group's ``C_in / groups`` rows.
    """
    n, g = x.shape[0], geom.groups
    grads = _WEIGHT_GRAD[len(geom.kernel)](
        dy.reshape((1, -1) + dy.shape[2:]),
        (n * geom.in_channels, geom.out_per_group) + geom.kernel,
        x.reshape((1, -1) + x.shape[2:]),
        stride=geom.stride,
        padding=geom.pads[::2][::-1],
        dilation=geom.dilation,
        groups=n * g,
    )
    grads = grads.reshape(n, g, geom.in_channels // g, geom.out_per_group, -1).transpose(2, 3)
    return grads.reshape(n, geom.out_channels, geom.weights_per_filter)


def reduce_gradients(grads, reduction):
    """Per-filter norm of per-sample gradients.

    Parameters
    ----------
    grads : Tensor, shape (n, C_out, K_g)
        Overwritten (by its absolute values) for ``"mean_abs"`` and ``"l1"``.
    reduction : {"mean_abs", "l1", "l2"}

    Returns
    -------
    Tensor, shape (n, C_out)
    """
    if reduction == "l2":
        return torch.linalg.vector_norm(grads, ord=2, dim=-1)
    total = grads.abs_().sum(-1)  # several times faster than vector_norm(ord=1) on CPU
    return total.div_(grads.shape[-1]) if reduction == "mean_abs" else total


def ghost_l2(geom, x, dy):
    """Per-filter 2-norms of per-sample gradients from the input's Gram matrix.

    Parameters
    ----------
    geom : ConvGeometry
    x : Tensor, shape (n, C_in, *spatial)
    dy : Tensor, shape (n, C_out, *out_spatial)

    Returns
    -------
    Tensor, shape (n, C_out)
        ``sqrt(dy_c^T (A^T A) dy_c)`` per sample and filter; rounding below zero is clamped.
    """
    n = x.shape[0]
    cols = geom.unfold(x)
    gram = torch.bmm(cols.transpose(1, 2), cols)  # (n * groups, L, L)
    dy = dy.reshape(n * geom.groups, geom.out_per_group, -1)
    squared = (torch.bmm(dy, gram) * dy).sum(-1)
    return squared.clamp_min_(0).sqrt_().reshape(n, geom.out_channels)


def filter_norms(geom, x, dy, reduction, l2_method="auto"):
    """Per-sample, per-filter gradient norms of one convolution call.

    Parameters
    ----------
    geom : ConvGeometry
    x : Tensor, shape (n, C_in, *spatial)
    dy : Tensor, shape (n, C_out, *out_spatial)
    reduction : {"mean_abs", "l1", "l2"}
    l2_method : {"auto", "ghost", "materialise"}
        Route for ``"l2"`` (see :meth:`ConvGeometry.route`).

    Returns
    -------
    Tensor, shape (n, C_out)
    """
    n_positions = dy[0, 0].numel()
    route = geom.route(n_positions, reduction, l2_method)
    step = geom.chunk_size(x, n_positions, route)
    parts = []
    for start in range(0, x.shape[0], step):
        xs, dys = x[start:start + step], dy[start:start + step]
        if route == "ghost":
            parts.append(ghost_l2(geom, xs, dys))
        else:
            parts.append(reduce_gradients(per_sample_gradients(geom, xs, dys), reduction))
    return parts[0] if len(parts) == 1 else torch.cat(parts)
