"""Per-column status codes shared by the fitting kernels and :class:`evtools.TailModel`.

A status is an ``int8`` per column. Only ``OK`` columns use their fitted GPD
tail; every other status has a documented fallback (see ``TailModel``), so a
column with trouble is scored, never dropped and never NaN.
"""
from enum import IntEnum


class Status(IntEnum):
    OK = 0             #: fit converged on enough exceedances
    TOO_FEW = 1        #: fewer exceedances than ``min_exceed``
    #: no spread to fit: no value above the threshold (a constant column, ties at the top) or all exceedances equal
    CONSTANT = 2
    NOT_CONVERGED = 3  #: the estimator did not converge
    XI_BOUNDARY = 4    #: MLE at the xi = -1 boundary (the likelihood is unbounded below it)
    #: the likelihood has no interior maximum: it still rises at xi = 0 towards xi -> inf (e.g. zeros among
    #: heavy-tailed exceedances); the exponential is used
    NO_MAXIMUM = 5


OK, TOO_FEW, CONSTANT, NOT_CONVERGED, XI_BOUNDARY, NO_MAXIMUM = (int(s) for s in Status)


def status_names(codes):
    """The names (``"OK"``, ``"TOO_FEW"`` ...) of an iterable of status codes, as a list of str."""
    return [Status(s).name for s in codes]
