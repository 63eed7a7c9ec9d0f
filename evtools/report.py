"""A self-contained HTML report of the parameter-saliency experiments.

Framework-agnostic: the report is a function of a results ``dict`` of plain
numbers and lists, such as :func:`evtools_torch.demo.run.run_demo` returns or
:func:`load_results` reads back from ``results.json``, so a report can be
rebuilt from the JSON alone. Figures are drawn with matplotlib's object API
(no pyplot, no global state) and embedded as base64 PNG; the page has no
external resource.

The results dict follows the versioned schema of :mod:`evtools.results`
(``results["schema_version"]``), checked by
:func:`~evtools.results.validate_results` before anything is drawn. Its
sections (each optional) are ``meta`` (model, data sizes, versions and
timings), ``claims`` (every claim measured), and the results of the
experiments of ``evtools_torch.experiments``: ``normality``
(``normality_by_layer``), ``malicious`` (``malicious_filter_detection``),
``depth_shift`` (``depth_profiles``, plus ``accuracy`` per condition),
``repair`` (``repair_curves``) and ``input_maps`` (``input_maps``).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from ._errors import FileFormatError, InvalidInputError
from ._files import atomic_save
from .results import validate_results

SCORER_COLORS = {"z-score": "#2b6cb0", "POT": "#c0392b", "random": "#7f7f7f"}
_POT_SHADES = ("#f5b041", "#e67e22", "#c0392b", "#78281f")  # POT thresholds 0.80 .. 0.95, light to dark
_VERDICT_STYLE = {"held": "held", "not shown": "open", "reversed": "reversed"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1.5em;color:#1a202c;line-height:1.5}
h1{font-size:1.9em;margin-bottom:.2em}h2{margin-top:2.2em;border-bottom:2px solid #e2e8f0;padding-bottom:.2em}
p.lede{color:#4a5568;font-size:1.05em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border-bottom:1px solid #e2e8f0;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#f7fafc}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-size:.85em;font-weight:600;white-space:nowrap}
.held{background:#c6f6d5;color:#22543d}.open{background:#fefcbf;color:#744210}
.reversed{background:#fed7d7;color:#822727}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #e2e8f0}
figcaption{color:#4a5568;font-size:.9em;margin-top:.3em}
.note{color:#4a5568;font-size:.9em}code{background:#f7fafc;padding:0 .2em}
"""


# --- results I/O --------------------------------------------------------------------------


def _jsonable(value):
    """Plain JSON types: numpy scalars and arrays converted, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError(f"cannot write a {type(value).__name__} to results JSON")


def save_results(results, path):
    """Write a results dict as JSON (numpy values converted, NaN and inf as ``null``).

    Parameters
    ----------
    results : dict
    path : str or os.PathLike
    """
    text = json.dumps(_jsonable(results), indent=1, allow_nan=False)
    with atomic_save(path) as fh:  # all or nothing, see evtools._files
        fh.write(text.encode("utf-8"))


def load_results(path):
    """Read a results dict written by :func:`save_results` (``null`` numbers come back as None).

    Raises
    ------
    FileFormatError
        Missing or unreadable file, not JSON, or not a JSON object.
    """
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # IsADirectoryError, JSONDecodeError, UnicodeDecodeError
        raise FileFormatError(f"{path}: not a results file written by save_results ({exc})") from exc
    if not isinstance(results, dict):
        raise FileFormatError(f"{path}: not a results file written by save_results (not a JSON object)")
    return results


# --- small formatting helpers -------------------------------------------------------------


def _num(values):
    """Float array with None as NaN."""
    return np.array([np.nan if v is None else v for v in np.ravel(values).tolist()], dtype=float).reshape(
        np.shape(values))


def _pct(x, digits=1):
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f} %"


def _fmt(x, digits=3):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


def _is_share(claim):
    return any(word in claim.get("measure", "") for word in ("share", "hit rate"))


def _estimate_text(claim):
    """``value [lo, hi]`` of a claim, in percent for shares and hit rates."""
    if "value" not in claim:
        return "n/a"
    show = (lambda x: _pct(x)) if _is_share(claim) else _fmt
    lo, hi = claim["ci"]
    return f"{show(claim['value'])} [{show(lo)}, {show(hi)}]"


def format_claims(claims):
    """A plain-text table of claims (for the terminal): verdict, estimate with interval, claim.

    Parameters
    ----------
    claims : list of dict
        Each with ``text``, ``verdict`` and, when measured, ``value`` and ``ci``.

    Returns
    -------
    str
    """
    rows = [("verdict", "estimate [95 % CI]", "claim")]
    rows += [(c["verdict"], _estimate_text(c), c["text"]) for c in claims]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


def _badge(verdict):
    return f'<span class="badge {_VERDICT_STYLE.get(verdict, "open")}">{html.escape(verdict)}</span>'


def _table(header, rows, numeric=()):
    """HTML table; columns whose index is in ``numeric`` are right-aligned; no header row when ``header`` is None."""
    head = "" if header is None else (
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>")
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


# --- figures ------------------------------------------------------------------------------


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError("the report needs matplotlib: pip install 'evtools[plot]'") from exc
    return Figure(figsize=(width, height), layout="constrained", dpi=100)


def _png(fig):
    """Base64 PNG of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _color(name, i=0):
    if name in SCORER_COLORS:
        return SCORER_COLORS[name]
    if name.startswith("POT "):
        return _POT_SHADES[i % len(_POT_SHADES)]
    return f"C{i}"


