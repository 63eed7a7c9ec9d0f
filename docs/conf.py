"""Sphinx configuration: the guide pages (MyST markdown) and the API reference from the numpy docstrings.

Build (from the repository root; autodoc imports the adapters, so torch and jax too)::

    pip install -e ".[torch,jax,docs]"
    python -m sphinx -W -b html docs docs/_build/html

``tests/test_docs.py`` runs the same build with warnings as errors.
"""
import os
import sys
import warnings

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "adapters")]
# numpydoc reports a docstring it cannot parse (an unknown section) as a Python warning, which
# sphinx's -W does not see: make it an error so that the build fails on it too.
warnings.filterwarnings("error", category=UserWarning, module="numpydoc")

project = "evtools"
author = "evtools contributors"
copyright = "evtools contributors"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}  # .rst: autosummary (loaded by numpydoc) wants it
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: markdown pages, $...$ math, headings up to ### get link targets, relative links to pages resolve.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# autodoc + numpydoc: members in source order, signatures with their annotations as written.
# Inherited members are shown (the scorers' rank/select live in a private base class), except
# those of Python's and the frameworks' own base classes.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "inherited-members": "object,BaseException,Exception,ValueError,AttributeError,IntEnum,int,Mapping,tuple,Module",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False  # members are documented in place by autodoc
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Every cross-reference must resolve (a broken one fails the build under -W), except those into
# numpy, the frameworks and the other libraries, which are not linked (no intersphinx: no network).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|statsmodels|pandas|matplotlib|dask|torch|jax|jnp|flax|equinox|optax)(\..*)?"),
]

html_theme = "alabaster"
html_title = "evtools"
html_theme_options = {"description": "Extreme-value statistics for diagnosing CNNs", "page_width": "1100px",
                      "sidebar_width": "260px"}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_static_path = []


def _drop_builtin_docstrings(app, what, name, obj, options, lines):
    """A re-exported constant (``evtools_torch.demo.CLASSES``) has no docstring of its own: show its
    value, not the docstring of its type (``tuple``)."""
    type_doc = type(obj).__doc__
    if what in ("data", "attribute") and lines and isinstance(type_doc, str) and \
            "\n".join(lines).strip() == type_doc.strip():
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_builtin_docstrings, priority=400)
