"""Helpers of the tests that run evtools in a fresh interpreter or write to odd files."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
"""The environment of a child interpreter: this checkout's packages first."""


def run_python(code, *args, timeout=300, env=None, cwd=None):
    """Run ``code`` (dedented) in a new interpreter with ``args`` as ``sys.argv[1:]``; the CompletedProcess.

    The child gets ``ENV`` updated with ``env`` (a dict of variables) and runs in ``cwd`` (default: the
    current directory), which ``python -c`` puts first on ``sys.path``, ahead of ``ENV``'s PYTHONPATH.
    """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd, timeout=timeout)


def make_fifo(path):
    """A fifo with a reader attached, so that code that (wrongly) opens it for writing does not block."""
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