def _error_bars(value, lo, hi):
    value, lo, hi = _num(value), _num(lo), _num(hi)
    return np.clip(np.vstack([value - lo, hi - value]), 0, None)


def _labels(layers, width=14):
    """Layer names for tick labels: a dotted prefix common to all dropped, long names shortened from the left."""
    parts = [str(name).split(".") for name in layers]
    common = 0
    while len(parts) > 1 and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    names = [".".join(p[common:]) for p in parts]
    return [n if len(n) <= width else "…" + n[-(width - 1):] for n in names]


def _layer_ticks(ax, layers, label=None):
    rotate = len(layers) > 4
    ax.set_xticks(np.arange(len(layers)), _labels(layers), rotation=30 if rotate else 0,
                  ha="right" if rotate else "center", fontsize=8)
    if label:
        ax.set_xlabel(label)


def _top(values, floor=0.3):
    """An upper y-limit a little above the largest finite value (at least ``floor``, at most 1)."""
    values = _num(values)
    top = np.nanmax(values) if np.isfinite(values).any() else floor
    return float(min(1.0, max(floor, 1.2 * top)))


def _draw_normality(ax, sec, tests=None):
    layers = sec["layers"]
    tests = tests or list(sec["rejected"])
    pos = np.arange(len(layers))
    width = 0.8 / len(tests)
    labels = {"shapiro": "Shapiro-Wilk (normal?)", "dagostino": "D'Agostino (normal?)",
              "jarque_bera": "Jarque-Bera (normal?)", "anderson": "Anderson-Darling (normal?)",
              "lilliefors": "Lilliefors (normal?)", "gpd_anderson_darling": "GPD tail fit (AD)"}
    for i, test in enumerate(tests):
        r = sec["rejected"][test]
        color = "#7f7f7f" if test == "gpd_anderson_darling" else f"C{i}"
        ax.bar(pos + (i - (len(tests) - 1) / 2) * width, _num(r["share"]), width,
               yerr=_error_bars(r["share"], r["ci_low"], r["ci_high"]), capsize=2,
               label=labels.get(test, test), color=color)
    ax.axhline(sec["alpha"], color="k", ls=":", lw=1, label=f"alpha = {sec['alpha']}")
    _layer_ticks(ax, layers, "layer (by depth)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of filters rejected")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _series(sec):
    """(reference, scorer) pairs of the malicious-filter results, in a fixed order."""
    return [(ref, name) for ref in sec["references"] for name in sec["scorer_names"]]


def _series_style(sec, ref, name, i):
    """Colour of the scorer; solid for the first reference, hatched and lighter for the others."""
    first = ref == sec["references"][0]
    return {"color": _color(name, i), "alpha": 1.0 if first else 0.45, "hatch": None if first else "//"}


