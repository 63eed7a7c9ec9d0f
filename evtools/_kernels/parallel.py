"""Parallel numba kernels that are safe from several threads and in forked processes.

evtools never changes numba's settings (``numba.config``, the threading layer,
the number of threads): the user's choice, or numba's default, holds. What
evtools does instead, for its own kernels only (see ``docs/guarantees.md``):

- **workqueue layer** (numba's fallback, or the user's choice): it aborts the
  process when two threads launch parallel kernels at once, so evtools
  launches its kernels one at a time (a process-wide lock). Other layers
  (``omp``, ``tbb``) run them concurrently.
- **fork after GNU OpenMP**: a child forked (``multiprocessing``'s default on
  Linux) from a process whose ``omp`` layer already ran is killed by GNU
  OpenMP at its first parallel region. evtools notices the fork
  (:func:`os.register_at_fork`) and runs its kernels in that child through a
  serial compilation of the same code: same results, one thread.
"""
from __future__ import annotations

import functools
import os
import threading
import types

import numba
from numba import njit

_LAUNCH_LOCK = threading.Lock()
_layer = None  # numba's threading layer once started (it never changes afterwards)
_serial_only = False  # True in a process forked after GNU OpenMP ran


def _gnu_openmp_started():
    """True when numba's ``omp`` layer runs on GNU OpenMP (not fork-safe) in this process."""
    try:
        if numba.threading_layer() != "omp":
            return False
    except ValueError:  # no parallel kernel has run yet
        return False
    from numba.np.ufunc import omppool
    return getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _after_fork_in_child():
    global _serial_only
    _serial_only = _serial_only or _gnu_openmp_started()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _threading_layer():
    global _layer
    if _layer is None:
        numba.get_num_threads()  # starts numba's threading layer, as the first kernel would
        _layer = numba.threading_layer()
    return _layer


class ParallelKernel:
    """A ``@njit(cache=True, parallel=True)`` kernel behind a thread- and fork-safe launcher.

    Called like the kernel; numba kernels cannot call it (none of evtools' do).
    """

    def __init__(self, func):
        functools.update_wrapper(self, func)
        self.parallel = njit(cache=True, parallel=True)(func)
        self._func = func
        self._serial = None

    @property
    def serial(self):
        """The same code compiled without threads (cached on disk under its own name)."""
        if self._serial is None:
            f = self._func
            names = {"co_name": f.__name__ + "_serial"}
            if hasattr(f.__code__, "co_qualname"):  # Python >= 3.11
                names["co_qualname"] = f.__qualname__ + "_serial"
            code = f.__code__.replace(**names)
            twin = types.FunctionType(code, f.__globals__, code.co_name, f.__defaults__, f.__closure__)
            twin.__qualname__ = f.__qualname__ + "_serial"  # numba's cache files go by it (3.10 too)
            self._serial = njit(cache=True)(twin)
        return self._serial

    def __call__(self, *args):
        if _serial_only:
            return self.serial(*args)
        if _threading_layer() == "workqueue":
            with _LAUNCH_LOCK:
                return self.parallel(*args)
        return self.parallel(*args)


def parallel_kernel(func):
    """Decorator: ``@njit(cache=True, parallel=True)`` launched through :class:`ParallelKernel`."""
    return ParallelKernel(func)
