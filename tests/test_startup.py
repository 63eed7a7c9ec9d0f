"""``import evtools`` is cheap and the numba cache works for a read-only install (subprocesses)."""
import json
import os
import shutil

import numpy as np
import pytest

import evtools as ev
from tests.subprocess_helpers import ROOT, run_python

HEAVY = ("scipy.stats", "statsmodels", "matplotlib", "dask", "numba", "evtools.tails", "evtools._kernels.tails")


def stdout_of(code, env=None, cwd=None):
    """The output of ``code`` run by ``subprocess_helpers.run_python``, which must succeed."""
    out = run_python(code, env=env, cwd=cwd, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_loads_nothing_heavy():
    code = ("import sys, json, evtools\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(stdout_of(code)) == []


def test_public_names_resolve_and_are_listed():
    code = ("import json, evtools as ev\n"
            "names = sorted(ev._EXPORTS)\n"
            "missing = [n for n in names if n not in dir(ev)]\n"
            "from evtools import fit_tails, GPD, perturb\n"
            "print(json.dumps([missing, [type(getattr(ev, n)).__name__ for n in names]]))")
    missing, kinds = json.loads(stdout_of(code))
    assert missing == []
    assert "NoneType" not in kinds
    assert ev.fit_tails.__module__ == "evtools.tails"


def test_submodules_are_attributes_of_a_fresh_import():
    code = ("import json, evtools as ev\n"
            "print(json.dumps([ev.gpd.__name__, ev.tails.__name__, ev.perturb.__name__]))")
    assert json.loads(stdout_of(code)) == ["evtools.gpd", "evtools.tails", "evtools.perturb"]


def test_unknown_name_is_an_attribute_error():
    try:
        ev.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


@pytest.mark.slow  # compiles the fit kernels into an empty cache
def test_numba_cache_for_a_read_only_install(tmp_path):
    """With the package directory unwritable, numba caches under $XDG_CACHE_HOME/numba and reuses it.

    As root a read-only directory is still writable, so there the refusal is
    simulated where numba checks it (its in-tree locator's write test).
    """
    site = tmp_path / "site"
    shutil.copytree(ROOT / "evtools", site / "evtools", ignore=shutil.ignore_patterns("__pycache__"))
    cache_home = tmp_path / "cache"
    np.save(tmp_path / "G.npy", np.random.default_rng(0).exponential(size=(300, 4)))
    for path in sorted(site.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    site.chmod(0o555)
    simulate = os.access(site / "evtools", os.W_OK)  # root ignores file modes
    env = {"XDG_CACHE_HOME": str(cache_home), "NUMBA_CACHE_DIR": "", "PYTHONDONTWRITEBYTECODE": "1"}
    code = ("import json\n"
            + ("import numba.core.caching as C\n"
               "def refuse(self):\n    raise PermissionError('read-only install')\n"
               "C.InTreeCacheLocator.ensure_cache_path = refuse\n" if simulate else "")
            + "import numpy as np, evtools as ev\n"
            f"ev.fit_tails(np.load({str(tmp_path / 'G.npy')!r}), progress=False)\n"
            "import evtools._kernels.tails as K\n"
            "s = K.order_block.stats\n"
            "print(json.dumps([s.cache_path, len(s.cache_hits), len(s.cache_misses)]))")
    try:
        first = json.loads(stdout_of(code, env, cwd=site))
        second = json.loads(stdout_of(code, env, cwd=site))
    finally:
        for path in [site, *site.rglob("*")]:
            path.chmod(0o755)
    assert first[0].startswith(str(cache_home / "numba"))
    assert first[1:] == [0, 1]  # compiled and written to the user cache ...
    assert second[1:] == [1, 0]  # ... and loaded from it by the next process
    assert not list((site / "evtools").rglob("*.nbi"))


@pytest.mark.slow  # compiles the PWM fit kernels into an empty cache
def test_a_fit_compiles_only_its_own_estimator(tmp_path):
    """``method="pwm"`` compiles ``pwm_fit``, not the MLE (2 s of a cold fit) nor its covariance."""
    code = ("import numpy as np, evtools as ev\n"
            "from evtools._kernels import gpd, return_levels\n"
            "G = np.random.default_rng(0).exponential(size=(300, 4)).astype(np.float32)\n"
            "ev.fit_tails(G, method='pwm', progress=False)\n"
            "print(*(len(f.signatures) for f in (gpd.pwm_fit, gpd.mle_fit, return_levels.relative_cov)))")
    assert stdout_of(code, {"NUMBA_CACHE_DIR": str(tmp_path)}).split() == ["1", "0", "0"]
