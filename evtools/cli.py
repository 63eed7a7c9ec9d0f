"""The ``evtools`` command line.

::

    evtools fit G_ref.npy -o tails.npz             # per-filter tail models (POT), or --scorer zscore
    evtools score tails.npz G.npy --top 10         # top filters per row, with p-values
    evtools normality G_ref.npy                    # normality tests per column, summary per layer
    evtools return-levels tails.npz --period 1e4   # per-filter return levels with 95 % intervals
    evtools demo --out DIR [--quick]               # from the PyTorch adapter: train a CNN, DIR/report.html

Matrices are read from ``.npy``, ``.npz`` or ``.csv``; tables go to the
terminal, or as CSV or JSON to ``-o FILE`` / ``--format``. Bad input ends
with one ``evtools: error: ...`` line on stderr and exit status 1 (2 for a
bad command line), never a traceback.

Each subcommand is one ``_add_<name>`` function that declares its arguments
and one ``_run_<name>`` function that does the work; a new subcommand adds
such a pair and registers it in ``SUBCOMMANDS``. Other packages add
subcommands through the ``evtools.commands`` entry-point group (the PyTorch
adapter adds ``demo``): the entry point names a function that takes the
subparsers and adds its parser, with ``set_defaults(run=...)``; the core
never names an adapter.
"""
from __future__ import annotations

import argparse
import sys
from importlib import metadata

import numpy as np

from . import __version__
from ._errors import EvtoolsError, InvalidInputError
from ._io import TABLE_FORMATS, format_table, read_matrix, write_table
from ._status import status_names
from ._validation import INT_MAX
from .depth import layer_codes
from .gpd import METHODS as GPD_METHODS
from .multitest import CORRECTIONS
from .normality import NORMALITY_TESTS, normality_tests
from .saliency import POTSaliency, ZScoreSaliency, load_saliency
from .threshold import Fixed, Quantile, TopK

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


# --- shared arguments and output ---------------------------------------------------------


def _add_matrix_argument(parser, name, help):
    parser.add_argument(name, help=f"{help} (.npy, .npz or .csv)")
    parser.add_argument("--key", help="array name inside an .npz archive (default: its only array, or 'G')")


def _add_output_arguments(parser):
    parser.add_argument("-o", "--output", help="write the table to this .csv or .json file")
    parser.add_argument(
        "--format", choices=TABLE_FORMATS, default="text",
        help="table format on standard output (default: aligned text)",
    )


def _emit(table, args, title=None):
    """Print or write a table as ``--output`` / ``--format`` ask."""
    if args.output:
        write_table(table, args.output)
        n = len(next(iter(table.values()))) if table else 0
        print(f"wrote {n} rows to {args.output}")
    elif args.format == "text":
        if title:
            print(title)
        print(format_table(table))
    else:
        write_table(table, sys.stdout, args.format)


