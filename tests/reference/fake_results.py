"""The input of the report tests (tests/test_report.py) and the schema tests (tests/test_results_schema.py)."""
import numpy as np

from evtools.results import SCHEMA_VERSION

LAYERS = ["conv1", "conv2", "conv3"]


def _claim(text, value, lo, hi, verdict, measure="hit rate of POT - random"):
    return {"text": text, "measure": measure, "value": value, "ci": [lo, hi], "verdict": verdict}


def fake_results():
    """A small results dict with every section, shaped like run_demo's (no torch, no matplotlib needed)."""
    rng = np.random.default_rng(0)
    share = lambda n: rng.uniform(0, 1, n)  # noqa: E731
    normality_claim = _claim("gradient norms are not normal", 0.7, 0.6, 0.8, "held", "share of filters rejecting")
    rejected = {
        t: {"share": share(3), "ci_low": np.zeros(3), "ci_high": np.ones(3),
            "overall": {"value": 0.5, "ci": [0.4, 0.6]}, "n_rejected": 10}
        for t in ("shapiro", "gpd_anderson_darling")
    }
    rejected["gpd_anderson_darling"]["n_tested"] = 30
    by_depth = {"value": [0.5, np.nan, 0.7], "ci_low": [0.3, np.nan, 0.5], "ci_high": [0.7, np.nan, 0.9]}
    per_scorer = {ref: {name: {"hit_rate": {"value": v, "ci": [v - 0.1, v + 0.1]},
                               "mean_rank": {"value": 10.0, "ci": [8.0, 12.0]}, "hit_rate_by_depth": by_depth}
                        for name, v in (("z-score", 0.4), ("POT", 0.5))} for ref in ("faulty", "original")}
    malicious = {
        "k": 5, "n_trials": 2, "kinds": ["scale", "flip"], "n_filters": 112, "layers": LAYERS,
        "references": ["faulty", "original"], "scorer_names": ["z-score", "POT"], "random_hit_rate": 5 / 112,
        "random_mean_rank": 56.5, "n_trials_with_errors": 3, "n_inputs": 40,
        "trials": [{"kind": kind, "n_errors": n} for kind, n in (("scale", 0), ("scale", 10), ("flip", 20),
                                                                  ("flip", 30))],
        "pooled": per_scorer, "by_kind": {"scale": per_scorer, "flip": per_scorer},
        "claims": [_claim("POT beats random", 0.45, 0.3, 0.6, "held"),
                   _claim("POT beats z-score", 0.1, -0.05, 0.2, "not shown")],
    }
    conditions = {}
    for cond in ("clean", "contrast", "shifted domain"):
        conditions[cond] = {
            "n_rows": 20, "accuracy": 0.8, "n_images": 100,
            "scorers": {name: {"observed_share": share(3), "enrichment": [0.0, 1.0, 3.0], "chi2": 1.0,
                               "pvalue": 0.5, "bias": 0.2, "bias_ci": [0.1, 0.3], "mean_depth_shift": 0.3,
                               "ci_low": np.zeros(3), "ci_high": np.ones(3)} for name in ("z-score", "POT")},
            "claim": _claim(f"POT less biased ({cond})", -0.1, -0.2, -0.01, "reversed", "bias difference"),
        }
    conditions["brightness"] = {"n_rows": 0, "accuracy": 1.0}
    k = np.arange(1, 26)
    repair = {
        "k": k, "mode": "zero", "lr": None, "n_inputs": 30, "control": "random",
        "rankings": {name: {"share": s * k / 25, "ci_low": s * k / 30, "ci_high": s * k / 20,
                            "mean_share": {"value": s / 2, "ci": [s / 3, s / 1.5]},
                            "share_at_k_max": {"value": s, "ci": [s / 2, s]}}
                     for name, s in (("z-score", 0.5), ("POT 0.90", 0.6), ("random", 0.1))},
        "claims": [_claim("POT repairs more than random", 0.25, 0.1, 0.4, "held", "mean share corrected")],
    }
    maps = {"images": rng.uniform(0, 1, (2, 3, 8, 8)), "labels": [0, 1], "predictions": [1, 0], "k": 5,
            "window": 4, "stride": 2, "baseline": "blur", "class_maps": rng.normal(size=(2, 8, 8)),
            "class_names": ["circle", "square"],
            "scorers": {name: {"filters": [[0] * 5] * 2, "maps": rng.normal(size=(2, 8, 8))}
                        for name in ("z-score", "POT")}}
    results = {
        "schema_version": SCHEMA_VERSION,
        "meta": {"model": {"arch": "vgg", "width": 8}, "n_filters": 112, "layers": LAYERS, "test_accuracy": 0.9,
                 "pot_level": 0.9, "timings": {"train": 1.0}},
        "normality": {"layers": LAYERS, "n_filters": [16, 32, 64], "n_samples": 500, "tests": ["shapiro"],
                      "alpha": 0.05, "correction": "fdr_bh", "rejected": rejected, "claim": normality_claim},
        "malicious": malicious,
        "depth_shift": {"layers": LAYERS, "k": 10, "expected_share": [1 / 7, 2 / 7, 4 / 7],
                        "conditions": conditions, "claims": [c["claim"] for c in conditions.values() if "claim" in c]},
        "repair": repair, "input_maps": maps,
    }
    results["claims"] = ([normality_claim] + malicious["claims"] + results["depth_shift"]["claims"]
                         + repair["claims"])
    return results
