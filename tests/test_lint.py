"""Lint: ``ruff check`` with the configuration of pyproject.toml ([tool.ruff]) over every source folder."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["evtools", "adapters", "tests", "benchmarks", "docs"]


def _ruff():
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is not installed (pip install 'evtools[test]')")
    return [sys.executable, "-m", "ruff"]


def test_ruff_check_passes():
    out = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", *FOLDERS],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
