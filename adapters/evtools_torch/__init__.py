"""evtools_torch: the PyTorch adapter of evtools (gradient-norm matrices, repair, demo)."""
