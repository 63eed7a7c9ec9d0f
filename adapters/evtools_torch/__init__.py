"""evtools_torch: the PyTorch adapter of evtools (gradient-norm matrices, repair, demo).

Importing it selects numba's ``"workqueue"`` threading layer unless
``NUMBA_THREADING_LAYER`` is set (and unless a numba parallel kernel already
ran in this process): with numba's OpenMP layer, the worker threads left
spinning after each evtools kernel slowed the torch CPU work that followed up
to 40-fold for seconds.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# TailAccumulator: evtools.TopKAccumulator under the adapter's name; pass one as
# filter_gradient_norms(..., out=TailAccumulator(k)) to stream a reference set into
# the k + 1 largest values per column that a TopK(k) tail fit needs.
from evtools import TopKAccumulator as TailAccumulator

from .gradnorms import filter_gradient_norms, select_convolutions
from .repair import RepairResult, filter_score_fn, implant, random_ranking, repair
