"""The ``evtools demo`` pipeline: train a CNN, diagnose its mistakes, check the claims, write a report.

:func:`run_demo` trains (or loads from ``out/cache``) the demo network, takes
the gradient norms of its correctly classified training inputs as the
reference, fits the z-score (Levin et al. 2022) and POT (Wang & Sato 2023)
scorers to them, runs every experiment of :mod:`evtools_torch.experiments`
and writes ``out/results.json`` and a self-contained ``out/report.html``.
Every step is seeded; the same seed and settings give the same numbers.
"""
from __future__ import annotations

import dataclasses
import platform
import time
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm.auto import tqdm

import evtools
from evtools.report import build_report, format_claims, save_results
from evtools.results import SCHEMA_VERSION
from evtools.saliency import POTSaliency, ZScoreSaliency

from .. import experiments as ex
from ..repair import random_ranking
from .data import CLASSES, CORRUPTIONS, corrupt, make_shapes
from .train import DemoConfig, evaluate, load_or_train

POT_LEVELS = (0.80, 0.85, 0.90, 0.95)
"""Threshold quantiles of the POT scorers in the repair experiment (Wang & Sato's range)."""

MAIN_LEVEL = 0.90
"""Threshold quantile of the POT scorer in the other experiments (Wang & Sato's default)."""


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's experiments (the model itself is a :class:`~evtools_torch.demo.DemoConfig`).

    Attributes
    ----------
    n_ref : int
        Correctly classified training inputs in the reference matrix.
    n_shift : int
        Test images per corruption and shifted images.
    severity : int
        Corruption severity (1-5).
    max_errors : int
        Errors diagnosed per condition.
    top_k : int
        Top filters per row in the depth profiles.
    n_implant : int
        Implanted filters per trial (and top-k of the detection).
    n_trials : int
        Implanted sets per kind of fault.
    n_pool_implant : int
        Training images among which the references of the implant experiment are drawn.
    n_ref_implant : int
        Reference inputs per implanted model.
    max_implant_errors : int
        Induced errors diagnosed per trial.
    n_repair : int
        Clean errors repaired.
    k_max : int
        Most filters changed by the repair.
    n_maps : int
        Images with input-space maps.
    n_boot : int
        Bootstrap replicates.
    """

    n_ref: int
    n_shift: int
    severity: int
    max_errors: int
    top_k: int
    n_implant: int
    n_trials: int
    n_pool_implant: int
    n_ref_implant: int
    max_implant_errors: int
    n_repair: int
    k_max: int
    n_maps: int
    n_boot: int

    @classmethod
    def quick(cls):
        """Small sizes for CI: the whole demo in well under a minute on an idle machine."""
        return cls(n_ref=600, n_shift=300, severity=3, max_errors=120, top_k=10, n_implant=5, n_trials=4,
                   n_pool_implant=1000, n_ref_implant=300, max_implant_errors=40, n_repair=40, k_max=25,
                   n_maps=2, n_boot=1000)

    @classmethod
    def full(cls):
        """The published experiment sizes of the demo (a few minutes on 2 CPU cores)."""
        return cls(n_ref=3000, n_shift=1000, severity=3, max_errors=300, top_k=10, n_implant=5, n_trials=8,
                   n_pool_implant=2000, n_ref_implant=1000, max_implant_errors=60, n_repair=150, k_max=25,
                   n_maps=4, n_boot=2000)


def demo_config(quick=False, seed=0):
    """The :class:`~evtools_torch.demo.DemoConfig` of the demo network: ``quick`` for CI, else the full model."""
    return DemoConfig.quick("vgg", seed=seed) if quick else DemoConfig.full("vgg", seed=seed)


def run_demo(out, quick=False, seed=0, progress=True, threads=1):
    """Run the whole demo and write ``out/results.json`` and ``out/report.html``.

    Parameters
    ----------
    out : str or os.PathLike
        Output folder (created); the trained model is cached in ``out/cache``.
    quick : bool
        Small model and experiment sizes, for CI (:meth:`DemoSettings.quick`).
    seed : int
        Seeds the model, the data and every experiment.
    progress : bool
        Show progress bars.
    threads : int or None
        Torch threads, and numba threads of the calling thread, while the demo
        runs (both restored afterwards; numba's count is per thread, so other
        threads and the threading layer are untouched); None keeps both
        settings. One by default: the demo's small convolutions gain little
        from more, and on a shared, busy machine two threads waiting for each
        other at every operation ran the demo several times slower; numba's
        OpenMP workers left spinning after an evtools kernel also slowed the
        torch work after it. The demo never changes numba's threading layer
        (see ``docs/guarantees.md``, "Threads and processes").

    Returns
    -------
    dict
        The results, as written to ``results.json``: ``meta``, ``normality``,
        ``malicious``, ``depth_shift``, ``repair``, ``input_maps`` and
        ``claims`` (every claim's measure, interval and verdict).
    """
    previous = torch.get_num_threads(), numba.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        return _run(Path(out), quick, seed, progress)
    finally:
        torch.set_num_threads(previous[0])
        numba.set_num_threads(previous[1])


def _run(out, quick, seed, progress):
    out.mkdir(parents=True, exist_ok=True)
    settings = DemoSettings.quick() if quick else DemoSettings.full()
    config = demo_config(quick, seed)
    timings, started = {}, {}
    stages = tqdm(total=8, desc="evtools demo", disable=not progress)

    def stage(name):
        stages.set_postfix_str(name)
        started[name] = time.perf_counter()

    def done(name):
        timings[name] = round(time.perf_counter() - started[name], 2)
        stages.update()

    start = time.perf_counter()
    stage("train")
    model, info = load_or_train(config, out / "cache", progress=progress)
    x_train, y_train = config.data("train")
    x_test, y_test = config.data("test")
    done("train")

    stage("reference")
    G_ref, index, _ = ex.reference_gradients(model, x_train, y_train, max_rows=settings.n_ref, seed=seed,
                                             progress=progress)
    z = ZScoreSaliency().fit(G_ref)
    pots = {q: POTSaliency(threshold=q).fit(G_ref) for q in POT_LEVELS}
    pot = pots[MAIN_LEVEL]
    scorers = {"z-score": z, "POT": pot}
    done("reference")

    stage("normality")
    normality = ex.normality_by_layer(G_ref, index, tail=pot.tail_)
    done("normality")

    stage("malicious")
    pool = slice(0, settings.n_pool_implant)
    malicious = ex.malicious_filter_detection(
        model, x_train[pool], y_train[pool], x_test, y_test, {"z-score": ZScoreSaliency, "POT": POTSaliency},
        k=settings.n_implant, n_trials=settings.n_trials, max_ref=settings.n_ref_implant,
        max_errors=settings.max_implant_errors, n_boot=settings.n_boot, seed=seed, progress=progress)
    done("malicious")

    stage("depth_shift")
    conditions = _conditions(x_test, y_test, settings, seed)
    G_by_condition, accuracy, errors = {}, {}, {}
    for name, (x, y) in conditions.items():
        accuracy[name] = evaluate(model, x, y)
        G, _, rows, pred = ex.error_gradients(model, x, y, max_rows=settings.max_errors, seed=seed, progress=False)
        G_by_condition[name] = G
        errors[name] = (x[rows], y[rows], pred)
    depth_shift = ex.depth_profiles(scorers, G_by_condition, index, k=settings.top_k, n_boot=settings.n_boot,
                                    seed=seed)
    for name in conditions:
        depth_shift["conditions"][name].update(accuracy=accuracy[name], n_images=int(len(conditions[name][1])))
    done("depth_shift")

    stage("repair")
    x_err, y_err, G_err, source = _pooled_errors(errors, G_by_condition, settings.n_repair, seed)
    rankings = {"z-score": z.rank(G_err, settings.k_max)}
    rankings.update({f"POT {q:.2f}": pots[q].rank(G_err, settings.k_max) for q in POT_LEVELS})
    rankings["random"] = random_ranking(len(index), settings.k_max, seed=seed, n_rows=len(y_err))
    repair = ex.repair_curves(model, x_err, y_err, rankings, k_max=settings.k_max, n_boot=settings.n_boot,
                              seed=seed, progress=progress)
    repair["n_by_condition"] = {name: int((source == name).sum()) for name in conditions}
    repair["highlight"] = ["z-score", f"POT {MAIN_LEVEL:.2f}", "random"]
    done("repair")

    stage("input_maps")
    maps = ex.input_maps(model, scorers, x_err[:settings.n_maps], y_err[:settings.n_maps], progress=progress)
    maps["class_names"] = list(CLASSES)
    maps["conditions"] = source[:settings.n_maps].tolist()
    done("input_maps")

    results = {
        "schema_version": SCHEMA_VERSION,
        "meta": {
            "evtools_version": evtools.__version__, "torch_version": torch.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "quick": bool(quick), "seed": int(seed), "model": dataclasses.asdict(config),
            "test_accuracy": float(info["test_accuracy"]), "model_cached": bool(info["cached"]),
            "train_seconds": float(info["train_seconds"]), "settings": dataclasses.asdict(settings),
            "n_filters": len(index), "layers": [str(name) for name in index.layers()],
            "n_reference": int(G_ref.shape[0]), "pot_level": MAIN_LEVEL, "pot_levels": list(POT_LEVELS),
            "reduction": "mean_abs", "timings": timings,
        },
        "normality": normality, "malicious": malicious, "depth_shift": depth_shift, "repair": repair,
        "input_maps": maps,
    }
    results["claims"] = _claims(results)
    stage("report")
    build_report(results, out / "report.html")
    done("report")
    stages.close()
    timings["total"] = round(time.perf_counter() - start, 2)
    save_results(results, out / "results.json")
    return results


def _conditions(x_test, y_test, settings, seed):
    """Clean test data, each corruption of its first ``n_shift`` images, and the shifted domain."""
    n = min(settings.n_shift, len(y_test))
    conditions = {"clean": (x_test, y_test)}
    for kind in CORRUPTIONS:
        conditions[kind] = (corrupt(x_test[:n], kind, settings.severity, seed=seed), y_test[:n])
    conditions["shifted domain"] = make_shapes(settings.n_shift, seed=(seed, 2), domain="shifted")
    return conditions


def _pooled_errors(errors, G_by_condition, n_max, seed):
    """Up to ``n_max`` errors pooled over the conditions: all clean errors first, then a seeded draw of the rest.

    Returns
    -------
    x, y, G : the errors' images, true labels and gradient rows
    source : ndarray of str, the condition of each error
    """
    names = list(errors)
    source = np.concatenate([np.full(len(errors[name][1]), name, dtype=object) for name in names])
    x = np.concatenate([errors[name][0] for name in names])
    y = np.concatenate([errors[name][1] for name in names])
    G = np.concatenate([G_by_condition[name] for name in names if len(errors[name][1])])
    clean = np.flatnonzero(source == "clean")[:n_max]
    rest = np.flatnonzero(source != "clean")
    rng = np.random.default_rng(seed)
    pick = np.concatenate([clean, np.sort(rng.permutation(rest)[:max(n_max - clean.size, 0)])]).astype(np.int64)
    return x[pick], y[pick], G[pick], source[pick].astype(str)


def _claims(results):
    """Every claim of the experiments in one list, tagged with its section."""
    claims = [{"section": "normality", **results["normality"]["claim"]}]
    claims += [{"section": "malicious", **c} for c in results["malicious"]["claims"]]
    claims += [{"section": "depth_shift", **c} for c in results["depth_shift"]["claims"]]
    claims += [{"section": "repair", **c} for c in results["repair"]["claims"]]
    return claims


def summary_table(results):
    """The short text table printed at the end of ``evtools demo``: one line per claim."""
    meta = results["meta"]
    head = (f"demo network: {meta['model']['arch']} ({meta['n_filters']} filters in {len(meta['layers'])} layers), "
            f"clean test accuracy {meta['test_accuracy']:.1%}; {meta['timings'].get('total', float('nan')):.0f} s")
    return head + "\n" + format_claims(results["claims"])
