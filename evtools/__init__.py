"""evtools: extreme-value statistics for diagnosing convolutional networks.

The core is framework-agnostic (numpy, scipy, statsmodels, numba). Framework
adapters live beside it: ``evtools_torch`` for PyTorch.
"""
from ._errors import EvtoolsError, InvalidInputError, NotFittedError, UnsupportedModelError
from ._status import Status
from .gpd import GPD, GPDFit, gpd_fit
from .threshold import Quantile, ThresholdRule, TopK
from .tails import TailModel, fit_tails
from .accumulate import TopKAccumulator
from .filters import FilterIndex
from .depth import DepthProfile, depth_profile
from .normality import NormalityReport, normality_tests
from .saliency import POTSaliency, ZScoreSaliency, load_saliency
from . import perturb
from .gof import GOFResult, gof_columns, gpd_gof
from .threshold import ForwardStop
from .diagnostics import mean_residual_life, parameter_stability
from .spot import DSPOT, SPOT, SPOTResult

__version__ = "0.1.0"
