"""The adapter toolkit: what a framework adapter needs from evtools, public and documented.

An adapter (``evtools_torch``, ``evtools_jax``, or a third one) turns a model
and data into the gradient matrix ``G`` and its :class:`~evtools.FilterIndex`.
It imports only public names, and these are all it needs:

- errors: :class:`~evtools.EvtoolsError`, :class:`~evtools.InvalidInputError`
  (bad input), :class:`~evtools.UnsupportedModelError` (a layer that cannot be
  computed exactly, named), :class:`~evtools.FileWriteError`;
- the filter index: :class:`~evtools.FilterIndex` (``FilterIndex.from_layers``),
  the norms per filter :data:`REDUCTIONS` and :func:`check_reduction`;
- argument checks: :func:`positive_int`, :func:`check_int`;
- batches: :func:`batch_iterator` (one array pair, or an iterable of pairs, with
  a total for the progress bar), :func:`check_pair` (one ``(inputs, targets)``
  pair), :func:`progress_bar`;
- rows: :func:`row_sink` (the three meanings of ``out=``: in memory, a new
  crash-safe ``.npy`` file, or an existing array), :class:`NpyRowWriter` (the
  ``.npy`` file that stays readable when a run is killed) and
  :func:`finished_in_batch` (``resume=True``: which rows of a batch are
  already in the file).

``docs/adapter_contract.md`` says what an adapter must promise and which tests
hold it.
"""
from __future__ import annotations

import contextlib
import os
import stat

import numpy as np
from tqdm.auto import tqdm

from ._errors import EvtoolsError, FileWriteError, InvalidInputError, UnsupportedModelError  # noqa: F401
from ._files import check_writable_target
from ._validation import check_int, positive_int  # noqa: F401 (re-exported for adapters)
from .filters import REDUCTIONS, FilterIndex, check_reduction  # noqa: F401 (re-exported for adapters)

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0
_LARGEST_ROWS = 2**63 - 1


def _header_dict(dtype, shape):
    descr = np.lib.format.dtype_to_descr(dtype)
    return "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)


