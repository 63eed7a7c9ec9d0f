"""Write docs/api.md: every public name with its signature and the first line of its docstring.

Run from the repository root after changing a public name or docstring::

    python docs/make_api.py            # rewrites docs/api.md
    python docs/make_api.py --check    # exit status 1 if docs/api.md is out of date

The public names are those each package exports (``__all__``, else the names
its ``__init__`` imports that do not start with an underscore), plus the
modules listed in :data:`MODULES`. Importing the adapters needs torch and jax;
a package that cannot be imported stops the script (the page must list everything).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("evtools", "evtools_torch", "evtools_jax")
OUT = ROOT / "docs" / "api.md"

MODULES = [
    ("evtools", "The core: tail models, scorers, tests, threshold rules (`import evtools as ev`)."),
    ("evtools.perturb", "Input-perturbation saliency maps, their evaluation and comparison."),
    ("evtools.plots", "Diagnostic plots (needs matplotlib)."),
    ("evtools.report", "The HTML report of the experiments (needs matplotlib)."),
    ("evtools_torch", "The PyTorch adapter: gradient-norm matrices, repair, implanted faults."),
    ("evtools_torch.experiments", "The published experiments as functions of any PyTorch classifier."),
    ("evtools_torch.demo", "Demo data, models and training."),
    ("evtools_torch.demo.run", "The `evtools demo` pipeline."),
    ("evtools_jax", "The JAX adapter: gradient-norm matrices of Flax, Equinox and lax CNNs."),
]


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
                 and (getattr(v, "__module__", "") or "").split(".")[0] in PROJECT]
        if not hasattr(module, "__path__"):  # a plain module: only what it defines
            names = [n for n in names if getattr(vars(module)[n], "__module__", None) == module.__name__]
    return sorted(n for n in names if not isinstance(getattr(module, n), types.ModuleType))


def _summary(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _signature(obj, name):
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _members(cls):
    """Public attributes of a class defined in this project (inherited ones included), by name."""
    out = []
    for attr in sorted(dir(cls)):
        if attr.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if attr in vars(k)), None)
        if owner is not None and owner.__module__.split(".")[0] in PROJECT:
            out.append((attr, vars(owner)[attr]))
    return out


def _entry(name, obj):
    lines = []
    if inspect.isclass(obj):
        lines.append(f"- **`{_signature(obj, name)}`** (class): {_summary(obj)}")
        for attr, member in _members(obj):
            func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if isinstance(member, property):
                lines.append(f"    - `.{attr}` (property): {_summary(member)}")
            elif callable(func):
                lines.append(f"    - `.{_signature(func, attr)}`: {_summary(func)}")
    elif callable(obj):
        lines.append(f"- **`{_signature(obj, name)}`**: {_summary(obj)}")
    else:
        lines.append(f"- **`{name}`** = `{obj!r}`" if isinstance(obj, (str, int, float, tuple)) else f"- **`{name}`**")
    return lines


def render():
    """The page as a string."""
    sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]
    parts = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand. Every public name "
             "with its signature and the first line of its docstring; `help(name)` shows the rest. See "
             "[guide.md](guide.md) for a walk-through and [statistics.md](statistics.md) for the statistics.", ""]
    for module_name, about in MODULES:
        module = importlib.import_module(module_name)
        parts += [f"## `{module_name}`", "", about, ""]
        for name in _public_names(module):
            parts += _entry(name, getattr(module, name))
        parts.append("")
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from the docstrings")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != page:
            print("docs/api.md is out of date: run python docs/make_api.py")
            return 1
        return 0
    OUT.write_text(page)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
