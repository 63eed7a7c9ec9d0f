"""``evtools demo``: the subcommand this adapter adds to the ``evtools`` command line.

Registered in pyproject.toml under the ``evtools.commands`` entry-point group,
so the core command line finds it without naming this package.
"""
from __future__ import annotations

from evtools import EvtoolsError


def add_demo_command(subparsers):
    """Add ``evtools demo`` to the ``evtools`` subparsers (an argparse ``_SubParsersAction``)."""
    p = subparsers.add_parser("demo", help="train a small CNN, diagnose its mistakes, write a report",
                              description="Train (or load from DIR/cache) the demo CNN, run the published "
                                          "experiments and write DIR/report.html and DIR/results.json. "
                                          "Needs torch and matplotlib.")
    p.add_argument("--out", default="evtools_demo", help="output folder (default: ./evtools_demo)")
    p.add_argument("--quick", action="store_true", help="small model and sizes, for CI (under a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, the data and the experiments")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    p.set_defaults(run=run_demo_command)


def run_demo_command(args):
    """Run the demo for parsed ``args``; returns the exit status 0."""
    try:
        import matplotlib  # noqa: F401  (the report's figures)
    except ImportError as exc:
        raise EvtoolsError(f"`evtools demo` needs matplotlib for its report ({exc}); "
                           "install it with: pip install 'evtools[torch,plot]'") from exc
    from .demo.run import run_demo, summary_table

    results = run_demo(args.out, quick=args.quick, seed=args.seed, progress=args.progress)
    print(summary_table(results))
    print(f"report: {args.out}/report.html")
    return 0