def _draw_malicious_overall(ax, sec, kinds=True):
    groups = (list(sec["by_kind"]) if kinds else []) + ["all kinds"]
    tables = [sec["by_kind"][g] for g in groups[:-1]] + [sec["pooled"]]
    series = _series(sec)
    width = 0.8 / len(series)
    pos = np.arange(len(groups))
    for j, (ref, name) in enumerate(series):
        est = [t[ref][name]["hit_rate"] for t in tables]
        values = [e["value"] for e in est]
        ax.bar(pos + (j - (len(series) - 1) / 2) * width, _num(values), width, label=f"{name} ({ref} ref.)",
               yerr=_error_bars(values, [e["ci"][0] for e in est], [e["ci"][1] for e in est]), capsize=2,
               **_series_style(sec, ref, name, sec["scorer_names"].index(name)))
    ax.axhline(sec["random_hit_rate"], color=SCORER_COLORS["random"], ls="--",
               label=f"{sec['k']} random filters ({_pct(sec['random_hit_rate'])})")
    ax.set_xticks(pos, groups)
    ax.set_ylim(0, _top([t[r][n]["hit_rate"]["ci"][1] for t in tables for r, n in series]))
    ax.set_ylabel(f"implanted filters in top-{sec['k']}")
    ax.set_title(f"Malicious filters found ({sec['n_inputs']} errors, {sec['n_trials_with_errors']} implants)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def _draw_malicious_depth(ax, sec):
    layers = sec["layers"]
    pos = np.arange(len(layers))
    series = _series(sec)
    for j, (ref, name) in enumerate(series):
        d = sec["pooled"][ref][name]["hit_rate_by_depth"]
        style = _series_style(sec, ref, name, sec["scorer_names"].index(name))
        ax.errorbar(pos + (j - (len(series) - 1) / 2) * 0.12, _num(d["value"]), capsize=3,
                    yerr=_error_bars(d["value"], d["ci_low"], d["ci_high"]), color=style["color"],
                    fmt="o" if style["hatch"] is None else "s", mfc=style["color"] if style["hatch"] is None
                    else "white", label=f"{name} ({ref} ref.)")
    ax.axhline(sec["random_hit_rate"], color=SCORER_COLORS["random"], ls="--", label="random filters")
    _layer_ticks(ax, layers, "layer of the implanted filter (by depth)")
    ax.set_ylim(0, _top([sec["pooled"][r][n]["hit_rate_by_depth"]["ci_high"] for r, n in series]))
    ax.set_ylabel(f"hit rate (top-{sec['k']})")
    ax.set_title("By layer depth (all kinds)", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")


def _draw_bias(ax, sec):
    conds = [c for c, e in sec["conditions"].items() if e.get("n_rows", 0) > 0]
    names = list(sec["conditions"][conds[0]]["scorers"]) if conds else []
    pos = np.arange(len(conds))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = [sec["conditions"][c]["scorers"][name]["bias"] for c in conds]
        cis = [sec["conditions"][c]["scorers"][name]["bias_ci"] for c in conds]
        ax.bar(pos + (i - (len(names) - 1) / 2) * width, vals, width, color=_color(name, i), label=name,
               yerr=_error_bars(vals, [c[0] for c in cis], [c[1] for c in cis]), capsize=2)
    ax.set_xticks(pos, [c.replace("_", " ") for c in conds], rotation=25, ha="right")
    ax.set_ylabel("depth bias (total variation)")
    ax.set_ylim(0, _top([sec["conditions"][c]["scorers"][n]["bias_ci"][1] for c in conds for n in names]))
    ax.set_title(f"Layer-depth bias of top-{sec['k']} filters (0 = none)", fontsize=10)
    ax.legend(fontsize=8)


def _draw_repair(ax, sec, only=None):
    k = np.asarray(sec["k"])
    pots = [name for name in sec["rankings"] if name.startswith("POT")]
    for name, r in sec["rankings"].items():
        if only is not None and name not in only:
            continue
        color = _color(name, pots.index(name) if name in pots else 0)
        ls = "--" if name == sec["control"] else "-"
        banded = name in sec.get("highlight", sec["rankings"])
        ax.plot(k, _num(r["share"]), ls, color=color, label=name, lw=2.0 if banded else 1.0)
        if banded:
            ax.fill_between(k, _num(r["ci_low"]), _num(r["ci_high"]), color=color, alpha=0.15, lw=0)
    ax.set_xlabel("filters changed (k)")
    ax.set_ylabel("share of errors corrected")
    ax.set_xlim(1, k[-1])
    ax.set_ylim(0, None)
    ax.set_title(f"Repair of {sec['n_inputs']} errors ({sec['mode']} mode)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def _fig_normality(sec):
    fig = _figure(9, 3.6)
    _draw_normality(fig.add_subplot(), sec)
    return fig


def _fig_malicious(sec):
    fig = _figure(11, 4.2)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.2, 1])
    _draw_malicious_overall(ax1, sec)
    _draw_malicious_depth(ax2, sec)
    return fig


def _fig_depth(sec):
    conds = [c for c, e in sec["conditions"].items() if e.get("n_rows", 0) > 0]
    names = list(sec["conditions"][conds[0]]["scorers"])
    layers = sec["layers"]
    fig = _figure(11, 1.2 + 0.45 * len(conds) + 3.4)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.2 + 0.45 * len(conds), 3.4])
    axes = top.subplots(1, len(names), sharey=True)
    axes = np.atleast_1d(axes)
    limit = 2.0
    for ax, name in zip(axes, names):
        enrich = np.array([_num(sec["conditions"][c]["scorers"][name]["enrichment"]) for c in conds])
        with np.errstate(divide="ignore"):
            shown = np.clip(np.log2(enrich), -limit, limit)
        im = ax.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        for (r, c), v in np.ndenumerate(enrich):
            ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if abs(shown[r, c]) > 1.2 else "black")
        _layer_ticks(ax, layers)
        ax.set_yticks(range(len(conds)), [c.replace("_", " ") for c in conds], fontsize=8)
        ax.set_title(f"{name}: share of top-{sec['k']} / share of filters", fontsize=10)
    cbar = top.colorbar(im, ax=list(axes), shrink=0.9)
    cbar.set_label("log2 enrichment", fontsize=8)
    _draw_bias(bottom.add_subplot(), sec)
    return fig


