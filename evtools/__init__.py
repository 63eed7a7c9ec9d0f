"""evtools: extreme-value statistics for diagnosing convolutional networks.

The core is framework-agnostic (numpy, scipy, statsmodels, numba). Framework
adapters live beside it: ``evtools_torch`` for PyTorch.

``import evtools`` is cheap: each public name is imported from its submodule
on first use (``ev.fit_tails``, ``from evtools import fit_tails``), so scipy,
statsmodels and numba load only when something needs them. A new public name
is one line in ``_EXPORTS``.
"""
import importlib

from ._errors import (
    EvtoolsError,
    FileFormatError,
    FileWriteError,
    InvalidInputError,
    NotFittedError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

#: public name -> submodule that defines it (imported on first access)
_EXPORTS = {
    "Status": "_status",
    "GPD": "gpd", "GPDFit": "gpd", "gpd_fit": "gpd",
    "Quantile": "threshold", "ThresholdRule": "threshold", "TopK": "threshold", "ForwardStop": "threshold",
    "Fixed": "threshold",
    "TailModel": "tails", "fit_tails": "tails",
    "ReturnLevels": "return_levels",
    "Clusters": "declustering", "decluster": "declustering", "extremal_index": "declustering",
    "Calibration": "calibration",
    "TopKAccumulator": "accumulate",
    "FilterIndex": "filters",
    "DepthProfile": "depth", "depth_profile": "depth",
    "NormalityReport": "normality", "normality_tests": "normality",
    "POTSaliency": "saliency", "ZScoreSaliency": "saliency", "load_saliency": "saliency",
    "perturb": None,  # the subpackage itself
    "GOFResult": "gof", "gof_columns": "gof", "gpd_gof": "gof",
    "mean_residual_life": "diagnostics", "parameter_stability": "diagnostics",
    "DSPOT": "spot", "SPOT": "spot", "SPOTResult": "spot",
}

__all__ = ["EvtoolsError", "FileFormatError", "FileWriteError", "InvalidInputError", "NotFittedError",
           "UnsupportedModelError", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evtools' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f".{name if module is None else module}", __name__)
    if module is not None:
        value = getattr(value, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
