"""The results schema: what :func:`evtools.report.build_report` reads, versioned and checked.

An experiment run (such as ``evtools_torch.demo.run.run_demo``) writes a
results ``dict`` of plain numbers, strings, lists (or numpy arrays) and
dicts; :func:`evtools.report.save_results` stores it as JSON, where NaN
becomes ``null`` (``None``). The report validates it with
:func:`validate_results` before drawing anything, so the experiments and the
report can change apart: a change to either that breaks the other fails
here, naming the key.

Schema version 1 (``results["schema_version"] == 1``; every section optional):

``meta``
    dict; the report reads (each optional) ``model`` (dict: ``arch``,
    ``width``, ``n_train``, ``epochs``, ``seed``), ``n_filters``, ``layers``,
    ``test_accuracy``, ``train_seconds``, ``n_reference``, ``pot_level``,
    ``reduction``, ``quick``, ``model_cached``, versions, ``torch_threads``
    and ``timings`` (str -> seconds).
``claims``
    list of *claim*: ``text`` (str), ``verdict`` (one of
    :data:`evtools.claims.VERDICTS`), and when measured ``value`` (number)
    and ``ci`` ([lo, hi]); ``measure`` (str) optional.
``normality``
    ``layers`` (list of str), ``n_filters`` (int per layer), ``n_samples``,
    ``alpha``, ``correction`` (str or None), ``claim``, ``rejected``: test
    name -> ``share``, ``ci_low``, ``ci_high`` (number per layer),
    ``overall`` (*estimate*: ``value``, ``ci``), ``n_tested`` optional.
``malicious``
    ``k``, ``n_trials``, ``kinds``, ``n_filters``, ``layers``,
    ``references``, ``scorer_names``, ``random_hit_rate``,
    ``random_mean_rank``, ``n_inputs``, ``trials`` (list of ``kind``,
    ``n_errors``), ``claims``, and ``pooled`` and ``by_kind`` (kind ->) tables
    reference -> scorer -> ``hit_rate`` and ``mean_rank`` (*estimate*) and
    ``hit_rate_by_depth`` (``value``, ``ci_low``, ``ci_high`` per layer);
    ``pooled`` is empty when no trial caused an error (then ``claims`` says so).
``depth_shift``
    ``layers``, ``k``, ``expected_share``, ``claims``, ``conditions``:
    condition -> ``n_rows``, ``accuracy`` (optional), ``claim`` (optional),
    and, when ``n_rows > 0``, ``scorers``: name -> ``observed_share``,
    ``enrichment``, ``ci_low``, ``ci_high`` (per layer), ``bias``,
    ``bias_ci``, ``mean_depth_shift``.
``repair``
    ``k`` (1..k_max), ``mode``, ``lr`` (number or None), ``n_inputs``,
    ``control``, ``claims``, ``rankings``: name -> ``share``, ``ci_low``,
    ``ci_high`` (per k), ``mean_share``, ``share_at_k_max`` (*estimate*);
    optional ``highlight`` (names) and ``n_by_condition`` (str -> int).
``input_maps``
    ``images`` (n, C, H, W), ``labels``, ``predictions`` (int per image),
    ``k``, ``window``, ``stride``, ``baseline``, ``class_maps`` (n, H, W),
    ``scorers``: name -> ``maps`` (n, H, W) and ``filters`` (n, k);
    optional ``class_names`` and ``conditions`` (str per image).

Numbers may be ``None`` (a NaN in JSON). Keys the report does not read are
allowed and kept.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._errors import InvalidInputError
from .claims import VERDICTS

__all__ = ["SCHEMA_VERSION", "validate_results"]

SCHEMA_VERSION = 1
"""Version of the results schema this evtools writes and reads (``results["schema_version"]``)."""


class _Bad(Exception):
    def __init__(self, path, problem):
        self.path, self.problem = path, problem


def _where(path):
    return "results" + "".join(f"[{p!r}]" for p in path)


def _is_num(v):
    return v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool))


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _number(v, path):
    if not _is_num(v):
        raise _Bad(path, f"must be a number or None, got {type(v).__name__}")


def _real(v, path):
    if v is None or not _is_num(v):
        raise _Bad(path, f"must be a number, got {type(v).__name__}")


def _integer(v, path):
    if not _is_int(v):
        raise _Bad(path, f"must be an integer, got {type(v).__name__}")


def _string(v, path):
    if not isinstance(v, str):
        raise _Bad(path, f"must be a string, got {type(v).__name__}")


def _optional(check):
    """``check`` or None."""
    def run(v, path):
        if v is not None:
            check(v, path)
    return run


def _list_of(item, length=None):
    def run(v, path):
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if not isinstance(v, (list, tuple)):
            raise _Bad(path, f"must be a list, got {type(v).__name__}")
        if length is not None and len(v) != length:
            raise _Bad(path, f"must have {length} entries, got {len(v)}")
        for i, x in enumerate(v):
            item(x, path + [i])
    return run


def _array(ndim):
    """A nested list (or numpy array) of numbers with ``ndim`` axes."""
    def run(v, path):
        arr = np.asarray(v, dtype=object) if not isinstance(v, np.ndarray) else v
        if arr.ndim != ndim:
            raise _Bad(path, f"must be an array with {ndim} axes, got shape {arr.shape}")
        if arr.dtype == object and not all(_is_num(x) for x in arr.ravel()):
            raise _Bad(path, "must hold numbers or None")
        if arr.dtype != object and not np.issubdtype(arr.dtype, np.number):
            raise _Bad(path, f"must hold numbers, got dtype {arr.dtype}")
    return run


def _map_of(value):
    """A dict from names (str) to ``value``."""
    def run(v, path):
        if not isinstance(v, dict):
            raise _Bad(path, f"must be a dict, got {type(v).__name__}")
        for key, x in v.items():
            _string(key, path + [key])
            value(x, path + [key])
    return run


def _record(required, optional=None):
    """A dict with the ``required`` keys (and, when present, the ``optional`` ones) of the given types."""
    optional = optional or {}

    def run(v, path):
        if not isinstance(v, dict):
            raise _Bad(path, f"must be a dict, got {type(v).__name__}")
        for key, check in required.items():
            if key not in v:
                raise _Bad(path, f"is missing the key {key!r}")
            check(v[key], path + [key])
        for key, check in optional.items():
            if key in v:
                check(v[key], path + [key])
    return run


def _verdict(v, path):
    if v not in VERDICTS:
        raise _Bad(path, f"must be one of {VERDICTS}, got {v!r}")


_NUMS, _STRS, _INTS = _list_of(_number), _list_of(_string), _list_of(_integer)
_ESTIMATE = _record({"value": _number, "ci": _list_of(_number, 2)})
_CLAIM = _record({"text": _string, "verdict": _verdict},
                 {"measure": _string, "value": _number, "ci": _list_of(_number, 2)})
_CLAIMS = _list_of(_CLAIM)
_BANDS = {"ci_low": _NUMS, "ci_high": _NUMS}
_HITS = _map_of(_map_of(_record({"hit_rate": _ESTIMATE, "mean_rank": _ESTIMATE,
                        "hit_rate_by_depth": _record({"value": _NUMS, **_BANDS})})))

_SECTIONS = {
    "meta": _record({}, {
        "model": _record({}, {"arch": _string, "width": _integer, "n_train": _integer, "epochs": _integer,
                              "seed": _integer}),
        "n_filters": _integer, "layers": _STRS, "test_accuracy": _number, "train_seconds": _number,
        "n_reference": _integer, "pot_level": _number, "reduction": _string, "timings": _map_of(_real),
        "evtools_version": _string, "torch_version": _string, "python": _string, "torch_threads": _integer,
    }),
    "claims": _CLAIMS,
    "normality": _record({
        "layers": _STRS, "n_filters": _INTS, "n_samples": _integer, "alpha": _number, "correction": _optional(_string),
        "claim": _CLAIM,
        "rejected": _map_of(_record({"share": _NUMS, **_BANDS, "overall": _ESTIMATE}, {"n_tested": _integer})),
    }),
    "malicious": _record({
        "k": _integer, "n_trials": _integer, "kinds": _STRS, "n_filters": _integer, "layers": _STRS,
        "references": _STRS, "scorer_names": _STRS, "random_hit_rate": _number, "random_mean_rank": _number,
        "n_inputs": _integer,
        "trials": _list_of(_record({"kind": _string, "n_errors": _integer})), "claims": _CLAIMS, "pooled": _HITS,
        "by_kind": _map_of(_HITS),
    }),
    "depth_shift": _record({
        "layers": _STRS, "k": _integer, "expected_share": _NUMS, "claims": _CLAIMS,
        "conditions": _map_of(_record({"n_rows": _integer}, {
            "accuracy": _number, "claim": _CLAIM,
            "scorers": _map_of(_record({"observed_share": _NUMS, "enrichment": _NUMS, **_BANDS, "bias": _number,
                                   "bias_ci": _list_of(_number, 2), "mean_depth_shift": _number})),
        })),
    }),
    "repair": _record({
        "k": _INTS, "mode": _string, "lr": _number, "n_inputs": _integer, "control": _string, "claims": _CLAIMS,
        "rankings": _map_of(_record({"share": _NUMS, **_BANDS, "mean_share": _ESTIMATE, "share_at_k_max": _ESTIMATE})),
    }, {"highlight": _STRS, "n_by_condition": _map_of(_integer)}),
    "input_maps": _record({
        "images": _array(4), "labels": _INTS, "predictions": _INTS, "k": _integer, "window": _integer,
        "stride": _integer, "baseline": _string, "class_maps": _array(3),
        "scorers": _map_of(_record({"maps": _array(3), "filters": _array(2)})),
    }, {"class_names": _STRS, "conditions": _STRS}),
}


def _lengths(path, record, keys, n, what):
    """Raise unless each of ``record[key]`` (for ``keys`` present in it) has ``n`` entries, one per ``what``."""
    for key in keys:
        if key in record and len(record[key]) != n:
            raise _Bad([*path, key], f"must have one entry per {what} ({n}), got {len(record[key])}")


def _consistent(results):
    """What the types alone do not say: per-layer lengths, complete tables, rows behind scorers."""
    bands = ("ci_low", "ci_high")
    sec = results.get("normality")
    if sec:
        n_layers = len(sec["layers"])
        for test, r in sec["rejected"].items():
            _lengths(["normality", "rejected", test], r, ("share", *bands), n_layers, "layer")
        _lengths(["normality"], sec, ("n_filters",), n_layers, "layer")
    sec = results.get("malicious")
    if sec:
        if not sec["pooled"] and not sec["claims"]:
            raise _Bad(["malicious", "claims"], "must say why there is nothing to diagnose when 'pooled' is empty")
        tables = [(["pooled"], sec["pooled"])] if sec["pooled"] else []
        tables += [(["by_kind", kind], t) for kind, t in sec["by_kind"].items()]
        for where, table in tables:
            for ref in sec["references"]:
                for name in sec["scorer_names"]:
                    if name not in table.get(ref, {}):
                        raise _Bad(["malicious", *where, ref], f"is missing the key {name!r}")
                    by_depth = ["malicious", *where, ref, name, "hit_rate_by_depth"]
                    _lengths(by_depth, table[ref][name]["hit_rate_by_depth"], ("value", *bands),
                             len(sec["layers"]), "layer")
        if sec["pooled"] and not sec["trials"]:
            raise _Bad(["malicious", "trials"], "must list the trials behind 'pooled'")
    sec = results.get("depth_shift")
    if sec:
        n_layers = len(sec["layers"])
        _lengths(["depth_shift"], sec, ("expected_share",), n_layers, "layer")
        for cond, entry in sec["conditions"].items():
            if entry["n_rows"] > 0 and "scorers" not in entry:
                raise _Bad(["depth_shift", "conditions", cond], "is missing the key 'scorers' (n_rows > 0)")
            for name, r in entry.get("scorers", {}).items():
                _lengths(["depth_shift", "conditions", cond, "scorers", name], r,
                         ("observed_share", "enrichment", *bands), n_layers, "layer")
    sec = results.get("repair")
    if sec:
        for name, r in sec["rankings"].items():
            _lengths(["repair", "rankings", name], r, ("share", *bands), len(sec["k"]), "k")
    sec = results.get("input_maps")
    if sec:
        n = len(sec["images"])
        _lengths(["input_maps"], sec, ("labels", "predictions", "class_maps"), n, "image")
        for name, r in sec["scorers"].items():
            _lengths(["input_maps", "scorers", name], r, ("maps", "filters"), n, "image")


def validate_results(results):
    """Check a results dict against the schema before a report is built from it.

    Parameters
    ----------
    results : dict
        As an experiment run writes it, or :func:`evtools.report.load_results`
        reads it back; ``results["schema_version"]`` must be :data:`SCHEMA_VERSION`.

    Returns
    -------
    dict
        ``results`` itself (not copied).

    Raises
    ------
    InvalidInputError
        Naming the first missing or mistyped key by its path, e.g.
        ``results['malicious']['pooled']['faulty']['POT']: is missing the key 'hit_rate'``.
    """
    if not isinstance(results, dict):
        raise InvalidInputError(f"results must be a dict, got {type(results).__name__}")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        found = "has no 'schema_version'" if "schema_version" not in results else f"has schema_version {version!r}"
        raise InvalidInputError(
            f"results {found}; this evtools reads schema version {SCHEMA_VERSION} (see evtools.results): "
            "rerun the experiments with this evtools, or set results['schema_version'] after checking the keys")
    try:
        for key, check in _SECTIONS.items():
            if key in results:
                check(results[key], [key])
        _consistent(results)
    except _Bad as bad:
        raise InvalidInputError(
            f"{_where(bad.path)} {bad.problem}; see the schema in evtools.results (version {SCHEMA_VERSION})"
        ) from None
    return results