def _fig_repair(sec):
    fig = _figure(9, 4.2)
    _draw_repair(fig.add_subplot(), sec)
    return fig


def _fig_maps(sec):
    names = list(sec["scorers"])
    images = np.asarray(sec["images"], dtype=float)
    n = images.shape[0]
    classes = sec.get("class_names")
    label = (lambda c: classes[c].replace("_", " ")) if classes else str
    cols = 2 + len(names)
    fig = _figure(2.3 * cols, 2.4 * n + 0.3)
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    for i in range(n):
        maps = [("what the decision rests on\n(occluding lowers p(pred))", np.asarray(sec["class_maps"][i]))]
        maps += [(f"what makes {name}'s top-{sec['k']}\nfilters anomalous", np.asarray(sec["scorers"][name]["maps"][i]))
                 for name in names]
        rgb = np.clip(images[i].transpose(1, 2, 0), 0, 1)
        condition = f" ({sec['conditions'][i].replace('_', ' ')})" if sec.get("conditions") else ""
        axes[i, 0].imshow(rgb)
        axes[i, 0].set_title(f"true {label(sec['labels'][i])}{condition}\npredicted {label(sec['predictions'][i])}",
                             fontsize=8)
        for j, (title, m) in enumerate(maps, start=1):
            bound = np.nanmax(np.abs(m)) or 1.0
            axes[i, j].imshow(rgb.mean(axis=2), cmap="gray", vmin=0, vmax=1)
            axes[i, j].imshow(m, cmap="RdBu_r", vmin=-bound, vmax=bound, alpha=0.65)
            if i == 0:
                axes[i, j].set_title(title, fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def main_figure(results):
    """The report's summary figure: detection, depth bias, repair and normality side by side.

    Parameters
    ----------
    results : dict
        Following the schema of :mod:`evtools.results`, with the sections
        ``malicious``, ``depth_shift``, ``repair`` and ``normality``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        ``results`` does not follow the schema or lacks one of the four sections.
    """
    validate_results(results)
    missing = [key for key in _MAIN_SECTIONS if key not in results]
    if missing:
        raise InvalidInputError(f"results has no {missing}: the summary figure needs {list(_MAIN_SECTIONS)}")
    return _main_figure(results)


_MAIN_SECTIONS = ("malicious", "depth_shift", "repair", "normality")


def _main_figure(results):
    fig = _figure(12, 7.5)
    axes = fig.subplots(2, 2)
    _draw_malicious_overall(axes[0, 0], results["malicious"], kinds=False)
    _draw_bias(axes[0, 1], results["depth_shift"])
    rep = results["repair"]
    main_pot = f"POT {results.get('meta', {}).get('pot_level', 0.9):.2f}"
    _draw_repair(axes[1, 0], rep, only={"z-score", main_pot, rep["control"]})
    _draw_normality(axes[1, 1], results["normality"])
    axes[1, 1].set_title("Do the scorers' assumptions hold? (per layer)", fontsize=10)
    return fig


# --- text of the sections -----------------------------------------------------------------


def _claims_html(claims):
    rows = [[_badge(c["verdict"]), html.escape(c["text"]), html.escape(c.get("measure", "")),
             html.escape(_estimate_text(c))] for c in claims]
    return _table(["verdict", "claim", "measured as", "estimate [95 % CI]"], rows, numeric=(3,))


def _claim_sentence(claim):
    """One sentence: the claim, the estimate with its interval, and whether it held."""
    word = {"held": "holds", "not shown": "is not shown (the interval contains zero)",
            "reversed": "is reversed (the interval lies on the other side)"}[claim["verdict"]]
    return (f"Claim <em>{html.escape(claim['text'])}</em>: {html.escape(claim.get('measure', ''))} = "
            f"{html.escape(_estimate_text(claim))}, so it {word}.")


def _claim_list(claims):
    return "<ul>" + "".join(f"<li>{_claim_sentence(c)}</li>" for c in claims) + "</ul>"


def _section_normality(sec):
    tests = list(sec["rejected"])
    header = ["layer", "filters"] + [t.replace("_", " ") for t in tests]
    rows = []
    for i, layer in enumerate(sec["layers"]):
        rows.append([html.escape(layer), str(sec["n_filters"][i])] + [
            f"{_pct(sec['rejected'][t]['share'][i], 0)} [{_pct(sec['rejected'][t]['ci_low'][i], 0)}, "
            f"{_pct(sec['rejected'][t]['ci_high'][i], 0)}]" for t in tests])
    rows.append(["<b>all</b>", str(sum(sec["n_filters"]))] + [
        f"<b>{html.escape(_estimate_text({'measure': 'share', **sec['rejected'][t]['overall']}))}</b>" for t in tests])
    gpd = sec["rejected"].get("gpd_anderson_darling")
    gpd_text = "" if gpd is None else (
        f" The POT score assumes instead that each filter's exceedances over its threshold follow a generalized "
        f"Pareto distribution; the Anderson-Darling test rejects that fit for "
        f"{_pct(gpd['overall']['value'])} of the {gpd.get('n_tested', '')} filters it could test.")
    return (
        "<p>The z-score reads every filter's gradient norms as if they were normal. Each filter's "
        f"{sec['n_samples']} reference norms are tested for normality; p-values are corrected over the filters "
        f"({html.escape(str(sec['correction']))}, alpha = {sec['alpha']}). Intervals are Wilson 95 % intervals "
        f"over the filters of a layer.{gpd_text}</p>"
        f"<p>{_claim_sentence(sec['claim'])}</p>"
        + _table(header, rows, numeric=tuple(range(1, len(header))))
    )


def _section_malicious(sec):
    if not sec["pooled"]:
        return f"<p>{html.escape(sec['claims'][0]['text'])}.</p>"
    rows = []
    for group, table in [*sec["by_kind"].items(), ("all kinds", sec["pooled"])]:
        for ref, name in _series(sec):
            s = table[ref][name]
            rows.append([html.escape(group), html.escape(ref), html.escape(name),
                         _estimate_text({"measure": "hit rate", **s["hit_rate"]}),
                         _estimate_text({"measure": "rank", **s["mean_rank"]})])
    rows.append(["", "", f"{sec['k']} random filters", _pct(sec["random_hit_rate"]), _fmt(sec["random_mean_rank"])])
    n_err = [t["n_errors"] for t in sec["trials"]]
    return (
        f"<p>In each of {len(sec['trials'])} trials ({sec['n_trials']} per kind of fault: "
        f"{html.escape(', '.join(sec['kinds']))}), {sec['k']} of the {sec['n_filters']} filters, drawn at random, "
        "were made faulty. The test images that the original model classifies correctly and the faulty one does "
        f"not ({min(n_err)} to {max(n_err)} per trial; up to a fixed number diagnosed, {sec['n_inputs']} in all) "
        "were diagnosed with the faulty model's gradients, by scorers fitted on one of two references: the "
        "<em>faulty</em> model's own gradient norms over training images it still gets right (a user diagnosing "
        "a model whose faults they do not know), or the <em>original</em> model's (a reference kept from before "
        "the tampering). The hit rate is the share of (image, implanted filter) pairs where the implanted filter "
        f"is among the image's top-{sec['k']}; intervals are two-stage bootstrap intervals (trials, then images). "
        "The claims below pool the kinds of fault.</p>"
        + _claim_list(sec["claims"])
        + _table(["fault", "reference", "scorer", f"hit rate (top-{sec['k']})", "mean rank of implanted filters"],
                 rows, numeric=(3, 4))
    )


def _section_depth(sec):
    conds = [c for c, e in sec["conditions"].items() if e.get("n_rows", 0) > 0]
    names = list(sec["conditions"][conds[0]]["scorers"]) if conds else []
    header = ["condition", "accuracy", "errors diagnosed"] + [f"bias {n}" for n in names] + ["verdict"]
    rows = []
    for c, e in sec["conditions"].items():
        if e.get("n_rows", 0) == 0:
            rows.append([html.escape(c), _pct(e.get("accuracy")), "0"] + ["n/a"] * len(names) + ["no errors"])
            continue
        rows.append([html.escape(c.replace("_", " ")), _pct(e.get("accuracy")), str(e["n_rows"])]
                    + [f"{_fmt(e['scorers'][n]['bias'], 2)} [{_fmt(e['scorers'][n]['bias_ci'][0], 2)}, "
                       f"{_fmt(e['scorers'][n]['bias_ci'][1], 2)}]" for n in names]
                    + [_badge(e["claim"]["verdict"]) if "claim" in e else ""])
    held = sum(c["verdict"] == "held" for c in sec["claims"])
    reversed_ = sum(c["verdict"] == "reversed" for c in sec["claims"])
    shifts = []
    for n in names:
        mean_shift = np.nanmean([sec["conditions"][c]["scorers"][n]["mean_depth_shift"] for c in conds])
        direction = "deeper" if mean_shift > 0 else "shallower"
        shifts.append(f"{n}'s picks sit on average {abs(mean_shift):.2f} layers {direction} than random filters")
    return (
        f"<p>For the errors of each condition, each scorer's top-{sec['k']} filters are counted by layer, against "
        "the layer's share of all filters; reference statistics always come from the clean training data. The "
        "bias is the total variation distance between the two shares (0: picks in proportion to layer size); "
        "intervals are bootstrap intervals over the errors, and the difference between the scorers is paired "
        f"(same resampled errors). Less depth bias for POT held in {held} of {len(sec['claims'])} conditions "
        f"and was reversed in {reversed_}. {html.escape('; '.join(shifts))}.</p>"
        + _table(header, rows, numeric=(1, 2) + tuple(range(3, 3 + len(names))))
    )


def _section_repair(sec):
    rows = [[html.escape(name), _estimate_text({"measure": "share", **r["mean_share"]}),
             _estimate_text({"measure": "share", **r["share_at_k_max"]})] for name, r in sec["rankings"].items()]
    held = [c for c in sec["claims"] if c["verdict"] == "held"]
    mode = ("switched off (weights set to zero)" if sec["mode"] == "zero"
            else f"moved one gradient step (lr = {sec['lr']})")
    sources = sec.get("n_by_condition")
    origin = "" if not sources else " (" + ", ".join(
        f"{n} {name.replace('_', ' ')}" for name, n in sources.items() if n) + ")"
    return (
        f"<p>Each of {sec['n_inputs']} misclassified images{html.escape(origin)} is repaired along a ranking: its "
        f"first k filters are {mode}, one more at each step, and the image is classified again. The curves show the "
        "share of "
        f"images classified correctly with k filters changed, with 95 % bootstrap bands over images. "
        f"{len(held)} of {len(sec['claims'])} rankings corrected more errors than {html.escape(sec['control'])} "
        "filters (paired bootstrap of the mean share over k).</p>"
        + _claim_list(sec["claims"])
        + _table(["ranking", f"mean share corrected, k = 1..{len(sec['k'])}",
                  f"share corrected at k = {len(sec['k'])}"], rows, numeric=(1, 2))
    )


def _section_maps(sec):
    return (
        f"<p>For a few misclassified images: occlusion maps (window {sec['window']} px, stride {sec['stride']} px, "
        f"baseline {html.escape(str(sec['baseline']))}). Red regions are those whose occlusion lowers the watched "
        "quantity most: the probability of the predicted class, or the mean anomaly score of each scorer's "
        f"top-{sec['k']} filters (gradients at the true label).</p>"
    )


def _meta_html(meta):
    model = meta.get("model", {})
    how = "loaded from cache" if meta.get("model_cached") else "trained"
    rows = [
        ["network", html.escape(f"{model.get('arch', '?')} (width {model.get('width', '?')}), "
                                f"{meta.get('n_filters', '?')} filters in {len(meta.get('layers', []))} layers")],
        ["training", html.escape(f"{model.get('n_train', '?')} images, {model.get('epochs', '?')} epochs, seed "
                                 f"{model.get('seed', '?')}; {how} (training took "
                                 f"{_fmt(meta.get('train_seconds'), 3)} s)")],
        ["clean test accuracy", _pct(meta.get("test_accuracy"))],
        ["reference", html.escape(f"{meta.get('n_reference', '?')} correctly classified training images, "
                                  f"{meta.get('reduction', '')} gradient norms")],
        ["scorers", html.escape(f"z-score (Levin et al. 2022); POT with the {meta.get('pot_level', '')} quantile as "
                                f"threshold and exact GPD maximum likelihood (Wang & Sato 2023)")],
        ["mode", "quick (CI sizes)" if meta.get("quick") else "full"],
        ["versions", html.escape(f"evtools {meta.get('evtools_version', '?')}, torch {meta.get('torch_version', '?')}, "
                                 f"python {meta.get('python', '?')}, {meta.get('torch_threads', '?')} threads")],
        ["time per step (s)", html.escape(", ".join(f"{k} {v:.1f}" for k, v in meta.get("timings", {}).items()))],
    ]
    return _table(None, rows)


def build_report(results, path=None):
    """The HTML report of a results dict: headings, explanations, tables and embedded figures.

    Every sentence that states a result is computed from the numbers in
    ``results``; a claim's verdict comes from its confidence interval.

    Parameters
    ----------
    results : dict
        Following the schema of :mod:`evtools.results`; missing sections are left out.

    Raises
    ------
    InvalidInputError
        ``results`` does not follow the schema (the message names the key).
    path : str or os.PathLike, optional
        Where to write the page (UTF-8).

    Returns
    -------
    str
        The page, self-contained (figures as base64 PNG, styles inline).
    """
    validate_results(results)
    meta = results.get("meta", {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>evtools report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>Parameter saliency: which filters caused the mistakes?</h1>",
        "<p class='lede'>A CNN's mistakes are diagnosed filter by filter with two scorers fitted to the gradient "
        "norms of inputs it classifies correctly: the z-score of Levin et al. (2022) and the peaks-over-threshold "
        "(POT) score of Wang & Sato (2023). Each published claim is measured with a 95 % confidence interval "
        "and reported as it came out.</p>",
    ]
    if meta:
        parts.append(_meta_html(meta))
    if results.get("claims"):
        parts += ["<h2>Claims at a glance</h2>", _claims_html(results["claims"])]
    if all(key in results for key in _MAIN_SECTIONS):
        parts.append(_figure_html(_main_figure(results), "Summary: malicious-filter detection (top left), depth "
                                  "bias per condition (top right), repair curves (bottom left) and the "
                                  "statistical assumptions of the scorers (bottom right)."))
    sections = [
        ("normality", "1. Do the scorers' assumptions hold?", _section_normality, _fig_normality),
        ("malicious", "2. Finding malicious filters", _section_malicious, _fig_malicious),
        ("depth_shift", "3. Layer-depth bias, on clean errors and under domain shift", _section_depth, _fig_depth),
        ("repair", "4. Repairing errors by changing the top filters", _section_repair, _fig_repair),
        ("input_maps", "5. Where in the image?", _section_maps, _fig_maps),
    ]
    for key, title, text, fig in sections:
        sec = results.get(key)
        if not sec:
            continue
        parts += [f"<h2>{html.escape(title)}</h2>", text(sec)]
        if key != "malicious" or sec["pooled"]:
            parts.append(_figure_html(fig(sec), ""))
    parts.append("<p class='note'>Verdicts: <em>held</em> when the 95 % interval of the measured difference lies "
                 "on the claimed side of zero, <em>not shown</em> when it contains zero, <em>reversed</em> when it "
                 "lies on the other side. See docs/statistics.md for the statistics and docs/guide.md to run these "
                 "experiments on your own model.</p></body></html>")
    page = "\n".join(parts)
    if path is not None:
        with atomic_save(path) as fh:
            fh.write(page.encode("utf-8"))
    return page


def _figure_html(fig, caption):
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    alt = html.escape(caption or "figure")
    return f"<figure><img alt='{alt}' src='data:image/png;base64,{_png(fig)}'>{cap}</figure>"
