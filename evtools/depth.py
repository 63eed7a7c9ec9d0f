"""Layer-depth bias of a filter ranking (Wang & Sato 2023).

If a scorer were unbiased with respect to depth, the filters it puts in the
top-k of a row would come from each layer in proportion to the layer's share
of filters. :func:`depth_profile` counts how often each layer appears among the
top-k filters over many rows and tests that proportionality with a chi-square
goodness-of-fit test. It works with the ranking of any scorer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import InvalidInputError
from ._io import TableRecord
from ._validation import check_int


def layer_codes(layer_of_column, n_filters=None):
    """Group columns by layer.

    Parameters
    ----------
    layer_of_column : array_like, shape (n_filters,), or an object with a ``layer`` attribute
        The layer of each column (names or numbers). An object such as
        :class:`evtools.FilterIndex` is read through its ``layer`` attribute,
        and its ``depth`` attribute, when present, orders the layers.
    n_filters : int, optional
        Expected number of columns.

    Returns
    -------
    layers : ndarray, shape (n_layers,)
        Distinct layers, by depth when known, else in order of first appearance.
    codes : ndarray, shape (n_filters,), int64
        Index into ``layers`` of each column.
    """
    depth = getattr(layer_of_column, "depth", None)
    labels = np.asarray(getattr(layer_of_column, "layer", layer_of_column))
    if labels.ndim != 1 or labels.size == 0:
        raise InvalidInputError(
            f"layer_of_column must be 1-D with one label per filter, got shape {labels.shape}"
        )
    if n_filters is not None and labels.size != n_filters:
        raise InvalidInputError(
            f"layer_of_column has {labels.size} labels but there are {n_filters} filters"
        )
    uniq, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    if depth is not None:
        order_key = np.asarray(depth)[first]
        order = np.lexsort((first, order_key))
    else:
        order = np.argsort(first)
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return uniq[order], position[inverse.ravel()].astype(np.int64)


@dataclass(repr=False)
class DepthProfile(TableRecord):
    """How often each layer appears among the top-k filters.

    Attributes
    ----------
    layer : ndarray, shape (n_layers,)
    n_filters : ndarray, shape (n_layers,), int64
        Filters in the layer.
    expected_share : ndarray, shape (n_layers,)
        The layer's share of all filters: its share of top-k picks if ranks
        ignored depth.
    observed_count : ndarray, shape (n_layers,), int64
        Top-k picks that fell in the layer, over all rows.
    observed_share : ndarray, shape (n_layers,)
    enrichment : ndarray, shape (n_layers,)
        ``observed_share / expected_share``: above 1, the layer is over-represented.
    k : int
    n_rows : int
    chi2, pvalue : float
        Pearson's chi-square statistic for ``observed_count`` against
        ``expected_share * n_rows * k`` and its p-value with ``n_layers - 1``
        degrees of freedom.
    """

    layer: np.ndarray
    n_filters: np.ndarray
    expected_share: np.ndarray
    observed_count: np.ndarray
    observed_share: np.ndarray
    enrichment: np.ndarray
    k: int
    n_rows: int
    chi2: float
    pvalue: float

    def to_dict(self):
        return {
            "layer": self.layer,
            "n_filters": self.n_filters,
            "expected_share": self.expected_share,
            "observed_count": self.observed_count,
            "observed_share": self.observed_share,
            "enrichment": self.enrichment,
        }

    def __repr__(self):
        top = int(np.argmax(self.enrichment))
        return (
            f"DepthProfile({self.layer.size} layers, top-{self.k} of {self.n_rows} rows, "
            f"chi2={self.chi2:.4g}, pvalue={self.pvalue:.3g}, most over-represented: "
            f"{self.layer[top]!s} x{self.enrichment[top]:.3g})"
        )


def depth_profile(ranks, layer_of_column, k=None):
    """Share of each layer among the top-k filters, against its share of filters.

    Parameters
    ----------
    ranks : array_like of int, shape (n_rows, n_ranked) or (n_ranked,), or a :class:`~evtools.saliency.Ranking`
        Column indices of the highest-scoring filters per row, best first, as
        ``scorer.rank(G, k).index`` gives them.
    layer_of_column : array_like, shape (n_filters,), or an object with a ``layer`` attribute
        See :func:`evtools.depth.layer_codes`.
    k : int, optional
        Use the first ``k`` ranked filters of each row (default: all of them).

    Returns
    -------
    DepthProfile

    Notes
    -----
    Picks inside a row are drawn without replacement, so the counts are not
    exactly multinomial; the chi-square test is accurate when ``k`` is small
    against every layer's size, as it is in practice (top-10 out of thousands).
    """
    index = np.asarray(getattr(ranks, "index", ranks))
    if index.ndim == 1:
        index = index[None, :]
    if index.ndim != 2 or index.shape[1] == 0 or not np.issubdtype(index.dtype, np.integer):
        raise InvalidInputError(
            "ranks must be integer column indices of shape (n_rows, k), "
            f"got dtype {index.dtype} and shape {index.shape}"
        )
    layers, codes = layer_codes(layer_of_column)
    n_total = codes.size
    if k is None:
        k = index.shape[1]
    k = check_int(k, "k", high=index.shape[1])
    top = index[:, :k]
    if top.min() < 0 or top.max() >= n_total:
        raise InvalidInputError(
            f"ranks hold column indices outside [0, {n_total}): layer_of_column has {n_total} filters"
        )
    n_filters = np.bincount(codes, minlength=layers.size)
    observed = np.bincount(codes[top.ravel()], minlength=layers.size)
    expected_share = n_filters / n_total
    observed_share = observed / top.size
    if layers.size > 1:
        from scipy import stats  # loaded on use: importing evtools stays fast

        chi2, pvalue = stats.chisquare(observed, expected_share * top.size)
    else:
        chi2, pvalue = 0.0, 1.0
    return DepthProfile(
        layer=layers,
        n_filters=n_filters,
        expected_share=expected_share,
        observed_count=observed,
        observed_share=observed_share,
        enrichment=observed_share / expected_share,
        k=int(k),
        n_rows=int(top.shape[0]),
        chi2=float(chi2),
        pvalue=float(pvalue),
    )
