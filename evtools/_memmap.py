"""Streaming rows of a matrix to a ``.npy`` file, and the progress bar of long runs.

Used by the framework adapters: gradient rows are computed batch by batch and
written as they finish, so a matrix larger than memory goes straight to disk
and comes back as a read-only memory map. :func:`row_sink` picks where the
rows go from the adapters' common ``out`` argument.
"""
from __future__ import annotations

import os

import numpy as np
from tqdm.auto import tqdm

from ._errors import InvalidInputError

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0
_LARGEST_ROWS = 2**63 - 1


def _header_dict(dtype, shape):
    descr = np.lib.format.dtype_to_descr(dtype)
    return "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)


class NpyRowWriter:
    """Append rows of a 2-D array to a ``.npy`` file whose length need not be known.

    The file starts with a header sized for any row count; rows are appended
    in C order as they come, and :meth:`close` rewrites the header with the
    final shape (padded with spaces, as the format allows), so the result is a
    valid ``.npy`` for ``np.load(path, mmap_mode="r")``.

    Parameters
    ----------
    path : str or os.PathLike
        File to write, replaced if it exists (no ``.npy`` suffix is added).
    n_columns : int
    dtype : numpy dtype
        Dtype of the file; blocks are cast to it.

    Notes
    -----
    Used as a context manager, the file is deleted if the block raises, so
    no half-written file is mistaken for a result; call :meth:`close` after
    the last block.
    """

    def __init__(self, path, n_columns, dtype):
        self.path = os.fspath(path)
        self.n_columns = int(n_columns)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.rows_written = 0
        widest = len(_header_dict(self.dtype, (_LARGEST_ROWS, self.n_columns))) + 1  # + "\n"
        # the whole preamble (magic, 2-byte length, header) is a multiple of 64 bytes
        self._header_len = -(-(len(_MAGIC) + 2 + widest) // 64) * 64 - len(_MAGIC) - 2
        try:
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise InvalidInputError(f"cannot write the output file {self.path!r}: {exc}") from exc
        self._write_header()
        self._file.seek(0, os.SEEK_END)

    def _write_header(self):
        text = _header_dict(self.dtype, (self.rows_written, self.n_columns))
        text = text.ljust(self._header_len - 1) + "\n"
        self._file.seek(0)
        self._file.write(_MAGIC + self._header_len.to_bytes(2, "little") + text.encode("latin1"))

    def write(self, block):
        """Append rows.

        Parameters
        ----------
        block : array_like, shape (b, n_columns)
        """
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.n_columns:
            raise InvalidInputError(f"block must have shape (b, {self.n_columns}), got {block.shape}")
        block.tofile(self._file)
        self.rows_written += block.shape[0]

    def close(self):
        """Finalise the header and return the file as a read-only memory map.

        Returns
        -------
        numpy.memmap, shape (rows_written, n_columns)
        """
        self._write_header()
        self._file.close()
        return np.load(self.path, mmap_mode="r")

    def abort(self):
        """Close and delete the file."""
        self._file.close()
        os.remove(self.path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def row_sink(out, n_columns, dtype):
    """Where an adapter's rows go, from its ``out`` argument.

    Parameters
    ----------
    out : None, str, os.PathLike or object with an ``update(block)`` method
        None: rows are kept in memory. A path: rows are streamed to that
        ``.npy`` file (:class:`NpyRowWriter`). An accumulator such as
        :class:`evtools.TopKAccumulator`: each block is passed to its ``update``.
    n_columns : int
    dtype : numpy dtype
        Dtype of the in-memory matrix or of the file.

    Returns
    -------
    sink
        With ``write(block)`` (block: ndarray, shape (b, n_columns)), ``close()``
        returning the result (ndarray of shape (n_rows, n_columns), read-only
        memory map, or the accumulator itself) and ``abort()`` discarding the
        rows (the file is deleted).
    """
    if out is None:
        return _MemoryRows(n_columns, dtype)
    if isinstance(out, (str, os.PathLike)):
        return NpyRowWriter(out, n_columns, dtype)
    if callable(getattr(out, "update", None)):
        return _UpdateRows(out)
    raise InvalidInputError(
        f"out must be None, a file path or an accumulator with an update(block) method, got {type(out).__name__}"
    )


class _MemoryRows:
    def __init__(self, n_columns, dtype):
        self.blocks = [np.zeros((0, n_columns), dtype=dtype)]

    def write(self, block):
        self.blocks.append(block)

    def close(self):
        return np.concatenate(self.blocks)

    def abort(self):
        self.blocks = []


class _UpdateRows:
    def __init__(self, target):
        self.target = target

    def write(self, block):
        self.target.update(block)

    def close(self):
        return self.target

    def abort(self):
        pass


def progress_bar(total=None, *, enabled=True, desc=None, unit="sample"):
    """A tqdm progress bar following tqdm's conventions.

    Parameters
    ----------
    total : int, optional
        Expected count (None: unknown, the bar shows counts and rates only).
    enabled : bool
        False: no bar. True: a bar when the output is a terminal (tqdm's
        ``disable=None``), so logs and test runs stay clean.
    desc : str, optional
        Label in front of the bar.
    unit : str
        What one step counts.

    Returns
    -------
    tqdm.tqdm
        Use as a context manager; advance with ``bar.update(n)``.
    """
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, dynamic_ncols=True)


def batch_iterator(data, is_array, kind):
    """The raw batches of an adapter's ``data`` argument and the number of samples, if known.

    Parameters
    ----------
    data : an ``(inputs, targets)`` pair whose items satisfy ``is_array``, or any
        iterable of such pairs (a DataLoader: its ``dataset`` gives the total).
    is_array : callable, the framework's array test.
    kind : str, the framework's word for arrays, for the error message.

    Returns
    -------
    iterator, int or None
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(is_array(v) for v in data):
        shape = data[0].shape
        return iter([data]), (shape[0] if len(shape) else None)
    try:
        iterator = iter(data)
    except TypeError:
        raise InvalidInputError(
            f"data must be an (inputs, targets) pair of {kind} or an iterable of such batches, "
            f"got {type(data).__name__}"
        ) from None
    dataset = getattr(data, "dataset", None)
    try:
        total = len(dataset) if dataset is not None else None
    except TypeError:
        total = None
    return iterator, total


def check_pair(batch, number):
    """Raise unless batch number ``number`` is an ``(inputs, targets)`` pair; return the pair."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise InvalidInputError(
            f"batch {number} is a {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            + "; each batch must be an (inputs, targets) pair"
        )
    return batch[0], batch[1]
