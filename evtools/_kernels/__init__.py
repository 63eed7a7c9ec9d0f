"""The numba kernels of evtools and what they need (private).

Each module holds the compiled loops of one public module (``gpd``, ``tails``,
``gof``, ``spot``, ``declustering``, ``return_levels``), plus ``gof_tables``
(the Choulakian-Stephens tables the kernels are given as arguments) and
``parallel`` (the thread- and fork-safe launcher of ``parallel=True``
kernels). Kernels never raise on data: they return status codes
(:class:`evtools.Status`); inputs are validated once, in the public modules,
before they get here. See ``docs/architecture.md``.
"""