def _read_layers(path, n_filters):
    """Layer name per column from a text or CSV file: one line per column, the layer in the first field."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh if line.strip()]
    except OSError as exc:
        raise EvtoolsError(f"{path}: cannot read the layer file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise EvtoolsError(f"{path}: the layer file is not UTF-8 text") from exc
    labels = [line.split(",")[0].strip() for line in lines]
    if len(labels) == n_filters + 1:  # a header line
        labels = labels[1:]
    return layer_codes(np.asarray(labels), n_filters)


def _threshold_rule(text):
    """``0.9`` is a quantile level, ``500`` a top-k count, ``fixed:30`` a fixed threshold.

    ``fixed:PATH`` reads one threshold per column from a ``.npy`` file or a
    text file of numbers.
    """
    if text.startswith("fixed:"):
        value = text[len("fixed:"):]
        try:
            return Fixed(float(value))
        except ValueError:
            pass
        try:
            values = np.load(value) if value.endswith(".npy") else np.loadtxt(value, delimiter=None, ndmin=1)
            return Fixed(np.ravel(values))
        except (OSError, ValueError) as exc:
            raise argparse.ArgumentTypeError(
                f"{text}: give fixed:NUMBER or fixed:FILE (.npy or text, one threshold per column): {exc}"
            ) from None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if 0 < value < 1:
        return Quantile(value)
    if 1 <= value <= INT_MAX and value == int(value):
        return TopK(int(value))
    raise argparse.ArgumentTypeError(
        f"{text}: give a quantile level in (0, 1), a whole number of top values, or fixed:NUMBER"
    )


def _correction(text):
    return None if text == "none" else text


# --- evtools fit --------------------------------------------------------------------------


def _add_fit(subparsers):
    p = subparsers.add_parser("fit", help="fit per-filter reference models to G_ref",
                              description="Fit a scorer to a reference gradient matrix and save it.")
    _add_matrix_argument(p, "G_ref", "reference gradient matrix, shape (n_samples, n_filters)")
    p.add_argument("-o", "--output", required=True,
                   help="model file to write; .npz is appended unless the name ends with it")
    p.add_argument("--scorer", choices=("pot", "zscore"), default="pot",
                   help="pot: tail model per filter (Wang & Sato); zscore: mean and std (Levin et al.)")
    p.add_argument("--threshold", type=_threshold_rule, default=Quantile(0.90),
                   help="pot threshold: a quantile level such as 0.9 (default), a top-k count such as 500, "
                        "or a fixed threshold: fixed:30 (every column) or fixed:FILE (.npy or text, one per column)")
    p.add_argument("--method", choices=GPD_METHODS, default="mle",
                   help="pot: GPD estimator (default: exact maximum likelihood)")
    p.add_argument("--holdout", type=_holdout_share, default=None, metavar="SHARE",
                   help="pot: fit on all but this share of the rows (e.g. 0.2, drawn with --seed) and "
                        "print how the tails hold on the rest (observed / expected exceedances)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --holdout split (default 0)")
    p.set_defaults(run=_run_fit)


def _holdout_share(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"the held-out share must lie in (0, 1), got {value}")
    return value


def _run_fit(args):
    G_ref = read_matrix(args.G_ref, key=args.key)
    holdout = None
    if args.holdout is not None:
        if args.scorer != "pot":
            raise InvalidInputError("--holdout checks tail models: use it with --scorer pot")
        n = G_ref.shape[0]
        rows = np.random.default_rng(args.seed).permutation(n)
        n_out = int(round(args.holdout * n))
        if not 0 < n_out < n:
            raise InvalidInputError(f"--holdout {args.holdout} of {n} rows leaves no rows to hold out or to fit")
        held, kept = np.sort(rows[:n_out]), np.sort(rows[n_out:])
        G_ref, holdout = G_ref[kept], G_ref[held]
    if args.scorer == "zscore":
        model = ZScoreSaliency().fit(G_ref)
        summary = f"{model!r}: {model.n_features_in_} filters, {model.n_samples_seen_} samples"
    else:
        model = POTSaliency(threshold=args.threshold, method=args.method).fit(G_ref)
        summary = repr(model.tail_)
    written = model.save(args.output)  # .npz appended unless given; the real path is reported
    print(summary)
    if holdout is not None:
        print(model.tail_.calibration(holdout))
    print(f"saved to {written}")
    return EXIT_OK


# --- evtools score ------------------------------------------------------------------------


def _add_score(subparsers):
    p = subparsers.add_parser("score", help="rank the filters of each row of G",
                              description="Score the rows of G with a saved model and list the top filters.")
    p.add_argument("model", help="model file written by `evtools fit` (the .npz suffix may be left out)")
    _add_matrix_argument(p, "G", "gradient matrix to diagnose, shape (n_rows, n_filters)")
    p.add_argument("--top", type=int, default=10, help="filters listed per row (default 10)")
    p.add_argument("--alpha", type=float,
                   help="list only filters significant at this level after --correction")
    p.add_argument("--correction", type=_correction, choices=(*CORRECTIONS, None), default="fdr_bh",
                   metavar="{fdr_bh,...,none}", help="multiple-testing correction over the filters (default fdr_bh)")
    p.add_argument("--layers", help="layer of each column: a text/CSV file, one line per column")
    _add_output_arguments(p)
    p.set_defaults(run=_run_score)


def _run_score(args):
    model = load_saliency(args.model)
    G = read_matrix(args.G, key=args.key)
    if args.top < 1:
        raise EvtoolsError(f"--top must be at least 1, got {args.top}")
    ranking = model.rank(G, min(args.top, model.n_features_in_))
    table = ranking.to_dict()
    if args.alpha is not None:
        selection = model.select(G, alpha=args.alpha, correction=args.correction)
        rows, cols = table["row"], table["filter"]
        keep = np.atleast_2d(selection.rejected)[rows, cols]
        table = {name: values[keep] for name, values in table.items()}
        table["pvalue_corrected"] = np.atleast_2d(selection.pvalue_corrected)[rows[keep], cols[keep]]
    if args.layers:
        layers, codes = _read_layers(args.layers, model.n_features_in_)
        table["layer"] = layers[codes[table["filter"]]]
    _emit(table, args, title=f"{model!r}: top {ranking.k} filters per row")
    return EXIT_OK


# --- evtools normality --------------------------------------------------------------------


def _add_normality(subparsers):
    p = subparsers.add_parser("normality", help="test every column for normality",
                              description="Normality tests per column, corrected over columns.")
    _add_matrix_argument(p, "G", "gradient matrix, shape (n_samples, n_filters)")
    p.add_argument("--tests", default=",".join(NORMALITY_TESTS),
                   help=f"comma-separated subset of {','.join(NORMALITY_TESTS)}")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the decisions (default 0.05)")
    p.add_argument("--correction", type=_correction, choices=(*CORRECTIONS, None), default="fdr_bh",
                   metavar="{fdr_bh,...,none}", help="multiple-testing correction over the columns")
    p.add_argument("--layers", help="layer of each column: a text/CSV file, one line per column")
    p.add_argument("--per-column", action="store_true",
                   help="output every column's statistics and p-values instead of the per-layer summary")
    _add_output_arguments(p)
    p.set_defaults(run=_run_normality)


def _run_normality(args):
    G = read_matrix(args.G, key=args.key)
    tests = tuple(t.strip() for t in args.tests.split(",") if t.strip())
    report = normality_tests(G, tests=tests, correction=args.correction, alpha=args.alpha)
    if args.per_column:
        _emit(report.to_dict(), args, title=repr(report))
        return EXIT_OK
    layers = None
    if args.layers:
        names, codes = _read_layers(args.layers, G.shape[1])
        layers = names[codes]
    summary = report.summary(layers)
    _emit(summary.to_dict(), args, title=f"{report!r}\nshare of columns rejecting normality:")
    return EXIT_OK


# --- evtools return-levels ----------------------------------------------------------------


def _add_return_levels(subparsers):
    p = subparsers.add_parser(
        "return-levels", help="per-filter return levels with confidence intervals",
        description="Return levels of a saved POT model (written by `evtools fit` or TailModel.save): "
                    "the level exceeded on average once every PERIOD observations (or PERIOD years "
                    "with --per-year), with intervals by the delta method or profile likelihood.")
    p.add_argument("model", help="model file written by `evtools fit` (pot scorer) or TailModel.save")
    p.add_argument("--period", type=float, default=None,
                   help="return period in observations, or in years with --per-year "
                        "(default: 10 x the reference rows, in years with --per-year)")
    p.add_argument("--per-year", type=float, default=None, help="observations per year (per unit of --period)")
    p.add_argument("--method", choices=("delta", "profile"), default="delta",
                   help="interval method (profile needs --data, the reference matrix)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--data", help="the reference matrix the model was fitted to (.npy, .npz or .csv); "
                                  "needed by --method profile")
    p.add_argument("--key", help="array name inside an .npz --data archive")
    p.add_argument("--json", action="store_true", help="print the table as JSON (same as --format json)")
    _add_output_arguments(p)
    p.set_defaults(run=_run_return_levels)


def _run_return_levels(args):
    model = load_saliency(args.model)
    if not isinstance(model, POTSaliency):
        raise EvtoolsError(f"{args.model} holds a z-score model; return levels need a pot model "
                           "(evtools fit --scorer pot)")
    tail = model.tail_
    period = args.period
    if period is None:  # 10 x the reference rows, in the unit of --period (years with --per-year)
        period = 10.0 * tail.n_samples / (args.per_year or 1.0)
    G = None if args.data is None else read_matrix(args.data, key=args.key)
    levels = tail.return_level(period, alpha=args.alpha, method=args.method, per_year=args.per_year, G=G)
    table = {"filter": np.arange(tail.n_filters), **levels.to_dict()}
    table["status"] = np.array(status_names(table["status"]))
    if args.json:
        args.format = "json"
    unit = f"{period:g} years x {args.per_year:g}" if args.per_year else f"{period:g}"
    _emit(table, args, title=f"return levels, period {unit} observations, "
                             f"{100 * (1 - args.alpha):g}% intervals ({args.method}):")
    return EXIT_OK


# --- subcommands of other packages (entry points) ---------------------------------------

#: entry-point group of subcommands added by other packages (``name = "module:add_function [extras]"``)
COMMAND_GROUP = "evtools.commands"


def discover_commands(entry_points=None):
    """Entry points of :data:`COMMAND_GROUP`, one per command name, not yet loaded.

    Parameters
    ----------
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        Default: those installed (``pip install -e .`` refreshes them in a checkout).

    Returns
    -------
    dict
        Command name -> EntryPoint (the first one of each name).
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=COMMAND_GROUP)
    found = {}
    for ep in entry_points:
        found.setdefault(ep.name, ep)
    return found


