"""evtools_jax: the JAX adapter of evtools (gradient-norm matrices of Flax, Equinox and plain-lax CNNs)."""

# TailAccumulator: evtools.TopKAccumulator under the adapter's name, as in evtools_torch; pass one
# as filter_gradient_norms(..., out=TailAccumulator(k)) to stream a reference set into the k + 1
# largest values per column that a TopK(k) tail fit needs.
from evtools import TopKAccumulator as TailAccumulator
from evtools.filters import REDUCTIONS

from .gradnorms import filter_gradient_norms

__all__ = ["REDUCTIONS", "TailAccumulator", "filter_gradient_norms"]
