"""evtools: extreme-value statistics for diagnosing convolutional networks.

The core is framework-agnostic (numpy, scipy, statsmodels, numba). Framework
adapters live beside it: ``evtools_torch`` for PyTorch.

``import evtools`` is cheap: each public name is imported from its submodule
on first use (``ev.fit_tails``, ``from evtools import fit_tails``), so scipy,
statsmodels and numba load only when something needs them. A new public name
is one line in ``_EXPORTS``.
"""
import importlib
import importlib.util

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
    "GOFResult": "gof", "gof_columns": "gof", "gpd_gof": "gof",
    "mean_residual_life": "diagnostics", "parameter_stability": "diagnostics",
    "DSPOT": "spot", "SPOT": "spot", "SPOTResult": "spot",
}

__all__ = ["EvtoolsError", "FileFormatError", "FileWriteError", "InvalidInputError", "NotFittedError",
           "UnsupportedModelError", "perturb", *_EXPORTS]


def __getattr__(name):
    """A public name from its submodule, or a submodule itself (``ev.gpd``, ``ev.perturb``), imported on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'evtools' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
