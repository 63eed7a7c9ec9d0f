"""Matrices in, tables out: file reading and writing for the command line.

``read_matrix`` loads a gradient matrix from ``.npy``, ``.npz`` or ``.csv`` and
validates it with :func:`evtools._validation.as_matrix`; every failure is an
:class:`~evtools._errors.InvalidInputError` with a one-line message that names
the file.

Result records that hold per-column or per-row arrays derive from
:class:`TableRecord`: ``to_dict()`` gives a pandas-free table (a dict of
equal-length 1-D arrays), ``to_frame()`` a pandas DataFrame, and
:func:`write_table` / :func:`format_table` write such a table as CSV, JSON or
aligned text.
"""
from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ._errors import InvalidInputError
from ._files import atomic_save
from ._status import status_names
from ._validation import as_matrix

MATRIX_SUFFIXES = (".npy", ".npz", ".csv")
TABLE_FORMATS = ("text", "csv", "json")


def read_matrix(path, *, key=None):
    """Read a gradient matrix from a file.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (one 2-D array), a ``.npz`` archive (one array, or the
        array named ``key``, or the one named ``"G"``) or a ``.csv`` file
        (comma-separated numbers, one row per line; a first line with no
        number in it is taken as a header and skipped).
    key : str, optional
        Name of the array inside a ``.npz`` archive.

    Returns
    -------
    ndarray, shape (n_samples, n_filters), float32 or float64
        Finite, 2-D, at least one row and one column.

    Raises
    ------
    InvalidInputError
        Missing or unreadable file, unknown suffix, non-numeric content,
        wrong number of dimensions, NaN or inf.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MATRIX_SUFFIXES:
        raise InvalidInputError(
            f"{path}: unknown file type {suffix!r}; give a .npy, .npz or .csv file"
        )
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    if key is not None and suffix != ".npz":
        raise InvalidInputError(f"{path}: a key ({key!r}) only applies to .npz archives")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            arr = _read_npz(path, key)
        else:
            arr = _read_csv(path)
    except InvalidInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"{path}: cannot read it as {suffix} ({detail})") from exc
    return as_matrix(arr, str(path))


def _read_npz(path, key):
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None:
            if len(names) == 1:
                key = names[0]
            elif "G" in names:
                key = "G"
            else:
                listed = ", ".join(names) if names else "no arrays"
                raise InvalidInputError(
                    f"{path}: holds {listed}; name the matrix with --key (or store it as 'G')"
                )
        if key not in names:
            raise InvalidInputError(f"{path}: has no array {key!r}; it holds {', '.join(names)}")
        return archive[key]


def _read_csv(path):
    with open(path, newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise InvalidInputError(f"{path}: empty file (or an empty first line)")
    header = not any(_is_number(cell) for cell in first.split(","))
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=int(header))
    except ValueError as exc:
        raise InvalidInputError(f"{path}: not a numeric CSV matrix ({exc})") from exc


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


class TableRecord:
    """Mixin of result records that convert to a table.

    Subclasses implement :meth:`to_dict`, returning ``{column name: 1-D
    array}`` with arrays of equal length.
    """

    def to_dict(self):
        """The record as a table: a dict of equal-length 1-D numpy arrays."""
        raise NotImplementedError

    def to_frame(self):
        """The record as a ``pandas.DataFrame`` (needs the ``pandas`` extra).

        A ``status`` column of :class:`~evtools.Status` codes shows their names.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a test dependency
            raise ImportError(
                "to_frame() needs pandas: pip install 'evtools[pandas]', or use to_dict()"
            ) from exc
        frame = pd.DataFrame(self.to_dict())
        if "status" in frame:
            frame["status"] = status_names(frame["status"])
        return frame


def _cell(value):
    """A table cell as a plain Python value: NaN and inf become None."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return str(value)


def _rows(table):
    columns = list(table)
    lengths = {len(np.asarray(table[c])) for c in columns}
    if len(lengths) > 1:
        raise InvalidInputError(f"table columns have different lengths {sorted(lengths)}")
    arrays = [np.asarray(table[c]) for c in columns]
    n = lengths.pop() if lengths else 0
    return columns, ([_cell(a[i]) for a in arrays] for i in range(n))


def write_table(table, dest, fmt=None):
    """Write a table (dict of equal-length 1-D arrays) as CSV or JSON.

    Parameters
    ----------
    table : dict of str to array_like, each shape (n_rows,)
    dest : str, path-like or text file object
        A path's suffix (``.csv`` or ``.json``) picks the format unless
        ``fmt`` is given.
    fmt : {"csv", "json"}, optional
        JSON is a list of row objects; non-finite numbers are written as
        ``null`` (JSON has no NaN). CSV writes them as empty cells.
    """
    if isinstance(dest, (str, Path)):
        path = Path(dest)
        fmt = fmt or path.suffix.lower().lstrip(".")
        if fmt not in ("csv", "json"):
            raise InvalidInputError(
                f"{path}: unknown table format {path.suffix!r}; use a .csv or .json file"
            )
        with atomic_save(path) as fh:  # all or nothing, see evtools._files
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            write_table(table, text, fmt)
            text.detach()  # flushed; atomic_save closes the file
        return
    columns, rows = _rows(table)
    if fmt == "csv":
        writer = csv.writer(dest, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    elif fmt == "json":
        json.dump([dict(zip(columns, row)) for row in rows], dest, indent=1)
        dest.write("\n")
    else:
        raise InvalidInputError(f"unknown table format {fmt!r}; use 'csv' or 'json'")


def format_table(table, float_format="{:.4g}"):
    """A table (dict of equal-length 1-D arrays) as aligned text for a terminal."""
    columns, rows = _rows(table)

    def text(v):
        if v is None:
            return "nan"
        if isinstance(v, float):
            return float_format.format(v)
        return str(v)

    body = [[text(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in body]
    return "\n".join(lines)
