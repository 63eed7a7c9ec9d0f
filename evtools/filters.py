"""Column index of a gradient matrix: which layer and channel each column is.

A gradient matrix ``G`` of shape ``(n_samples, n_filters)`` carries no names;
:class:`FilterIndex` travels beside it and says, for every column, the layer
it comes from, the output channel inside that layer, the layer's depth and
the number of weights the column summarises. Framework adapters
(``evtools_torch``, ``evtools_jax``) build it with :meth:`FilterIndex.from_layers`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import InvalidInputError
from ._files import SavedFile, save_npz
from ._validation import INT_MAX, check_choice, check_int, check_sequence, check_strings

#: Per-filter reductions of a weight gradient that every framework adapter offers:
#: mean |g| over the filter's weights (Levin et al.), the L1 norm and the L2 norm.
REDUCTIONS = ("mean_abs", "l1", "l2")


def check_reduction(reduction):
    """Raise unless ``reduction`` is one of :data:`REDUCTIONS`."""
    check_choice(reduction, "reduction", REDUCTIONS)

_FIELDS = ("layer", "channel", "depth", "n_weights")


@dataclass(frozen=True, eq=False)
class FilterIndex:
    """Per-column description of a gradient matrix.

    Parameters
    ----------
    layer : array_like of str, shape (n_filters,)
        Name of the layer each column belongs to (e.g. ``"layer1.0.conv2"``).
    channel : array_like of int, shape (n_filters,)
        Output channel (filter) of the column inside its layer, from 0.
    depth : array_like of int, shape (n_filters,)
        Position of the column's layer among the selected layers, 0 for the first.
    n_weights : array_like of int, shape (n_filters,)
        Number of weights of the filter (bias excluded), the count that
        ``"mean_abs"`` divides by.

    Notes
    -----
    Columns of one layer are expected to be contiguous (adapters write them
    layer by layer); :meth:`columns_of` does not rely on it.
    """

    layer: np.ndarray
    channel: np.ndarray
    depth: np.ndarray
    n_weights: np.ndarray

    def __post_init__(self):
        layer = np.asarray(self.layer, dtype=str)
        ints = {}
        for name in _FIELDS[1:]:
            arr = np.asarray(getattr(self, name))
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise InvalidInputError(f"FilterIndex.{name} must hold integers, got dtype {arr.dtype}")
            ints[name] = arr.astype(np.int64)
        arrays = {"layer": layer, **ints}
        for name, arr in arrays.items():
            if arr.ndim != 1:
                raise InvalidInputError(f"FilterIndex.{name} must be 1-D, got shape {arr.shape}")
        lengths = {name: arr.shape[0] for name, arr in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise InvalidInputError(f"FilterIndex fields must have one length, got {lengths}")
        for name, arr in arrays.items():
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @classmethod
    def from_layers(cls, names, n_channels, n_weights):
        """Index of layers laid side by side, each contributing all its channels.

        Parameters
        ----------
        names : sequence of str, length n_layers
            Layer names, in column order; layer ``i`` gets depth ``i``.
        n_channels : sequence of int, length n_layers
            Number of filters (output channels) of each layer.
        n_weights : sequence of int, length n_layers
            Weights per filter of each layer.

        Returns
        -------
        FilterIndex
            With ``sum(n_channels)`` columns.
        """
        names = check_strings(names, "names")
        n_channels, n_weights = (
            np.array([check_int(c, name, low=-INT_MAX) for c in check_sequence(v, name)], dtype=np.int64)
            for v, name in ((n_channels, "n_channels"), (n_weights, "n_weights"))
        )
        if not (len(names) == n_channels.shape[0] == n_weights.shape[0]):
            raise InvalidInputError(
                f"names, n_channels and n_weights must have one length, got "
                f"{len(names)}, {n_channels.shape[0]}, {n_weights.shape[0]}"
            )
        if len(set(names)) != len(names):
            raise InvalidInputError(f"layer names must be unique, got {names}")
        if np.any(n_channels < 1) or np.any(n_weights < 1):
            raise InvalidInputError(
                "every layer needs at least one channel and one weight (n_channels, n_weights >= 1)"
            )
        return cls(
            layer=np.repeat(np.asarray(names, dtype=str), n_channels),
            channel=np.concatenate([np.arange(c) for c in n_channels]) if names else np.zeros(0, np.int64),
            depth=np.repeat(np.arange(len(names)), n_channels),
            n_weights=np.repeat(n_weights, n_channels),
        )

    def __len__(self):
        return self.layer.shape[0]

    def layers(self):
        """Layer names in column order, each once.

        Returns
        -------
        list of str
        """
        _, first = np.unique(self.layer, return_index=True)
        return [str(self.layer[i]) for i in np.sort(first)]

    def columns_of(self, layer):
        """Column numbers of one layer.

        Parameters
        ----------
        layer : str

        Returns
        -------
        ndarray of int64, shape (n_channels_of_layer,)
            Increasing column numbers, usable as ``G[:, index.columns_of(name)]``.
        """
        cols = np.flatnonzero(self.layer == layer)
        if cols.size == 0:
            raise InvalidInputError(f"no layer named {layer!r}; the layers are {self.layers()}")
        return cols

    def to_dict(self):
        """The four per-column arrays as a plain ``dict`` (copies)."""
        return {name: getattr(self, name).copy() for name in _FIELDS}

    def to_frame(self):
        """The index as a pandas ``DataFrame`` with one row per column of ``G``.

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install evtools[pandas]``).
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("FilterIndex.to_frame needs pandas: pip install 'evtools[pandas]'") from exc
        return pd.DataFrame(self.to_dict())

    def save(self, path):
        """Write the index to an ``.npz`` archive, atomically (no pickling).

        ``.npz`` is appended unless the name ends with it; returns the path written (pathlib.Path).
        """
        return save_npz(path, {"format": 1, **self.to_dict()})

    @classmethod
    def load(cls, path):
        """Read an index written by :meth:`save` (with or without the ``.npz`` suffix), checked field by field."""
        f = SavedFile(path, "FilterIndex", "FilterIndex.save")
        if "format" in f.arrays:
            f.version(f.integer(f.array("format", np.int64, ()), "format"))
        layer = f.array("layer", "U", (None,))
        fields = {"layer": layer}
        for name in _FIELDS[1:]:
            fields[name] = f.array(name, np.int64, layer.shape)
        f.check((fields["channel"] >= 0).all() and (fields["depth"] >= 0).all(), "a channel or depth is negative")
        f.check((fields["n_weights"] >= 1).all(), "a filter has fewer than 1 weight")
        return cls(**fields)

    def __eq__(self, other):
        if not isinstance(other, FilterIndex):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in _FIELDS)

    __hash__ = None

    def __repr__(self):
        names = self.layers()
        shown = names if len(names) <= 4 else names[:2] + ["..."] + names[-1:]
        return f"FilterIndex(n_filters={len(self)}, n_layers={len(names)}, layers=[{', '.join(shown)}])"
