"""Input checking shared by every public function: done once, at the boundary.

Public functions call these helpers, then hand clean arrays to private numba
kernels. Each helper raises :class:`~evtools._errors.InvalidInputError` with a
message that says what was wrong and how to fix it.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._errors import InvalidInputError

FLOAT_DTYPES = (np.float32, np.float64)


def _as_float_array(x, name):
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists, objects that refuse conversion
        raise InvalidInputError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; convert it with np.asarray(..., dtype=float)"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidInputError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype not in FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    return arr


def check_finite(arr, name):
    """Raise if ``arr`` (1-D or 2-D) holds NaN or inf, naming the first bad position."""
    if arr.ndim == 1:
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise InvalidInputError(
                f"{name} holds a non-finite value ({arr[bad[0]]}) at index {bad[0]}; "
                "drop or impute NaN/inf before fitting"
            )
        return
    chunk = max(1, 2**20 // max(1, arr.shape[1]))  # rows per pass (a 1 MiB mask), in storage order for C arrays
    for i0 in range(0, arr.shape[0], chunk):
        if np.isfinite(arr[i0:i0 + chunk]).all():
            continue
        bad = ~np.isfinite(arr[i0:i0 + chunk])  # the first bad row, then the first column in it
        i = i0 + int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(~np.isfinite(arr[i]))[0])
        raise InvalidInputError(
            f"{name} holds a non-finite value ({arr[i, j]}) at row {i}, column {j}; "
            "drop or impute NaN/inf before fitting"
        )


def as_matrix(G, name="G", *, finite=True, min_rows=1):
    """Validate a gradient matrix.

    Parameters
    ----------
    G : array_like, shape (n_samples, n_filters)
    name : str
        Used in error messages.
    finite : bool
        Reject NaN and inf.
    min_rows : int
        Fewest rows accepted.

    Returns
    -------
    ndarray, shape (n_samples, n_filters), float32 or float64
        float32 and float64 input is returned without a copy; other numeric
        dtypes are converted to float64.
    """
    arr = _as_float_array(G, name)
    if arr.ndim != 2:
        hint = " (for one column use x[:, None])" if arr.ndim == 1 else ""
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_filters), got {arr.ndim}-D shape {arr.shape}{hint}"
        )
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} has shape {arr.shape}: need at least {min_rows} row(s) and 1 column"
        )
    if finite:
        check_finite(arr, name)
    return arr


def as_sample(x, name="x", *, finite=True, min_size=1):
    """Validate a 1-D sample; returns a float64 contiguous copy-free array where possible."""
    arr = _as_float_array(x, name)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D, got {arr.ndim}-D shape {arr.shape}")
    if arr.size < min_size:
        raise InvalidInputError(f"{name} has {arr.size} value(s); need at least {min_size}")
    if finite:
        check_finite(arr, name)
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_probability(q, name, *, open_low=True, open_high=True):
    """Return ``q`` as float after checking it lies in (0, 1) (ends as asked)."""
    try:
        q = float(q)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a number in (0, 1), got {q!r}") from exc
    low_ok = q > 0 if open_low else q >= 0
    high_ok = q < 1 if open_high else q <= 1
    if not (low_ok and high_ok and np.isfinite(q)):
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise InvalidInputError(f"{name} must lie in {lo}0, 1{hi}, got {q}")
    return q


def check_columns(G, n_filters, name="G"):
    """Raise unless ``G`` has ``n_filters`` columns (the fitted model's)."""
    if G.shape[1] != n_filters:
        raise InvalidInputError(
            f"{name} has {G.shape[1]} columns but the model was fitted on {n_filters}; "
            "reference and diagnosed matrices must share their columns"
        )


INT_MAX = 2**62
"""Largest count accepted anywhere (kernels take int64)."""


def check_int(v, name, *, low=1, high=INT_MAX, none_ok=False):
    """``v`` as an int in ``[low, high]`` (None passes through when ``none_ok``).

    Python and numpy integers only: bools, floats (even ``10.0``), strings and
    NaN are refused.
    """
    if v is None and none_ok:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or not low <= v <= high:
        if low == 1 and high == INT_MAX:
            want = "a positive integer"
        else:
            want = f"an integer >= {low}" if high == INT_MAX else f"an integer in [{low}, {high}]"
        raise InvalidInputError(f"{name} must be {want}{' or None' if none_ok else ''}, got {v!r}")
    return int(v)


def positive_int(v, name):
    """``v`` as an int >= 1."""
    return check_int(v, name)


def check_choice(v, name, choices):
    """``v`` after checking it is one of the strings ``choices``."""
    if not isinstance(v, str) or v not in choices:
        raise InvalidInputError(f"unknown {name} {v!r}; {name} must be one of {', '.join(map(repr, choices))}")
    return v


def check_names(v, name, choices, what=None):
    """A non-empty tuple of strings from ``choices``, from one string or a sequence of them.

    ``what`` names one choice in the message (default ``name``).
    """
    if isinstance(v, str):
        v = (v,)
    try:
        v = tuple(v)
    except TypeError:
        v = None
    bad = [s for s in v if not isinstance(s, str) or s not in choices] if v else "(none given)"
    if bad:
        raise InvalidInputError(
            f"{name} must be one or more of {', '.join(map(repr, choices))}; unknown {what or name}: {bad}"
        )
    return v


def check_random_state(random_state, name="random_state"):
    """A ``numpy.random.Generator`` from what numpy accepts as a seed, a Generator, or a legacy ``RandomState``.

    A ``RandomState`` seeds a new Generator from four draws of it (so it advances, and the same state
    gives the same Generator): evtools draws with the Generator API only.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**32, size=4, dtype=np.uint64))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be None, a non-negative integer seed or a numpy Generator, got {random_state!r}"
        ) from exc


def check_sequence(v, name):
    """``v`` as a list, from a list, tuple or 1-D array (a string or a scalar is refused)."""
    if isinstance(v, (str, bytes)) or np.ndim(v) != 1:
        raise InvalidInputError(f"{name} must be a sequence (list, tuple or 1-D array), got {v!r}")
    return list(v)


def check_strings(v, name):
    """``v`` as a list of strings, from a sequence of them."""
    v = check_sequence(v, name)
    if any(not isinstance(s, (str, np.str_)) for s in v):
        raise InvalidInputError(f"{name} must hold strings, got {v!r}")
    return [str(s) for s in v]
