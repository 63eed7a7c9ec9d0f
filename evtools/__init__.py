"""evtools: extreme-value statistics for diagnosing convolutional networks.

The core is framework-agnostic (numpy, scipy, statsmodels, numba). Framework
adapters live beside it: ``evtools_torch`` for PyTorch.
"""
from ._errors import EvtoolsError, InvalidInputError, NotFittedError
from .accumulate import TopKAccumulator
from .filters import FilterIndex

__version__ = "0.1.0"