def _install_hint(ep):
    dist = getattr(ep, "dist", None)
    name = dist.name if dist is not None else "evtools"
    return f"pip install '{name}[{','.join(ep.extras)}]'" if ep.extras else f"pip install {name}"


def _add_entry_point_command(subparsers, ep):
    """Add the subcommand of one entry point; if it cannot load, a stand-in that says how to get it."""
    try:
        add = ep.load()
    except ImportError as exc:
        hint = _install_hint(ep)

        def missing(args, exc=exc):
            raise EvtoolsError(f"`evtools {ep.name}` comes from {ep.value.split(':')[0]}, which cannot be "
                               f"imported ({exc}); install what it needs with: {hint}")

        # no options (prefix_chars nobody types): every argument is taken, so the run says what is missing
        p = subparsers.add_parser(ep.name, help=f"(not available: {hint})", add_help=False, prefix_chars="\0")
        p.add_argument("arguments", nargs="*")
        p.set_defaults(run=missing)
        return
    add(subparsers)


# --- entry point --------------------------------------------------------------------------

SUBCOMMANDS = [_add_fit, _add_score, _add_normality, _add_return_levels]


def _command_name(argv):
    """The subcommand asked for in ``argv`` (first word not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv=None, entry_points=None):
    """The argument parser with every subcommand of ``SUBCOMMANDS`` and of :data:`COMMAND_GROUP`.

    Parameters
    ----------
    argv : list of str, optional
        The arguments to parse: only the subcommand they ask for is loaded
        from its package (PyTorch is not imported for ``evtools fit``,
        ``--help`` or ``--version``); None loads every subcommand.
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        As in :func:`discover_commands`.
    """
    parser = argparse.ArgumentParser(
        prog="evtools",
        description="Extreme-value statistics for diagnosing convolutional networks.",
    )
    parser.add_argument("--version", action="version", version=f"evtools {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    core = set(subparsers.choices)
    asked = None if argv is None else _command_name(argv)
    if asked in core:
        return parser
    for name, ep in discover_commands(entry_points).items():
        if name in core:
            continue
        if argv is None or name == asked:
            _add_entry_point_command(subparsers, ep)
        else:  # listed by --help without importing its package (PyTorch for `demo`)
            package = ep.value.split(":")[0].split(".")[0]
            subparsers.add_parser(name, help=f"from {package}: see evtools {name} --help")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on bad input (one error line on stderr), 2 on a bad
        command line.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except (EvtoolsError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"evtools: error: {message}", file=sys.stderr)
        return EXIT_ERROR
