"""The documentation site builds with Sphinx, warnings as errors, and lists every public name.

The build is the one in ``docs/conf.py`` (autodoc + numpydoc for the API reference, MyST for the
markdown guide pages, every cross-reference checked); a broken link, reference or docstring
section fails it.
"""
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

for _module in ("sphinx", "numpydoc", "myst_parser", "torch", "jax", "matplotlib"):
    pytest.importorskip(_module)

pytestmark = pytest.mark.slow  # each build imports torch and jax: about 15 s of CPU for the site

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGES = ("evtools", "evtools.perturb", "evtools_torch", "evtools_jax")


def _sphinx(source, out, *extra):
    """Run ``sphinx-build -W -E -q -b html`` with the project's configuration; its exit status and output."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "-E", "-q", "-b", "html", "-c", str(DOCS), *extra, str(source),
           str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    return done.returncode, done.stdout + done.stderr


def _public_names(module):
    """What a package exports: ``__all__``, else the non-module names its ``__init__`` imports
    from this project that do not start with an underscore."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (getattr(v, "__module__", "") or "").split(".")[0] in ("evtools", "evtools_torch", "evtools_jax")]
    return sorted(n for n in names if not isinstance(getattr(module, n), types.ModuleType))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    code, log = _sphinx(DOCS, out)
    assert code == 0, log
    return out


def test_site_builds_without_warnings_with_every_page(site):
    for page in ("index", "guide", "statistics", "saliency", "perturb", "streaming", "jax", "adapter_contract",
                 "api"):
        assert (site / f"{page}.html").is_file(), page
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="api.html"' in index and 'href="guide.html"' in index


def test_api_page_documents_every_public_name(site):
    page = (site / "api.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page))
    missing = [f"{package}.{name}" for package in PACKAGES
               for name in _public_names(importlib.import_module(package))
               if f"{package}.{name}" not in documented]
    assert not missing, missing
    # numpydoc rendered the sections (not raw reST), and inherited methods are there
    assert "evtools.POTSaliency.rank" in documented and "evtools.ZScoreSaliency.select" in documented
    assert "Parameters" in page and ".. py:" not in page and "!! processed by numpydoc" not in page


@pytest.mark.parametrize("broken", [
    "See [a page that is not there](missing.md).",
    "See {py:func}`evtools.no_such_function`.",
])
def test_a_broken_reference_fails_the_build(tmp_path, broken):
    """The same configuration on a one-page site: a dangling link or API reference is an error."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text(f"# Broken\n\n{broken}\n")
    code, log = _sphinx(source, tmp_path / "out")
    assert code != 0
    assert "missing.md" in log or "evtools.no_such_function" in log, log