class NpyRowWriter:
    """Append rows of a 2-D array to a ``.npy`` file whose length need not be known.

    The file starts with a header sized for any row count; rows are appended
    in C order as they come, and after every block the header is rewritten
    with the rows finished so far (padded with spaces, as the format allows).
    So at any moment, even after the process is killed, ``np.load(path)``
    reads every finished row. While the file is incomplete a marker file
    ``path + ".partial"`` lies beside it; :meth:`close` removes it.

    Parameters
    ----------
    path : str or os.PathLike
        File to write (no ``.npy`` suffix is added). It must be absent or a
        regular file: a directory, device, fifo or socket is refused.
    n_columns : int
    dtype : numpy dtype
        Dtype of the file; blocks are cast to it.
    resume : bool
        False: the file is replaced. True: an existing file written by this
        class with the same dtype and columns is kept and rows are appended
        after its finished rows (``rows_done``); a missing file starts afresh.

    Attributes
    ----------
    rows_done : int
        Rows already in the file when it was opened (0 unless resuming).
    rows_written : int
        Rows in the file now.

    Raises
    ------
    InvalidInputError
        ``path`` is not a regular file, or (resume) holds another dtype,
        another number of columns or damaged data.
    FileWriteError
        Opening or writing failed (disk full, file-size limit, permissions):
        the message names the file and the cause; the rows finished so far
        stay readable.

    Notes
    -----
    Used as a context manager, :meth:`abort` runs if the block raises.
    """

    def __init__(self, path, n_columns, dtype, *, resume=False):
        self.path = os.fspath(path)
        self.marker = self.path + ".partial"
        self.n_columns = int(n_columns)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self._row_bytes = self.dtype.itemsize * self.n_columns
        widest = len(_header_dict(self.dtype, (_LARGEST_ROWS, self.n_columns))) + 1  # + "\n"
        # the whole preamble (magic, 2-byte length, header) is a multiple of 64 bytes
        self._header_len = -(-(len(_MAGIC) + 2 + widest) // 64) * 64 - len(_MAGIC) - 2
        self._offset = len(_MAGIC) + 2 + self._header_len
        check_writable_target(self.path)
        resume = bool(resume) and os.path.exists(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise FileWriteError(f"{self.path}: cannot open it for writing ({exc.strerror})") from exc
        self._file = os.fdopen(fd, "r+b")
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by something else since the check
            self._file.close()
            raise InvalidInputError(f"{self.path}: is not a regular file; give the path of a regular file to write")
        self._keep = True  # a file that was there before (resume) is never deleted
        try:
            self._start(resume)
        except BaseException:
            self._file.close()
            raise

    def _start(self, resume):
        with self._writing("starting"):
            if resume:
                self.rows_done = self._finished_rows()
            else:
                self._keep = False
                self.rows_done = 0
                self._file.truncate(0)
            self.rows_written = self.rows_done
            with open(self.marker, "w") as fh:
                fh.write(f"{os.path.basename(self.path)} holds the finished rows of an unfinished run "
                         "(evtools); resume it with resume=True\n")
            self._file.truncate(self._offset + self.rows_done * self._row_bytes)
            self._write_header()

    @contextlib.contextmanager
    def _writing(self, what):
        try:
            yield
        except OSError as exc:
            raise FileWriteError(
                f"{self.path}: {what} failed after {getattr(self, 'rows_written', 0)} finished rows "
                f"({exc.strerror or exc}); the finished rows stay readable") from exc

    def _finished_rows(self):
        """Rows of the file this run resumes, after checking it matches."""
        try:
            if np.lib.format.read_magic(self._file) != (1, 0):  # what this class writes
                raise ValueError("not a version 1.0 .npy file")
            header = np.lib.format.read_array_header_1_0(self._file)
        except Exception as exc:  # ValueError and friends from a damaged header
            raise InvalidInputError(f"{self.path}: cannot resume, not a readable .npy file ({exc})") from exc
        shape, fortran, dtype = header
        if (self._file.tell() != self._offset or fortran or np.dtype(dtype) != self.dtype
                or len(shape) != 2 or shape[1] != self.n_columns):
            raise InvalidInputError(
                f"{self.path}: cannot resume, it holds {np.dtype(dtype)} rows of shape {shape}, this run writes "
                f"{self.dtype} rows of {self.n_columns} columns; pass resume=False to start again")
        size = os.fstat(self._file.fileno()).st_size
        if size < self._offset + shape[0] * self._row_bytes:
            raise InvalidInputError(
                f"{self.path}: cannot resume, its header counts {shape[0]} rows but the file is {size} bytes "
                "(cut short); pass resume=False to start again")
        return int(shape[0])

    def _write_header(self):
        text = _header_dict(self.dtype, (self.rows_written, self.n_columns))
        text = text.ljust(self._header_len - 1) + "\n"
        self._file.seek(0)
        self._file.write(_MAGIC + self._header_len.to_bytes(2, "little") + text.encode("latin1"))
        self._file.flush()
        self._file.seek(0, os.SEEK_END)

    def write(self, block):
        """Append rows; the header counts them once they are all written.

        Parameters
        ----------
        block : array_like, shape (b, n_columns)
        """
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.ndim != 2 or block.shape[1] != self.n_columns:
            raise InvalidInputError(f"block must have shape (b, {self.n_columns}), got {block.shape}")
        if block.shape[0] == 0:
            return
        with self._writing("writing rows"):
            self._file.seek(self._offset + self.rows_written * self._row_bytes)
            self._file.write(memoryview(block).cast("B"))
            self._file.flush()
            self.rows_written += block.shape[0]
            self._write_header()

    def close(self):
        """Finish the file (fsync, remove the marker) and return it as a read-only memory map.

        Returns
        -------
        numpy.memmap, shape (rows_written, n_columns)
        """
        with self._writing("finishing the file"):
            self._write_header()
            os.fsync(self._file.fileno())
            self._file.close()
            os.remove(self.marker)
        return np.load(self.path, mmap_mode="r")

    def abort(self):
        """Stop writing: finished rows stay, with the marker, for ``resume=True``.

        A file this run created and wrote no row to is deleted with its marker.
        """
        with contextlib.suppress(OSError):
            self._file.close()
        if not self._keep and self.rows_written == 0:
            for path in (self.path, self.marker):
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        os.remove(path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def row_sink(out, n_columns, dtype, *, resume=False):
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
    resume : bool
        Only with a path: continue the file's finished rows (see :class:`NpyRowWriter`).

    Returns
    -------
    sink
        With ``rows_done`` (rows already finished, to skip; 0 unless
        resuming), ``write(block)`` (block: ndarray, shape (b, n_columns)),
        ``close()`` returning the result (ndarray of shape (n_rows,
        n_columns), read-only memory map, or the accumulator itself) and
        ``abort()`` (a file keeps its finished rows for ``resume=True``).
    """
    if not isinstance(resume, (bool, np.bool_)):
        raise InvalidInputError(f"resume must be True or False, got {resume!r}")
    is_path = isinstance(out, (str, os.PathLike))
    if resume and not is_path:
        raise InvalidInputError("resume=True needs out= to be a file path (the .npy file of the interrupted run)")
    if out is None:
        return _MemoryRows(n_columns, dtype)
    if is_path:
        return NpyRowWriter(out, n_columns, dtype, resume=resume)
    if callable(getattr(out, "update", None)):
        return _UpdateRows(out)
    raise InvalidInputError(
        f"out must be None, a file path or an accumulator with an update(block) method, got {type(out).__name__}"
    )


def finished_in_batch(n_rows, first_row, rows_done):
    """How many leading rows of a batch are already in a resumed file (where the batch resumes).

    Parameters
    ----------
    n_rows : int, rows of the batch.
    first_row : int, the batch's first row over all batches.
    rows_done : int, the sink's finished rows.

    Returns
    -------
    int in [0, n_rows]; ``n_rows`` means the whole batch is already finished.
    """
    return min(n_rows, max(0, rows_done - first_row))


class _MemoryRows:
    rows_done = 0

    def __init__(self, n_columns, dtype):
        self.blocks = [np.zeros((0, n_columns), dtype=dtype)]

    def write(self, block):
        self.blocks.append(block)

    def close(self):
        return np.concatenate(self.blocks)

    def abort(self):
        self.blocks = []


class _UpdateRows:
    rows_done = 0

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
