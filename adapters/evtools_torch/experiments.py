"""The published experiments of parameter saliency, as functions of any PyTorch classifier.

Each function measures one claim of Levin et al. (2022) or Wang & Sato (2023)
with a confidence interval and returns plain ``dict`` results (numbers, lists
and short verdicts) that :func:`evtools.report.build_report` turns into a
report and :func:`evtools.report.save_results` into JSON:

- :func:`normality_by_layer`: share of filters whose reference gradient norms
  reject normality (the z-score's assumption), and of GPD tails rejected by a
  goodness-of-fit test (the POT score's assumption), per layer;
- :func:`malicious_filter_detection`: implant faulty filters and count how
  often each scorer ranks them in its top-k on the inputs they break;
- :func:`depth_profiles`: which layers each scorer's top-k filters come from,
  on clean errors and on shifted data (layer-depth bias);
- :func:`repair_curves`: share of errors corrected by changing the top-k
  filters of a ranking, against random filters;
- :func:`input_maps`: occlusion maps of the image regions that make a
  scorer's top filters anomalous.

:func:`error_gradients` and :func:`reference_gradients` compute the gradient
matrices these take. The statistics are framework-free and live in
:mod:`evtools.claims`: Wilson intervals for proportions of independent units,
percentile bootstrap intervals otherwise, and a verdict (``"held"``,
``"not shown"`` or ``"reversed"``) from the interval of the measured
difference. The result dicts follow the schema of :mod:`evtools.results`.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

import evtools.perturb
from evtools.adapter import InvalidInputError
from evtools.claims import (
    bootstrap_ratios,
    estimate_with_ci,
    percentile_interval,
    share_by_group,
    total_variation,
    verdict,
)
from evtools.depth import depth_profile, layer_codes
from evtools.multitest import correct_pvalues
from evtools.normality import normality_tests

from ._model import device_dtype, predict
from .gradnorms import filter_gradient_norms
from .repair import IMPLANT_KINDS, filter_index, filter_score_fn, implant, repair

# --- helpers ------------------------------------------------------------------------------


def _layers(index):
    """Layer names by depth and the layer number of each column."""
    names, codes = layer_codes(index)
    return [str(name) for name in names], codes


# --- gradient matrices --------------------------------------------------------------------


def reference_gradients(model, x, y, *, max_rows=None, reduction="mean_abs", layers=None, batch_size=128,
                        seed=0, progress=True):
    """Gradient matrix of the correctly classified inputs: the reference ``G_ref``.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier ``(N, ...) -> (N, n_classes)``.
    x : array_like, shape (N, ...)
        Inputs (numpy or torch, moved to the model's device).
    y : array_like of int, shape (N,)
        True labels.
    max_rows : int, optional
        Keep at most this many correctly classified inputs (a seeded random subset).
    reduction : {"mean_abs", "l1", "l2"}
        Filter gradient norm, as in :func:`~evtools_torch.filter_gradient_norms`.
    layers : sequence of str, optional
        Convolutions, as in ``filter_gradient_norms``.
    batch_size : int
        Inputs per forward/backward pass.
    seed : int
        Seed of the subset.
    progress : bool
        Show progress bars.

    Returns
    -------
    G_ref : ndarray, shape (n_ref, n_filters)
    index : evtools.FilterIndex
    rows : ndarray of int64, shape (n_ref,)
        Which inputs of ``x`` were used.
    """
    y = np.asarray(y)
    correct = np.flatnonzero(_predictions(model, x) == y)
    if max_rows is not None and correct.size > max_rows:
        correct = np.sort(np.random.default_rng(seed).choice(correct, max_rows, replace=False))
    if correct.size < 2:
        raise InvalidInputError(f"the model classifies {correct.size} input(s) correctly; a reference needs at least 2")
    G, index = _gradients(model, x, y, correct, reduction, layers, batch_size, progress)
    return G, index, correct


def error_gradients(model, x, y, *, max_rows=None, reduction="mean_abs", layers=None, batch_size=128,
                    seed=0, progress=True):
    """Gradient matrix of the misclassified inputs, at their true labels (the rows to diagnose).

    Parameters are those of :func:`reference_gradients`.

    Returns
    -------
    G : ndarray, shape (n_errors, n_filters)
        Empty (0 rows) when every input is classified correctly.
    index : evtools.FilterIndex or None
        None when there is no error.
    rows : ndarray of int64, shape (n_errors,)
        Which inputs of ``x`` are misclassified (a seeded subset with ``max_rows``).
    prediction : ndarray of int64, shape (n_errors,)
        The model's (wrong) class for each of them.
    """
    y = np.asarray(y)
    pred = _predictions(model, x)
    wrong = np.flatnonzero(pred != y)
    if max_rows is not None and wrong.size > max_rows:
        wrong = np.sort(np.random.default_rng(seed).choice(wrong, max_rows, replace=False))
    if wrong.size == 0:
        return np.zeros((0, 0)), None, wrong, wrong
    G, index = _gradients(model, x, y, wrong, reduction, layers, batch_size, progress)
    return G, index, wrong, pred[wrong]


def _predictions(model, x):
    return predict(model, x).argmax(1)


def _gradients(model, x, y, rows, reduction, layers, batch_size, progress):
    device, dtype = device_dtype(model)
    xt = torch.as_tensor(np.asarray(x)[rows], dtype=dtype, device=device)
    yt = torch.as_tensor(y[rows], dtype=torch.int64, device=device)
    return filter_gradient_norms(model, (xt, yt), reduction=reduction, layers=layers, batch_size=batch_size,
                                 progress=progress)


# --- normality ----------------------------------------------------------------------------


def normality_by_layer(G_ref, index, *, tests=("shapiro", "dagostino"), alpha=0.05, correction="fdr_bh",
                       tail=None, level=0.95):
    """Share of filters whose reference gradient norms reject normality, per layer.

    The z-score of Levin et al. compares filters as if every filter's norms
    were normal; Wang & Sato report that they mostly are not. The claim
    "normality fails for many filters" is counted as held when the Wilson
    interval of the share of filters rejecting normality (first test, after
    ``correction`` over all filters) lies above ``alpha``, the share a valid
    test would reject if every filter were normal.

    Parameters
    ----------
    G_ref : array_like, shape (n_samples, n_filters)
        Reference gradient matrix.
    index : evtools.FilterIndex
        Layer of each column.
    tests : sequence of str
        Tests of :func:`evtools.normality_tests`; the first decides the verdict.
    alpha : float
        Level of the decisions.
    correction : str or None
        Multiple-testing correction over the filters.
    tail : evtools.TailModel, optional
        A fitted tail model (``POTSaliency().fit(G_ref).tail_``): adds the
        share of filters whose GPD tail is rejected by the Anderson-Darling
        test (the POT score's own assumption), corrected the same way.
    level : float
        Confidence level of the Wilson intervals.

    Returns
    -------
    dict
        ``layers``, ``n_filters`` (per layer), ``rejected[test]`` with
        ``share``, ``ci_low``, ``ci_high`` per layer and ``overall``; with
        ``tail``, the same under ``"gpd_anderson_darling"``; ``claim``.
    """
    report = normality_tests(G_ref, tests=tests, correction=correction, alpha=alpha)
    layers, codes = _layers(index)
    n_per_layer = np.bincount(codes, minlength=len(layers))

    def shares(rejects):
        out = share_by_group(rejects, codes, len(layers), level)
        out["n_rejected"] = out.pop("count")
        return out

    rejected = {name: shares(report[name].rejects()) for name in tests}
    if tail is not None:
        pvalue = tail.gof()["ad_pvalue"]
        if correction is None:
            gpd_rejects = np.nan_to_num(pvalue, nan=1.0) < alpha
        else:
            gpd_rejects = correct_pvalues(pvalue, alpha, correction)[0]
        rejected["gpd_anderson_darling"] = shares(gpd_rejects)
        rejected["gpd_anderson_darling"]["n_tested"] = int(np.isfinite(pvalue).sum())
    first = rejected[tests[0]]["overall"]
    return {
        "layers": layers, "n_filters": n_per_layer.tolist(), "n_samples": int(np.shape(G_ref)[0]),
        "tests": list(tests), "alpha": alpha, "correction": correction, "rejected": rejected,
        "claim": {
            "text": "gradient norms are not normal for many filters (the z-score's assumption fails)",
            "measure": f"share of filters rejecting normality ({tests[0]}, {correction or 'uncorrected'})",
            **first, "reference": alpha,
            "verdict": verdict(first["ci"][0] - alpha, first["ci"][1] - alpha),
        },
    }


# --- malicious filters --------------------------------------------------------------------


def _rank_positions(scorer, G):
    """Rank (1 = highest score) of every column in every row, ties by column index as ``rank``."""
    order = np.argsort(-np.asarray(scorer.score(G)), axis=1, kind="stable")
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
    return pos


REFERENCES = ("faulty", "original")
"""Reference models of :func:`malicious_filter_detection`."""


def malicious_filter_detection(model, x_ref, y_ref, x_eval, y_eval, scorers, *, k=5, n_trials=10,
                               kinds=IMPLANT_KINDS, strength=None, references=REFERENCES, max_ref=None,
                               max_errors=None, reduction="mean_abs", layers=None, batch_size=128, n_boot=2000,
                               level=0.95, seed=0, progress=True):
    """Implant faulty filters and measure how often each scorer ranks them in its top-k.

    Each trial draws ``k`` filters uniformly at random among all filters and
    makes them faulty with :func:`~evtools_torch.implant`, ``n_trials`` trials
    per kind of fault. The inputs of
    ``(x_eval, y_eval)`` that the original model classifies correctly and the
    faulty one does not (the errors the implant caused) are diagnosed with
    the faulty model's gradients, by scorers fitted on one of two references:

    - ``"faulty"``: the faulty model's own gradient norms over the inputs of
      ``(x_ref, y_ref)`` it still classifies correctly, refitted every trial:
      a user diagnosing a model whose faults they do not know;
    - ``"original"``: the original model's gradient norms over the inputs of
      ``(x_ref, y_ref)`` it classifies correctly, fitted once: a reference
      kept from before the filters were tampered with.

    A hit is an implanted filter among an input's top-``k``; ``k`` random
    filters hit with probability ``k / n_filters``.

    Parameters
    ----------
    model : torch.nn.Module
        The original classifier; not modified.
    x_ref, y_ref : array_like
        Reference inputs and labels (e.g. training data).
    x_eval, y_eval : array_like
        Inputs and labels on which errors are sought (e.g. test data).
    scorers : dict of str to callable
        Name -> factory of an unfitted scorer, e.g.
        ``{"z-score": ZScoreSaliency, "POT": POTSaliency}``. The comparison
        claim is that the second finds the implanted filters more often than the first.
    k : int
        Implanted filters per trial, and the top-k inspected.
    n_trials : int
        Independent implanted sets per kind of fault.
    kinds : sequence of {"scale", "flip", "noise"}
        The faults, as in :func:`~evtools_torch.implant`.
    strength : float, optional
        Strength of every fault (None: each kind's default).
    references : sequence of {"faulty", "original"}
        Which references to fit the scorers on (see above).
    max_ref : int, optional
        Reference inputs (a seeded subset).
    max_errors : int, optional
        Induced errors diagnosed per trial (a seeded subset).
    reduction, layers, batch_size
        As in :func:`~evtools_torch.filter_gradient_norms`.
    n_boot : int
        Replicates of the two-stage bootstrap (trials, then inputs within a trial).
    level : float
        Confidence level.
    seed : int
        Seeds the implanted sets, the subsets and the bootstrap.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        ``pooled`` (all kinds) and ``by_kind``, each mapping reference ->
        scorer -> ``hit_rate`` and ``mean_rank`` with intervals and
        ``hit_rate_by_depth``; ``random_hit_rate`` and ``random_mean_rank``
        (the expectations for random filters); per trial its kind, implanted
        filters and number of errors; ``claims`` (pooled over the kinds)
        comparing each scorer with random filters and the two scorers with
        each other, per reference.
    """
    names = list(scorers)
    if not names:
        raise InvalidInputError("scorers is empty; pass e.g. {'POT': POTSaliency}")
    unknown = set(references) - set(REFERENCES)
    if unknown or not references:
        raise InvalidInputError(f"references must be a non-empty subset of {REFERENCES}, got {references!r}")
    references = list(references)
    index = filter_index(model, layers)  # the columns implant changes and the gradient matrices hold
    layer_names, depth = _layers(index)
    n_filters, n_layers = len(index), len(layer_names)
    rng = np.random.default_rng(seed)
    y_eval = np.asarray(y_eval)
    clean_ok = _predictions(model, x_eval) == y_eval
    original = {}
    if "original" in references:
        G_ref, _, _ = reference_gradients(model, x_ref, y_ref, max_rows=max_ref, reduction=reduction,
                                          layers=layers, batch_size=batch_size, seed=seed, progress=False)
        original = {name: scorers[name]().fit(G_ref) for name in names}
    rows_num, rows_den, groups, trials = [], [], [], []
    plan = [kind for kind in kinds for _ in range(n_trials)]
    for t, kind in enumerate(tqdm(plan, desc="malicious filters", disable=not progress)):
        trial_seed = int(rng.integers(2**31))
        implanted = np.sort(np.random.default_rng(trial_seed).choice(n_filters, k, replace=False))
        faulty = implant(model, implanted, kind=kind, strength=strength, layers=layers, seed=trial_seed)
        broken = np.flatnonzero(clean_ok & (_predictions(faulty, x_eval) != y_eval))
        info = {"kind": kind, "implanted": implanted.tolist(), "n_errors": int(broken.size), "n_diagnosed": 0,
                "implanted_layers": index.layer[implanted].tolist()}
        trials.append(info)
        if broken.size == 0:
            continue
        if max_errors is not None and broken.size > max_errors:
            broken = np.sort(np.random.default_rng(trial_seed).choice(broken, max_errors, replace=False))
        info["n_diagnosed"] = int(broken.size)
        fitted = {"original": original}
        if "faulty" in references:
            G_ref, _, _ = reference_gradients(faulty, x_ref, y_ref, max_rows=max_ref, reduction=reduction,
                                              layers=layers, batch_size=batch_size, seed=seed, progress=False)
            fitted["faulty"] = {name: scorers[name]().fit(G_ref) for name in names}
        G, _ = _gradients(faulty, x_eval, y_eval, broken, reduction, layers, batch_size, False)
        depth_onehot = (depth[implanted][:, None] == np.arange(n_layers)[None, :]).astype(float)  # (k, n_layers)
        n = broken.size
        num, den = [], []
        for ref in references:
            for name in names:
                pos = _rank_positions(fitted[ref][name], G)[:, implanted]  # (n, k)
                hits = (pos <= k).astype(float)
                num += [hits.sum(1, keepdims=True), pos.sum(1, keepdims=True), hits @ depth_onehot]
                den += [np.full((n, 1), k), np.full((n, 1), k),
                        np.broadcast_to(depth_onehot.sum(0), (n, n_layers))]
        rows_num.append(np.concatenate(num, axis=1))
        rows_den.append(np.concatenate(den, axis=1))
        groups.append(np.full(n, t))
    random_rate = k / n_filters
    result = {
        "k": k, "n_trials": n_trials, "kinds": list(kinds), "strength": strength, "n_filters": int(n_filters),
        "layers": layer_names, "references": references, "scorer_names": names, "trials": trials,
        "random_hit_rate": random_rate, "random_mean_rank": (n_filters + 1) / 2,
        "n_trials_with_errors": len(rows_num), "n_inputs": int(sum(len(g) for g in groups)),
        "pooled": {}, "by_kind": {}, "claims": [],
    }
    if not rows_num:
        result["claims"].append({"text": "the implanted filters caused no error; nothing to diagnose",
                                 "verdict": "not shown"})
        return result
    num, den, groups = np.concatenate(rows_num), np.concatenate(rows_den), np.concatenate(groups)
    kind_of_row = np.array([trials[g]["kind"] for g in groups])
    width = 2 + n_layers

    def summarise(rows):
        estimate, draws = bootstrap_ratios(num[rows], den[rows], groups[rows], n_boot=n_boot, seed=seed)
        lo, hi = percentile_interval(draws, level)
        table = {}
        for r, ref in enumerate(references):
            table[ref] = {}
            for s, name in enumerate(names):
                c = (r * len(names) + s) * width
                table[ref][name] = {
                    "hit_rate": estimate_with_ci(estimate[c], lo[c], hi[c]),
                    "mean_rank": estimate_with_ci(estimate[c + 1], lo[c + 1], hi[c + 1]),
                    "hit_rate_by_depth": {
                        "value": estimate[c + 2:c + width].tolist(), "ci_low": lo[c + 2:c + width].tolist(),
                        "ci_high": hi[c + 2:c + width].tolist(),
                    },
                }
        return table, estimate, draws

    for kind in kinds:
        if (kind_of_row == kind).any():
            result["by_kind"][kind] = summarise(kind_of_row == kind)[0]
    result["pooled"], estimate, draws = summarise(np.ones(len(groups), bool))
    for r, ref in enumerate(references):
        for s, name in enumerate(names):
            c = (r * len(names) + s) * width
            d_lo, d_hi = percentile_interval(draws[:, c] - random_rate, level)
            result["claims"].append({
                "text": f"{name} ranks implanted filters in its top-{k} more often than {k} random filters "
                        f"({ref} model's reference)",
                "measure": f"hit rate of {name} - random ({random_rate:.3f})", "reference": ref, "scorer": name,
                **estimate_with_ci(estimate[c] - random_rate, d_lo, d_hi), "verdict": verdict(d_lo, d_hi),
            })
        if len(names) >= 2:
            a, b = names[1], names[0]
            ca, cb = (r * len(names) + 1) * width, r * len(names) * width
            d_lo, d_hi = percentile_interval(draws[:, ca] - draws[:, cb], level)
            result["claims"].append({
                "text": f"{a} finds implanted filters more often than {b} ({ref} model's reference)",
                "measure": f"hit rate of {a} - hit rate of {b}", "reference": ref,
                **estimate_with_ci(estimate[ca] - estimate[cb], d_lo, d_hi), "verdict": verdict(d_lo, d_hi),
            })
    return result


# --- layer-depth bias ---------------------------------------------------------------------


def depth_profiles(scorers, G_by_condition, index, *, k=10, n_boot=2000, level=0.95, seed=0):
    """Layers of each scorer's top-k filters, per condition, and which scorer is less depth-biased.

    Per condition and scorer: each layer's share of the top-``k`` picks over
    all rows, with bootstrap intervals over rows, against the layer's share of
    filters; Pearson's chi-square test of proportionality
    (:func:`evtools.depth_profile`); and the bias, the total variation
    distance ``0.5 * sum |observed - expected|`` between the two shares
    (0 = picks in proportion to layer sizes, 1 = all picks in layers of no
    weight). Wang & Sato's claim, that POT is less depth-biased than the
    z-score, is tested per condition on the paired bootstrap difference of
    the two biases (same resampled rows).

    Parameters
    ----------
    scorers : dict of str to fitted scorer
        Fitted on the clean reference, e.g. ``{"z-score": z, "POT": pot}``;
        the claim compares the first two (first minus second).
    G_by_condition : dict of str to array_like, shape (n_rows, n_filters)
        Rows to diagnose per condition (e.g. clean errors, each corruption,
        a shifted domain); conditions with no row are reported as skipped.
    index : evtools.FilterIndex
    k : int
        Top filters per row.
    n_boot : int
        Bootstrap replicates over rows.
    level : float
        Confidence level.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``layers``, ``expected_share``, and per condition ``n_rows`` and, per
        scorer, ``observed_share`` (with ``ci_low``, ``ci_high``),
        ``enrichment``, ``chi2``, ``pvalue``, ``bias`` and ``mean_depth_shift``
        (mean depth of picks minus mean depth of a random filter); ``claims``.
    """
    names = list(scorers)
    layers, depth = _layers(index)
    n_layers = len(layers)
    expected = np.bincount(depth, minlength=n_layers) / depth.size
    result = {"layers": layers, "k": k, "expected_share": expected.tolist(), "conditions": {}, "claims": []}
    for cond, G in G_by_condition.items():
        G = np.asarray(G)
        if G.shape[0] == 0:
            result["conditions"][cond] = {"n_rows": 0}
            continue
        entry = {"n_rows": int(G.shape[0]), "scorers": {}}
        counts, bias_draws = [], []
        for name in names:
            top = scorers[name].rank(G, k).index
            profile = depth_profile(top, index)
            per_row = (depth[top][:, :, None] == np.arange(n_layers)).sum(1)  # (n_rows, n_layers)
            counts.append(per_row)
            entry["scorers"][name] = {
                "observed_share": profile.observed_share.tolist(), "enrichment": profile.enrichment.tolist(),
                "chi2": profile.chi2, "pvalue": profile.pvalue,
                "bias": float(total_variation(profile.observed_share, expected)),
                "mean_depth_shift": float((profile.observed_share - expected) @ np.arange(n_layers)),
            }
        num = np.concatenate(counts, axis=1)
        _, draws = bootstrap_ratios(num, np.full(num.shape, float(k)), n_boot=n_boot, seed=seed)
        for s, name in enumerate(names):
            share = draws[:, s * n_layers:(s + 1) * n_layers]
            lo, hi = percentile_interval(share, level)
            bias = total_variation(share, expected)
            bias_draws.append(bias)
            b_lo, b_hi = percentile_interval(bias, level)
            entry["scorers"][name].update(ci_low=lo.tolist(), ci_high=hi.tolist(), bias_ci=[float(b_lo), float(b_hi)])
        if len(names) >= 2:
            a, b = names[0], names[1]
            diff = entry["scorers"][a]["bias"] - entry["scorers"][b]["bias"]
            d_lo, d_hi = percentile_interval(bias_draws[0] - bias_draws[1], level)
            claim = {
                "text": f"{b} is less depth-biased than {a} ({cond})", "condition": cond,
                "measure": f"depth bias of {a} - depth bias of {b} (total variation distance)",
                **estimate_with_ci(diff, d_lo, d_hi), "verdict": verdict(d_lo, d_hi),
            }
            entry["claim"] = claim
            result["claims"].append(claim)
        result["conditions"][cond] = entry
    return result


# --- repair -------------------------------------------------------------------------------


def repair_curves(model, x, y, rankings, *, k_max=25, mode="zero", lr=1e-3, control="random", layers=None,
                  n_boot=2000, level=0.95, seed=0, progress=True):
    """Share of errors corrected against the number of filters changed, per ranking.

    Runs :func:`~evtools_torch.repair` along each ranking: for each input, its
    first ``k`` filters are changed (``mode="zero"``: switched off, as in
    Levin et al.'s pruning experiment; ``"step"``: one gradient step of size
    ``lr`` each) and the input classified again, ``k = 1 .. k_max``. Bands are
    bootstrap intervals over inputs. The claim "repair along a ranking
    corrects more errors than along random filters" is tested on the paired
    difference of the mean share corrected over ``k = 1 .. k_max`` (the area
    under the curve divided by ``k_max``).

    Parameters
    ----------
    model : torch.nn.Module
        Not modified.
    x, y : array_like
        Misclassified inputs and their true labels.
    rankings : dict of str to array_like of int, shape (n_inputs, >= k_max), or Ranking
        Filters per input in the order they are changed, e.g.
        ``{"POT": pot.rank(G, 25), "random": random_ranking(...)}``.
    k_max : int
        Most filters changed.
    mode : {"zero", "step"}
        How a filter is changed (see :func:`~evtools_torch.repair`).
    lr : float
        Step size of ``mode="step"``.
    control : str
        The name in ``rankings`` of the control every other ranking is compared with.
    layers : sequence of str, optional
        As in :func:`~evtools_torch.filter_gradient_norms`.
    n_boot, level, seed
        Bootstrap replicates, confidence level and seed.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        ``k`` (1..k_max), per ranking ``share`` with ``ci_low`` and
        ``ci_high`` (per k), ``mean_share`` and ``share_at_k_max`` with
        intervals; ``claims`` (each ranking against ``control``).
    """
    if control not in rankings:
        raise InvalidInputError(f"control {control!r} is not one of the rankings {list(rankings)}")
    names = list(rankings)
    corrected = {}
    for name in names:
        res = repair(model, x, y, rankings[name], k_max=k_max, mode=mode, lr=lr, layers=layers, progress=progress)
        corrected[name] = res.corrected.astype(float)
    n = next(iter(corrected.values())).shape[0]
    num = np.concatenate([np.concatenate([c, c.mean(1, keepdims=True)], axis=1) for c in corrected.values()], axis=1)
    estimate, draws = bootstrap_ratios(num, np.ones_like(num), n_boot=n_boot, seed=seed)
    lo, hi = percentile_interval(draws, level)
    width = k_max + 1
    result = {"k": list(range(1, k_max + 1)), "mode": mode, "lr": lr if mode == "step" else None,
              "n_inputs": int(n), "control": control, "rankings": {}, "claims": []}
    for s, name in enumerate(names):
        c = s * width
        result["rankings"][name] = {
            "share": estimate[c:c + k_max].tolist(), "ci_low": lo[c:c + k_max].tolist(),
            "ci_high": hi[c:c + k_max].tolist(),
            "mean_share": estimate_with_ci(estimate[c + k_max], lo[c + k_max], hi[c + k_max]),
            "share_at_k_max": estimate_with_ci(estimate[c + k_max - 1], lo[c + k_max - 1], hi[c + k_max - 1]),
        }
    ctrl = names.index(control) * width + k_max
    for s, name in enumerate(names):
        if name == control:
            continue
        c = s * width + k_max
        d_lo, d_hi = percentile_interval(draws[:, c] - draws[:, ctrl], level)
        result["claims"].append({
            "text": f"changing {name}'s top filters corrects more errors than changing {control} filters",
            "measure": f"mean share corrected over k = 1..{k_max}, {name} - {control}", "ranking": name,
            **estimate_with_ci(estimate[c] - estimate[ctrl], d_lo, d_hi), "verdict": verdict(d_lo, d_hi),
        })
    return result


# --- input-space maps ---------------------------------------------------------------------


def input_maps(model, scorers, x, y, *, k=5, window=8, stride=4, baseline="blur", reduction="mean_abs",
               layers=None, batch_size=64, progress=True):
    """Occlusion maps of the image regions that make each scorer's top filters anomalous.

    For each image and scorer, the ``k`` filters the scorer ranks highest are
    watched through :func:`~evtools_torch.filter_score_fn` (the mean of their
    scores, gradients at the true label) and :func:`evtools.perturb.occlusion`
    shows where occluding the image lowers that score most. A third map,
    occlusion of the probability of the predicted class, shows what the
    model's decision rests on.

    Parameters
    ----------
    model : torch.nn.Module
    scorers : dict of str to fitted scorer
        Fitted with the same ``reduction`` and ``layers``.
    x : array_like, shape (n, C, H, W)
        A few (misclassified) images.
    y : array_like of int, shape (n,)
        Their true labels.
    k : int
        Filters watched per scorer.
    window, stride : int
        Occlusion window and step, in pixels.
    baseline : str
        Replacement of occluded pixels (see :func:`evtools.perturb.make_baseline`).
    reduction, layers, batch_size
        As in :func:`~evtools_torch.filter_gradient_norms`.
    progress : bool
        Show a progress bar over the images.

    Returns
    -------
    dict
        ``images`` (n, C, H, W), ``labels``, ``predictions``, ``class_maps``
        (n, H, W), and per scorer ``maps`` (n, H, W) and ``filters`` (n, k), as lists.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    pred = _predictions(model, x)
    out = {"images": x.tolist(), "labels": y.tolist(), "predictions": pred.tolist(), "k": k,
           "window": window, "stride": stride, "baseline": baseline, "class_maps": [], "scorers": {}}
    G, _ = _gradients(model, x, y, np.arange(len(y)), reduction, layers, batch_size, False)
    tops = {name: scorer.rank(G, k).index for name, scorer in scorers.items()}
    for name in scorers:
        out["scorers"][name] = {"filters": tops[name].tolist(), "maps": []}
    for i in tqdm(range(len(y)), desc="input maps", disable=not progress):
        image = x[i]

        def class_prob(batch, c=int(pred[i])):
            return predict(model, batch)[:, c].astype(np.float64)

        out["class_maps"].append(np.asarray(evtools.perturb.occlusion(
            class_prob, image, window, stride, baseline, batch_size=batch_size)).tolist())
        for name, scorer in scorers.items():
            f = filter_score_fn(model, scorer, tops[name][i], reduce="mean", target=int(y[i]),
                                reduction=reduction, layers=layers, batch_size=batch_size)
            heat = evtools.perturb.occlusion(f, image, window, stride, baseline, batch_size=batch_size)
            out["scorers"][name]["maps"].append(np.asarray(heat).tolist())
    return out
