"""Saved files: atomic writes, one path convention, and reading them as untrusted input.

Every ``save`` of evtools writes through :func:`atomic_save`: the data goes to
a temporary file beside the target, is flushed and fsynced, then renamed over
the target, so a save that fails (disk full, file-size limit, an exception
half-way) leaves the previous file untouched and no temporary behind.

Path convention of model files (``TailModel``, ``ZScoreSaliency`` /
``POTSaliency``, ``SPOT``, ``FilterIndex``, ``evtools fit -o``):
:func:`npz_path` appends ``.npz`` to a name without that suffix (as
``numpy.savez`` does), ``save`` returns the path it wrote, and every loader
accepts the name with or without the suffix (:func:`saved_file_path`).

Every loader reads through :class:`SavedFile`, which never unpickles, and
checks each array's dtype and shape and the values the kernels rely on
before a kernel sees them; any damage raises :class:`FileFormatError`
naming the file and what is wrong.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from ._errors import FileFormatError, FileWriteError, InvalidInputError

SUFFIX = ".npz"


# --- writing -------------------------------------------------------------------------------


def npz_path(path):
    """The path a model ``save(path)`` writes: ``path`` itself if it ends in ``.npz``, else ``path + ".npz"``."""
    path = Path(os.fspath(path))
    return path if path.suffix.lower() == SUFFIX else path.with_name(path.name + SUFFIX)


def check_writable_target(path):
    """Raise unless ``path`` is absent or a regular file (never write over a device, fifo or directory)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FileWriteError(f"{path}: cannot write it ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, fifo or socket)"
        raise InvalidInputError(f"{path}: is {kind}; give the path of a regular file to write")


def _new_file_mode(path):
    """Permission bits for the saved file: the old file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextlib.contextmanager
def atomic_save(path):
    """Write a file all at once or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        The file to (re)place; its folder must exist.

    Yields
    ------
    file object opened ``"wb"`` on a temporary file beside ``path``. When the
    block ends normally it is flushed, fsynced and renamed over ``path``; when
    it raises, the temporary is removed and ``path`` is left as it was.

    Raises
    ------
    InvalidInputError
        ``path`` names a directory or another non-regular file.
    FileWriteError
        The write, the fsync or the rename failed (disk full, file-size
        limit, permissions); the message names ``path`` and the cause.
    """
    path = Path(os.fspath(path))
    check_writable_target(path)
    mode = _new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileWriteError(f"{path}: cannot create a file beside it ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise FileWriteError(f"{path}: save failed, the previous file is untouched "
                                 f"({exc.strerror or exc})") from exc
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_npz(path, arrays):
    """Write ``arrays`` (dict of name to array) as an ``.npz`` archive atomically; return the path written.

    The path follows :func:`npz_path`. Object arrays are refused (nothing is pickled).
    """
    target = npz_path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for name, arr in arrays.items():
        if arr.dtype.hasobject:
            raise InvalidInputError(f"{target}: cannot save {name!r}, an object array (evtools never pickles)")
    with atomic_save(target) as fh:
        np.savez(fh, **arrays)
    return target


# --- reading -------------------------------------------------------------------------------


def saved_file_path(path):
    """The file a loader reads for ``path``: ``path`` if it exists, else ``path + ".npz"`` if that does."""
    path = Path(os.fspath(path))
    if not os.path.lexists(path) and path.suffix.lower() != SUFFIX:
        with_suffix = path.with_name(path.name + SUFFIX)
        if with_suffix.exists():
            return with_suffix
    return path


class SavedFile:
    """The arrays of a saved ``.npz`` file, read without pickling and checked one by one.

    Parameters
    ----------
    path : str or os.PathLike
        Resolved with :func:`saved_file_path`.
    what : str
        What the file should hold, for messages (e.g. ``"TailModel"``).
    writer : str
        What writes such files, for messages (e.g. ``"TailModel.save"``).

    Attributes
    ----------
    path : pathlib.Path
    arrays : dict of str to ndarray, every member read in full (so a damaged
        member is found here, not in a kernel).

    Raises
    ------
    FileFormatError
        Missing, not a regular file, not an ``.npz`` archive, a damaged
        archive or member, an object array.
    """

    def __init__(self, path, what, writer):
        self.path = saved_file_path(path)
        self.what = what
        self.writer = writer
        if not self.path.exists():
            raise FileFormatError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise FileFormatError(f"{self.path}: not a regular file; give a {what} file written by {writer}")
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)  # an .npy is mapped, not read
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise FileFormatError(
                    f"{self.path}: not a saved model (an .npz written by {writer}); it is a single .npy array")
            with data:
                self.arrays = {name: data[name] for name in data.files}
        except FileFormatError:
            raise
        except Exception as exc:  # BadZipFile, EOFError, ValueError (pickled or bad header), zlib.error, ...
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FileFormatError(
                f"{self.path}: not a readable {what} file ({type(exc).__name__}: {detail}); "
                f"it may be truncated or damaged, write it again with {writer}") from exc

    def fail(self, problem):
        """Raise :class:`FileFormatError` naming the file and ``problem``."""
        raise FileFormatError(f"{self.path}: damaged {self.what} file: {problem}; write it again with {self.writer}")

    def check(self, ok, problem):
        """Raise (see :meth:`fail`) unless ``ok``."""
        if not ok:
            self.fail(problem)

    def check_columns(self, checks):
        """Raise naming the first failing column of the first failing ``(ok, problem)`` pair.

        ``ok`` is a boolean array of shape (n_columns,), True where the column passes.
        """
        for ok, problem in checks:
            bad = np.flatnonzero(~ok)
            self.check(bad.size == 0, f"{problem} in column {bad[0] if bad.size else ''}")

    def array(self, name, dtype, shape):
        """Member ``name``, required to have exactly ``dtype`` and ``shape``.

        Parameters
        ----------
        name : str
        dtype : numpy dtype, or a dtype kind character (``"U"`` for text)
        shape : tuple of int or None
            None entries take any length.

        Returns
        -------
        ndarray (C-contiguous)
        """
        if name not in self.arrays:
            self.fail(f"array {name!r} is missing")
        arr = self.arrays[name]
        kind_only = isinstance(dtype, str) and len(dtype) == 1
        if (arr.dtype.kind != dtype) if kind_only else (arr.dtype != np.dtype(dtype)):
            want = {"U": "text"}.get(dtype, dtype) if kind_only else np.dtype(dtype)
            self.fail(f"array {name!r} has dtype {arr.dtype}, expected {want}")
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            self.fail(f"array {name!r} has shape {arr.shape}, expected {want}")
        return arr if arr.flags.c_contiguous else arr.copy(order="C")

    def meta(self, name="meta", version=1):
        """The JSON dict stored as text in member ``name``, with its ``"format"`` equal to ``version``.

        A dict without ``"format"`` is taken as version 1 (files written before the field existed).
        """
        text = self.array(name, "U", ())
        try:
            meta = json.loads(str(text))
        except ValueError as exc:
            self.fail(f"its {name!r} text is not JSON ({exc})")
        if not isinstance(meta, dict):
            self.fail(f"its {name!r} is not a JSON object")
        self.version(meta.get("format", 1), version)
        return meta

    def version(self, found, version=1):
        """Raise unless the format number ``found`` is ``version`` (an int, or a tuple of the ones read)."""
        versions = version if isinstance(version, tuple) else (version,)
        if isinstance(found, (bool, np.bool_)) or found not in versions:
            raise FileFormatError(
                f"{self.path}: {self.what} file format {found!r}, this evtools reads format "
                f"{' or '.join(map(str, versions))}; write it again with this version's {self.writer}")

    def integer(self, value, name, low=None, high=None):
        """``value`` as an int, required to be an integer within ``[low, high]``."""
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{name} must be an integer, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{name} = {value} is out of range [{low}, {high if high is not None else 'inf'}]")
        return value
