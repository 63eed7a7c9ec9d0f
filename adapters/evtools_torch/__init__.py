"""evtools_torch: the PyTorch adapter of evtools (gradient-norm matrices, repair, demo)."""

# TailAccumulator: evtools.TopKAccumulator under the adapter's name; pass one as
# filter_gradient_norms(..., out=TailAccumulator(k)) to stream a reference set into
# the k + 1 largest values per column that a TopK(k) tail fit needs.
from evtools import TopKAccumulator as TailAccumulator

from .gradnorms import filter_gradient_norms, select_convolutions
from .repair import RepairResult, filter_index, filter_score_fn, implant, random_ranking, repair

__all__ = ["TailAccumulator", "filter_gradient_norms", "select_convolutions",
           "RepairResult", "filter_index", "filter_score_fn", "implant", "random_ranking", "repair"]
